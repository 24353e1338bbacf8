"""Hours files as people write them: ``24:00`` ends a day.

Found by black-box testing: ``store,0,09:00:00,24:00:00`` was rejected as "out of range",
though ISO 8601 writes the midnight that ends a day that way and hand-made hours files do.
"""
from __future__ import annotations

import pytest

from chalicelib.core.parsing import SECONDS_PER_DAY, InvalidField, parse_local_time
from chalicelib.core.schedule import WeeklySchedule
from chalicelib.ingestion import ingest_lines
from chalicelib.settings import Settings
from chalicelib.storage.store_maps import business_hours_repository

settings = Settings.from_env()  # the stage environment of the root conftest


@pytest.mark.parametrize("text", ["24:00", "24:00:00", "24:00:00.000000"])
def test_24_00_ends_the_day(text: str) -> None:
    assert parse_local_time(text, end=True) == SECONDS_PER_DAY


@pytest.mark.parametrize("text", ["24:00:01", "24:01", "25:00:00"])
def test_past_24_00_is_still_out_of_range(text: str) -> None:
    with pytest.raises(InvalidField, match="out of range"):
        parse_local_time(text, end=True)


def test_24_00_is_no_start() -> None:
    with pytest.raises(InvalidField, match="out of range"):
        parse_local_time("24:00:00")


def test_until_24_00_is_the_same_schedule_as_until_23_59_59() -> None:
    nine = parse_local_time("09:00:00")
    midnight = WeeklySchedule.from_rows([(0, nine, parse_local_time("24:00:00", end=True))])
    late = WeeklySchedule.from_rows([(0, nine, parse_local_time("23:59:59"))])
    assert midnight == late


def test_an_hours_file_with_24_00_is_ingested(aws: object) -> None:
    lines = [b"store_id,dayOfWeek,start_time_local,end_time_local\n",
             b"h24,0,09:00:00,24:00:00\n", b"h24,1,00:00:00,24:00\n", b"bad,2,24:00:00,02:00:00\n"]
    result = ingest_lines(lines, settings, expected_kind="hours")
    assert (result.rows_accepted, result.rows_rejected) == (2, 1)
    stored = business_hours_repository(settings.poll_shards).read(range(settings.poll_shards))
    assert sorted(tuple(row) for row in stored["h24"]) == [(0, 9 * 3600, SECONDS_PER_DAY),
                                                            (1, 0, SECONDS_PER_DAY)]
