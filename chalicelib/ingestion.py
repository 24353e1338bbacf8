"""Stream one CSV drop into the tables: polls, business hours or time zones.

Used by the S3 -> SQS ingestion handler and by the ``ingest`` CLI alike: both
hand ``ingest_lines`` an iterator of raw byte lines. Memory stays bounded by
``ingest_batch_rows`` for polls; schedules and zones are held per store
(they replace each named store's values, so a store's rows must all be seen).
Bad rows are rejected with their line number and reason; the rest goes in.
"""
from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from chalicelib.core import parsing
from chalicelib.core.parsing import InvalidField
from chalicelib.core.strays import STRAY_MIN_ROWS, StrayGuard
from chalicelib.settings import Settings
from chalicelib.storage.jobs import DatasetStateRepository
from chalicelib.storage.models import Tables
from chalicelib.storage.polls import PollRepository, StorePoll
from chalicelib.storage.store_maps import business_hours_repository, timezone_repository

STATUS, HOURS, TIMEZONES = "status", "hours", "timezones"
KINDS = (STATUS, HOURS, TIMEZONES)
#: Polls stamped later than this past the ingestion clock are rejected: they would move "now".
FUTURE_TOLERANCE = 300
#: How many rejected rows a result keeps in memory for display; all are counted and logged.
REJECTION_SAMPLE = 20

ProgressCallback = Callable[[int, int], None]  # (rows read, rows accepted)


class FileRejected(Exception):
    """The whole file is unusable (unknown kind, not text): nothing of it is written."""


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str
    raw: str


@dataclass
class IngestResult:
    kind: str
    rows_accepted: int = 0
    rows_rejected: int = 0
    latest_poll_at: Optional[int] = None
    stores: int = 0
    #: Poll storage writes of this ingestion (blocks, bytes, estimated WRU, largest item).
    storage: dict[str, int] = field(default_factory=dict)
    #: What ingestion did besides accepting and rejecting rows (``COUNT_NAMES``).
    counts: dict[str, int] = field(default_factory=dict)
    sample: list[Rejection] = field(default_factory=list)


#: The counts an ingestion keeps, and what each means (shown by the CLI).
COUNT_NAMES = {
    "duplicates": "rows repeating another row of the file (same store, second and status): counted once",
    "conflicts": "rows giving a store two statuses in one second: inactive kept (the report claims no "
                 "uptime it cannot back)",
    "default_zone": "empty time zones: the default America/Chicago applied",
    "duplicate_hours": "business-hours rows repeating another row of the same store: counted once",
}


def count(result: IngestResult, name: str, amount: int = 1) -> None:
    if amount:
        result.counts[name] = result.counts.get(name, 0) + amount


def _count_repeats(batch: list[StorePoll], result: IngestResult) -> None:
    """Duplicates and conflicts among the polls of one write batch (the whole file unless it
    has more than ``ingest_batch_rows`` polls; storage drops repeats across batches anyway)."""
    seen: dict[tuple[str, int], int] = {}  # (store, second) -> bit 1 active seen, bit 2 inactive seen
    for store_id, at, active in batch:
        key = (store_id, at)
        bit = 1 if active else 2
        before = seen.get(key, 0)
        if before & bit:
            count(result, "duplicates")
        elif before:
            count(result, "conflicts")
        seen[key] = before | bit


class RejectionLog:
    """Where rejected rows go: a sink the caller chooses (S3 object, local file)."""

    def __init__(self, write: Callable[[Rejection], None] | None = None) -> None:
        self._write = write

    def __call__(self, result: IngestResult, rejection: Rejection) -> None:
        result.rows_rejected += 1
        if len(result.sample) < REJECTION_SAMPLE:
            result.sample.append(rejection)
        if self._write is not None:
            self._write(rejection)


def _kind_of_header(header: list[str]) -> tuple[str, dict[str, int]]:
    names = [name.strip().lstrip("\ufeff") for name in header]
    columns = {name: index for index, name in enumerate(names)}
    if set(names) == {"store_id", "status", "timestamp_utc"}:
        return STATUS, columns
    if set(names) == {"store_id", "timezone_str"}:
        return TIMEZONES, columns
    day_names = {"day", "dayOfWeek"} & set(names)
    if len(day_names) == 1 and set(names) == {"store_id", "start_time_local", "end_time_local", *day_names}:
        columns["day"] = columns[day_names.pop()]
        return HOURS, columns
    raise FileRejected(
        f"header {','.join(names)!r} is not one of: store_id,status,timestamp_utc | "
        "store_id,day|dayOfWeek,start_time_local,end_time_local | store_id,timezone_str"
    )


class _BadLine(list):
    """The fields of a line that is not CSV text (NUL bytes, not UTF-8, over the csv module's
    field limit), read as well as can be:
    rejected with ``reason`` by the row checks, and still counted against its store."""

    def __init__(self, fields: list[str], reason: str) -> None:
        super().__init__(fields)
        self.reason = reason


def _decoded_rows(lines: Iterable[bytes]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for each non-blank line. Before the header, a line that is not
    text rejects the file (nothing is written yet); after it, such a line is a ``_BadLine``."""
    header_seen = False
    for number, raw in enumerate(lines, start=1):
        reason = None
        if b"\x00" in raw:
            reason, raw = "holds a NUL byte", raw.replace(b"\x00", b"")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            reason, text = reason or "is not valid UTF-8", raw.decode("utf-8", "replace")
        if number == 1:
            text = text.lstrip("\ufeff")
        text = text.rstrip("\r\n")
        if not text.strip() and not reason:
            continue
        try:
            fields = next(csv.reader([text]), [])
        except csv.Error as error:  # e.g. a field longer than the csv module's limit
            reason, fields = reason or f"cannot be read as CSV ({error})", text.split(",")
        if reason and not header_seen:
            raise FileRejected(f"line {number} {reason}: this is not a CSV text file")
        header_seen = True
        yield number, (_BadLine(fields, f"line {reason}") if reason else fields)


def ingest_lines(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    expected_kind: Optional[str] = None,
    rejection_log: Optional[RejectionLog] = None,
    progress: Optional[ProgressCallback] = None,
    wall_clock: Callable[[], float] = time.time,
    tables: Optional[Tables] = None,
) -> IngestResult:
    """Ingest one CSV file given as raw lines; raises ``FileRejected`` before writing anything
    when the file as a whole is unusable. ``tables``: by default ``settings``' own."""
    tables = tables or Tables.from_settings(settings)
    log = rejection_log or RejectionLog()
    result_holder: list[IngestResult] = []

    def reject(line: int, reason: str, raw: str) -> None:
        log(result_holder[0], Rejection(line, reason, raw[:500]))

    rows = _decoded_rows(lines)
    first = next(rows, None)
    if first is None:
        raise FileRejected("the file is empty: no header row")
    kind, columns = _kind_of_header(first[1])
    if expected_kind and kind != expected_kind:
        raise FileRejected(f"the file was dropped as {expected_kind!r} but its header is that of {kind!r}")
    result = IngestResult(kind=kind)
    result_holder.append(result)
    width = len(first[1])
    ingest = {STATUS: _ingest_status, HOURS: _ingest_hours, TIMEZONES: _ingest_timezones}[kind]
    ingest(rows, columns, width, settings, result, reject, progress, wall_clock, tables)
    return result


def _check_width(fields: list[str], width: int) -> None:
    if isinstance(fields, _BadLine):
        raise InvalidField(fields.reason)
    if len(fields) != width:
        raise InvalidField(f"expected {width} fields, found {len(fields)}")


def _ingest_status(rows, columns, width, settings, result, reject, progress, wall_clock, tables) -> None:
    repository = PollRepository.from_settings(settings, tables)
    limit = int(wall_clock()) + FUTURE_TOLERANCE
    store_col, status_col, ts_col = columns["store_id"], columns["status"], columns["timestamp_utc"]
    batch: list[StorePoll] = []
    latest: Optional[int] = None
    stores: set[str] = set()
    state = DatasetStateRepository(tables.dataset_state)
    guard: StrayGuard[tuple[int, StorePoll, list[str]]] = StrayGuard(state.latest_poll_at())
    read = 0
    for number, fields in rows:
        read += 1
        try:
            _check_width(fields, width)
            poll = StorePoll(parsing.parse_store_id(fields[store_col]),
                             parsing.parse_poll_timestamp(fields[ts_col]),
                             parsing.parse_status(fields[status_col]))
            if poll.at > limit:
                raise InvalidField(f"timestamp {fields[ts_col]!r} is in the future of the ingestion clock")
        except InvalidField as error:
            reject(number, str(error), ",".join(fields))
            continue
        held = guard.add(poll.at, (number, poll, fields))
        if held is not None:
            released = held[1]
            batch.append(released)
            stores.add(released.store_id)
            if latest is None or released.at > latest:
                latest = released.at
        if len(batch) >= settings.ingest_batch_rows:
            _count_repeats(batch, result)
            repository.add_polls(batch)
            result.rows_accepted += len(batch)
            batch = []
        if progress and read % 50_000 == 0:
            progress(read, result.rows_accepted + len(batch))
    accepted, strays = guard.finish()
    for _, poll, _ in accepted:
        batch.append(poll)
        stores.add(poll.store_id)
        latest = poll.at if latest is None else max(latest, poll.at)
    for (number, poll, fields), trusted in strays:
        reject(number, f"timestamp {fields[ts_col]!r} is held back as a stray: {_days(poll.at - trusted)} after "
                       f"the latest poll so far and the rest of this file, with fewer than {STRAY_MIN_ROWS} polls "
                       "near it, so it may not move 'now' (docs/ALGORITHM.md, section 1)", ",".join(fields))
    if batch:
        _count_repeats(batch, result)
        repository.add_polls(batch)
        result.rows_accepted += len(batch)
    if progress:
        progress(read, result.rows_accepted)
    repository.finish(latest)  # compaction is part of the drop: done before "now" moves
    result.storage = repository.stats.as_dict()
    if latest is not None:
        state.advance_latest_poll(latest)
    result.latest_poll_at = latest
    result.stores = len(stores)


def _days(seconds: int) -> str:
    return f"{seconds / 86_400:,.1f} days"


def _collect_per_store(rows, width, store_col, parse_row, reject, progress):
    """Parse rows into {store: [(line, value)]}; a store with any bad row is dropped
    whole, so a half-read schedule never replaces a good one."""
    values: dict[str, list[tuple[int, object]]] = defaultdict(list)
    bad_stores: dict[str, int] = {}
    read = 0
    for number, fields in rows:
        read += 1
        try:
            _check_width(fields, width)
            store_id, value = parse_row(fields)
        except InvalidField as error:
            reject(number, str(error), ",".join(fields))
            store = fields[store_col].strip() if len(fields) > store_col else ""
            bad_stores.setdefault(store, number)
            continue
        values[store_id].append((number, value))
        if progress and read % 50_000 == 0:
            progress(read, 0)
    for store, first_bad in bad_stores.items():
        for number, _ in values.pop(store, []):
            reject(number, f"store {store} has a rejected row on line {first_bad}; its values are left unchanged", "")
    return values


def _ingest_hours(rows, columns, width, settings, result, reject, progress, wall_clock, tables) -> None:
    store_col, day_col = columns["store_id"], columns["day"]
    start_col, end_col = columns["start_time_local"], columns["end_time_local"]

    def parse_row(fields):
        return parsing.parse_store_id(fields[store_col]), (
            parsing.parse_weekday(fields[day_col]),
            parsing.parse_local_time(fields[start_col]),
            parsing.parse_local_time(fields[end_col]),
        )

    values = _collect_per_store(rows, width, store_col, parse_row, reject, progress)
    schedules = {store: sorted({tuple(v) for _, v in items}) for store, items in values.items()}
    count(result, "duplicate_hours", sum(len(items) for items in values.values()) -
          sum(len(rows_) for rows_ in schedules.values()))
    business_hours_repository(settings.poll_shards, settings.poll_item_budget, tables).replace({s: [list(r) for r in rows_] for s, rows_ in schedules.items()})
    result.rows_accepted = sum(len(items) for items in values.values())
    result.stores = len(schedules)


def _ingest_timezones(rows, columns, width, settings, result, reject, progress, wall_clock, tables) -> None:
    store_col, tz_col = columns["store_id"], columns["timezone_str"]

    def parse_row(fields):
        store, zone = parsing.parse_store_id(fields[store_col]), parsing.parse_timezone(fields[tz_col])
        if not fields[tz_col].strip():
            count(result, "default_zone")
        return store, zone

    values = _collect_per_store(rows, width, store_col, parse_row, reject, progress)
    zones = {}
    for store, items in values.items():
        distinct = {zone for _, zone in items}
        if len(distinct) > 1:
            for number, _ in items:
                reject(number, f"store {store} has conflicting time zones {sorted(distinct)} in this file", "")
            continue
        zones[store] = distinct.pop()
        count(result, "duplicates", len(items) - 1)
        result.rows_accepted += len(items)
    timezone_repository(settings.poll_shards, settings.poll_item_budget, tables).replace(zones)
    result.stores = len(zones)
