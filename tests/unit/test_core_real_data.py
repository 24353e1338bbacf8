"""Every real schedule and zone parses and gives a sane week (skipped without ../shared)."""
from __future__ import annotations

import csv
from collections import defaultdict

import pytest

from chalicelib.core import parsing
from chalicelib.core.schedule import WeeklySchedule, business_intervals, total_seconds
from tests.unit.test_core_schedule import at

WEEK_START = at("2023-01-16 00:00", "UTC")


@pytest.mark.parametrize("dataset", ["old", "new"])
def test_every_real_schedule_and_zone_parses(real_data, dataset):
    zones = {}
    with open(real_data / dataset / "timezones.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            zones[row["store_id"]] = parsing.parse_timezone(row["timezone_str"])
    assert len(zones) > 4000
    rows = defaultdict(list)
    with open(real_data / dataset / "menu_hours.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert header[1] in ("day", "dayOfWeek")
        for store, day, start, end in reader:
            rows[parsing.parse_store_id(store)].append(
                (parsing.parse_weekday(day), parsing.parse_local_time(start), parsing.parse_local_time(end)))
    assert len(rows) > 4000
    for store, store_rows in rows.items():
        zone = zones.get(store, parsing.DEFAULT_TIMEZONE)
        week = total_seconds(business_intervals(WeeklySchedule.from_rows(store_rows), zone,
                                                WEEK_START, WEEK_START + 7 * 86_400))
        assert 0 <= week <= 168 * 3600, store


def test_real_old_ids_stay_exact_strings(real_data):
    with open(real_data / "old" / "store_status.csv", newline="") as handle:
        ids = [row["store_id"] for row in csv.DictReader(handle)]
    big = [i for i in ids if int(i) > 2**53]
    assert big and all(str(int(float(i))) != i for i in big[:50])  # a float would have changed them
    assert all(parsing.parse_store_id(i) == i for i in big)
