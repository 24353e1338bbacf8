"""Poll storage: one DynamoDB item per (store shard, UTC day).

Why this shape (docs/ARCHITECTURE.md has the numbers): one item per poll
makes a report read ~1.8M items; here it reads shards x 9 items by exact key,
whatever the length of the history, and an hourly drop is one UpdateItem per
shard.
"""
from __future__ import annotations

import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterable, Iterator, NamedTuple

from chalicelib.storage.models import PollBucket

DAY = 86_400
#: Parallel requests per writer: hides round-trip latency, stays polite to the table.
WRITE_CONCURRENCY = 4


@lru_cache(maxsize=1)
def _writer_pool() -> ThreadPoolExecutor:
    """Long-lived: PynamoDB keeps a botocore client per thread, so fresh threads per
    batch would build fresh clients (~0.1 s CPU each) every batch."""
    return ThreadPoolExecutor(WRITE_CONCURRENCY, thread_name_prefix="poll-writer")


class StorePoll(NamedTuple):
    store_id: str
    at: int
    active: bool


def shard_of(store_id: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike ``hash``)."""
    return zlib.crc32(store_id.encode("utf-8")) % shards


def bucket_key(shard: int, day_start: int) -> str:
    return f"{shard:03d}#{datetime.fromtimestamp(day_start, timezone.utc):%Y%m%d}"


def roster_key(shard: int) -> str:
    return f"{shard:03d}#stores"


def encode_poll_chunk(day_start: int, polls: Iterable[StorePoll]) -> bytes:
    """Sorted, deduplicated ``store<TAB>offset[a|i] ...`` lines, zlib-compressed.

    Deterministic bytes for the same polls, so the item's set absorbs a replay.
    """
    by_store: dict[str, set[str]] = defaultdict(set)
    for store_id, at, active in polls:
        by_store[store_id].add(f"{at - day_start}{'a' if active else 'i'}")
    lines = [f"{store}\t{' '.join(sorted(tokens, key=_token_order))}" for store, tokens in sorted(by_store.items())]
    return zlib.compress("\n".join(lines).encode("utf-8"), 6)


def _token_order(token: str) -> tuple[int, str]:
    return int(token[:-1]), token[-1]


def decode_poll_chunk(day_start: int, blob: bytes) -> Iterator[tuple[str, list[tuple[int, bool]]]]:
    """(store, sorted ``(at, active)`` polls) per line; plain tuples, as the core accepts."""
    for line in zlib.decompress(blob).decode("utf-8").split("\n"):
        store, _, tokens = line.partition("\t")
        yield store, [(day_start + int(t[:-1]), t[-1] == "a") for t in tokens.split(" ")]


def encode_store_ids(store_ids: Iterable[str]) -> bytes:
    return zlib.compress("\n".join(sorted(set(store_ids))).encode("utf-8"), 6)


def decode_store_ids(blob: bytes) -> list[str]:
    text = zlib.decompress(blob).decode("utf-8")
    return text.split("\n") if text else []


@dataclass(frozen=True)
class ShardPolls:
    """Everything a report needs to know about one shard's polls."""

    polls_by_store: dict[str, list[tuple[int, bool]]]  # (at, active), sorted, unique
    roster: set[str]


class PollRepository:
    def __init__(self, shards: int, retention_days: int) -> None:
        self.shards = shards
        self.retention = retention_days * 86_400

    # -- writes ---------------------------------------------------------
    def add_polls(self, polls: Iterable[StorePoll]) -> int:
        """Store a batch of polls; returns how many items were written."""
        groups: dict[tuple[int, int], list[StorePoll]] = defaultdict(list)
        stores_by_shard: dict[int, set[str]] = defaultdict(set)
        for poll in polls:
            shard = shard_of(poll.store_id, self.shards)
            groups[(shard, poll.at - poll.at % DAY)].append(poll)
            stores_by_shard[shard].add(poll.store_id)
        now = int(time.time())
        jobs = [(bucket_key(shard, day), encode_poll_chunk(day, items), self._expiry(day, now))
                for (shard, day), items in sorted(groups.items())]
        pool = _writer_pool()
        list(pool.map(lambda job: self._add_chunk(*job), jobs))
        list(pool.map(lambda item: self._extend_roster(*item), sorted(stores_by_shard.items())))
        return len(jobs)

    def _expiry(self, day_start: int, wall_now: int) -> datetime:
        """Keep ``retention`` past the day, and never less than that past ingestion,
        so a replay of old data is not deleted the moment it lands."""
        return datetime.fromtimestamp(max(day_start + DAY, wall_now) + self.retention, timezone.utc)

    @staticmethod
    def _add_chunk(key: str, blob: bytes, expires_at: datetime) -> None:
        PollBucket(key).update(actions=[PollBucket.chunks.add({blob}), PollBucket.expires_at.set(expires_at)])

    def _extend_roster(self, shard: int, store_ids: set[str]) -> None:
        known = set(self.read_roster(shard))
        new = store_ids - known
        if new:
            PollBucket(roster_key(shard)).update(actions=[PollBucket.chunks.add({encode_store_ids(new)})])

    # -- reads ----------------------------------------------------------
    def read_roster(self, shard: int) -> list[str]:
        try:
            item = PollBucket.get(roster_key(shard))
        except PollBucket.DoesNotExist:
            return []
        stores: set[str] = set()
        for blob in item.chunks or ():
            stores.update(decode_store_ids(blob))
        return sorted(stores)

    def read_shard(self, shard: int, start: int, end: int) -> ShardPolls:
        """Polls of ``shard`` with ``start <= at <= end``: sorted and deduplicated, per store."""
        wall_now = time.time()
        first_day = start - start % DAY
        keys = [bucket_key(shard, day) for day in range(first_day, end + 1, DAY)]
        keys.append(roster_key(shard))
        days: dict[int, list[bytes]] = {}
        roster: set[str] = set()
        for item in PollBucket.batch_get(keys):
            if item.bucket_key == roster_key(shard):
                for blob in item.chunks or ():
                    roster.update(decode_store_ids(blob))
            elif item.expires_at is None or item.expires_at.timestamp() >= wall_now:
                days[_day_of_key(item.bucket_key)] = sorted(item.chunks or ())
            # else: expired by TTL but not yet deleted (DynamoDB lags; moto never deletes)
        polls_by_store: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        for day_start in sorted(days):  # days are disjoint and in order: concatenation stays sorted
            for store, polls in _merge_chunks(day_start, days[day_start]):
                if day_start < start or day_start + DAY > end:
                    polls = [poll for poll in polls if start <= poll[0] <= end]
                polls_by_store[store].extend(polls)
        return ShardPolls(polls_by_store={s: p for s, p in polls_by_store.items() if p}, roster=roster)


def _merge_chunks(day_start: int, blobs: list[bytes]) -> Iterator[tuple[str, list[tuple[int, bool]]]]:
    """One item's chunks as (store, sorted unique polls); the usual single chunk needs no merge."""
    if len(blobs) == 1:
        yield from decode_poll_chunk(day_start, blobs[0])
        return
    merged: dict[str, set[tuple[int, bool]]] = defaultdict(set)
    for blob in blobs:
        for store, polls in decode_poll_chunk(day_start, blob):
            merged[store].update(polls)
    for store, polls in merged.items():
        yield store, sorted(polls)


def _day_of_key(key: str) -> int:
    stamp = key.split("#", 1)[1]
    return int(datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=timezone.utc).timestamp())
