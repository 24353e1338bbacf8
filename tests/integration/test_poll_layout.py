"""The poll layout holds whatever it is fed: bounded items, hourly == bulk, readers that survive.

The block codec is pure and tested alone (tests/unit/test_poll_blocks.py); the repository runs on
in-process moto with a tiny item budget, so the split and compaction paths that a real
fleet reaches only at scale run here on a few dozen stores.
"""
from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from datetime import timedelta

import pytest

from chalicelib.ingestion import ingest_lines
from chalicelib.settings import Settings
from chalicelib.storage.blocks import Block, decode_block, merge_blocks, pack_blocks
from chalicelib.storage.models import Tables
from chalicelib.storage.polls import DAY, PROMOTE_MIN_FILL, PollRepository, StorePoll, day_key, shard_of
from storemon_app.bench import dynamodb_item_size
from tests import fixtures
from tests.integration.test_fan_out import _report_bytes
from tests.integration.ingest_helpers import fresh_account, scan

settings = Settings.from_env()  # the stage environment of the root conftest


def _tables() -> Tables:
    """The models bound to this run's tables (new ones per test: each test has its own emulator)."""
    return Tables.from_settings(settings)

#: Small enough that a 30-store shard-day splits and compacts into several blocks.
TINY_BUDGET = 700


# -- hourly drops against one bulk load ---------------------------------------------------------------

def _fleet_polls(stores: int = 24, days: int = 3, seed: int = 11) -> list[list[str]]:
    """UUID-like ids polled about hourly (some every 20 minutes), with gaps."""
    rng = random.Random(seed)
    rows = []
    for index in range(stores):
        store = f"{rng.getrandbits(128):032x}"
        step = 20 if index % 7 == 0 else 60
        for minutes in range(0, days * 24 * 60, step):
            if rng.random() < 0.1:
                continue
            moment = fixtures.NOW - timedelta(minutes=minutes, seconds=rng.randrange(600))
            rows.append([store, "active" if rng.random() < 0.8 else "inactive", fixtures.stamp(moment)])
    rows.append([rows[0][0], "active", fixtures.stamp(fixtures.NOW)])
    return rows


def _lines(rows: list[list[str]]) -> list[bytes]:
    return [b"store_id,status,timestamp_utc\n"] + [",".join(row).encode() + b"\n" for row in rows]


def _hourly_drops(rows: list[list[str]], seed: int = 3) -> list[list[list[str]]]:
    """Rows grouped by the hour they were polled in, oldest first; 5 % of the polls arrive a few
    drops late, and one drop is delivered twice, as a poller and S3 may do."""
    rng = random.Random(seed)
    by_hour: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        by_hour[row[2][:13]].append(row)
    hours = sorted(by_hour)
    drops = [list(by_hour[hour]) for hour in hours]
    for index, drop in enumerate(drops):
        for row in list(drop):
            if rng.random() < 0.05 and index + 3 < len(drops):
                drop.remove(row)
                drops[index + rng.randrange(1, 4)].append(row)
    drops.insert(len(drops) // 2, list(drops[len(drops) // 2]))
    return drops


def test_a_week_fed_hourly_reports_the_same_bytes_as_one_bulk_load(aws):
    tiny = dataclasses.replace(settings, poll_item_budget=TINY_BUDGET)
    rows = _fleet_polls()
    drops = _hourly_drops(rows)
    assert len(drops) > 70
    for drop in drops:
        result = ingest_lines(_lines(drop), tiny)
        assert result.rows_rejected == 0
    hourly = _report_bytes(4)
    items = scan(settings.polls_table)
    largest_block = max(dynamodb_item_size(item) for item in items if "blob" in item)
    assert largest_block <= TINY_BUDGET + 120  # the blob fits the budget; the key and TTL are the rest
    assert any("base" in item for item in items), "nothing was compacted"
    # finished days were compacted: a handful of blocks each, not one per drop
    finished_day = day_key(shard_of(rows[0][0], settings.poll_shards),
                           int(fixtures.NOW.timestamp()) // DAY * DAY - DAY)
    directory = _tables().poll_directories.get(finished_day)
    assert len(directory.segments or ()) <= 2 and directory.base

    fresh_account()
    bulk = ingest_lines(_lines(random.Random(1).sample(rows, len(rows))), tiny)
    assert bulk.rows_accepted == len(rows)
    assert _report_bytes(4) == hourly
    assert hourly.count(b"\n") == 25


def test_items_stay_within_the_budget_whatever_a_store_sends(aws):
    """One store polled every 10 seconds for a day: its values alone overflow a block."""
    tiny = dataclasses.replace(settings, poll_item_budget=1024)
    start = int(fixtures.NOW.timestamp()) - DAY
    repository = PollRepository(tiny.poll_shards, tiny.retention_days, tiny.poll_item_budget)
    polls = [StorePoll("chatty", at, at % 3 != 0) for at in range(start, start + DAY, 10)]
    repository.add_polls(polls)
    repository.finish(start + 2 * DAY)
    assert repository.stats.largest_item <= 1024 + 120
    assert all(len(item.blob) <= 1024 for item in _tables().poll_blocks.scan() if item.blob is not None)
    read = repository.read_shard(shard_of("chatty", tiny.poll_shards), start - DAY, start + DAY)
    assert read.polls_by_store["chatty"] == [(p.at, p.active) for p in polls]


def test_a_corrupt_block_is_set_aside_and_the_rest_still_read(aws, caplog):
    repository = PollRepository(settings.poll_shards, settings.retention_days)
    at = int(fixtures.NOW.timestamp())
    repository.add_polls([StorePoll("fine", at, True)])
    repository.flush()
    repository.add_polls([StorePoll("fine", at - 60, False)])
    repository.flush()
    shard = shard_of("fine", settings.poll_shards)
    directory = _tables().poll_directories.get(day_key(shard, at // DAY * DAY))
    broken = sorted(directory.segments)[0]
    _tables().poll_blocks(f"{directory.bucket_key}#{broken}", blob=b"SMB1garbage").save()
    read = repository.read_shard(shard, at - DAY, at)
    assert read.skipped_blocks == [f"{directory.bucket_key}#{broken}"]
    assert len(read.polls_by_store["fine"]) == 1
    assert "set aside" in caplog.text


def test_a_writer_that_flushes_every_batch_reads_back_the_same(aws):
    """A drop larger than the writer holds is written in several segments, then compacted."""
    at = int(fixtures.NOW.timestamp()) - 2 * DAY
    polls = [StorePoll(f"store-{n % 7}", at + 37 * n, n % 5 != 0) for n in range(3000)]
    small = PollRepository(settings.poll_shards, settings.retention_days, 600, pending_limit=1)
    for start in range(0, len(polls), 400):
        small.add_polls(polls[start:start + 400])
    assert small.stats.blocks > 8
    assert small.finish(at + 4 * DAY) > 0
    expected: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for poll in polls:
        expected[poll.store_id].append((poll.at, poll.active))
    for store, wanted in expected.items():
        read = small.read_shard(shard_of(store, settings.poll_shards), at - DAY, at + 3 * DAY)
        assert read.polls_by_store[store] == wanted


def _bulk_polls(seed: int = 5) -> tuple[int, list[StorePoll]]:
    """60 stores, each's polls together (a bulk file's order), over about two days."""
    rng = random.Random(seed)
    day = int(fixtures.NOW.timestamp()) // DAY * DAY - 4 * DAY
    stores = [f"{rng.getrandbits(128):032x}" for _ in range(60)]
    polls = [StorePoll(store, day + 600 * n + rng.randrange(300), rng.random() < 0.8)
             for store in stores for n in range(300)]
    return day, polls


def _blocks_of_day(directory_key: str) -> list[Block]:
    directory = _tables().poll_directories.get(directory_key, consistent_read=True)
    assert not directory.segments
    return [decode_block(_tables().poll_blocks.get(f"{directory_key}#{content}").blob)
            for content in sorted(directory.base)]


def _ingest_in_flushes(repository: PollRepository, polls: list[StorePoll], latest: int) -> None:
    for start in range(0, len(polls), 700):  # 300 polls a store: batches end mid-store
        repository.add_polls(polls[start:start + 700])
    repository.finish(latest)


def test_a_bulk_drops_own_blocks_become_base_unread_and_each_store_stays_in_one_block_a_day(aws):
    """A closed day this writer wrote in several flushes is not read back and rewritten: its
    well-filled blocks become base as they are. A store written there in two flushes (a batch
    boundary) is merged, so each store is in one block of the day, as after a merge."""
    day, polls = _bulk_polls()
    repository = PollRepository(1, settings.retention_days, 2048, pending_limit=8000)
    _ingest_in_flushes(repository, polls, day + 5 * DAY)
    assert repository.stats.promoted_blocks > 10
    assert repository.stats.promoted_blocks * 2 > repository.stats.compacted_bytes // 2048
    for offset in (0, DAY):
        blocks = _blocks_of_day(day_key(0, day + offset))
        flat = [store for block in blocks for store in block.stores]
        assert len(flat) == len(set(flat)) == 60  # each store in one block of the day
        # and reads stay bounded: within 1 / PROMOTE_MIN_FILL of the blocks a merge makes
        assert len(blocks) <= len(pack_blocks(merge_blocks(blocks), 2048)) / PROMOTE_MIN_FILL + 1
    read = repository.read_shard(0, day, day + 3 * DAY)
    expected: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for poll in sorted(polls):
        expected[poll.store_id].append((poll.at, poll.active))
    assert {store: list(read.polls_by_store[store]) for store in read.polls_by_store} == expected


def test_a_day_holding_another_writers_blocks_is_merged_whole(aws):
    """Only a writer that wrote every block of a day knows which stores they share: a day with a
    block from elsewhere (an earlier drop, a concurrent one) is read and merged as before."""
    day, polls = _bulk_polls()
    other = PollRepository(1, settings.retention_days, 2048)
    other.add_polls([polls[0]._replace(active=not polls[0].active)])
    other.flush()
    repository = PollRepository(1, settings.retention_days, 2048, pending_limit=8000)
    _ingest_in_flushes(repository, polls, day + 5 * DAY)
    blocks = _blocks_of_day(day_key(0, day))
    assert repository.stats.promoted_blocks > 0  # the next day was this writer's alone
    assert not set(_tables().poll_directories.get(day_key(0, day)).base) & repository._written[(0, day)]
    flat = [store for block in blocks for store in block.stores]
    assert len(flat) == len(set(flat)) == 60


def test_a_background_flush_that_fails_fails_the_drop(aws, monkeypatch):
    """A flush forced by the pending limit is written while the drop reads on; its error is
    raised by the next flush or ``finish``, so the drop fails (and SQS retries it)."""
    at = int(fixtures.NOW.timestamp()) - 2 * DAY
    small = PollRepository(settings.poll_shards, settings.retention_days, 600, pending_limit=1)

    def unavailable(self, blocks, parallel=True):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(PollRepository, "_put_blocks", unavailable)
    small.add_polls([StorePoll("store", at, True)])  # sent in the background: no error yet
    with pytest.raises(RuntimeError, match="table unavailable"):
        small.finish(at)


# -- schedules and zones ----------------------------------------------------------------------------

def test_a_shard_map_too_big_for_one_item_is_paged_and_replaced_store_by_store(aws):
    from chalicelib.storage.attributes import encode_map
    from chalicelib.storage.store_maps import PAGE_KEY_BASE, business_hours_repository

    repository = business_hours_repository(1, item_budget=2048)
    rng = random.Random(4)
    schedules = {f"{rng.getrandbits(128):032x}": [[day, rng.randrange(30000), 80000] for day in range(7)]
                 for _ in range(400)}
    repository.replace(schedules)
    items = list(_tables().business_hours.scan())
    pages = [item for item in items if item.shard >= PAGE_KEY_BASE]
    assert len(pages) > 3 and all(len(encode_map(item.payload)) <= 2048 for item in pages)
    assert repository.read([0]) == schedules
    # replacing some stores rewrites the pages and removes the ones no longer listed
    changed = dict(list(schedules.items())[:50])
    changed = {store: [[0, 0, 3600]] for store in changed}
    repository.replace(changed)
    assert repository.read([0]) == {**schedules, **changed}
    head = _tables().business_hours.get(0)
    pages = {item.shard for item in _tables().business_hours.scan() if item.shard >= PAGE_KEY_BASE}
    assert pages == set(head.pages)
    # and a map that fits again goes back into its head
    small = business_hours_repository(1, item_budget=10_000_000)
    small.replace({"one-more": [[1, 0, 60]]})
    assert _tables().business_hours.get(0).pages is None
    assert small.read([0]) == {**schedules, **changed, "one-more": [[1, 0, 60]]}
