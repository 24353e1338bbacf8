"""A drop replaces what it names, store by store; and the `ingestions` command lists what went in."""
from __future__ import annotations

import time

from chalicelib.settings import Settings
from tests.integration.ingest_helpers import (
    STATUS_HEADER,
    HOURS_HEADER,
    ZONES_HEADER,
    csv_bytes,
    drop,
    rejection_report,
    all_hours,
    all_zones,
    dataset_bytes,
)

settings = Settings.from_env()  # the stage environment of the root conftest


# -- replacement semantics ----------------------------------------------------------------------

def test_an_hours_drop_replaces_the_schedule_of_each_store_it_names(aws):
    week = [["a", str(day), "09:00:00", "17:00:00"] for day in range(7)]
    weekdays = [["b", str(day), "08:00:00", "12:00:00"] for day in range(5)]
    drop("incoming/hours/1.csv", csv_bytes(HOURS_HEADER, week + weekdays))
    assert len(all_hours()["a"]) == 7 and len(all_hours()["b"]) == 5

    drop("incoming/hours/2.csv", csv_bytes(HOURS_HEADER, [["a", "0", "10:00:00", "12:00:00"],
                                                          ["a", "0", "14:00:00", "16:00:00"]]))
    assert all_hours()["a"] == [[0, 36000, 43200], [0, 50400, 57600]]  # the whole schedule of a, nothing kept
    assert len(all_hours()["b"]) == 5  # untouched

    # a store with one bad row keeps its previous schedule; the others in the drop are replaced
    key = "incoming/hours/3.csv"
    record = drop(key, csv_bytes(HOURS_HEADER, [["a", "1", "10:00:00", "12:00:00"],
                                                ["b", "6", "00:00:00", "23:59:59"],
                                                ["a", "2", "10:00:00", "1 pm"]]))
    assert (record.rows_accepted, record.rows_rejected) == (1, 2)
    assert all_hours() == {"a": [[0, 36000, 43200], [0, 50400, 57600]], "b": [[6, 0, 86399]]}
    by_line = {int(line): reason for line, reason, _ in rejection_report(key)[1:]}
    assert "store a has a rejected row on line 4" in by_line[2] and "'1 pm'" in by_line[4]


def test_a_store_with_a_bad_row_keeps_its_schedule_whatever_the_column_order(aws):
    drop("incoming/hours/1.csv", csv_bytes(HOURS_HEADER, [["a", "0", "09:00:00", "17:00:00"]]))
    reordered = ["dayOfWeek", "store_id", "start_time_local", "end_time_local"]
    key = "incoming/hours/2.csv"
    record = drop(key, csv_bytes(reordered, [["1", "a", "10:00:00", "12:00:00"],
                                             ["9", "a", "10:00:00", "12:00:00"],
                                             ["2", "b", "10:00:00", "12:00:00"],
                                             ["3", "c"]]))
    assert (record.rows_accepted, record.rows_rejected) == (1, 3)
    assert all_hours() == {"a": [[0, 32400, 61200]], "b": [[2, 36000, 43200]]}


def test_a_timezones_drop_replaces_the_zone_of_each_store_it_names(aws):
    drop("incoming/timezones/1.csv",
         csv_bytes(ZONES_HEADER, [["a", "America/New_York"], ["b", "America/Denver"]]))
    drop("incoming/timezones/2.csv", csv_bytes(ZONES_HEADER, [["a", "Asia/Beirut"]]))
    assert all_zones() == {"a": "Asia/Beirut", "b": "America/Denver"}
    key = "incoming/timezones/3.csv"
    record = drop(key, csv_bytes(ZONES_HEADER,
                                 [["a", "Europe/Nowhere"], ["b", "Europe/Paris"], ["b", "Europe/Rome"]]))
    assert (record.rows_accepted, record.rows_rejected) == (0, 3)
    assert all_zones() == {"a": "Asia/Beirut", "b": "America/Denver"}
    assert "conflicting time zones" in rejection_report(key)[2][1]


# -- ingestion records and the CLI listing -----------------------------------------------------------

def test_ingestions_command_lists_recent_ingestions(aws, monkeypatch, capsys):
    from storemon_app import cli

    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: {})
    assert cli.main(["ingestions"]) == 0
    assert "no ingestions yet" in capsys.readouterr().out

    drop("incoming/timezones/zones.csv", dataset_bytes()["timezones"])
    time.sleep(0.01)
    drop("incoming/status/with bad row.csv",
         csv_bytes(STATUS_HEADER,
                   [["s", "active", "2023-01-25 10:00:00 UTC"], ["s", "on", "2023-01-25 11:00:00 UTC"]]))
    time.sleep(0.01)
    drop("incoming/hours/nonsense.csv", b"hello,world\n")
    assert cli.main(["ingestions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["started", "(UTC)", "status", "kind", "accepted"]
    assert lines[1].split()[2:6] == ["Rejected", "-", "0", "0"] and lines[1].endswith(
        f"s3://{settings.bucket}/incoming/hours/nonsense.csv")
    assert "error: header 'hello,world'" in lines[2]
    assert lines[3].split()[2:6] == ["Complete", "status", "1", "1"]
    assert lines[3].endswith("incoming/status/with bad row.csv")
    assert lines[4].strip() == "rejected rows: incoming/status/with bad row.csv.rejections.csv"
    assert lines[5].split()[2:6] == ["Complete", "timezones", "2", "0"]
    assert len(lines) == 6

    assert cli.main(["ingestions", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # header, the newest, its error


