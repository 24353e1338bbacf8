"""A report part's first pass (issue 8): each store's evidence, built at column speed from the
shard's blocks, is what ``core.report.evidence_in_business`` makes of the same polls, to the bit."""
from __future__ import annotations

import gc
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.evidence import business_evidence
from chalicelib.core.interpolation import PollColumns, fleet_up_share
from chalicelib.core.report import READ_RANGE, evidence_in_business, store_business
from chalicelib.core.schedule import WeeklySchedule
from chalicelib.core.units import DAY
from chalicelib.reporting import PART_GC_THRESHOLD, ReportService, fewer_collections
from chalicelib.storage.blocks import decode_block, encode_block
from chalicelib.storage.polls import ShardPolls, StorePolls, poll_value
from tests.unit.test_core_properties import END_2030, START_2020, poll_lists, schedule_rows

common = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


@common
@given(rows=schedule_rows, zone=st.sampled_from(ZONES), now=st.integers(START_2020, END_2030),
       offsets=poll_lists)
def test_business_evidence_is_the_cores_evidence(rows, zone, now, offsets):
    by_instant = {now + offset: active for offset, active in offsets if offset >= -READ_RANGE}  # read range
    times = sorted(by_instant)
    polls = PollColumns(times, [by_instant[at] for at in times])
    business = store_business(WeeklySchedule.from_rows(rows), zone, now)
    fast, slow = business_evidence(polls, business), evidence_in_business(polls, business, now).polls
    assert isinstance(slow, PollColumns)
    assert fast.times == slow.times and fast.actives == slow.actives
    assert (fast is polls) == (slow is polls)  # all evidence: the very columns, as the core returns them


def _blocks(content: dict[str, list[tuple[int, bool]]], split: bool, rng: random.Random
            ) -> list[tuple[int, object]]:
    """``content`` as storage writes it: per UTC day one block (or, ``split``, two sharing stores)."""
    by_day: dict[int, dict[str, list[int]]] = {}
    for store, polls in content.items():
        for at, active in polls:
            day = at - at % DAY
            by_day.setdefault(day, {}).setdefault(store, []).append(poll_value(at, day, active))
    out = []
    for day, stores in by_day.items():
        entries = sorted((store, sorted(set(values))) for store, values in stores.items())
        groups = [entries]
        if split:
            groups = [[(s, v[: len(v) // 2]) for s, v in entries], [(s, v[len(v) // 2:]) for s, v in entries]]
        for group in groups:
            group = [(s, v) for s, v in group if v]
            if group:
                out.append((day, decode_block(encode_block(group))))
    rng.shuffle(out)
    return out


@common
@given(fleet=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), poll_lists, max_size=4),
       silent=st.booleans(), rows=schedule_rows, zone=st.sampled_from(ZONES),
       now=st.integers(START_2020, END_2030), split=st.booleans(), seed=st.integers(0, 100))
def test_the_first_pass_gives_each_stores_evidence(fleet, silent, rows, zone, now, split, seed):
    """Blocks in any order, a day in one or two blocks, a store seen active and inactive at one
    second, a store of the roster without polls: each store's evidence is the core's, as columns."""
    content = {store: [(now + offset, active) for offset, active in offsets]
               for store, offsets in fleet.items()}
    stored = StorePolls(now - READ_RANGE, now)
    for day, block in _blocks(content, split, random.Random(seed)):
        stored.add_block(day, block)  # type: ignore[arg-type]
    roster = set(content) | ({"z"} if silent else set())
    schedules = {store: [list(row) for row in rows] for store in roster}
    zones = {store: zone for store in roster}
    got = dict(ReportService._evidence_in_order(ShardPolls(stored, roster), now, schedules, zones))
    assert list(got) == sorted(roster)
    business = store_business(WeeklySchedule.from_rows(rows), zone, now)
    for store, evidence in got.items():
        expected = evidence_in_business(sorted(set(content.get(store, []))), business, now)
        assert isinstance(evidence.polls, PollColumns)
        assert list(evidence.polls) == [(at, bool(up)) for at, up in expected.polls]
        assert evidence.last_poll == expected.last_poll and evidence.business == business
    assert fleet_up_share(e.polls for e in got.values()) == \
        fleet_up_share(evidence_in_business(sorted(set(content.get(s, []))), business, now).polls
                       for s in sorted(roster))


def test_a_part_collects_less_often_and_restores_the_thresholds():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (PART_GC_THRESHOLD, *before[1:])
        raise RuntimeError("a part that fails")
    assert gc.get_threshold() == before
