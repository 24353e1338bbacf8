"""Small hand-made data sets whose report is known."""
from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

NOW = datetime(2023, 1, 25, 18, 0, 0, tzinfo=timezone.utc)  # a Wednesday

#: A 19-digit id above 2**53: a float would corrupt it.
BIG_ID = "8419537941919820732"
NIGHT_OWL = "night-owl"
SILENT = "silent-store"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def status_rows() -> list[list[str]]:
    """BIG_ID polls hourly for 8 days, down for the 3 polls before now;
    NIGHT_OWL polls every 2 hours, always active; SILENT polled once, 20 days ago."""
    rows = []
    for hours_back in range(0, 8 * 24):
        moment = NOW - timedelta(hours=hours_back, minutes=0 if hours_back else 0)
        rows.append([BIG_ID, "inactive" if hours_back < 3 else "active", stamp(moment)])
        if hours_back % 2 == 0:
            rows.append([NIGHT_OWL, "active", stamp(moment - timedelta(minutes=7))])
    rows.append([SILENT, "active", stamp(NOW - timedelta(days=20))])
    return rows


def write_dataset(directory: Path) -> dict[str, Path]:
    """The three files; BIG_ID is open 24x7 (no hours rows) in New York,
    NIGHT_OWL 22:00-02:00 every day in Chicago (no zone row: the default)."""
    return {
        "status": write_csv(directory / "store_status.csv", ["store_id", "status", "timestamp_utc"],
                            status_rows()),
        "hours": write_csv(directory / "menu_hours.csv",
                           ["store_id", "dayOfWeek", "start_time_local", "end_time_local"],
                           [[NIGHT_OWL, str(day), "22:00:00", "02:00:00"] for day in range(7)]),
        "timezones": write_csv(directory / "timezones.csv", ["store_id", "timezone_str"],
                               [[BIG_ID, "America/New_York"], [SILENT, "America/Denver"]]),
    }


def check_report_rows(rows: list[list[str]]) -> dict[str, list[str]]:
    """What every report of this data set must say, whichever way it was ingested."""
    assert rows[0] == ["store_id", "uptime_last_hour", "uptime_last_day", "uptime_last_week",
                       "downtime_last_hour", "downtime_last_day", "downtime_last_week"]
    by_store = {row[0]: row for row in rows[1:]}
    assert set(by_store) == {BIG_ID, NIGHT_OWL, SILENT}
    # SILENT polled 20 days ago only: no evidence, so the same learned share of every window
    # (docs/ALGORITHM.md section 4; the detail report marks it all inferred)
    silent = [float(v) for v in by_store[SILENT][1:]]
    shares = [silent[0] / 60, silent[1] / 24, silent[2] / 168]
    assert 0.5 < shares[0] < 1 and max(shares) - min(shares) < 0.001
    assert [silent[0] + silent[3], silent[1] + silent[4], silent[2] + silent[5]] == [60, 24, 168]
    # NIGHT_OWL is open 22:00-02:00 Chicago time: 4 h a day, 28 h a week, nothing in the last hour
    night = [float(v) for v in by_store[NIGHT_OWL][1:]]
    assert abs(night[1] + night[4] - 4.0) < 1e-9 and abs(night[2] + night[5] - 28.0) < 1e-9
    assert night[0] + night[3] == 0
    return by_store


def write_fleet(directory: Path, stores: int = 60) -> dict[str, Path]:
    """A fleet of ``stores`` with varied hours and zones, polled about hourly for 8 days."""
    rng = random.Random(5)
    status, hours, zones = [], [], []
    for index in range(stores):
        store = f"{rng.randrange(10**18, 10**19)}"
        for step in range(0, 8 * 24 * 60, 55 + rng.randrange(20)):
            moment = NOW - timedelta(minutes=step)
            status.append([store, "active" if rng.random() < 0.8 else "inactive", stamp(moment)])
        if index % 4:
            for day in range(7):
                if rng.random() < 0.85:
                    hours.append([store, str(day), f"{rng.randrange(6, 12):02d}:00:00",
                                  f"{rng.randrange(17, 24):02d}:30:00"])
        if index % 5:
            zones.append([store, rng.choice(["America/New_York", "America/Los_Angeles", "Asia/Beirut"])])
    rng.shuffle(status)
    return {
        "status": write_csv(directory / "store_status.csv", ["store_id", "status", "timestamp_utc"], status),
        "hours": write_csv(directory / "menu_hours.csv",
                           ["store_id", "day", "start_time_local", "end_time_local"], hours),
        "timezones": write_csv(directory / "timezones.csv", ["store_id", "timezone_str"], zones),
    }
