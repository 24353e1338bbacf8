"""Property tests over random schedules, zones, polls and "now" (hypothesis)."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.interpolation import RULES, Poll
from chalicelib.core.parsing import SECONDS_PER_DAY, normalise_interval
from chalicelib.core.report import WEEK, store_report
from chalicelib.core.schedule import WeeklySchedule, business_intervals, total_seconds

ZONES = ["America/Chicago", "America/New_York", "America/Los_Angeles", "America/Phoenix", "America/Edmonton",
         "Asia/Beirut", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/London", "UTC"]
START_2020, END_2030 = 1_577_836_800, 1_893_456_000

minute_of_day = st.integers(min_value=0, max_value=1439).map(lambda m: m * 60)
schedule_rows = st.lists(st.tuples(st.integers(0, 6), minute_of_day, minute_of_day), max_size=10)
poll_lists = st.lists(st.tuples(st.integers(min_value=-9 * SECONDS_PER_DAY, max_value=0), st.booleans()),
                      max_size=40)
common = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _schedule(rows):
    return WeeklySchedule.from_rows(rows) if rows else WeeklySchedule.always_open()


@common
@given(rows=schedule_rows, zone=st.sampled_from(ZONES), now=st.integers(START_2020, END_2030),
       offsets=poll_lists,
       rule=st.sampled_from(sorted(RULES)))
def test_uptime_plus_downtime_is_business_time(rows, zone, now, offsets, rule):
    polls = [Poll(now + offset, active) for offset, active in offsets]
    report = store_report("s", polls, _schedule(rows), zone, now, RULES[rule])
    for totals in (report.hour, report.day, report.week):
        assert 0 <= totals.uptime <= totals.business + 1e-6
        assert abs(totals.uptime + totals.downtime - totals.business) < 1e-6
    assert report.hour.business <= report.day.business <= report.week.business <= WEEK
    fields = [int(v.replace(".", "")) for v in report.csv_fields()[1:]]
    assert all(v >= 0 for v in fields)
    windows = (report.hour, report.day, report.week)
    for up, down, totals, unit in zip(fields[:3], fields[3:], windows, (60, 3600, 3600), strict=True):
        assert up + down == round(totals.business * 100 / unit)


@common
@given(rows=schedule_rows, zone=st.sampled_from(ZONES), now=st.integers(START_2020, END_2030),
       offsets=poll_lists,
       seed=st.integers(0, 2**32))
def test_input_order_changes_nothing(rows, zone, now, offsets, seed):
    polls = [Poll(now + offset, active) for offset, active in offsets]
    expected = store_report("s", polls, _schedule(rows), zone, now).csv_fields()
    rng = random.Random(seed)
    rng.shuffle(polls)
    rows = list(rows)
    rng.shuffle(rows)
    assert store_report("s", polls, _schedule(rows), zone, now).csv_fields() == expected


def _brute_force_seconds(rows, zone: str, start: int, end: int) -> int:
    """The oracle: convert every minute with pytz and look its local time up in the rows."""
    tz = pytz.timezone(zone)
    spans = [(day, *normalise_interval(s, e)) for day, s, e in rows]
    counted = 0
    for instant in range(start, end, 60):
        local = datetime.fromtimestamp(instant, timezone.utc).astimezone(tz)
        weekday = local.weekday()
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        for day, lo, hi in spans:
            if (day == weekday and lo <= seconds < hi) or \
                    (day == (weekday - 1) % 7 and lo <= seconds + SECONDS_PER_DAY < hi):
                counted += 60
                break
    return counted


@settings(max_examples=60, deadline=None)
@given(rows=schedule_rows.filter(bool), zone=st.sampled_from(ZONES),
       start_minute=st.integers(START_2020 // 60, END_2030 // 60))
def test_business_time_equals_a_minute_by_minute_oracle(rows, zone, start_minute):
    start = start_minute * 60
    end = start + 2 * SECONDS_PER_DAY
    assert total_seconds(business_intervals(WeeklySchedule.from_rows(rows), zone, start, end)) == \
        _brute_force_seconds(rows, zone, start, end)


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(["America/Chicago", "America/New_York", "Asia/Beirut", "Europe/London"]),
       year=st.integers(2020, 2030))
def test_dst_transition_days_in_every_year(zone, year):
    """Around each offset change, brute force and the exact mapping agree to the minute."""
    tz = pytz.timezone(zone)
    changes = [int(t.replace(tzinfo=timezone.utc).timestamp()) for t in tz._utc_transition_times
               if t.year == year]
    rows = [(d, 1 * 3600, 3 * 3600) for d in range(7)] + [(d, 9 * 3600, 17 * 3600) for d in range(7)]
    for change in changes:
        start = change - change % 60 - SECONDS_PER_DAY
        assert total_seconds(business_intervals(WeeklySchedule.from_rows(rows), zone, start,
                                                start + 2 * SECONDS_PER_DAY)) \
            == _brute_force_seconds(rows, zone, start, start + 2 * SECONDS_PER_DAY)
