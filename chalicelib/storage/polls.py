"""Poll storage: per (store shard, UTC day) a small directory and the immutable blocks it names.

Why this shape (docs/ARCHITECTURE.md has the numbers):
- A report reads ``shards x 9`` directories by exact key and then the blocks
  they list, whatever the length of the history: no Scan, no Query.
- An ingestion batch **adds** blocks (PutItem, billed on the block's own size)
  and appends their ids to the directory (a tiny UpdateItem). Nothing large is
  ever rewritten by a drop, so an hourly drop costs about the bytes it adds.
- Every block fits ``item_budget`` by construction (``blocks.pack_blocks``
  splits), so no write can fail for item size, whatever the fleet or poll rate.
- Reads do not degrade with the number of drops: at the end of a drop, a
  day's segments are **compacted** into base blocks once the day is over (and
  earlier only if a day collects very many), so a week fed hourly reads about
  as many blocks as a bulk load.
- Writes are idempotent: blocks are content-addressed and directories hold
  sets, so a replayed batch or a retried drop changes nothing.
"""
from __future__ import annotations

import bisect
import itertools
import logging
import math
import operator
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Collection, Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from chalicelib.core.interpolation import PollColumns
from chalicelib.core.units import DAY, HOUR
from chalicelib.settings import Settings
from chalicelib.storage.blocks import (
    Block,
    BlockError,
    Entry,
    block_id,
    block_size,
    decode_block,
    encode_block,
    merge_blocks,
    pack_blocks,
    union_block,
)
from chalicelib.storage.layout import DEFAULT_ITEM_BUDGET, shard_of
from chalicelib.storage.models import PollBlock, PollDirectory, Tables

log = logging.getLogger(__name__)

#: Parallel requests per writer: hides round-trip latency, stays polite to the table.
WRITE_CONCURRENCY = 4
#: Encoded bytes a writer holds before writing them (a bulk file's whole week fits at 14k stores).
DEFAULT_PENDING_LIMIT = 32 * 1024 * 1024
#: A day is compacted once it ended this long before the newest poll of the drop.
CLOSE_GRACE = HOUR
#: A finished day with a base is compacted again once its new segments reach this share of it...
RECOMPACT_RATIO = 0.25
#: ...or this many segments (late polls), whichever comes first.
CLOSED_MAX_SEGMENTS = 12
#: A day still open is compacted early only past this many segments (sub-hourly drops).
OPEN_MAX_SEGMENTS = 48
#: A roster (store ids of a shard) is compacted once it has this many segments.
ROSTER_MAX_SEGMENTS = 8
#: A block this writer wrote, at least this share of the item budget, is made base as it is
#: (``_promotable``): a closed day then holds at most ~1/this times the blocks a merge makes.
PROMOTE_MIN_FILL = 0.25
#: A flush cuts a shard-day of several pending blocks into blocks of about this share of the
#: budget (``_pack_merged``).
FLUSH_FILL = 0.9


@lru_cache(maxsize=1)
def _writer_pool() -> ThreadPoolExecutor:
    """Long-lived: PynamoDB keeps a botocore client per thread, so fresh threads per
    batch would build fresh clients (~0.1 s CPU each) every batch."""
    return ThreadPoolExecutor(WRITE_CONCURRENCY, thread_name_prefix="poll-writer")


@lru_cache(maxsize=1)
def _flush_thread() -> ThreadPoolExecutor:
    """One thread that sends a flush's writes while ingestion reads on (it waits on the writer
    pool, so it cannot be one of that pool's threads)."""
    return ThreadPoolExecutor(1, thread_name_prefix="poll-flush")


class StorePoll(NamedTuple):
    store_id: str
    at: int
    active: bool


def day_key(shard: int, day_start: int) -> str:
    return f"{shard:03d}#{datetime.fromtimestamp(day_start, timezone.utc):%Y%m%d}"


def roster_key(shard: int) -> str:
    return f"{shard:03d}#stores"


def block_key(directory_key: str, content_id: str) -> str:
    return f"{directory_key}#{content_id}"


def poll_value(at: int, day_start: int, active: bool) -> int:
    return (at - day_start) * 2 + (1 if active else 0)


@dataclass
class WriteStats:
    """What a writer sent to DynamoDB, in the units DynamoDB bills (1 WRU per started KB)."""

    blocks: int = 0
    block_bytes: int = 0
    directory_updates: int = 0
    compactions: int = 0
    compacted_bytes: int = 0
    #: Blocks a compaction made base as they were (``PollRepository._promotable``): not rewritten.
    promoted_blocks: int = 0
    largest_item: int = 0
    write_units: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, size: int, **counters: int) -> None:
        """One item of ``size`` bytes written, and the named counters bumped (writer threads share this)."""
        with self._lock:
            self.write_units += max(1, -(-size // 1024))
            self.largest_item = max(self.largest_item, size)
            for name, amount in counters.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {name: value for name, value in vars(self).items() if not name.startswith("_")}


#: A directory holds a few dozen 20-character ids at most (compaction bounds them): ~1 KB.
_DIRECTORY_SIZE = 64 + 22 * 24


def _item_size(key: str, blob: bytes) -> int:
    """DynamoDB's size of a block item: attribute names and values (expires_at ~ 11 bytes)."""
    return len("bucket_key") + len(key.encode()) + len("blob") + len(blob) + len("expires_at") + 11


@dataclass
class _Directory:
    key: str
    segments: set[str]
    base: set[str]
    generation: int
    expires_at: Optional[datetime]

    @classmethod
    def of(cls, item: PollDirectory) -> "_Directory":
        return cls(item.bucket_key, set(item.segments or ()), set(item.base or ()),
                   int(item.generation or 0), item.expires_at)

    @property
    def segment_bytes(self) -> int:
        return sum(map(block_size, self.segments))

    @property
    def base_bytes(self) -> int:
        return sum(map(block_size, self.base))

    def block_keys(self) -> list[str]:
        return [block_key(self.key, content) for content in sorted(self.base | self.segments)]


class StorePolls(Mapping[str, PollColumns]):
    """Per store, its sorted ``(at, active)`` polls, decoded only when asked for.

    Holds the shard's blocks as compact integer arrays; a store's polls are built on
    access as two lists (``PollColumns``: no tuple per poll), so a part's memory stays
    proportional to the packed data. Values are unique, so instants are too unless a
    store was seen both active and inactive at one second (``canonical_polls`` decides).
    """

    def __init__(self, start: int, end: int) -> None:
        self._start, self._end = start, end
        # Per store: (day start, block number, first value, end value) of each block holding it.
        self._pieces: dict[str, list[tuple[int, int, int, int]]] = {}
        # Stores whose pieces are not one a day in day order (blocks added out of order, or a
        # day's blocks added one by one): ``__getitem__`` sorts and merges theirs.
        self._unordered: set[str] = set()
        self._blocks: list[Block] = []
        self._decoded: dict[int, tuple[list[int], list[bool]]] = {}

    def add_block(self, day_start: int, block: Block) -> None:
        number = len(self._blocks)
        self._blocks.append(block)
        offsets, pieces, unordered = block.offsets, self._pieces, self._unordered
        for index, store in enumerate(block.stores):
            lo, hi = offsets[index], offsets[index + 1]
            if lo < hi:
                found = pieces.get(store)
                if found is None:
                    pieces[store] = [(day_start, number, lo, hi)]
                else:
                    if found[-1][0] >= day_start:
                        unordered.add(store)
                    found.append((day_start, number, lo, hi))

    def add_day(self, day_start: int, blocks: Sequence[Block]) -> None:
        """A day's blocks. Several that share stores (a day's hourly segments, not yet compacted)
        are merged once into one block, column-wise, so each store again finds its day in one
        piece (``_one_piece_a_day``) instead of merging it store by store."""
        if len(blocks) > 1 and len(set().union(*(block.stores for block in blocks))) < sum(
                len(block.stores) for block in blocks):
            blocks = [union_block(blocks)]
        for block in blocks:
            self.add_block(day_start, block)

    def _columns(self, day_start: int, number: int) -> tuple[list[int], list[bool]]:
        """A block's instants and statuses, all its stores' at once (a report reads every
        store of the shard: one pass per block, then slices, beats a pass per store)."""
        decoded = self._decoded.get(number)
        if decoded is None:
            values = self._blocks[number].values
            decoded = self._decoded[number] = ([day_start + (value >> 1) for value in values],
                                               [value & 1 == 1 for value in values])
        return decoded

    def __getitem__(self, store: str) -> PollColumns:
        pieces = self._pieces.get(store)
        if not pieces:
            raise KeyError(store)
        if store not in self._unordered:
            return self._one_piece_a_day(pieces)
        pieces.sort(key=operator.itemgetter(0))  # by day
        days = [piece[0] for piece in pieces]
        if all(map(operator.lt, days, itertools.islice(days, 1, None))):
            return self._one_piece_a_day(pieces)
        times: list[int] = []
        actives: list[bool] = []
        index = 0
        while index < len(pieces):
            day_start, number, lo, hi = pieces[index]
            same_day = [pieces[index]]
            while index + 1 < len(pieces) and pieces[index + 1][0] == day_start:
                index += 1
                same_day.append(pieces[index])
            if len(same_day) == 1:
                day_times, day_actives = self._columns(day_start, number)
                times += day_times[lo:hi]
                actives += day_actives[lo:hi]
            else:  # the day in several blocks (segments not yet compacted): merge their values
                merged = sorted(set().union(*(self._blocks[n].values[a:b] for _, n, a, b in same_day)))
                times += [day_start + (value >> 1) for value in merged]
                actives += [value & 1 == 1 for value in merged]
            index += 1
        start, end = self._start, self._end
        if times and (times[0] < start or times[-1] > end):
            lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            times, actives = times[lo:hi], actives[lo:hi]
        return PollColumns(times, actives)

    def _one_piece_a_day(self, pieces: list[tuple[int, int, int, int]]) -> PollColumns:
        """``__getitem__`` when each day is in one block (always, once days are compacted):
        slices of the blocks' columns, a day that crosses ``[start, end]`` (the first and last
        of the read range) cut by bisection within its slice."""
        start, end, decoded = self._start, self._end, self._decoded
        times: list[int] = []
        actives: list[bool] = []
        for day_start, number, lo, hi in pieces:
            columns = decoded.get(number) or self._columns(day_start, number)
            day_times = columns[0]
            if day_times[lo] < start or day_times[hi - 1] > end:
                lo = bisect.bisect_left(day_times, start, lo, hi)
                hi = bisect.bisect_right(day_times, end, lo, hi)
            times += day_times[lo:hi]
            actives += columns[1][lo:hi]
        return PollColumns(times, actives)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pieces)

    def __len__(self) -> int:
        return len(self._pieces)


@dataclass(frozen=True)
class ShardPolls:
    """Everything a report needs to know about one shard's polls."""

    polls_by_store: Mapping[str, PollColumns]  # (at, active), sorted
    roster: set[str]
    #: Blocks listed but unreadable (corrupt or missing): set aside and logged, never fatal.
    skipped_blocks: list[str] = field(default_factory=list)


class PollRepository:
    def __init__(self, shards: int, retention_days: int, item_budget: int = DEFAULT_ITEM_BUDGET,
                 pending_limit: int = DEFAULT_PENDING_LIMIT, *, tables: Optional[Tables] = None) -> None:
        """``tables``: the deployment's bound tables; by default the environment's (scripts and
        tests; the composition root passes them, see ``from_settings``)."""
        tables = tables or Tables.from_env()
        self.directories = tables.poll_directories
        self.blocks = tables.poll_blocks
        self.shards = shards
        self.pending_limit = pending_limit
        self.retention = retention_days * DAY
        self.item_budget = item_budget
        self.stats = WriteStats()
        self._touched_days: set[tuple[int, int]] = set()
        self._touched_rosters: set[int] = set()
        self._known_stores: dict[int, set[str]] = {}
        self._new_stores: dict[int, set[str]] = defaultdict(set)
        self._pending: dict[tuple[int, int], list[bytes]] = defaultdict(list)
        self._pending_bytes = 0
        # What this writer wrote, so finish can promote its own blocks instead of rewriting them:
        # block ids per shard-day, and the stores it wrote there in more than one flush.
        self._written: dict[tuple[int, int], set[str]] = defaultdict(set)
        self._repeated: dict[tuple[int, int], set[str]] = defaultdict(set)
        # Per store, a bitmask of the days it has in flushed / pending blocks (``_day_bits``).
        self._flushed_days: dict[str, int] = {}
        self._pending_days: dict[str, int] = {}
        self._day_bits: dict[int, int] = {}
        self._writing: Optional[Future[None]] = None

    @classmethod
    def from_settings(cls, settings: Settings, tables: Tables) -> "PollRepository":
        """A repository for one drop or one report: writers keep per-drop state, so one each."""
        return cls(settings.poll_shards, settings.retention_days, settings.poll_item_budget, tables=tables)

    # -- writes ---------------------------------------------------------
    def add_polls(self, polls: Iterable[StorePoll]) -> int:
        """Encode a batch of polls into blocks; returns how many blocks it made.

        Blocks are held (compressed, a few bytes a poll) until ``pending_limit``
        bytes, then written: a bulk file becomes one segment per shard-day
        instead of one per batch. Call ``finish`` once the drop is read.
        """
        by_store_day: dict[tuple[str, int], set[int]] = defaultdict(set)
        for store_id, at, active in polls:  # per row only this: poll_value, inlined
            offset = at % DAY
            by_store_day[(store_id, at - offset)].add(offset * 2 + (1 if active else 0))
        return self.add_store_days(by_store_day)

    def add_store_days(self, by_store_day: Mapping[tuple[str, int], set[int]]) -> int:
        """``add_polls`` of polls already grouped: {(store, UTC day start): {poll_value}} (what
        ingestion's fast path builds as it reads). The sets are not kept past the call."""
        shards = {store_id: shard_of(store_id, self.shards) for store_id, _ in by_store_day}
        groups: dict[tuple[int, int], dict[str, set[int]]] = defaultdict(dict)
        flushed, pending, bits = self._flushed_days, self._pending_days, self._day_bits
        for (store_id, day), values in by_store_day.items():
            shard = shards[store_id]
            groups[(shard, day)][store_id] = values
            bit = bits.get(day) or bits.setdefault(day, 1 << len(bits))
            if flushed.get(store_id, 0) & bit:  # the store-day is in an earlier flush's blocks too
                self._repeated[(shard, day)].add(store_id)
            pending[store_id] = pending.get(store_id, 0) | bit
        made = 0
        stores_by_shard: dict[int, set[str]] = defaultdict(set)
        for (shard, day), by_store in sorted(groups.items()):
            blobs = pack_blocks([(store, sorted(values)) for store, values in sorted(by_store.items())],
                                self.item_budget)
            self._pending[(shard, day)].extend(blobs)
            self._pending_bytes += sum(map(len, blobs))
            stores_by_shard[shard].update(by_store)
            made += len(blobs)
        self._note_stores(stores_by_shard)
        if self._pending_bytes >= self.pending_limit:
            self.flush(wait=False)
        return made

    def _note_stores(self, stores_by_shard: Mapping[int, set[str]]) -> None:
        """Remember which stores the roster does not know yet (read once per shard and writer)."""
        unknown = [shard for shard in stores_by_shard if shard not in self._known_stores]
        for shard, roster in zip(unknown, _writer_pool().map(self.read_roster, unknown), strict=True):
            self._known_stores[shard] = set(roster)
        for shard, stores in stores_by_shard.items():
            new = stores - self._known_stores[shard]
            if new:
                self._new_stores[shard].update(new)
                self._known_stores[shard].update(new)

    def flush(self, wait: bool = True) -> None:
        """Write what is held: blocks first (batched), then their directories, so a reader
        never meets a name without its block. ``wait=False`` (a drop's reading goes on): the
        writes are sent by a background thread, one flush at a time, and the next ``flush``
        or ``finish`` waits for them (and raises what they raised)."""
        now = int(time.time())
        segments: list[tuple[str, list[bytes], Optional[datetime]]] = []
        for (shard, day), blobs in sorted(self._pending.items()):
            if len(blobs) > 1:
                blobs = _pack_merged(merge_blocks(map(decode_block, blobs)), self.item_budget)
            segments.append((day_key(shard, day), blobs, self._expiry(day, now)))
            self._touched_days.add((shard, day))
            self._written[(shard, day)].update(map(block_id, blobs))
        for shard, stores in sorted(self._new_stores.items()):
            roster = pack_blocks([(store, ()) for store in sorted(stores)], self.item_budget)
            segments.append((roster_key(shard), roster, None))
            self._touched_rosters.add(shard)
        flushed = self._flushed_days
        for store, days in self._pending_days.items():
            flushed[store] = flushed.get(store, 0) | days
        self._pending_days.clear()
        self._pending.clear()
        self._new_stores.clear()
        self._pending_bytes = 0
        self._await_writes()
        if wait:
            self._write_segments(segments)
        else:
            self._writing = _flush_thread().submit(self._write_segments, segments)

    def _await_writes(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _write_segments(self, segments: Sequence[tuple[str, list[bytes], Optional[datetime]]]) -> None:
        self._put_blocks([(key, blob, expires) for key, blobs, expires in segments for blob in blobs])
        list(_writer_pool().map(lambda segment: self._add_to_directory(*segment), segments))

    def _expiry(self, day_start: int, wall_now: int) -> datetime:
        """Keep ``retention`` past the day, and never less than that past ingestion,
        so a replay of old data is not deleted the moment it lands."""
        return datetime.fromtimestamp(max(day_start + DAY, wall_now) + self.retention, timezone.utc)

    def _put_blocks(self, blocks: Sequence[tuple[str, bytes, Optional[datetime]]],
                    parallel: bool = True) -> list[str]:
        """PutItem in batches of 25 (BatchWriteItem); returns content ids. ``parallel`` sends a few
        batches at a time (not from inside the writer pool: its threads would wait on themselves)."""
        items = []
        for directory, blob, expires_at in blocks:
            key = block_key(directory, block_id(blob))
            items.append(self.blocks(key, blob=blob, expires_at=expires_at))
            self.stats.count(_item_size(key, blob), blocks=1, block_bytes=len(blob))

        def write(group: Sequence[PollBlock]) -> None:
            with self.blocks.batch_write() as batch:
                for item in group:
                    batch.save(item)

        groups = [items[start:start + 25] for start in range(0, len(items), 25)]
        list(_writer_pool().map(write, groups) if parallel and len(groups) > 1 else map(write, groups))
        return [block_id(blob) for _, blob, _ in blocks]

    def _add_to_directory(self, directory: str, blobs: Sequence[bytes],
                          expires_at: Optional[datetime]) -> None:
        actions: list[Action] = [PollDirectory.segments.add({block_id(blob) for blob in blobs})]
        if expires_at is not None:
            actions.append(PollDirectory.expires_at.set(expires_at))
        self.directories(directory).update(actions=actions)
        self.stats.count(_DIRECTORY_SIZE, directory_updates=1)

    def finish(self, latest_poll: Optional[int]) -> int:
        """End of a drop: write what is held, then compact the days and rosters it touched
        that are due; returns how many were compacted."""
        self.flush()
        candidates = set(self._touched_days)
        candidates.update((shard, day - DAY) for shard, day in self._touched_days)
        jobs: list[tuple[str, bool, int, Optional[tuple[int, int]]]] = []
        for shard, day in sorted(candidates):
            closed = latest_poll is not None and day + DAY + CLOSE_GRACE <= latest_poll
            jobs.append((day_key(shard, day), closed, day, (shard, day)))
        jobs.extend((roster_key(shard), True, -1, None) for shard in sorted(self._touched_rosters))
        self._touched_days.clear()
        self._touched_rosters.clear()
        done = list(_writer_pool().map(lambda job: self._compact_if_due(*job), jobs))
        return sum(done)

    def _compact_if_due(self, key: str, closed: bool, day_start: int,
                        shard_day: Optional[tuple[int, int]] = None) -> bool:
        try:
            directory = _Directory.of(self.directories.get(key, consistent_read=True))
        except self.directories.DoesNotExist:
            return False
        if not _due(directory, closed, roster=day_start < 0):
            return False
        if not closed or shard_day is None:
            return self.compact(directory, day_start)
        return self.compact(directory, day_start, self._promotable(directory, shard_day),
                            self._repeated.get(shard_day, set()))

    def _promotable(self, directory: _Directory, shard_day: tuple[int, int]) -> set[str]:
        """Blocks of a closed day that can become its base as they are, unread and unwritten.

        Only when this writer wrote every block the directory names (a bulk file's day, written
        in a few flushes): it knows they share no store but the ones it wrote there in two
        flushes (``compact`` reads the blocks to set those aside), so each store stays in one
        block of the day, as a merge leaves it, and reads take the one-block-a-day path. Blocks
        under ``PROMOTE_MIN_FILL`` of the budget are merged instead, so a day's block count stays
        within ~1/``PROMOTE_MIN_FILL`` of a merge's."""
        if directory.base or not directory.segments <= self._written.get(shard_day, set()):
            return set()
        floor = PROMOTE_MIN_FILL * self.item_budget
        return {content for content in directory.segments if block_size(content) >= floor}

    def compact(self, directory: _Directory, day_start: int, promotable: Iterable[str] = (),
                repeated: Collection[str] = ()) -> bool:
        """Merge a directory's blocks into new base blocks; False if another writer won the race.

        ``promotable`` blocks (``_promotable``) become base as they are, and are not even read
        unless ``repeated`` names stores that may be in them: those blocks are merged too."""
        keep = set(promotable)
        names = sorted(directory.base | directory.segments)
        reading = names if repeated and keep else [content for content in names if content not in keep]
        unreadable: list[str] = []
        merging: list[Block] = []
        for key, block in self._read_blocks([block_key(directory.key, content) for content in reading],
                                            consistent=True, skipped=unreadable):
            content = key.rsplit("#", 1)[1]
            if content in keep:
                if repeated and not any(store in repeated for store in block.stores):
                    continue
                keep.discard(content)
            merging.append(block)
        if unreadable:
            return False  # never fold a block we could not read out of its directory
        blobs = pack_blocks(merge_blocks(merging), self.item_budget)
        base = keep.union(self._put_blocks([(directory.key, blob, directory.expires_at) for blob in blobs],
                                           parallel=False))
        actions: list[Action] = [PollDirectory.base.set(base) if base else PollDirectory.base.remove(),
                                 PollDirectory.generation.set(directory.generation + 1)]
        if directory.segments:
            actions.append(PollDirectory.segments.delete(directory.segments))
        condition = (PollDirectory.generation == directory.generation) if directory.generation else \
            PollDirectory.generation.does_not_exist()
        try:
            self.directories(directory.key).update(actions=actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False  # compacted concurrently: that result stands, ours is left to TTL
            raise
        self.stats.count(_DIRECTORY_SIZE, compactions=1, compacted_bytes=sum(map(len, blobs)),
                         promoted_blocks=len(keep), directory_updates=1)
        return True

    # -- reads ----------------------------------------------------------
    def _read_blocks(self, keys: Sequence[str], consistent: bool = False,
                     skipped: Optional[list[str]] = None) -> Iterator[tuple[str, Block]]:
        """Decoded blocks of ``keys``. A block listed but not (yet) visible is read again
        consistently; one that is missing or corrupt is set aside and logged."""
        found: dict[str, bytes] = {}
        for item in self.blocks.batch_get(list(keys), consistent_read=consistent):
            found[item.bucket_key] = item.blob
        missing = [key for key in keys if key not in found]
        if missing and not consistent:
            for item in self.blocks.batch_get(missing, consistent_read=True):
                found[item.bucket_key] = item.blob
        for key in keys:
            blob = found.get(key)
            try:
                if blob is None:
                    raise BlockError("listed in its directory but not found")
                yield key, decode_block(blob)
            except BlockError as error:
                log.error("poll block %s set aside: %s", key, error)
                if skipped is not None:
                    skipped.append(key)

    def read_roster(self, shard: int) -> list[str]:
        try:
            directory = _Directory.of(self.directories.get(roster_key(shard)))
        except self.directories.DoesNotExist:
            return []
        stores: set[str] = set()
        for _, block in self._read_blocks(directory.block_keys()):
            stores.update(block.stores)
        return sorted(stores)

    def read_shard(self, shard: int, start: int, end: int) -> ShardPolls:
        """Polls of ``shard`` with ``start <= at <= end``: sorted and deduplicated, per store."""
        wall_now = time.time()
        first_day = start - start % DAY
        days = {day_key(shard, day): day for day in range(first_day, end + 1, DAY)}
        keys = [*days, roster_key(shard)]
        block_days: dict[str, int] = {}
        for item in self.directories.batch_get(keys):
            directory = _Directory.of(item)
            if directory.key in days:
                if directory.expires_at is None or directory.expires_at.timestamp() >= wall_now:
                    block_days.update((key, days[directory.key]) for key in directory.block_keys())
                # else: expired by TTL but not yet deleted (DynamoDB lags; moto never deletes)
            else:
                block_days.update((key, -1) for key in directory.block_keys())
        polls = StorePolls(start, end)
        roster: set[str] = set()
        skipped: list[str] = []
        by_day: dict[int, list[Block]] = defaultdict(list)
        for key, block in self._read_blocks(sorted(block_days), skipped=skipped):
            day_start = block_days[key]
            if day_start < 0:
                roster.update(block.stores)
            else:
                by_day[day_start].append(block)
        for day_start, blocks in sorted(by_day.items()):
            polls.add_day(day_start, blocks)
        return ShardPolls(polls_by_store=polls, roster=roster, skipped_blocks=skipped)


def _pack_merged(entries: list[Entry], budget: int) -> list[bytes]:
    """``pack_blocks`` of a flush's merged shard-day, cut first into pieces of ~``FLUSH_FILL`` of
    the budget by the compression of its first eighth: ``pack_blocks`` alone halves until a block
    fits, compressing everything again at each level (most of a fleet-10x flush's CPU), and leaves
    blocks of 50-100 % of the budget; here most are encoded once, and fuller."""
    sizes = [6 + len(store) + 4 * len(values) for store, values in entries]
    total, sample = sum(sizes), max(1, len(entries) // 8)
    if total + 128 <= budget:
        return pack_blocks(entries, budget)
    ratio = len(encode_block(entries[:sample])) / sum(sizes[:sample])
    pieces = math.ceil(total * ratio / (FLUSH_FILL * budget))
    if pieces <= 1:
        return pack_blocks(entries, budget)
    goal, running, cuts = total / pieces, 0, [0]
    for index, size in enumerate(sizes[:-1], 1):
        running += size
        if running >= goal * len(cuts):
            cuts.append(index)
    cuts.append(len(entries))
    return [blob for start, end in itertools.pairwise(cuts)
            for blob in pack_blocks(entries[start:end], budget)]


def _due(directory: _Directory, closed: bool, roster: bool) -> bool:
    """Whether compacting now pays: bounded rewrites per day, bounded blocks per read."""
    pending = len(directory.segments)
    if pending == 0 or (pending == 1 and not directory.base):
        return False
    if roster:
        return pending >= ROSTER_MAX_SEGMENTS
    if not closed:
        return pending >= OPEN_MAX_SEGMENTS
    return (not directory.base or pending >= CLOSED_MAX_SEGMENTS
            or directory.segment_bytes >= RECOMPACT_RATIO * directory.base_bytes)
