"""PynamoDB models: the shape of every item in every table.

The layout is built for the report's reads (docs/ARCHITECTURE.md): polls are
grouped per (store shard, UTC day) into one item, so a report reads a known
set of keys with BatchGetItem and never scans or queries a growing table.

The classes here name no table: a deployment's table names are settings, read
once by the composition root (``chalicelib.dependencies``), which binds them
with ``Tables.from_settings``. Each binding is a set of subclasses with their
own ``Meta.table_name`` (PynamoDB's documented way to point one model at
another table), so two bindings never share a connection.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.models import Model

from chalicelib.settings import Settings
from chalicelib.storage.attributes import CompressedJSONAttribute, EnumAttribute, SortedJSONAttribute


class JobStatus(str, Enum):
    """Where a report job or an ingestion stands; the values are the strings stored and shown."""

    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"
    #: Ingestions only: the file as a whole was unusable (nothing of it was written).
    REJECTED = "Rejected"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class _Meta:
    # No host: botocore itself honours AWS_ENDPOINT_URL (moto server, LocalStack).
    # No table_name nor region: ``Tables.from_settings`` binds them.
    billing_mode = "PAY_PER_REQUEST"


class PollDirectory(Model):
    """The index of one store shard's polls in one UTC day (or of its roster).

    Reports read directories by exact key, then the blocks they name; blocks
    are written first, so a directory never names a block that does not exist.
    ``segments`` are blocks appended by ingestion batches (one per batch and
    shard-day, so a drop never rewrites a large item); compaction merges them
    into ``base`` blocks and bumps ``generation``, guarded by it.
    Key: ``<shard>#<YYYYMMDD>`` for polls, ``<shard>#stores`` for the roster.
    """

    class Meta(_Meta):
        pass

    bucket_key = UnicodeAttribute(hash_key=True)
    #: Content ids (``<hash>-<size>``) of blocks added by ingestion batches.
    segments = UnicodeSetAttribute(null=True)
    #: Content ids of the blocks compaction made from earlier segments.
    base = UnicodeSetAttribute(null=True)
    generation = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class PollBlock(Model):
    """One immutable block (``chalicelib.storage.blocks``), keyed ``<directory key>#<content id>``.

    Never updated in place, so writing one costs its own size; superseded
    blocks are left for TTL to delete (TTL deletes are free, DeleteItem is not).
    """

    class Meta(_Meta):
        pass

    bucket_key = UnicodeAttribute(hash_key=True)
    blob = BinaryAttribute(legacy_encoding=False)
    expires_at = TTLAttribute(null=True)


class StoreMapShard(Model):
    """One shard's per-store values (schedules or zones) as compressed JSON.

    The head item (key = shard number) holds the map in ``payload`` while it fits
    the item budget; past that, in immutable page items whose keys it lists in
    ``pages`` (keys from ``PAGE_KEY_BASE`` up, content-addressed). Replacing a
    store's schedule is a read-modify-write of the head guarded by ``version``,
    so concurrent drops never lose each other's stores.
    """

    class Meta(_Meta):
        pass

    shard = NumberAttribute(hash_key=True)
    #: The map itself (store id -> value), stored as compressed JSON.
    payload = CompressedJSONAttribute(null=True)
    pages = NumberSetAttribute(null=True)
    store_count = NumberAttribute(default=0)
    version = VersionAttribute()


class ReportJob(Model):
    """One report request, from trigger to Complete or Failed."""

    class Meta(_Meta):
        pass

    report_id = UnicodeAttribute(hash_key=True)
    status = EnumAttribute(JobStatus)  # Running | Complete | Failed
    created_at = UTCDateTimeAttribute()
    #: The data's "now" (latest poll, epoch seconds), fixed when triggered.
    data_now = NumberAttribute(null=True)
    parts_total = NumberAttribute()
    #: The plan, fixed when triggered: JSON list, item i = the shards of part i. A part
    #: message counts only if it matches its entry (messages are not trusted blindly).
    plan = UnicodeAttribute(null=True)
    #: Part numbers finished; a set, because SQS may deliver a part twice.
    parts_done = NumberSetAttribute(null=True)
    s3_key = UnicodeAttribute(null=True)
    rows = NumberAttribute(null=True)
    #: For clients: a stable code and a human sentence; the details go to the logs.
    error_code = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    #: The fleet's evidence summary (JSON): share of business time inferred, stores without polls.
    summary = SortedJSONAttribute(null=True)
    #: The stores the report holds (None: the whole fleet), fixed when triggered.
    store_ids = UnicodeSetAttribute(null=True)
    #: The owner key that triggered it (``OwnerKey.key_id``): only that key reads it.
    owner_key_id = UnicodeAttribute(null=True)
    #: The secret of the report's ``page_url`` (``?token=``): the page's presigned-URL equivalent.
    page_token = UnicodeAttribute(null=True)


class IngestionRecord(Model):
    """One ingested file: what it was, how it went, where its rejected rows are."""

    class Meta(_Meta):
        pass

    ingestion_id = UnicodeAttribute(hash_key=True)
    source = UnicodeAttribute()
    kind = UnicodeAttribute(null=True)
    status = EnumAttribute(JobStatus)  # Running | Complete | Rejected | Failed
    rows_accepted = NumberAttribute(default=0)
    rows_rejected = NumberAttribute(default=0)
    started_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    error_report_key = UnicodeAttribute(null=True)
    #: Poll storage writes, estimated in DynamoDB's billing units, and the largest item written.
    write_units = NumberAttribute(null=True)
    largest_item = NumberAttribute(null=True)
    #: Epoch seconds until which a Running record's worker holds the file (``claim``).
    claimed_until = NumberAttribute(null=True)
    #: What ingestion did besides accepting rows, as JSON: duplicates, conflicts, defaults applied.
    counts = SortedJSONAttribute(null=True)


class DatasetState(Model):
    """Small facts about the data kept current by ingestion (e.g. the latest poll)."""

    class Meta(_Meta):
        pass

    name = UnicodeAttribute(hash_key=True)
    latest_poll_at = NumberAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)


class OwnerKey(Model):
    """An API key bound to a set of store ids (``chalicelib.owner_keys``). Only the key's
    SHA-256 is stored: the table never holds a usable secret."""

    class Meta(_Meta):
        pass

    key_hash = UnicodeAttribute(hash_key=True)
    #: Public name of the key: the first characters of its hash (what ``keys list`` shows).
    key_id = UnicodeAttribute()
    owner = UnicodeAttribute()
    store_ids = UnicodeSetAttribute()
    created_at = UTCDateTimeAttribute()
    revoked = BooleanAttribute(default=False)
    revoked_at = UTCDateTimeAttribute(null=True)
    #: The API Gateway key made with it (``keys create --api-gateway``), to disable on revoke.
    gateway_key_id = UnicodeAttribute(null=True)


M = TypeVar("M", bound=Model)


def bind(model: type[M], table_name: str, region: str) -> type[M]:
    """A subclass of ``model`` stored in ``table_name``: its own Meta, so its own connection."""
    meta = type("Meta", (model.Meta,), {"table_name": table_name, "region": region})  # type: ignore[arg-type]
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})


@dataclass(frozen=True)
class Tables:
    """Every model, bound to one deployment's tables."""

    poll_directories: type[PollDirectory]
    poll_blocks: type[PollBlock]
    business_hours: type[StoreMapShard]
    timezones: type[StoreMapShard]
    report_jobs: type[ReportJob]
    ingestions: type[IngestionRecord]
    dataset_state: type[DatasetState]
    owner_keys: type[OwnerKey]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Tables":
        region = settings.region
        return cls(
            poll_directories=bind(PollDirectory, settings.polls_table, region),
            poll_blocks=bind(PollBlock, settings.polls_table, region),
            business_hours=bind(StoreMapShard, settings.business_hours_table, region),
            timezones=bind(StoreMapShard, settings.timezones_table, region),
            report_jobs=bind(ReportJob, settings.report_jobs_table, region),
            ingestions=bind(IngestionRecord, settings.ingestions_table, region),
            dataset_state=bind(DatasetState, settings.dataset_state_table, region),
            owner_keys=bind(OwnerKey, settings.owner_keys_table, region),
        )

    @classmethod
    def from_env(cls) -> "Tables":
        """For scripts and tests; the app's tables come from its composition root."""
        return cls.from_settings(Settings.from_env())
