"""The report's and ingestion's fast paths (issue 8) give the very bits of the plain code they replaced.

Each fast path is checked against the straightforward version it stands for, with ``==``
on floats: the report's bytes must not move by a last digit.
"""
from __future__ import annotations

import bisect
import csv
import random
import time
from datetime import datetime, timezone
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.interpolation import (
    MarkovBridgeEstimate,
    NearestThenMarkovEstimate,
    Poll,
    PollColumns,
    fading_silence,
    fleet_up_share,
    paced_silence,
    poll_weight,
    poll_weights,
)
from chalicelib.core.outages import (
    HOUR,
    WEEK,
    _seconds_per_hour,
    hundredths,
    open_per_hour,
    up_strip,
    week_strip,
)
from chalicelib.core.parsing import (
    InvalidField,
    _canonical_timestamp,
    csv_fields,
    parse_poll_timestamp,
)
from chalicelib.core.report import (
    READ_RANGE,
    _near_spans,
    _overlap_seconds,
    default_rule,
    detail_row,
    store_evidence,
    utc_stamp,
)
from chalicelib.core.schedule import WeeklySchedule, clip_spans, merge_spans, total_seconds
from chalicelib.core.units import DAY
from chalicelib.storage.blocks import decode_block, encode_block, merge_blocks, union_block
from chalicelib.storage.polls import StorePolls, poll_value
from tests.unit.test_core_properties import END_2030, START_2020, poll_lists, schedule_rows

common = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _estimate(now: int, offsets: list[tuple[int, bool]], share: float, paced: bool = True) -> Any:
    """The rule in use (``paced_silence``) or the one before it (``fading_silence``)."""
    evidence = store_evidence([Poll(now + o, a) for o, a in offsets], None, "UTC", now)
    if paced:
        return paced_silence(evidence.polls, share, now - READ_RANGE, now)
    return fading_silence(evidence.polls, prior_up_share=share)


def _spans_to_try(estimate: NearestThenMarkovEstimate, now: int, seed: int) -> list[tuple[int, int]]:
    """Long spans, business-day-like spans, and minute cells at gaps' and edges' ends."""
    rng = random.Random(seed)
    spans = [(now - WEEK, now), (now - 86400, now), (now - 3600, now)]
    for _ in range(30):
        lo = rng.randrange(now - WEEK - 86400, now + 3600)
        spans.append((lo, lo + rng.choice([1, 60, 3599, 36000, 86400, 3 * 86400])))
    for at in estimate._times:  # cells touching a poll, and right beside one
        spans += [(at - 60, at), (at, at + 60), (at - 30, at + 30), (at + 5400, at + 5460)]
    return spans


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, share=st.floats(0.05, 0.95),
       seed=st.integers(0, 1000), paced=st.booleans())
def test_uptime_seconds_is_the_generic_loop_to_the_bit(now, offsets, share, seed, paced):
    estimate = _estimate(now, offsets, share, paced)
    if not isinstance(estimate, NearestThenMarkovEstimate):
        return
    for lo, hi in _spans_to_try(estimate, now, seed):
        assert estimate.uptime_seconds(lo, hi) == MarkovBridgeEstimate.uptime_seconds(estimate, lo, hi)


def _pieces_one_by_one(estimate: NearestThenMarkovEstimate, start: int, end: int) -> list[Any]:
    """The pieces as they were built before ``_exact_runs``: per gap, unmerged."""
    times, states, hold = estimate._times, estimate._states, int(estimate._hold)
    out: list[Any] = []

    def add(lo: int, hi: int, value: Optional[int]) -> None:
        lo, hi = max(lo, start), min(hi, end)
        if lo < hi:
            out.append((lo, hi, value))

    first, last = times[0], times[-1]
    if start < first:
        add(start, first - hold, None)
        add(first - hold, first, int(states[0]))
    if end > first and start < last:
        gap = max(0, bisect.bisect_right(times, start) - 1)
        while gap < len(times) - 1 and times[gap] < end:
            g0, g1 = times[gap], times[gap + 1]
            if g1 - g0 > 2 * estimate._hold:
                add(g0, g1, None)
            else:
                middle = g0 + (g1 - g0 + 1) // 2
                add(g0, middle, int(states[gap]))
                add(middle, g1, int(states[gap + 1]))
            gap += 1
    if end > last:
        add(last, last + hold, int(states[-1]))
        add(last + hold, end, None)
    merged: list[Any] = []
    for piece in out:  # neighbouring exact pieces of one value, joined
        if merged and piece[2] is not None and merged[-1][2] == piece[2] and merged[-1][1] == piece[0]:
            merged[-1] = (merged[-1][0], piece[1], piece[2])
        else:
            merged.append(piece)
    return merged


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, seed=st.integers(0, 1000),
       paced=st.booleans())
def test_pieces_are_the_per_gap_pieces_merged(now, offsets, seed, paced):
    estimate = _estimate(now, offsets, 0.8, paced)
    if not isinstance(estimate, NearestThenMarkovEstimate):
        return
    for lo, hi in _spans_to_try(estimate, now, seed):
        assert estimate.pieces(lo, hi) == _pieces_one_by_one(estimate, lo, hi)


def _seconds_per_hour_by_hour(spans: list[tuple[int, int]], start: int) -> list[int]:
    totals = [0] * 168
    for lo, hi in spans:
        lo, hi = max(lo, start), min(hi, start + WEEK)
        while lo < hi:
            index = (lo - start) // HOUR
            edge = min(hi, start + (index + 1) * HOUR)
            totals[index] += edge - lo
            lo = edge
    return totals


def _disjoint_spans(rng: random.Random, lo: int, hi: int, count: int) -> list[tuple[int, int]]:
    points = sorted(rng.sample(range(lo, hi), 2 * count))
    return list(zip(points[::2], points[1::2], strict=True))


def test_seconds_per_hour_fills_whole_hours_as_hour_by_hour_did():
    rng = random.Random(8)
    for _ in range(3000):
        start = rng.randrange(START_2020, END_2030)
        spans = _disjoint_spans(rng, start - 90_000, start + WEEK + 90_000, rng.randrange(0, 12))
        assert _seconds_per_hour(spans, start) == _seconds_per_hour_by_hour(spans, start)


def _strip_from_every_hour(business: list[tuple[int, int]], outages: list[tuple[int, int]], now: int) -> str:
    """``week_strip`` as drawn before it redrew only the touched hours: every hour compared."""
    start = now - WEEK
    opened_hours, down_hours = _seconds_per_hour(business, start), _seconds_per_hour(outages, start)
    return "".join(["." if not opened else "+" if not down else "-" if down >= opened else "~"
                    for opened, down in zip(opened_hours, down_hours, strict=True)])


def test_week_strip_redraws_the_touched_hours_as_every_hour_drawn():
    rng = random.Random(10)
    for _ in range(3000):
        now = rng.randrange(START_2020, END_2030)
        business = _disjoint_spans(rng, now - WEEK - 90_000, now + 90_000, rng.randrange(0, 15))
        # outages inside business time (as the report's are), or anywhere (the contract)
        inside = [(lo, rng.randrange(lo + 1, hi + 1)) for lo, hi in business if rng.random() < 0.4]
        anywhere = _disjoint_spans(rng, now - WEEK - 90_000, now + 90_000, rng.randrange(0, 8))
        for outages in (inside, anywhere, []):
            expected = _strip_from_every_hour(business, outages, now)
            hours = open_per_hour(business, now)
            assert week_strip(business, outages, now) == expected
            assert week_strip(business, outages, now, hours, up_strip(hours)) == expected


def test_hundredths_and_utc_stamps_are_the_formats_they_replaced():
    for value in [*range(0, 20_000), 99_999, 1_234_567]:
        assert hundredths(value) == f"{value // 100}.{value % 100:02d}"
        assert hundredths(value) == f"{value // 100}.{value % 100:02d}"  # the stored one, again
    rng = random.Random(11)
    for at in [0, START_2020, END_2030, *(rng.randrange(0, 2 * END_2030) for _ in range(20_000))]:
        assert utc_stamp(at) == datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, share=st.floats(0.05, 0.95),
       hold=st.sampled_from([0, 1, 5399, 5400, 5401, 20_000]), columns=st.booleans())
def test_near_spans_cut_at_the_estimates_long_gaps_as_at_every_gap(now, offsets, share, hold, columns):
    """``_near_spans`` given the estimate reads its cuts off the long gaps; the same spans."""
    times = sorted({now + offset for offset, _ in offsets})
    actives = {now + offset: active for offset, active in offsets}
    polls: Any = (PollColumns(times, [actives[at] for at in times]) if columns
                  else [Poll(at, actives[at]) for at in times])
    estimate = paced_silence(polls, share, now - READ_RANGE, now)
    assert _near_spans(polls, hold, estimate) == _near_spans(polls, hold)


def test_near_spans_and_their_overlap_are_merge_and_clip():
    rng = random.Random(9)
    for _ in range(3000):
        hold = rng.choice([0, 1, 100, 5400])
        instants = sorted(set(rng.randrange(0, 200_000) for _ in range(rng.randrange(0, 30))))
        polls = [Poll(at, True) for at in instants]
        near = merge_spans([(at - hold, at + hold + 1) for at in instants])
        assert _near_spans(polls, hold) == near
        spans = _disjoint_spans(rng, -1000, 210_000, rng.randrange(0, 8))
        clipped = sum(total_seconds(clip_spans(near, lo, hi)) for lo, hi in spans)
        assert _overlap_seconds(spans, near) == clipped


def _mutations(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(0, 3) if chars else 0):
        chars[rng.randrange(len(chars))] = rng.choice('0123456789 -:.TUCx"٣²\r\n\x00,')
    return "".join(chars)


def test_the_canonical_timestamp_fast_path_reads_as_the_general_one():
    """Whatever ``_canonical_timestamp`` accepts, the general reader (reached here through a
    leading space) reads to the same second; what it declines falls through to it."""
    rng = random.Random(10)
    for _ in range(20_000):
        instant = rng.randrange(0, 4_102_444_800)
        text = _mutations(rng, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(instant))
                          + f".{rng.randrange(10**6):06d} UTC")
        fast = _canonical_timestamp(text)
        try:
            general: Optional[int] = parse_poll_timestamp(" " + text)
        except InvalidField:
            general = None
        if fast is not None:
            assert fast == general == parse_poll_timestamp(text), text
        try:
            assert parse_poll_timestamp(text) == general
        except InvalidField:
            assert general is None


def test_csv_fields_are_the_csv_modules():
    rng = random.Random(11)
    for _ in range(20_000):
        lines = ["a,b,c", "1234,active,2023-01-01 00:00:00 UTC", "", "x", ",,", 'a,"b,c",d']
        text = _mutations(rng, rng.choice(lines))
        try:
            expected: Any = next(csv.reader([text]), [])
        except csv.Error:
            expected = csv.Error
        try:
            assert csv_fields(text) == expected, repr(text)
        except csv.Error:
            assert expected is csv.Error


def _stored(store: str, polls: list[tuple[int, bool]], start: int, end: int, split: bool) -> StorePolls:
    """``polls`` written as storage writes them (per UTC day, in one block or, ``split``, two)
    and read back."""
    by_day: dict[int, set[int]] = {}
    for at, active in polls:
        day_start = at - at % DAY
        by_day.setdefault(day_start, set()).add(poll_value(at, day_start, active))
    stored = StorePolls(start, end)
    for day_start, values in by_day.items():
        ordered = sorted(values)
        for part in (ordered[: len(ordered) // 3], ordered[len(ordered) // 3:]) if split else (ordered,):
            if part:
                stored.add_block(day_start, decode_block(encode_block([(store, part)])))
    return stored


@common
@given(rows=schedule_rows, zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
       now=st.integers(START_2020, END_2030), offsets=poll_lists, share=st.floats(0.05, 0.95),
       split=st.booleans())
def test_stored_columns_give_the_rows_of_plain_tuples(rows, zone, now, offsets, share, split):
    """``StorePolls`` hands out ``PollColumns``; every fast path that reads them directly
    (evidence, weights, gaps, near spans, the fleet share) gives what tuples give."""
    polls = sorted({(now + offset, active) for offset, active in offsets})
    start = now - READ_RANGE
    columns = _stored("s", polls, start, now, split)["s"] if polls else PollColumns([], [])
    plain = [poll for poll in polls if start <= poll[0] <= now]
    assert list(columns) == plain and columns == plain
    schedule = WeeklySchedule.from_rows(rows)
    fast, slow = store_evidence(columns, schedule, zone, now), store_evidence(plain, schedule, zone, now)
    assert fast.business == slow.business and fast.last_poll == slow.last_poll
    assert list(fast.polls) == list(slow.polls)
    assert fleet_up_share([fast.polls]) == fleet_up_share([slow.polls])
    rule = default_rule(now, share)
    assert detail_row("s", fast, now, rule, strip=True) == detail_row("s", slow, now, rule, strip=True)


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists)
def test_poll_weights_are_each_polls_weight(now, offsets):
    times = sorted({now + offset for offset, _ in offsets})
    read_start = now - READ_RANGE
    assert poll_weights(times, read_start) == [poll_weight(at, read_start) for at in times]


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, share=st.floats(0.05, 0.95),
       seed=st.integers(0, 1000), paced=st.booleans())
def test_term_uptime_is_uptime_seconds_in_fractional_pieces(now, offsets, share, seed, paced):
    """Outages read fractional pieces per cell through ``term_uptime``: the same floats."""
    estimate = _estimate(now, offsets, share, paced)
    if not isinstance(estimate, NearestThenMarkovEstimate):
        return
    rng = random.Random(seed)
    for lo, hi in _spans_to_try(estimate, now, seed):
        for start, end, value in estimate.pieces(lo, hi):
            term = estimate.term_uptime(start, end)
            assert term is not None or value is not None
            if term is None:
                continue
            cells = [(start, min(end, start + 60)), (max(start, end - 60), end), (start, end)]
            for _ in range(5):
                a, b = sorted(rng.randrange(start, end + 1) for _ in range(2))
                cells.append((a, b + 1) if b < end else (a - 1, b) if a > start else (a, b))
            for a, b in cells:
                if start <= a < b <= end:
                    assert term(a, b) == estimate.uptime_seconds(a, b)


def test_clamp_and_spelled_out_min_max_pick_what_the_builtins_pick():
    from chalicelib.core.interpolation import _clamp
    values = [-1.5, -0.0, 0.0, 0.25, 1.0, 59.0, 60.0, 60.5, float("inf"), float("-inf"), 3, 0, -2]
    for value in values:
        for length in (0.0, 1.0, 60.0, 3600.0):
            expected = min(length, max(0.0, value))
            got = _clamp(value, length)
            assert (got, type(got), str(got)) == (expected, type(expected), str(expected))
    spans = [(0, 10), (20, 30), (40, 50)]
    for start in range(-5, 55, 5):
        for end in range(start, 60, 5):
            assert clip_spans(spans, start, end) == [(max(lo, start), min(hi, end)) for lo, hi in spans
                                                     if hi > start and lo < end]


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, seed=st.integers(0, 1000))
def test_short_gap_bridge_is_its_min_max_expression(now, offsets, seed):
    estimate = _estimate(now, offsets, 0.8, paced=seed % 2 == 0)
    if not isinstance(estimate, NearestThenMarkovEstimate):
        return
    rng = random.Random(seed)
    times, states = estimate._times, estimate._states
    for gap in range(len(times) - 1):
        length = times[gap + 1] - times[gap]
        if length > 2 * estimate._hold:  # the long gap's hoisted terms: the generic bridge's bits
            for _ in range(6):
                t1, t2 = sorted(rng.choice([rng.randrange(0, length + 1), rng.uniform(0, length), 0, length])
                                for _ in range(2))
                assert estimate._bridge(gap, t1, t2) == MarkovBridgeEstimate._bridge(estimate, gap, t1, t2)
            continue
        middle = length / 2.0
        points = [0, length, middle, length // 2, -(-length // 2), rng.randrange(0, length + 1)]
        for t1 in points:
            for t2 in points:
                if t1 <= t2:
                    expected = (states[gap] * max(0.0, min(t2, middle) - t1)
                                + states[gap + 1] * max(0.0, t2 - max(t1, middle)))
                    got = estimate._bridge(gap, t1, t2)
                    assert (got, type(got)) == (expected, type(expected))


class _Unsettled:
    """An estimate's outage reading without ``settled``: every fractional piece sampled."""

    def __init__(self, estimate: NearestThenMarkovEstimate) -> None:
        self.uptime_seconds, self.term_uptime = estimate.uptime_seconds, estimate.term_uptime


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, share=st.floats(0.05, 0.95),
       seed=st.integers(0, 1000), paced=st.booleans())
def test_settled_pieces_read_as_their_sampled_cells(now, offsets, share, seed, paced):
    """``settled`` spares sampling a long gap's cells only where every cell is on one side:
    ``_fractional`` gives what sampling gave, and each cell is on the side it says."""
    from chalicelib.core.outages import CELL_SECONDS, DOWN_BELOW, _fractional
    estimate = _estimate(now, offsets, share, paced)
    if not isinstance(estimate, NearestThenMarkovEstimate):
        return
    for lo, hi in _spans_to_try(estimate, now, seed):
        for start, end, value in estimate.pieces(lo, hi):
            if value is not None:
                continue
            assert _fractional(estimate, start, end) == _fractional(_Unsettled(estimate), start, end)
            state = estimate.settled(start, end, DOWN_BELOW)
            if state is None or end - start > 3 * 86400:
                continue
            for cell in range(start, end, CELL_SECONDS):
                top = min(end, cell + CELL_SECONDS)
                assert (estimate.uptime_seconds(cell, top) < DOWN_BELOW * (top - cell)) == state


def test_rows_without_outages_take_the_shared_strip_and_fields():
    """A week without outages: the strip and outage fields the shared fast paths give are the
    ones drawn and formatted from empty outages."""
    from chalicelib.core.outages import OutageStats, outage_fields, week_strip
    from chalicelib.core.report import business_windows
    now = 1_700_000_000
    business = store_evidence([], WeeklySchedule.from_rows([(0, 9 * 3600, 17 * 3600), (3, 0, 86399)]),
                              "America/New_York", now).business
    windows = business_windows(business, now)
    assert windows.up_strip == week_strip(business, [], now) == week_strip(business, [(now, now)], now)
    empty = {name: OutageStats([], now) for name in ("hour", "day", "week")}
    slow = []
    for name, unit in (("hour", 60), ("day", 3600), ("week", 3600)):
        stats = empty[name]
        slow += [str(stats.count), f"{round(stats.longest * 100 / unit) // 100}.00",
                 f"{round(stats.total * 100 / unit) // 100}.00", ""]
    assert outage_fields(None, business, now, empty) == slow  # type: ignore[arg-type]


_day_values = st.lists(st.integers(0, 2 * DAY - 1), max_size=12)


@common
@given(content=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d\u00e9", "e"]), _day_values,
                                        max_size=5), min_size=1, max_size=6),
       hourly=st.booleans(), now=st.integers(START_2020, END_2030), cut=st.integers(0, 2 * DAY))
def test_a_days_blocks_merged_once_give_what_the_per_store_merge_gives(content, hourly, now, cut):
    """``union_block`` (a day's segments merged once, column-wise) is ``merge_blocks`` to the value,
    and a ``StorePolls`` fed the day by ``add_day`` hands out the very columns of one fed the blocks
    one by one (the per-store merge). ``hourly``: each block holds its own hour, as hourly drops do."""
    blocks = []
    for index, by_store in enumerate(content):
        if hourly:  # block ``index`` holds hour ``index`` of the day only: disjoint, any order
            by_store = {store: [index * 7200 + value % 7200 for value in values]
                        for store, values in by_store.items()}
        blocks.append(decode_block(encode_block(sorted((store, sorted(set(values)))
                                                       for store, values in by_store.items()))))
    merged = union_block(blocks)
    assert [(store, list(values)) for store, values in merged.entries()] == \
        [(store, list(values)) for store, values in merge_blocks(blocks)]
    day_start = now - now % DAY
    start, end = day_start + cut // 2 - 3600, day_start + cut
    once, per_store = StorePolls(start, end), StorePolls(start, end)
    once.add_day(day_start, blocks)
    for block in blocks:
        per_store.add_block(day_start, block)
    assert sorted(once) == sorted(per_store)
    for store in once:
        fast, slow = once[store], per_store[store]
        assert fast.times == slow.times and fast.actives == slow.actives
