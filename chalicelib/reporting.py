"""The report job: plan parts, compute each part, assemble one CSV in S3.

A job fans out into ``report_parts`` SQS messages, each naming a set of store
shards. Each worker invocation computes its shards one at a time, each spilled
to a local file as pre-rendered records sorted by store id, and merges them into
one part object; the invocation that finishes the last part merges the parts'
records into the final CSVs, copying bytes. Merging sorted parts gives the same
bytes whatever the number of parts.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gc
import heapq
import io
import json
import struct
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import IO, AbstractSet, Any, Iterable, Iterator, Optional, Sequence

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from chalicelib.aws import AwsClients
from chalicelib.core.evidence import business_evidence
from chalicelib.core.interpolation import InterpolationRule, PollColumns, fleet_up_share
from chalicelib.core.parsing import DEFAULT_TIMEZONE
from chalicelib.core.report import (
    CSV_HEADER,
    DETAIL_EXTRA_HEADER,
    READ_RANGE,
    BusinessWindows,
    StoreEvidence,
    business_windows,
    default_rule,
    detail_row,
    evidence_in_business,
    store_business,
)
from chalicelib.core.spreadsheet import inert
from chalicelib.core.units import DAY
from chalicelib.errors import BadRequest, Gone, NotFound, Unavailable
from chalicelib.core.schedule import Span, WeeklySchedule
from chalicelib.logs import log
from chalicelib.owner_keys import listed, new_page_token
from chalicelib.settings import Settings
from chalicelib.storage.jobs import DatasetStateRepository, ReportJobRepository
from chalicelib.storage.models import JobStatus, ReportJob, Tables
from chalicelib.storage.polls import PollRepository, ShardPolls, shard_of
from chalicelib.storage.store_maps import StoreMapRepository
from chalicelib.storage.store_maps import business_hours_repository, timezone_repository


@functools.cache
def settle_heap_once() -> None:
    """Collect once, then freeze what is left (modules, clients, the service), so a part's full
    collections walk only what parts make. Measured (uuid-week, 4 parts in one process with the
    in-process emulator, gc.callbacks): a full collection over the ~335k objects imports and
    clients leave took 0.47 s of a 4.1 s part; parts without one spent 0.05-0.10 s in GC. Once
    per process, before any part: frozen objects are never collected, so none a part made is."""
    gc.collect()
    gc.freeze()


#: The first generation's collection threshold while a part computes (CPython's default: 700).
PART_GC_THRESHOLD = 20_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation every ``PART_GC_THRESHOLD`` container allocations instead
    of every 700 while a part computes, and restore the thresholds after. A part holds a shard's
    evidence (~4 lists a store) through its second pass and makes millions of short-lived
    containers; every young collection walks the survivors' references, and every tenth of
    the middle one may set off a full collection. Measured (uuid-week, one part of 14k stores,
    gc.callbacks): 0.6-0.8 s of an 11 s part in collections with 700, 0.2 s with 20,000 (no
    full one). Reference counting frees what a part drops as before: only cyclic garbage waits
    longer, at most a threshold's worth of objects."""
    thresholds = gc.get_threshold()
    gc.set_threshold(PART_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class ReportInputError(Exception):
    """The job cannot succeed however often it is retried (e.g. no data)."""


#: Deliveries of one part before the job is given up as Failed (the queue's DLQ takes 5).
MAX_PART_ATTEMPTS = 3
#: A job Running longer than this is reported Failed (its worker died unseen). Sized to the
#: retries: a part takes ~1 s, its function times out at 30 s, and a failed or lost delivery
#: comes back after the report queue's 90 s visibility timeout, so 3 attempts end within
#: 2 x 90 + 30 = 210 s (tests/test_pipeline_safety.py checks the three settings agree).
REPORT_TIMEOUT_SECONDS = 5 * 60


#: What a client sees of a Failed job: a stable code and a sentence. Never exception
#: text, endpoints, buckets or keys: those go to the logs, under the report id.
FAILURES = {
    "NO_DATA": "no polls have been ingested yet, so there is nothing to report",
    "TIMED_OUT": "the report did not finish in time; trigger a new one",
    "PART_FAILED": "part of the report could not be computed after several attempts; trigger a new "
                   "one, and if it fails again give the operators this report id",
    "QUEUE_UNAVAILABLE": "the report could not be started because its work queue was unavailable; "
                         "trigger a new one",
    "DEAD_LETTER": "part of the report was given up by the queue after repeated failures; trigger a "
                   "new one, and if it fails again give the operators this report id",
    "REPORT_EXPIRED": "the report's CSV has expired; trigger a new report",
}


class TriggerError(Unavailable):
    """The job was created but could not be started; it is marked Failed (``report_id``), and the
    client is told so with its id, so nobody waits on it."""

    def __init__(self, report_id: str, code: str) -> None:
        super().__init__(FAILURES[code], error_code=code, report_id=report_id)
        self.report_id = report_id
        self.code = code


class ReportGone(Gone):
    """An expired job, or a Complete job whose CSV no longer exists (the bucket's lifecycle removed it)."""

    def __init__(self, report_id: str) -> None:
        super().__init__(FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=report_id)
        self.report_id = report_id


def parse_report_id(raw: str) -> str:
    """A ``report_id`` parameter in its canonical form; ``BadRequest`` when it is not a UUID."""
    raw = (raw or "").strip()
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise BadRequest(f"report_id {raw[:80]!r} is not a UUID") from None


def attachment(report_id: str, detail: bool = False) -> str:
    """The ``Content-Disposition`` of a report's CSV (or detail CSV), however it is downloaded."""
    return f'attachment; filename="report-{report_id}{"-detail" if detail else ""}.csv"'


@dataclass(frozen=True)
class ReportPart:
    """The body of one fan-out SQS message."""

    report_id: str
    part: int
    shards: list[int]
    data_now: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, body: str) -> "ReportPart":
        data = json.loads(body)
        return cls(report_id=str(data["report_id"]), part=int(data["part"]),
                   shards=[int(s) for s in data["shards"]], data_now=int(data["data_now"]))


def parse_as_of(text: str) -> int:
    """An ISO 8601 instant (``2023-01-25T18:00:00Z``; without an offset it is UTC) -> epoch
    seconds. Raises ``BadRequest`` (a ``ValueError``) with a reason a client can act on."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"as_of {text[:60]!r} is not an ISO 8601 instant such as "
                         "2023-01-25T18:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.year < 1970:
        raise BadRequest(f"as_of {text[:60]!r} is before 1970")
    return int(moment.timestamp())


def _iso(instant: int) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_parts(shards: int, parts: int, only: Optional[Iterable[int]] = None) -> list[list[int]]:
    """Deal shards (all ``shards``, or just those in ``only``: a scoped report reads only the
    shards of its stores) round-robin into at most ``parts`` non-empty parts."""
    chosen = sorted(set(only)) if only is not None else list(range(shards))
    parts = max(1, min(parts, len(chosen)))
    return [chosen[first::parts] for first in range(parts)]


def part_key(report_id: str, part: int) -> str:
    """A part's records (``PartRecords``), not a CSV: what the final files take, pre-rendered."""
    return f"reports/{report_id}/parts/{part:04d}.records"


def report_key(report_id: str) -> str:
    return f"reports/{report_id}/report.csv"


def detail_report_key(report_id: str) -> str:
    """The detail report: the standard columns, then the evidence behind them."""
    return f"reports/{report_id}/detail.csv"


def strips_key(report_id: str) -> str:
    """The report page's week strips: raw store id and ``week_strip``, in the detail report's order."""
    return f"reports/{report_id}/strips.csv"


class EvidenceSummary:
    """The fleet's evidence, summed over the detail rows in integer hundredths, so the sum is
    exact and the same whatever the number of parts; each part sums its rows, ``assemble``
    the parts' sums."""

    #: A store rests on little evidence when more than this share of its week is inferred.
    LITTLE_EVIDENCE = 0.5
    WINDOWS = ("hour", "day", "week")

    def __init__(self) -> None:
        self.business = [0, 0, 0]  # hundredths of a minute (hour) or of an hour (day, week)
        self.inferred = [0, 0, 0]
        self.no_polls = [0, 0, 0]
        self.little_evidence = 0

    def add(self, extra: Sequence[str]) -> None:
        """One store's ``DETAIL_EXTRA_HEADER`` fields."""
        business = inferred = 0
        for index in range(3):
            business, inferred = _hundredths_of(extra[4 * index]), _hundredths_of(extra[4 * index + 2])
            self.business[index] += business
            self.inferred[index] += inferred
            self.no_polls[index] += int(extra[4 * index + 3]) == 0
        # the week's (the last window): the same test as on the printed hundredths
        self.little_evidence += business > 0 and inferred > self.LITTLE_EVIDENCE * business

    def combine(self, other: "EvidenceSummary") -> None:
        for index in range(3):
            self.business[index] += other.business[index]
            self.inferred[index] += other.inferred[index]
            self.no_polls[index] += other.no_polls[index]
        self.little_evidence += other.little_evidence

    def to_json(self) -> str:
        return json.dumps([self.business, self.inferred, self.no_polls, self.little_evidence])

    @classmethod
    def from_json(cls, text: str) -> "EvidenceSummary":
        summary = cls()
        business, inferred, no_polls, little = json.loads(text)
        summary.business, summary.inferred = [int(v) for v in business], [int(v) for v in inferred]
        summary.no_polls, summary.little_evidence = [int(v) for v in no_polls], int(little)
        return summary

    def as_dict(self) -> dict[str, Any]:
        windows = self.WINDOWS
        return {
            "inferred_share": {w: round(self.inferred[i] / self.business[i], 4) if self.business[i] else 0.0
                               for i, w in enumerate(windows)},
            "stores_without_polls": {w: self.no_polls[i] for i, w in enumerate(windows)},
            "stores_mostly_inferred_last_week": self.little_evidence,
        }


def _hundredths_of(text: str) -> int:
    """``"12.34"`` (as ``core.report`` prints hundredths) -> 1234."""
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction or 0)


#: A part's records and the final files are copied through local files: up to this many bytes
#: in memory, the rest on disk (a worker's memory must not grow with the fleet).
SPOOL_BYTES = 8 * 1024 * 1024
#: Uploads in 8 MB pieces, at most 4 at a time and 4 read ahead (s3transfer's default reads
#: 10 ahead): bounded memory for any size of report.
TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                          max_concurrency=4)
TRANSFER.max_in_memory_upload_chunks = 4
_CHUNK = 1024 * 1024


class PartRecords:
    """A part's stores as records, sorted by raw store id: four big-endian lengths, then the merge
    key (the raw id, UTF-8) and the three lines the final files take: the report line and the
    detail line (both with the id made spreadsheet-inert) and the strips line. The parts render
    them (in parallel), so ``assemble`` only merges by key and copies bytes."""

    HEAD = struct.Struct(">IIII")

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self._width = len(CSV_HEADER)

    def _line(self, fields: Sequence[str]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(fields)
        return self._buffer.getvalue().encode("utf-8")

    def record(self, row: list[str]) -> bytes:
        """``row``: a detail row with the week strip last (``detail_row(..., strip=True)``)."""
        store_id, strip = row[0], row[-1]
        fields = [inert(store_id), *row[1:-1]]
        key, standard = store_id.encode("utf-8"), self._line(fields[:self._width])
        detail, strips = self._line(fields), self._line([store_id, strip])
        return self.pack((key, standard, detail, strips))

    @classmethod
    def pack(cls, record: tuple[bytes, bytes, bytes, bytes]) -> bytes:
        return cls.HEAD.pack(*map(len, record)) + b"".join(record)

    @classmethod
    def read(cls, chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bytes, bytes, bytes]]:
        """(key, report line, detail line, strips line) of each record in a stream of chunks."""
        head = cls.HEAD
        buffer, at = b"", 0
        for chunk in chunks:
            buffer, at = buffer[at:] + chunk, 0
            while len(buffer) - at >= head.size:
                a, b, c, d = head.unpack_from(buffer, at)
                start = at + head.size
                end = start + a + b + c + d
                if end > len(buffer):
                    break
                yield (buffer[start:start + a], buffer[start + a:start + a + b],
                       buffer[start + a + b:end - d], buffer[end - d:end])
                at = end
        if at != len(buffer):
            raise ValueError(f"a part's records end in the middle of a record ({len(buffer) - at} bytes)")


def _file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    file.seek(0)
    return iter(functools.partial(file.read, _CHUNK), b"")


class ReportService:
    """Trigger, compute, assemble and hand out reports. Its clients and repositories are
    given (``from_settings`` builds them), so it reads no environment and makes no client."""

    def __init__(self, settings: Settings, aws: AwsClients, jobs: ReportJobRepository,
                 state: DatasetStateRepository, polls: PollRepository, hours: StoreMapRepository,
                 zones: StoreMapRepository) -> None:
        self.settings = settings
        self.aws = aws
        self.jobs = jobs
        self.state = state
        self.polls = polls
        self.hours = hours
        self.zones = zones

    @classmethod
    def from_settings(cls, settings: Settings, tables: Optional[Tables] = None,
                      aws: Optional[AwsClients] = None) -> "ReportService":
        """The service on ``settings``' tables, bucket and queue; ``tables`` and ``aws`` default to
        new ones (the composition root passes its own, shared by every service)."""
        tables = tables or Tables.from_settings(settings)
        return cls(settings, aws or AwsClients.from_env(),
                   jobs=ReportJobRepository(tables.report_jobs),
                   state=DatasetStateRepository(tables.dataset_state),
                   polls=PollRepository.from_settings(settings, tables),
                   hours=business_hours_repository(settings.poll_shards, settings.poll_item_budget, tables),
                   zones=timezone_repository(settings.poll_shards, settings.poll_item_budget, tables))

    # -- trigger ----------------------------------------------------------
    def trigger(self, as_of: Optional[int] = None, store_ids: Optional[AbstractSet[str]] = None,
                owner_key_id: Optional[str] = None, named: bool = False) -> str:
        """Create the job (with its plan) and queue its parts, as of the latest poll or of
        ``as_of`` (epoch seconds: the way to compare, audit, or step back from a bad drop).
        ``store_ids`` limits the report to those stores (its parts read only their shards);
        ``owner_key_id`` is the owner key it belongs to (``chalicelib.owner_keys``).
        ``named``: the client named ``store_ids`` itself, so an id no poll was ever ingested
        for is a ``BadRequest`` (a typo would otherwise come back as a Complete report without
        its row); an owner key's own set is not checked (it may list stores not polled yet).
        Raises ``TriggerError`` when the parts could not all be queued: the job is then
        Failed, never left Running unwatched."""
        latest = self.state.latest_poll_at()
        if as_of is not None and latest is not None:
            self._check_as_of(as_of, int(latest))
        if named and store_ids and latest is not None:
            self._check_known(store_ids)
        report_id = str(uuid.uuid4())
        data_now = as_of if as_of is not None and latest is not None else latest
        shards = self.settings.poll_shards
        plan = plan_parts(shards, self.settings.report_parts,
                          only=None if store_ids is None else {shard_of(s, shards) for s in store_ids})
        self.jobs.create(report_id, plan=plan, data_now=data_now, store_ids=store_ids,
                         owner_key_id=owner_key_id, page_token=new_page_token())
        if data_now is None:
            self.jobs.fail(report_id, "NO_DATA", FAILURES["NO_DATA"])
            return report_id
        messages = [ReportPart(report_id, index, shards, data_now) for index, shards in enumerate(plan)]
        try:
            url = self.aws.queue_url(self.settings.report_queue)
            for start in range(0, len(messages), 10):
                batch = messages[start:start + 10]
                response = self.aws.sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(m.part), "MessageBody": m.to_json()} for m in batch],
                )
                if response.get("Failed"):
                    raise RuntimeError(f"SendMessageBatch refused {response['Failed']}")
        except Exception:
            log.exception("could not queue the report's parts", report_id=report_id)
            self.jobs.fail(report_id, "QUEUE_UNAVAILABLE", FAILURES["QUEUE_UNAVAILABLE"])
            raise TriggerError(report_id, "QUEUE_UNAVAILABLE") from None
        log.info("report triggered", report_id=report_id, parts=len(plan), data_now=data_now)
        return report_id

    def unknown_stores(self, store_ids: AbstractSet[str]) -> list[str]:
        """Of ``store_ids``, those no poll was ever ingested for (not in their shards' rosters)."""
        wanted: dict[int, set[str]] = {}
        for store in store_ids:
            wanted.setdefault(shard_of(store, self.settings.poll_shards), set()).add(store)
        unknown: list[str] = []
        for shard, stores in sorted(wanted.items()):
            unknown += sorted(stores - set(self.polls.read_roster(shard)))
        return unknown

    def _check_known(self, store_ids: AbstractSet[str]) -> None:
        unknown = self.unknown_stores(store_ids)
        if unknown:
            raise BadRequest(f"store_ids names {len(unknown)} store(s) no poll was ever ingested for: "
                             f"{listed(unknown)}")

    def _check_as_of(self, as_of: int, latest: int) -> None:
        """``BadRequest`` for an ``as_of`` no report could back: after the latest poll (every
        minute after it would be inferred, and "now" is the latest poll), or before the polls
        still kept (``POLL_RETENTION_DAYS``)."""
        if as_of > latest:
            raise BadRequest(f"as_of {_iso(as_of)} is after the latest poll ({_iso(latest)}); "
                             "leave as_of out for the report as of the latest poll")
        kept_from = latest - self.settings.retention_days * DAY
        if as_of < kept_from:
            raise BadRequest(f"as_of {_iso(as_of)} is before the polls kept: polls are kept "
                             f"{self.settings.retention_days} days, back to {_iso(kept_from)}")

    # -- jobs as clients see them -----------------------------------------
    def job(self, report_id: str) -> ReportJob:
        """The job; ``NotFound`` when there is none."""
        job = self.jobs.get(report_id)
        if job is None:
            raise NotFound(f"no report with id {report_id}")
        return job

    def check_not_expired(self, job: ReportJob) -> None:
        """``ReportGone`` for a job past its retention that DynamoDB has not deleted yet."""
        if job.expires_at is not None and job.expires_at.timestamp() < time.time():
            raise ReportGone(job.report_id)

    def current(self, job: ReportJob) -> ReportJob:
        """The job as ``get_report`` shows it: ``ReportGone`` when expired, and a Running job
        past ``REPORT_TIMEOUT_SECONDS`` failed first (its worker died unseen)."""
        report_id = job.report_id
        self.check_not_expired(job)
        late = time.time() - job.created_at.timestamp() > REPORT_TIMEOUT_SECONDS
        if job.status == JobStatus.RUNNING and late:
            log.warning("report timed out", report_id=report_id, seconds=REPORT_TIMEOUT_SECONDS,
                        parts_done=sorted(int(p) for p in job.parts_done or ()),
                        parts_total=int(job.parts_total))
            self.jobs.fail(report_id, "TIMED_OUT", FAILURES["TIMED_OUT"])
            job = self.job(report_id)
        return job

    def has_data(self) -> bool:
        return self.state.latest_poll_at() is not None

    # -- one part ---------------------------------------------------------
    def deliver_part(self, part: ReportPart, attempt: int, ids: dict[str, Any]) -> None:
        """One SQS delivery of a part. A transient error is raised (SQS delivers the part again)
        until ``MAX_PART_ATTEMPTS``; then, or at once when it can never succeed, the job is
        given up as Failed, so clients never wait forever. ``ids`` go on the log lines."""
        try:
            self.run_part(part)
        except ReportInputError:
            log.exception("report part cannot succeed", **ids)
            self.jobs.fail(part.report_id, "PART_FAILED", FAILURES["PART_FAILED"])
        except Exception:
            log.exception("report part failed", **ids)
            if attempt >= MAX_PART_ATTEMPTS:
                self.jobs.fail(part.report_id, "PART_FAILED", FAILURES["PART_FAILED"])
                return
            raise

    def compute_rows(self, shards: Iterable[int], data_now: int) -> Iterator[tuple[int, list[str]]]:
        """``(shard, row)``: the detail rows of every store in ``shards``, shard by shard, each
        shard's in store id order: the standard columns, then ``DETAIL_EXTRA_HEADER``, then the
        week strip the report page draws. One shard is held at a time (its hours, zones and
        polls while its first pass runs, then its stores' evidence), so a part's memory does not
        grow with its number of shards."""
        for shard in sorted(set(shards)):
            schedules, zones = self.hours.read([shard]), self.zones.read([shard])
            evidence, rule, _ = self.shard_evidence(shard, data_now, schedules, zones)
            # Stores share a few hundred business times (``_evidence_in_order``): their windows
            # and strip hours are computed once each, keyed on the shared list (held, so its
            # id is not reused).
            windows_of: dict[int, BusinessWindows] = {}
            for store_id in list(evidence):  # by id; each store's evidence let go once used
                store = evidence.pop(store_id)
                windows = windows_of.get(id(store.business))
                if windows is None:
                    windows = windows_of[id(store.business)] = business_windows(store.business, data_now)
                yield shard, detail_row(store_id, store, data_now, rule, strip=True, windows=windows)

    def shard_evidence(self, shard: int, data_now: int, schedules: dict[str, Any], zones: dict[str, Any]
                       ) -> tuple[dict[str, StoreEvidence], InterpolationRule, ShardPolls]:
        """Every store's evidence in ``shard`` (by store id, in id order) and the rule with the
        shard's learned up share: a part's first pass, and where the per-store timeline starts.

        The evidence is kept as it is between the passes (no copy): its columns are slices of
        the shard's decoded blocks, so they share the blocks' int objects (16 bytes a poll more
        than the blocks already hold while the first pass runs)."""
        data = self.polls.read_shard(shard, data_now - READ_RANGE, data_now)
        evidence = dict(self._evidence_in_order(data, data_now, schedules, zones))
        return evidence, default_rule(data_now, fleet_up_share(e.polls for e in evidence.values())), data

    @staticmethod
    def _evidence_in_order(data: ShardPolls, data_now: int, schedules: dict[str, Any], zones: dict[str, Any]
                           ) -> Iterator[tuple[str, StoreEvidence]]:
        # Two passes per shard: the evidence of every store, then the rule with the
        # shard's learned up share (a shard is ~1/16 of the fleet, and the same
        # whichever part reads it, so the bytes do not depend on the part count).
        # Stores share a few hundred schedules and a few zones: each business time is built
        # once (keyed on the schedule's rows and the zone) and shared, never modified.
        business_of: dict[tuple[Any, str], list[Span]] = {}
        read_start, by_store = data_now - READ_RANGE, data.polls_by_store
        for store_id in sorted(data.roster | set(by_store)):
            rows = schedules.get(store_id, ())
            zone = zones.get(store_id, DEFAULT_TIMEZONE)
            key = (tuple(map(tuple, rows)), zone)
            business = business_of.get(key)
            if business is None:
                business = business_of[key] = store_business(WeeklySchedule.from_rows(rows), zone, data_now)
            polls = by_store.get(store_id)
            if isinstance(polls, PollColumns) and polls.times and read_start <= polls.times[0] \
                    and polls.times[-1] <= data_now and polls.strictly_increasing():
                # what ``evidence_in_business`` does with such columns, at column speed
                yield store_id, StoreEvidence(business, business_evidence(polls, business), polls.times[-1])
                continue
            evidence = evidence_in_business(polls if polls is not None else [], business, data_now)
            if not isinstance(evidence.polls, PollColumns):  # no polls, or two at one second (rare)
                kept = evidence.polls
                columns = PollColumns([at for at, _ in kept], [bool(up) for _, up in kept])
                evidence = StoreEvidence(business, columns, evidence.last_poll)
            yield store_id, evidence

    def run_part(self, part: ReportPart) -> Optional[ReportJob]:
        """Compute and store one part; assemble the report if it was the last one."""
        job = self.jobs.get(part.report_id)
        if job is None:
            raise ReportInputError(f"report {part.report_id} does not exist")
        if job.status != JobStatus.RUNNING:
            return job  # a replay of a finished job: nothing to do
        mismatch = part_mismatch(job, part)
        if mismatch:
            # Not in the plan: a forged or corrupted message. It must not count, nor
            # overwrite a real part's object; the job goes on (or times out) without it.
            log.warning("report part ignored: %s", mismatch, report_id=part.report_id, part=part.part)
            return job
        rows = self._write_part(part, job.store_ids)
        updated = self.jobs.mark_part_done(part.report_id, part.part)
        if updated is None:
            return self.jobs.get(part.report_id)  # finished (Failed or Complete) meanwhile
        log.info("report part done", report_id=part.report_id, part=part.part, rows=rows)
        if set(int(p) for p in updated.parts_done or ()) == set(range(len(job_plan(updated)))):
            self.assemble(updated)
        return updated

    def _write_part(self, part: ReportPart, store_ids: Optional[AbstractSet[str]]) -> int:
        """Spill each shard's records to a local file, merge them into the part's object (its
        evidence summary in the object's metadata); how many stores it holds.

        A scoped report (``store_ids``) keeps its stores' rows only; each is the fleet report's
        row (the rule is learned from the whole shard), so the merge, the summary, the detail
        CSV and the page all follow from here."""
        records, summary, width, rows = PartRecords(), EvidenceSummary(), len(CSV_HEADER), 0
        with fewer_collections(), contextlib.ExitStack() as files:
            spills: dict[int, IO[bytes]] = {}
            for shard, row in self.compute_rows(part.shards, part.data_now):
                if store_ids is not None and row[0] not in store_ids:
                    continue
                if shard not in spills:
                    spills[shard] = files.enter_context(tempfile.TemporaryFile())
                summary.add(row[width:width + len(DETAIL_EXTRA_HEADER)])
                spills[shard].write(records.record(row))
                rows += 1
            if len(spills) == 1:
                body = next(iter(spills.values()))  # one shard's records: sorted already
            else:
                body = files.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
                streams = [PartRecords.read(_file_chunks(spill)) for spill in spills.values()]
                for record in heapq.merge(*streams):
                    body.write(PartRecords.pack(record))
            body.seek(0)
            self.aws.s3.upload_fileobj(body, self.settings.bucket, part_key(part.report_id, part.part),
                                       ExtraArgs={"ContentType": "application/octet-stream",
                                                  "Metadata": {"summary": summary.to_json()}},
                                       Config=TRANSFER)
        return rows

    # -- assemble ---------------------------------------------------------
    def _part_records(self, report_id: str, part: int
                      ) -> tuple[EvidenceSummary, Iterator[tuple[bytes, bytes, bytes, bytes]]]:
        response = self.aws.s3.get_object(Bucket=self.settings.bucket, Key=part_key(report_id, part))
        summary = EvidenceSummary.from_json(response["Metadata"]["summary"])
        return summary, PartRecords.read(response["Body"].iter_chunks(_CHUNK))

    def assemble(self, job: ReportJob) -> None:
        """Stream-merge the parts' sorted records into the final CSV, the detail CSV and the
        strips, and sum the parts' evidence summaries; safe to run twice.

        The merge is by raw store id (the parts' order); the lines were rendered by the parts,
        with formula-like ids quoted in the CSVs people open in spreadsheets (``core.spreadsheet``).
        """
        summary, streams = EvidenceSummary(), []
        for part in range(int(job.parts_total)):
            part_summary, records = self._part_records(job.report_id, part)
            summary.combine(part_summary)
            streams.append(records)
        rows = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as out, \
                tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as detail, \
                tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as strips:
            out.write((",".join(CSV_HEADER) + "\n").encode("utf-8"))
            detail.write((",".join(CSV_HEADER + DETAIL_EXTRA_HEADER) + "\n").encode("utf-8"))
            for _, standard, full, strip in heapq.merge(*streams):
                out.write(standard)
                detail.write(full)
                strips.write(strip)
                rows += 1
            key, detail_key = report_key(job.report_id), detail_report_key(job.report_id)
            for body, name in ((out, key), (detail, detail_key), (strips, strips_key(job.report_id))):
                body.seek(0)
                self.aws.s3.upload_fileobj(body, self.settings.bucket, name,
                                           ExtraArgs={"ContentType": "text/csv"}, Config=TRANSFER)
        self.jobs.complete(job.report_id, key, rows, summary=summary.as_dict())

    # -- read -------------------------------------------------------------
    def download_url(self, job: ReportJob, detail: bool = False) -> str:
        """Presigned URL of the report, or of its detail report (``detail_report_key``)."""
        key = detail_report_key(job.report_id) if detail else job.s3_key
        return self.aws.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.settings.bucket, "Key": key,
                    "ResponseContentType": "text/csv",
                    "ResponseContentDisposition": attachment(job.report_id, detail)},
            ExpiresIn=self.settings.presign_seconds,
        )

    def page_sources(self, job: ReportJob) -> tuple[str, str]:
        """The detail report and the strips the report page is drawn from; ``ReportGone`` when
        the bucket no longer has them."""
        bodies = []
        for key in (detail_report_key(job.report_id), strips_key(job.report_id)):
            try:
                body = self.aws.s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"]
                bodies.append(body.read().decode())
            except ClientError as error:
                if _error_code(error) in ("NoSuchKey", "404"):
                    raise ReportGone(job.report_id) from None
                raise
        return bodies[0], bodies[1]

    def csv_body(self, job: ReportJob) -> bytes:
        """The CSV's bytes; ``ReportGone`` when the bucket no longer has it."""
        try:
            return self.aws.s3.get_object(Bucket=self.settings.bucket, Key=job.s3_key)["Body"].read()
        except ClientError as error:
            if _error_code(error) in ("NoSuchKey", "404"):
                log.info("report CSV is gone", report_id=job.report_id)
                raise ReportGone(job.report_id) from None
            raise

    def check_csv_exists(self, job: ReportJob) -> None:
        """Raise ``ReportGone`` rather than hand out a URL to nothing."""
        try:
            self.aws.s3.head_object(Bucket=self.settings.bucket, Key=job.s3_key)
        except ClientError as error:
            if _error_code(error) in ("NoSuchKey", "404", "NotFound"):
                log.info("report CSV is gone", report_id=job.report_id)
                raise ReportGone(job.report_id) from None
            raise


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def job_plan(job: ReportJob) -> list[list[int]]:
    """The job's plan; jobs created before plans were stored get the plan their part count implies."""
    if job.plan:
        return [list(shards) for shards in json.loads(job.plan)]
    return [[] for _ in range(int(job.parts_total))]


def part_mismatch(job: ReportJob, part: ReportPart) -> Optional[str]:
    """Why ``part`` does not belong to ``job``'s plan, or None when it does."""
    plan = job_plan(job)
    if not 0 <= part.part < len(plan):
        return f"part {part.part} is not in the plan of {len(plan)} parts"
    if job.plan and sorted(part.shards) != sorted(plan[part.part]):
        return f"part {part.part} names shards {part.shards}, the plan says {plan[part.part]}"
    if job.data_now is not None and part.data_now != int(job.data_now):
        return f"part {part.part} names data_now {part.data_now}, the job says {int(job.data_now)}"
    return None


def job_view(job: ReportJob) -> dict[str, Any]:
    """The JSON ``get_report`` shows for a job (without the download URL)."""
    view: dict[str, Any] = {"report_id": job.report_id, "status": job.status.value,
                            "created_at": job.created_at.isoformat()}
    if job.data_now is not None:
        view["data_now"] = datetime.fromtimestamp(int(job.data_now), timezone.utc).isoformat()
    view["parts_done"] = len(job.parts_done or ())
    view["parts_total"] = int(job.parts_total)
    if job.status == JobStatus.COMPLETE:
        view["rows"] = int(job.rows or 0)
        view["completed_at"] = job.completed_at.isoformat() if job.completed_at else None
        if job.summary:
            view["evidence"] = job.summary
    if job.status == JobStatus.FAILED:
        view["error_code"] = job.error_code or "FAILED"
        view["error"] = job.error
    return view
