"""Business hours in local wall-clock time, mapped to UTC: exact minutes, no mocks."""
from __future__ import annotations

import calendar
from datetime import datetime

import pytest
import pytz

from chalicelib.core.parsing import InvalidField, parse_local_time, parse_timezone
from chalicelib.core.schedule import WeeklySchedule, business_intervals, total_seconds

H = 3600


def at(local: str, zone: str) -> int:
    """Epoch seconds of a local wall-clock time, read as standard time when it is ambiguous or
    does not exist (Beirut skips 00:00-01:00: "00:00" is then the instant of the change)."""
    naive = datetime.strptime(local, "%Y-%m-%d %H:%M")
    return calendar.timegm(pytz.timezone(zone).localize(naive, is_dst=False).utctimetuple())


def hours(schedule: WeeklySchedule, zone: str, start: str, end: str) -> float:
    return total_seconds(business_intervals(schedule, zone, at(start, zone), at(end, zone))) / H


def every_day(start: str, end: str) -> WeeklySchedule:
    return WeeklySchedule.from_rows([(day, parse_local_time(start), parse_local_time(end))
                                     for day in range(7)])


NINE_TO_FIVE = every_day("09:00:00", "17:00:00")
ALWAYS = WeeklySchedule.always_open()
FULL_DAYS = every_day("00:00:00", "23:59:59")


@pytest.mark.parametrize("schedule", [ALWAYS, FULL_DAYS], ids=["no rows", "00:00-23:59:59 rows"])
def test_spring_forward_day_has_23_hours(schedule):
    zone = "America/Chicago"
    assert hours(schedule, zone, "2023-03-12 00:00", "2023-03-13 00:00") == 23
    assert hours(schedule, zone, "2023-03-06 00:00", "2023-03-13 00:00") == 7 * 24 - 1


@pytest.mark.parametrize("schedule", [ALWAYS, FULL_DAYS], ids=["no rows", "00:00-23:59:59 rows"])
def test_fall_back_day_has_25_hours(schedule):
    zone = "America/Chicago"
    assert hours(schedule, zone, "2023-11-05 00:00", "2023-11-06 00:00") == 25
    assert hours(schedule, zone, "2023-10-30 00:00", "2023-11-06 00:00") == 7 * 24 + 1


def test_nine_to_five_is_eight_hours_on_both_dst_days():
    zone = "America/Chicago"
    assert hours(NINE_TO_FIVE, zone, "2023-03-12 00:00", "2023-03-13 00:00") == 8
    assert hours(NINE_TO_FIVE, zone, "2023-11-05 00:00", "2023-11-06 00:00") == 8
    assert hours(NINE_TO_FIVE, zone, "2023-03-06 00:00", "2023-03-13 00:00") == 56
    assert hours(NINE_TO_FIVE, zone, "2023-10-30 00:00", "2023-11-06 00:00") == 56
    spans = business_intervals(NINE_TO_FIVE, zone, at("2023-03-12 00:00", zone), at("2023-03-13 00:00", zone))
    assert spans == [(at("2023-03-12 09:00", zone), at("2023-03-12 17:00", zone))]
    # 09:00 CDT is 14:00 UTC after the change, 15:00 UTC (CST) the day before
    assert datetime.utcfromtimestamp(spans[0][0]).hour == 14


def test_a_store_open_through_the_missing_hour_loses_it():
    zone = "America/New_York"
    night = WeeklySchedule.from_rows([(6, 1 * H, 4 * H)])  # Sundays 01:00-04:00
    assert hours(night, zone, "2023-03-12 00:00", "2023-03-13 00:00") == 2
    assert hours(night, zone, "2023-11-05 00:00", "2023-11-06 00:00") == 4  # 01:00-02:00 twice


def test_overnight_interval_runs_into_the_next_day_across_the_week_boundary():
    zone = "America/Chicago"
    sunday_night = WeeklySchedule.from_rows([(6, 22 * H, 2 * H)])  # Sunday 22:00 -> Monday 02:00
    spans = business_intervals(sunday_night, zone, at("2023-01-16 00:00", zone), at("2023-01-23 00:00", zone))
    # the week Mon 16th - Sun 22nd holds Monday 00:00-02:00 (from Sunday the 15th) and Sunday 22:00-24:00
    assert spans == [(at("2023-01-16 00:00", zone), at("2023-01-16 02:00", zone)),
                     (at("2023-01-22 22:00", zone), at("2023-01-23 00:00", zone))]


def test_split_day_chains_into_the_previous_night():
    zone = "America/Denver"
    rows = [(day, 0, 10 * 60) for day in range(7)] + \
        [(day, 11 * H, parse_local_time("23:59:00")) for day in range(7)]
    spans = business_intervals(WeeklySchedule.from_rows(rows), zone, at("2023-01-17 00:00", zone),
                               at("2023-01-18 00:00", zone))
    assert spans == [(at("2023-01-17 00:00", zone), at("2023-01-17 00:10", zone)),
                     (at("2023-01-17 11:00", zone), at("2023-01-18 00:00", zone))]
    wider = business_intervals(WeeklySchedule.from_rows(rows), zone, at("2023-01-17 00:00", zone),
                               at("2023-01-18 12:00", zone))
    assert (at("2023-01-17 11:00", zone), at("2023-01-18 00:10", zone)) in wider  # one span over midnight


def test_missing_weekday_is_closed():
    zone = "America/New_York"
    no_sunday = WeeklySchedule.from_rows([(day, 10 * H, 20 * H) for day in range(6)])
    assert hours(no_sunday, zone, "2023-01-22 00:00", "2023-01-23 00:00") == 0  # a Sunday
    assert hours(no_sunday, zone, "2023-01-16 00:00", "2023-01-23 00:00") == 60


def test_end_of_day_spellings_mean_midnight():
    zone = "America/Chicago"
    a = every_day("10:00:00", "23:59:59")
    b = every_day("10:00:00", "23:59:00")
    assert hours(a, zone, "2023-01-16 00:00", "2023-01-23 00:00") == 14 * 7
    assert business_intervals(a, zone, 0, 10**9) == business_intervals(b, zone, 0, 10**9)


def test_equal_start_and_end_mean_a_whole_day():
    zone = "UTC"
    schedule = WeeklySchedule.from_rows([(0, 6 * H, 6 * H)])  # Monday 06:00 -> Tuesday 06:00
    assert hours(schedule, zone, "2023-01-16 00:00", "2023-01-23 00:00") == 24


def test_asia_beirut_changes_on_its_own_dates():
    zone = "Asia/Beirut"
    assert hours(ALWAYS, zone, "2024-03-31 00:00", "2024-04-01 00:00") == 23  # last Sunday of March
    assert hours(ALWAYS, zone, "2024-03-10 00:00", "2024-03-11 00:00") == 24  # the US change day
    # Beirut falls back at midnight: 23:00-24:00 of Saturday the 26th happens twice
    assert hours(FULL_DAYS, zone, "2024-10-26 00:00", "2024-10-27 00:00") == 25
    assert hours(NINE_TO_FIVE, zone, "2024-03-31 00:00", "2024-04-01 00:00") == 8


def test_phoenix_has_no_daylight_saving():
    assert hours(FULL_DAYS, "America/Phoenix", "2023-03-12 00:00", "2023-03-13 00:00") == 24


def test_windows_are_absolute_utc_spans():
    assert business_intervals(ALWAYS, "Asia/Beirut", 100, 200) == [(100, 200)]
    assert business_intervals(NINE_TO_FIVE, "UTC", 200, 100) == []


def test_unknown_zone_is_rejected_input():
    with pytest.raises(InvalidField, match="not a known"):
        parse_timezone("Mars/Olympus_Mons")
    assert parse_timezone("") == "America/Chicago"


def test_a_zone_is_stored_as_the_iana_database_spells_it():
    """Found by black-box testing: ``america/chicago`` was accepted (pytz finds it) and echoed
    back in that case by the timeline."""
    assert parse_timezone(" america/chicago ") == "America/Chicago"
    assert parse_timezone("US/Central") == "US/Central"
