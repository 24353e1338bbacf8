"""CSV drops in S3: from an S3 event notification to an ingestion record.

S3 -> SQS notifications arrive here through the ingestion handler; the
``ingest`` CLI hands a local file to ``chalicelib.ingestion.ingest_source``.
Both go through that function and leave the same ingestion record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Any, Iterator, Optional
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from chalicelib.aws import AwsClients
from chalicelib.logs import log
from chalicelib.ingestion import HOURS, STATUS, TIMEZONES, ingest_source
from chalicelib.settings import Settings
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.models import IngestionRecord, JobStatus, Tables


INCOMING_PREFIX = "incoming/"
KIND_BY_PREFIX = {f"{INCOMING_PREFIX}status/": STATUS, f"{INCOMING_PREFIX}hours/": HOURS,
                  f"{INCOMING_PREFIX}timezones/": TIMEZONES}
REJECTIONS_SUFFIX = ".rejections.csv"


@dataclass(frozen=True)
class S3Drop:
    bucket: str
    key: str
    etag: str
    #: The version the event names (S3 sends it for versioned buckets); "" when absent.
    version_id: str = ""

    @property
    def ingestion_id(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.etag}"

    @property
    def expected_kind(self) -> Optional[str]:
        """The kind named by the prefix; elsewhere under incoming/ the header decides."""
        for prefix, kind in KIND_BY_PREFIX.items():
            if self.key.startswith(prefix):
                return kind
        return None


def byte_lines(stream: IO[bytes] | Any, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a byte stream split on \\n, \\r\\n or a lone \\r, read ``chunk_size`` at a time.

    Both ingestion paths (an S3 body, a local file) use this, so a file is split
    the same way wherever it comes from. A chunk ending in \\r is held back: it
    may be the first half of \\r\\n, which must not count as two lines.
    """
    pending = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        lines = (pending + chunk).splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        yield from lines
    if pending:
        yield pending


def drops_from_notification(body: str) -> list[S3Drop]:
    """S3 event notification (the SQS message body) -> the objects it announces.

    Skips S3's ``s3:TestEvent`` (no Records), non-creation events, our own rejection
    reports and "folders" (keys ending in ``/``, which the console creates); keys arrive
    URL-encoded.
    """
    message = json.loads(body)
    drops = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])
        if key.endswith((REJECTIONS_SUFFIX, "/")) or not key.startswith(INCOMING_PREFIX):
            continue
        drops.append(S3Drop(s3["bucket"]["name"], key, str(s3["object"].get("eTag", "")).strip('"'),
                            str(s3["object"].get("versionId") or "")))
    return drops


class Superseded(Exception):
    """The version an event names no longer exists (overwritten on an unversioned bucket)."""


class DropService:
    """Ingest the S3 objects that notifications announce, once each."""

    def __init__(self, settings: Settings, tables: Tables, s3: Any) -> None:
        self.settings = settings
        self.tables = tables
        self.s3 = s3
        self.records = IngestionRepository(tables.ingestions)

    @classmethod
    def from_settings(cls, settings: Settings, tables: Optional[Tables] = None,
                      aws: Optional[AwsClients] = None) -> "DropService":
        """``tables`` and ``aws`` default to new ones (the composition root passes its own)."""
        return cls(settings, tables or Tables.from_settings(settings), (aws or AwsClients.from_env()).s3)

    def open(self, drop: S3Drop) -> Any:
        """The body of exactly the object version the event names, never a later one.

        By version id when the event has it; else by ETag: ``IfMatch`` reads the current
        object only if it is still that version, and otherwise (overwritten meanwhile) the
        bucket's versions are searched for it. The bucket is versioned (infra/resources.json),
        so an overwritten drop is still there to be read.
        """
        client = self.s3
        if drop.version_id:
            return client.get_object(Bucket=drop.bucket, Key=drop.key, VersionId=drop.version_id)["Body"]
        if not drop.etag:
            return client.get_object(Bucket=drop.bucket, Key=drop.key)["Body"]
        try:
            return client.get_object(Bucket=drop.bucket, Key=drop.key, IfMatch=f'"{drop.etag}"')["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
        pages = client.get_paginator("list_object_versions").paginate(Bucket=drop.bucket, Prefix=drop.key)
        for page in pages:
            for version in page.get("Versions", []):
                if version["Key"] == drop.key and version["ETag"].strip('"') == drop.etag:
                    log.info("s3://%s/%s was overwritten; reading its version %s", drop.bucket, drop.key,
                             version["VersionId"])
                    return client.get_object(Bucket=drop.bucket, Key=drop.key,
                                             VersionId=version["VersionId"])["Body"]
        raise Superseded(drop.ingestion_id)

    def _rejected(self, drop: S3Drop, error: str) -> IngestionRecord:
        source = f"s3://{drop.bucket}/{drop.key}"
        return self.records.finish(self.records.start(drop.ingestion_id, source), JobStatus.REJECTED,
                                   error=error)

    def ingest(self, drop: S3Drop) -> Optional[IngestionRecord]:
        """Ingest an S3 object once: a second event for the same object version is a no-op."""
        previous = self.records.get(drop.ingestion_id)
        if previous is not None and previous.status in (JobStatus.COMPLETE, JobStatus.REJECTED):
            log.info("already ingested %s (%s)", drop.ingestion_id, previous.status)
            return previous
        try:
            body = self.open(drop)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404", "NoSuchVersion"):
                raise
            # Deleted before we got to it: retrying cannot help, so record it and move on.
            log.warning("s3://%s/%s is gone; nothing to ingest", drop.bucket, drop.key)
            return self._rejected(drop, "the object was deleted before it could be ingested")
        except Superseded:
            log.warning("s3://%s/%s was overwritten and version %s is gone", drop.bucket, drop.key, drop.etag)
            return self._rejected(drop, "superseded: the object was overwritten before it could be ingested, "
                                        "and this version no longer exists")

        def save_rejections(data: IO[bytes]) -> str:
            key = drop.key + REJECTIONS_SUFFIX
            self.s3.upload_fileobj(data, drop.bucket, key, ExtraArgs={"ContentType": "text/csv"})
            return key

        record, _ = ingest_source(byte_lines(body), f"s3://{drop.bucket}/{drop.key}",
                                  drop.ingestion_id, self.settings, expected_kind=drop.expected_kind,
                                  save_rejections=save_rejections, tables=self.tables)
        if record is not None:
            log.info("ingested %s: %s, %s accepted, %s rejected", drop.key, record.status,
                     record.rows_accepted, record.rows_rejected, ingestion_id=drop.ingestion_id)
        return record


def open_drop(drop: S3Drop, settings: Optional[Settings] = None) -> Any:
    """``DropService.open`` on the environment's settings (scripts and tests)."""
    return DropService.from_settings(settings or Settings.from_env()).open(drop)


def ingest_drop(drop: S3Drop, settings: Settings) -> Optional[IngestionRecord]:
    """``DropService.ingest`` with new clients and tables (scripts and tests)."""
    return DropService.from_settings(settings).ingest(drop)
