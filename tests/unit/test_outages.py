"""Outages (core.outages): pinned to the report's own downtime, and to business time."""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.interpolation import RULES, Poll, StepEstimate, fading_silence
from chalicelib.core.outages import (
    CELL_SECONDS,
    MIN_OUTAGE_SECONDS,
    OUTAGE_HEADER,
    down_spans,
    outage_fields,
    store_outages,
)
from chalicelib.core.report import DAY, HOUR, WEEK, WINDOWS, report_from_evidence, store_evidence
from chalicelib.core.schedule import WeeklySchedule, clip_spans, contains
from tests.unit.test_core_properties import END_2030, START_2020, ZONES, _schedule, poll_lists, schedule_rows

common = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZERO_ONE = ["carry_forward", "nearest_poll"]  # rules whose estimate is exactly 0 or 1 everywhere


@common
@given(rows=schedule_rows, zone=st.sampled_from(ZONES), now=st.integers(START_2020, END_2030),
       offsets=poll_lists,
       rule=st.sampled_from(ZERO_ONE))
def test_outages_total_is_the_windows_downtime_under_a_zero_one_estimate(rows, zone, now, offsets, rule):
    evidence = store_evidence([Poll(now + o, a) for o, a in offsets], _schedule(rows), zone, now)
    estimate = RULES[rule](evidence.polls)
    report = report_from_evidence("s", evidence, now, RULES[rule], estimate)
    stats = store_outages(estimate, evidence.business, now, min_seconds=1)
    for name, _ in WINDOWS:
        assert stats[name].total == getattr(report, name).downtime


@common
@given(rows=schedule_rows, zone=st.sampled_from(ZONES), now=st.integers(START_2020, END_2030),
       offsets=poll_lists,
       rule=st.sampled_from(sorted(RULES)))
def test_no_outage_lies_outside_business_time_or_its_window(rows, zone, now, offsets, rule):
    evidence = store_evidence([Poll(now + o, a) for o, a in offsets], _schedule(rows), zone, now)
    stats = store_outages(RULES[rule](evidence.polls), evidence.business, now)
    for name, length in WINDOWS:
        window = stats[name]
        business = clip_spans(evidence.business, now - length, now)
        for lo, hi in window.outages:
            assert now - length <= lo and hi <= now and hi - lo >= MIN_OUTAGE_SECONDS
            # the whole stretch inside one business span
            assert any(b_lo <= lo and hi <= b_hi for b_lo, b_hi in business)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(window.outages))  # disjoint, apart
        assert window.total <= sum(hi - lo for lo, hi in business)
        assert window.longest <= window.total and (window.count == 0) == (window.total == 0)


@common
@given(now=st.integers(START_2020, END_2030), offsets=poll_lists, rule=st.sampled_from(sorted(RULES)))
def test_exact_pieces_agree_with_the_estimate(now, offsets, rule):
    """Where an estimate says its pieces are exactly 0 or 1, its own integral agrees
    (to half a second: a short gap of odd length is split at a half second)."""
    evidence = store_evidence([Poll(now + o, a) for o, a in offsets], None, "UTC", now)
    estimate = RULES[rule](evidence.polls)
    pieces = getattr(estimate, "pieces", None)
    if pieces is None:
        return
    cursor = now - WEEK
    for lo, hi, value in pieces(now - WEEK, now):
        assert lo == cursor and lo < hi
        cursor = hi
        if value is not None:
            assert abs(estimate.uptime_seconds(lo, hi) - value * (hi - lo)) <= 0.5 + 1e-6
    assert cursor == now


NOW = 1_674_669_600  # 2023-01-25T18:00:00Z, a Wednesday


def test_hourly_polls_with_a_two_hour_gap_of_inactive_ones():
    polls = [Poll(NOW - h * HOUR, not 5 <= h <= 6) for h in range(0, 48)]  # inactive at 12:00 and 13:00
    evidence = store_evidence(polls, None, "UTC", NOW)
    stats = store_outages(fading_silence(evidence.polls), evidence.business, NOW)
    # nearest poll across hourly gaps: down from 11:30 to 13:30
    assert stats["day"].outages == [(NOW - 6 * HOUR - 1800, NOW - 4 * HOUR - 1800)]
    assert stats["week"].outages[-1] == stats["day"].outages[0]  # (and silence long before the first poll)
    assert stats["hour"].count == 0 and stats["hour"].mean_time_to_recovery is None
    assert stats["day"].mean_time_to_recovery == 2 * HOUR


def test_an_outage_running_at_now_counts_but_has_not_recovered():
    estimate = StepEstimate([NOW - 90 * 60], [1, 0])  # down for the last 90 minutes
    stats = store_outages(estimate, [(NOW - WEEK, NOW + 1)], NOW)
    assert stats["hour"].outages == [(NOW - HOUR, NOW)] and stats["day"].total == 90 * 60
    assert stats["day"].mean_time_to_recovery is None


def test_outages_stop_at_closing_time():
    # open 09:00-17:00 UTC every day; down from Tuesday 12:00 on
    schedule = WeeklySchedule.from_rows([(day, 9 * HOUR, 17 * HOUR) for day in range(7)])
    evidence = store_evidence([], schedule, "UTC", NOW)
    estimate = StepEstimate([NOW - DAY - 6 * HOUR], [1, 0])
    stats = store_outages(estimate, evidence.business, NOW)
    assert stats["week"].outages == [(NOW - DAY - 6 * HOUR, NOW - DAY - HOUR), (NOW - 9 * HOUR, NOW - HOUR)]
    assert stats["day"].outages == [(NOW - 9 * HOUR, NOW - HOUR)]
    assert stats["week"].mean_time_to_recovery == (5 * HOUR + 8 * HOUR) / 2
    assert all(contains(evidence.business, lo) for lo, _ in stats["week"].outages)


def test_fractional_silence_is_read_per_cell_below_one_half():
    """One active poll two days ago: the fading rule's credit falls below one half some hours
    after it; the outage starts at that cell and runs to now."""
    polls = [Poll(NOW - 2 * DAY, True)]
    estimate = fading_silence(polls)
    down = down_spans(estimate, [(NOW - WEEK, NOW)])
    assert len(down) == 2 and down[-1][1] == NOW  # before the poll (far back) and after it
    start = down[-1][0]
    assert (start - (NOW - 2 * DAY)) % CELL_SECONDS == 0
    assert estimate.uptime_seconds(start, start + CELL_SECONDS) < CELL_SECONDS / 2
    assert estimate.uptime_seconds(start - CELL_SECONDS, start) >= CELL_SECONDS / 2


def test_detail_fields_shape():
    evidence = store_evidence([Poll(NOW - 30 * 60, False)], None, "UTC", NOW)
    fields = outage_fields(fading_silence(evidence.polls), evidence.business, NOW)
    assert len(fields) == len(OUTAGE_HEADER) == 12
    assert OUTAGE_HEADER[:4] == ("outages_last_hour", "longest_outage_minutes_last_hour",
                                 "outage_minutes_last_hour", "mttr_minutes_last_hour")
    assert fields[:4] == ["1", "60.00", "60.00", ""]  # down all hour (the poll and its hold), still down


def _hundredths(text: str) -> int:
    whole, fraction = text.split(".")
    return int(whole) * 100 + int(fraction)


def test_real_old_data_outages_timeline_and_page_agree(real_data):
    """Every store of the real old data set: the timeline's segments, the detail report's
    outage columns and the page's ranking say the same (core only; the HTTP paths are the
    same functions, tests/integration/test_timeline_page.py)."""
    import csv
    from collections import defaultdict

    from chalicelib.core import parsing
    from chalicelib.core.interpolation import fleet_up_share
    from chalicelib.core.outages import up_down_segments
    from chalicelib.core.report import CSV_HEADER, DETAIL_EXTRA_HEADER, default_rule, detail_row
    from chalicelib.report_page import PageStore, ranked

    polls, hours, zones = defaultdict(list), defaultdict(list), {}
    with open(real_data / "old" / "store_status.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            polls[row["store_id"]].append(Poll(parsing.parse_poll_timestamp(row["timestamp_utc"]),
                                               row["status"] == "active"))
    with open(real_data / "old" / "timezones.csv", newline="") as handle:
        zones = {row["store_id"]: row["timezone_str"] for row in csv.DictReader(handle)}
    with open(real_data / "old" / "menu_hours.csv", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for store, day, start, end in reader:
            hours[store].append((parsing.parse_weekday(day), parsing.parse_local_time(start),
                                 parsing.parse_local_time(end)))
    now = max(at for store_polls in polls.values() for at, _ in store_polls)
    evidence = {store: store_evidence(polls.get(store, []), WeeklySchedule.from_rows(hours.get(store, ())),
                                      zones.get(store, parsing.DEFAULT_TIMEZONE), now)
                for store in sorted(set(polls) | set(hours) | set(zones))}
    rule = default_rule(now, fleet_up_share(e.polls for e in evidence.values()))
    header = CSV_HEADER + DETAIL_EXTRA_HEADER
    page_stores = []
    for store, store_evidence_ in evidence.items():
        row = detail_row(store, store_evidence_, now, rule, strip=True)
        fields = dict(zip(header, row[:-1], strict=True))  # the last field is the week strip
        business = clip_spans(store_evidence_.business, now - WEEK, now)
        segments = up_down_segments(business, down_spans(rule(store_evidence_.polls), business))
        outages = [hi - lo for lo, hi, down in segments if down and hi - lo >= MIN_OUTAGE_SECONDS]
        business_hundredths = round(sum(hi - lo for lo, hi, _ in segments) / 36)
        assert business_hundredths == _hundredths(fields["business_hours_last_week"])
        assert len(outages) == int(fields["outages_last_week"]), store
        assert round(sum(outages) / 36) == _hundredths(fields["outage_hours_last_week"]), store
        assert (row[-1].count("-") + row[-1].count("~") > 0) == bool(outages), store
        page_stores.append(PageStore(store, fields, row[-1]))
    assert len(page_stores) > 13_000
    order = [s.store_id for s in ranked(page_stores)]
    by_downtime = sorted(((s.store_id, float(s.row["downtime_last_week"])) for s in page_stores),
                         key=lambda item: (-item[1], item[0]))
    assert order == [store for store, _ in by_downtime]
