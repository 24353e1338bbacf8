"""Stream one CSV drop into the tables: polls, business hours or time zones.

Used by the S3 -> SQS ingestion handler and by the ``ingest`` CLI alike: both
hand ``ingest_lines`` an iterator of raw byte lines. Memory stays bounded by
``ingest_batch_rows`` for polls; schedules and zones are held per store
(they replace each named store's values, so a store's rows must all be seen).
Bad rows are rejected with their line number and reason; the rest goes in.
"""
from __future__ import annotations

import csv
import io
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional

from chalicelib.core import parsing
from chalicelib.core.parsing import InvalidField
from chalicelib.core.spreadsheet import inert
from chalicelib.core.units import DAY
from chalicelib.core.strays import STRAY_GAP, STRAY_MIN_ROWS, StrayGuard
from chalicelib.logs import log
from chalicelib.settings import Settings
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.jobs import DatasetStateRepository
from chalicelib.storage.models import IngestionRecord, JobStatus, Tables
from chalicelib.storage.polls import PollRepository, StorePoll
from chalicelib.storage.store_maps import business_hours_repository, timezone_repository

STATUS, HOURS, TIMEZONES = "status", "hours", "timezones"
KINDS = (STATUS, HOURS, TIMEZONES)
#: Polls stamped later than this past the ingestion clock are rejected: they would move "now".
FUTURE_TOLERANCE = 300
#: The stray gap with ``accept_strays``: no poll is that far beyond the data (~31,700 years).
ACCEPT_ANY_GAP = 10**12
#: How many rejected rows a result keeps in memory for display; all are counted and logged.
REJECTION_SAMPLE = 20

ProgressCallback = Callable[[int, int], None]  # (rows read, rows accepted)
#: A status file's progress is reported every this many rows read.
PROGRESS_EVERY = 50_000


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


def _count_grouped_repeats(grouped: Mapping[tuple[str, int], set[int]], rows: int,
                           result: IngestResult) -> None:
    """``_count_repeats`` of a grouped batch of ``rows`` rows: a row is a duplicate when its
    (store, second, status) is already in; a second with both statuses is one conflict."""
    count(result, "duplicates", rows - sum(map(len, grouped.values())))
    count(result, "conflicts", sum(len(values) - len({value >> 1 for value in values})
                                   for values in grouped.values()))


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


@dataclass(frozen=True)
class Header:
    """What a file's header says: its kind, the column of each name, how many fields a row has."""

    kind: str
    columns: dict[str, int]
    width: int

    @classmethod
    def parse(cls, fields: list[str]) -> "Header":
        kind, columns = _kind_of_header(fields)
        return cls(kind, columns, len(fields))


@dataclass(frozen=True)
class Line:
    """One non-blank line after the header: its fields, read as well as can be, and ``problem``
    when it is not CSV text (NUL bytes, not UTF-8, over the csv module's field limit): such a
    line is rejected with that reason by the row checks, and still counted against its store."""

    number: int
    fields: list[str]
    problem: Optional[str] = None

    @property
    def raw(self) -> str:
        return ",".join(self.fields)


def _decoded_line(number: int, raw: bytes, header_seen: bool) -> Optional[Line]:
    """Line ``number`` read as text; None if blank. Before the header, a line that is not text
    rejects the file (nothing is written yet); after it, such a line carries its ``problem``."""
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
        return None
    try:
        fields = parsing.csv_fields(text)
    except csv.Error as error:  # e.g. a field longer than the csv module's limit
        reason, fields = reason or f"cannot be read as CSV ({error})", text.split(",")
    if reason and not header_seen:
        raise FileRejected(f"line {number} {reason}: this is not a CSV text file")
    return Line(number, fields, f"line {reason}" if reason else None)


def _decoded_lines(numbered: Iterable[tuple[int, bytes]]) -> Iterator[Line]:
    """Each non-blank line after the header (``_decoded_line``)."""
    for number, raw in numbered:
        line = _decoded_line(number, raw, header_seen=True)
        if line is not None:
            yield line


def ingest_lines(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    expected_kind: Optional[str] = None,
    rejection_log: Optional[RejectionLog] = None,
    progress: Optional[ProgressCallback] = None,
    wall_clock: Callable[[], float] = time.time,
    tables: Optional[Tables] = None,
    accept_strays: bool = False,
) -> IngestResult:
    """Ingest one CSV file given as raw lines; raises ``FileRejected`` before writing anything
    when the file as a whole is unusable. ``tables``: by default ``settings``' own.
    ``accept_strays``: take polls far beyond the data too (an operator who knows the drop is
    genuine: a small fleet after a long pause); "now" then moves to them."""
    numbered = enumerate(lines, start=1)
    first = None
    for number, raw in numbered:
        first = _decoded_line(number, raw, header_seen=False)
        if first is not None:
            break
    if first is None:
        raise FileRejected("the file is empty: no header row")
    header = Header.parse(first.fields)
    if expected_kind and header.kind != expected_kind:
        raise FileRejected(f"the file was dropped as {expected_kind!r} but its header is that of "
                           f"{header.kind!r}")
    feed = FEEDS[header.kind](settings, tables or Tables.from_settings(settings), header,
                              rejection_log or RejectionLog(), progress, wall_clock, accept_strays)
    feed.ingest_numbered(numbered)
    return feed.result


@dataclass
class Feed:
    """One file being ingested: where it goes, what it has done so far (``result``), where its
    rejected rows go. A subclass per kind of file reads its lines (``ingest``)."""

    settings: Settings
    tables: Tables
    header: Header
    rejection_log: RejectionLog
    progress: Optional[ProgressCallback] = None
    wall_clock: Callable[[], float] = time.time
    #: Polls only: hold no poll back as a stray (``ingest --accept-strays``).
    accept_strays: bool = False
    result: IngestResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = IngestResult(kind=self.header.kind)

    def column(self, name: str) -> int:
        return self.header.columns[name]

    def reject(self, line: int, reason: str, raw: str) -> None:
        self.rejection_log(self.result, Rejection(line, reason, raw[:500]))

    def check_width(self, line: Line) -> None:
        if line.problem is not None:
            raise InvalidField(line.problem)
        if len(line.fields) != self.header.width:
            raise InvalidField(f"expected {self.header.width} fields, found {len(line.fields)}")

    def ingest(self, lines: Iterator[Line]) -> None:
        raise NotImplementedError

    def ingest_numbered(self, numbered: Iterator[tuple[int, bytes]]) -> None:
        """The lines after the header, as (line number, raw bytes)."""
        self.ingest(_decoded_lines(numbered))


#: Read the usual status row by ``parsing.CANONICAL_STATUS_LINE`` (False: every row the general way;
#: tests compare the two).
FAST_STATUS = True
_CANONICAL_STATUS_COLUMNS = {"store_id": 0, "status": 1, "timestamp_utc": 2}


class _Memo(dict[Any, Any]):
    """A dict that computes a missing key's value once: the fast path's per-row lookups."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.compute(key)
        return value


@dataclass
class StatusFeed(Feed):
    """Polls: streamed in batches of ``ingest_batch_rows``, strays held back, "now" moved last.

    Two ways to hold a batch, with the same results: a list of ``StorePoll`` (the general
    path, one row at a time) or, on the fast path, the polls grouped as the storage writes
    them, {(store, UTC day): {poll_value}}, filled straight from the bytes of each usual row."""

    repository: PollRepository = field(init=False)
    state: DatasetStateRepository = field(init=False)
    #: Polls stamped after this (ingestion clock + ``FUTURE_TOLERANCE``) are rejected.
    limit: int = field(init=False)
    guard: StrayGuard[tuple[Line, StorePoll]] = field(init=False)
    batch: list[StorePoll] = field(default_factory=list, init=False)
    #: The fast path's batch, and how many rows it holds (duplicates too).
    grouped: Optional[defaultdict[tuple[str, int], set[int]]] = field(default=None, init=False)
    grouped_rows: int = field(default=0, init=False)
    latest: Optional[int] = field(default=None, init=False)
    stores: set[str] = field(default_factory=set, init=False)
    read: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.repository = PollRepository.from_settings(self.settings, self.tables)
        self.limit = int(self.wall_clock()) + FUTURE_TOLERANCE
        self.state = DatasetStateRepository(self.tables.dataset_state)
        self.guard = StrayGuard(self.state.latest_poll_at(),
                                gap=ACCEPT_ANY_GAP if self.accept_strays else STRAY_GAP)

    def parse(self, line: Line) -> StorePoll:
        self.check_width(line)
        fields, timestamp = line.fields, line.fields[self.column("timestamp_utc")]
        poll = StorePoll(parsing.parse_store_id(fields[self.column("store_id")]),
                         parsing.parse_poll_timestamp(timestamp),
                         parsing.parse_status(fields[self.column("status")]))
        if poll.at > self.limit:
            raise InvalidField(f"timestamp {timestamp!r} is in the future of the ingestion clock")
        return poll

    def accept(self, poll: StorePoll) -> None:
        if self.grouped is not None:
            offset = poll.at % DAY
            self.grouped[(poll.store_id, poll.at - offset)].add(offset * 2 + (1 if poll.active else 0))
            self.grouped_rows += 1
            return
        self.batch.append(poll)
        self.stores.add(poll.store_id)
        if self.latest is None or poll.at > self.latest:
            self.latest = poll.at

    def batch_rows(self) -> int:
        return len(self.batch) if self.grouped is None else self.grouped_rows

    def write_batch(self) -> None:
        if self.grouped is None:
            _count_repeats(self.batch, self.result)
            self.repository.add_polls(self.batch)
            self.result.rows_accepted += len(self.batch)
            self.batch = []
            return
        self._fold_grouped()
        _count_grouped_repeats(self.grouped, self.grouped_rows, self.result)
        self.repository.add_store_days(self.grouped)
        self.result.rows_accepted += self.grouped_rows
        self.grouped.clear()  # in place: the fast loop holds it
        self.grouped_rows = 0

    def _fold_grouped(self) -> None:
        """``stores`` and ``latest`` of the grouped batch (per store-day, not per row)."""
        if not self.grouped:
            return
        self.stores.update(store for store, _ in self.grouped)
        last = max(day + (max(values) >> 1) for (_, day), values in self.grouped.items())
        if self.latest is None or last > self.latest:
            self.latest = last

    def take(self, line: Line) -> None:
        """One row the general way: parsed or rejected, past the stray guard, into the batch."""
        self.read += 1
        try:
            poll = self.parse(line)
        except InvalidField as error:
            self.reject(line.number, str(error), line.raw)
        else:
            held = self.guard.add(poll.at, (line, poll))
            if held is not None:
                self.accept(held[1])
        self.checkpoint()

    def checkpoint(self) -> None:
        """After each row: write a full batch; show progress every ``PROGRESS_EVERY`` rows read."""
        if self.batch_rows() >= self.settings.ingest_batch_rows:
            self.write_batch()
        if self.progress and self.read % PROGRESS_EVERY == 0:
            self.progress(self.read, self.result.rows_accepted + self.batch_rows())

    def ingest(self, lines: Iterator[Line]) -> None:
        for line in lines:
            self.take(line)
        self.finish()

    def ingest_numbered(self, numbered: Iterator[tuple[int, bytes]]) -> None:
        if not (FAST_STATUS and self.header.columns == _CANONICAL_STATUS_COLUMNS and self.header.width == 3
                and csv.field_size_limit() >= 1024):
            super().ingest_numbered(numbered)
            return
        self.grouped = defaultdict(set)
        self._ingest_fast(numbered)
        self.finish()

    def _next_check(self) -> int:
        """The ``read`` count at which the fast loop must next ``checkpoint``: a batch cannot
        fill sooner (a row adds at most one poll), nor progress be due."""
        due = self.read + max(1, self.settings.ingest_batch_rows - self.grouped_rows)
        if self.progress:
            due = min(due, (self.read // PROGRESS_EVERY + 1) * PROGRESS_EVERY)
        return due

    def _ingest_fast(self, numbered: Iterator[tuple[int, bytes]]) -> None:
        """The lines after the header: a usual row (``parsing.CANONICAL_STATUS_LINE``) whose poll
        the stray guard would release at once goes straight into the grouped batch; any other
        line goes the general way (``take``), so its rejection, if any, is the general one."""
        assert self.grouped is not None
        match, grouped = parsing.CANONICAL_STATUS_LINE.match, self.grouped
        guard, limit = self.guard, self.limit
        stores, minutes = _Memo(parsing.store_id_bytes), _Memo(parsing.utc_minute_bytes)
        floor, read, rows, due = guard.floor, self.read, self.grouped_rows, self._next_check()
        for number, raw in numbered:
            found = match(raw)
            if found is not None:
                store, status, _, minute, second = found.groups()
                at_minute, day = minutes[minute]
                at = at_minute + int(second)
                if at <= limit:
                    read += 1
                    if at < floor:
                        grouped[(stores[store], day)].add((at - day) * 2 + (status == b"active"))
                        rows += 1
                    else:
                        self.read, self.grouped_rows = read, rows
                        self._hold(number, raw, StorePoll(stores[store], at, status == b"active"))
                        floor, rows = guard.floor, self.grouped_rows
                    if read >= due:
                        self.read, self.grouped_rows = read, rows
                        self.checkpoint()
                        rows, due = self.grouped_rows, self._next_check()
                    continue
            self.read, self.grouped_rows = read, rows
            line = _decoded_line(number, raw, header_seen=True)
            if line is not None:
                self.take(line)
            floor, read, rows, due = guard.floor, self.read, self.grouped_rows, self._next_check()
        self.read, self.grouped_rows = read, rows
        self._fold_grouped()
        guard.note_released(self.latest)  # every poll accepted so far was released by the guard

    def _hold(self, number: int, raw: bytes, poll: StorePoll) -> None:
        """A usual row the stray guard may keep (one of the latest so far): as ``take`` does."""
        line = Line(number, raw.rstrip(b"\r\n").decode("ascii").split(","))
        held = self.guard.add(poll.at, (line, poll))
        if held is not None:
            self.accept(held[1])

    def finish(self) -> None:
        accepted, strays = self.guard.finish()
        for _, poll in accepted:
            self.accept(poll)
        for (line, poll), trusted in strays:
            stamp = line.fields[self.column("timestamp_utc")]
            self.reject(line.number, _stray_reason(stamp, poll.at - trusted), line.raw)
        if self.batch_rows():
            self.write_batch()
        if self.progress:
            self.progress(self.read, self.result.rows_accepted)
        self.repository.finish(self.latest)  # compaction is part of the drop: done before "now" moves
        self.result.storage = self.repository.stats.as_dict()
        if self.latest is not None:
            self.state.advance_latest_poll(self.latest)
        self.result.latest_poll_at = self.latest
        self.result.stores = len(self.stores)
        self.result.counts = {name: self.result.counts[name] for name in COUNT_NAMES
                              if name in self.result.counts}


def _days(seconds: int) -> str:
    return f"{seconds / DAY:,.1f} days"


def _stray_reason(stamp: str, ahead: int) -> str:
    return (f"timestamp {stamp!r} is held back as a stray: {_days(ahead)} after the latest poll so far and "
            f"the rest of this file, with fewer than {STRAY_MIN_ROWS} polls near it, so it may not move "
            "'now' (docs/ALGORITHM.md, section 1; if it is genuine, ingest it again with "
            "`storemon ingest --accept-strays`)")


@dataclass
class StoreMapFeed(Feed):
    """Schedules or zones: a store's rows replace its values, so a store's rows are all read
    first, and a store with any bad row is dropped whole (a half-read schedule never replaces
    a good one)."""

    def parse(self, fields: list[str]) -> tuple[str, Any]:
        """(store id, value) of a row's fields; ``InvalidField`` when they are not valid."""
        raise NotImplementedError

    def collect_per_store(self, lines: Iterator[Line]) -> dict[str, list[tuple[int, Any]]]:
        """{store: [(line number, value)]} of the stores whose rows were all valid."""
        store_col = self.column("store_id")
        values: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        bad_stores: dict[str, int] = {}
        read = 0
        for line in lines:
            read += 1
            try:
                self.check_width(line)
                store_id, value = self.parse(line.fields)
            except InvalidField as error:
                self.reject(line.number, str(error), line.raw)
                store = line.fields[store_col].strip() if len(line.fields) > store_col else ""
                bad_stores.setdefault(store, line.number)
                continue
            values[store_id].append((line.number, value))
            if self.progress and read % 50_000 == 0:
                self.progress(read, 0)
        for store, first_bad in bad_stores.items():
            for number, _ in values.pop(store, []):
                self.reject(number, f"store {store} has a rejected row on line {first_bad}; its values "
                                    "are left unchanged", "")
        return values


@dataclass
class HoursFeed(StoreMapFeed):
    def parse(self, fields: list[str]) -> tuple[str, Any]:
        return parsing.parse_store_id(fields[self.column("store_id")]), (
            parsing.parse_weekday(fields[self.column("day")]),
            parsing.parse_local_time(fields[self.column("start_time_local")]),
            parsing.parse_local_time(fields[self.column("end_time_local")], end=True),
        )

    def ingest(self, lines: Iterator[Line]) -> None:
        values = self.collect_per_store(lines)
        schedules = {store: sorted({tuple(v) for _, v in items}) for store, items in values.items()}
        count(self.result, "duplicate_hours", sum(len(items) for items in values.values()) -
              sum(len(rows) for rows in schedules.values()))
        repository = business_hours_repository(self.settings.poll_shards, self.settings.poll_item_budget,
                                               self.tables)
        repository.replace({store: [list(row) for row in rows] for store, rows in schedules.items()})
        self.result.rows_accepted = sum(len(items) for items in values.values())
        self.result.stores = len(schedules)


@dataclass
class TimezonesFeed(StoreMapFeed):
    def parse(self, fields: list[str]) -> tuple[str, Any]:
        text = fields[self.column("timezone_str")]
        store, zone = parsing.parse_store_id(fields[self.column("store_id")]), parsing.parse_timezone(text)
        if not text.strip():
            count(self.result, "default_zone")
        return store, zone

    def ingest(self, lines: Iterator[Line]) -> None:
        values = self.collect_per_store(lines)
        zones = {}
        for store, items in values.items():
            distinct = {zone for _, zone in items}
            if len(distinct) > 1:
                for number, _ in items:
                    self.reject(number, f"store {store} has conflicting time zones {sorted(distinct)} in "
                                        "this file", "")
                continue
            zones[store] = distinct.pop()
            count(self.result, "duplicates", len(items) - 1)
            self.result.rows_accepted += len(items)
        settings = self.settings
        timezone_repository(settings.poll_shards, settings.poll_item_budget, self.tables).replace(zones)
        self.result.stores = len(zones)


FEEDS: dict[str, type[Feed]] = {STATUS: StatusFeed, HOURS: HoursFeed, TIMEZONES: TimezonesFeed}


class _RejectionFile:
    """Collects rejected rows as CSV in a spooled temporary file; a row that starts like a
    spreadsheet formula is written inert (``core.spreadsheet``), as in reports."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        self._text = io.TextIOWrapper(self.file, encoding="utf-8", newline="",  # type: ignore[type-var]
                                      write_through=True)
        self._writer = csv.writer(self._text, lineterminator="\n")
        self._writer.writerow(["line", "reason", "row"])

    def write(self, rejection: Rejection) -> None:
        self._writer.writerow([rejection.line, inert(rejection.reason), inert(rejection.raw)])

    def bytes_io(self) -> IO[bytes]:
        self._text.flush()
        self.file.seek(0)
        return self.file


def ingest_source(
    lines: Iterable[bytes],
    source: str,
    ingestion_id: str,
    settings: Settings,
    *,
    expected_kind: Optional[str] = None,
    save_rejections: Optional[Callable[[IO[bytes]], str]] = None,
    progress: Optional[ProgressCallback] = None,
    tables: Optional[Tables] = None,
    accept_strays: bool = False,
) -> tuple[Optional[IngestionRecord], Optional[IngestResult]]:
    """Ingest one file and record it. Whole-file rejections are recorded, not raised;
    unexpected errors mark the record Failed and propagate (so SQS retries).
    ``tables``: by default ``settings``' own."""
    tables = tables or Tables.from_settings(settings)
    records = IngestionRepository(tables.ingestions)
    record = records.claim(ingestion_id, source)
    if record is None:  # another delivery of the same file has it, or had it
        held = records.get(ingestion_id)
        log.info("%s is already claimed (%s); this delivery stops", ingestion_id,
                 held.status if held else "?")
        return held, None
    rejections = _RejectionFile()
    try:
        result = ingest_lines(lines, settings, expected_kind=expected_kind,
                              rejection_log=RejectionLog(rejections.write), progress=progress, tables=tables,
                              accept_strays=accept_strays)
    except FileRejected as error:
        return records.finish(record, JobStatus.REJECTED, error=str(error)), None
    except Exception as error:
        records.finish(record, JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    report_key = None
    if result.rows_rejected and save_rejections is not None:
        report_key = save_rejections(rejections.bytes_io())
    record = records.finish(record, JobStatus.COMPLETE, kind=result.kind, accepted=result.rows_accepted,
                            rejected=result.rows_rejected, error_report_key=report_key,
                            storage=result.storage, counts=result.counts)
    return record, result
