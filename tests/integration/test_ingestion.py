"""Ingestion that holds up: S3 drops through the queue handler, streaming, idempotence,
"now" and retention (bad input: test_ingestion_bad_input.py; replacement semantics and the
ingestion records: test_ingestion_replacement.py; helpers: ingest_helpers.py).

Everything runs on in-process moto (the ``aws`` fixture). In-process moto delivers the
bucket's S3 -> SQS notifications, so most drops here go the real way: put the object,
take the notifications off the ingest queue and hand them to ``app.ingest_csv_drop``
as Lambda-shaped SQS events.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest

import app as app_module
from chalicelib.aws import s3_client
from chalicelib.core.parsing import parse_poll_timestamp
from chalicelib.core.strays import STRAY_MIN_ROWS
from chalicelib.drops import S3Drop, drops_from_notification, ingest_drop, ingest_source
from chalicelib.ingestion import FUTURE_TOLERANCE, RejectionLog, ingest_lines
from chalicelib.settings import Settings
from chalicelib.storage import polls as polls_module
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.jobs import DatasetStateRepository
from chalicelib.storage.models import Tables
from chalicelib.storage.polls import DAY, PollRepository, day_key, shard_of
from storemon_app.local_ingest import ingest_file
from tests import fixtures
from tests.integration.ingest_helpers import (
    STATUS_HEADER,
    HOURS_HEADER,
    ZONES_HEADER,
    DATA_TABLES,
    csv_bytes,
    put,
    sqs_event,
    s3_notification,
    s3_test_event,
    queued_ingest_messages,
    drop,
    rejection_report,
    scan,
    data_tables_are_empty,
    all_hours,
    all_zones,
    polls_of,
    fresh_account,
    report_csv,
    dataset_bytes,
    many_status_rows,
    future_stamp,
)

settings = Settings.from_env()  # the stage environment of the root conftest


# -- S3 -> SQS -> handler ------------------------------------------------------------

def test_drop_under_incoming_goes_through_s3_notification_and_handler(aws):
    key = "incoming/status/store status 2023-01-25+hourly.csv"
    etag = put(key, dataset_bytes()["status"])
    bodies = queued_ingest_messages()
    # What S3 really sent: first the test event of the notification configuration (no Records) ...
    first = json.loads(bodies[0])
    assert first.get("Event") == "s3:TestEvent" and "Records" not in first
    # ... then the object, its key URL-encoded (spaces as '+', '+' as %2B)
    announced = [json.loads(body)["Records"][0]["s3"]["object"]["key"] for body in bodies[1:]]
    assert len(announced) == 1 and unquote_plus(announced[0]) == key
    assert " " not in announced[0] and "store+status+2023-01-25%2Bhourly.csv" in announced[0]

    for body in bodies:  # the test event included: it must be skipped, not fail
        app_module.ingest_csv_drop(sqs_event(body), None)

    record = IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}")
    assert record.status == "Complete", record.error
    assert record.source == f"s3://{settings.bucket}/{key}"
    assert record.kind == "status"
    assert (record.rows_accepted, record.rows_rejected) == (len(fixtures.status_rows()), 0)
    assert record.started_at <= record.finished_at and record.error_report_key is None
    assert len(polls_of(fixtures.BIG_ID)) == 8 * 24
    assert DatasetStateRepository().latest_poll_at() == int(fixtures.NOW.timestamp())
    assert len(IngestionRepository().recent()) == 1


def test_notification_filtering():
    key = "incoming/hours/menu hours+v2 (final).csv"
    assert drops_from_notification(s3_test_event()) == []
    assert drops_from_notification(s3_notification(key, "e1", "ObjectRemoved:Delete")) == []
    assert drops_from_notification(s3_notification(key, "e1", "ObjectTagging:Put")) == []
    assert drops_from_notification(s3_notification(key + ".rejections.csv", "e2")) == []
    assert drops_from_notification(s3_notification("reports/x/report.csv", "e3")) == []
    assert drops_from_notification(s3_notification("incoming/status/2024/", "e4")) == []  # a console "folder"
    [created] = drops_from_notification(s3_notification(key, '"e4"', "ObjectCreated:CompleteMultipartUpload"))
    assert created == S3Drop(settings.bucket, key, "e4")
    assert created.expected_kind == "hours"
    assert S3Drop("b", "incoming/timezones/z.csv", "e").expected_kind == "timezones"
    assert S3Drop("b", "incoming/status/s.csv", "e").expected_kind == "status"
    assert S3Drop("b", "incoming/any/thing.csv", "e").expected_kind is None


def test_handler_skips_test_events_removals_and_own_reports(aws):
    key = "incoming/status/s.csv"
    etag = put(key, dataset_bytes()["status"])
    queued_ingest_messages()
    app_module.ingest_csv_drop(sqs_event(s3_test_event(), s3_notification(key, etag, "ObjectRemoved:Delete"),
                                         s3_notification(key + ".rejections.csv", etag)), None)
    assert IngestionRepository().recent() == []
    assert data_tables_are_empty()


def test_kind_from_prefix_or_from_header(aws):
    data = dataset_bytes()
    assert drop("incoming/timezones/z.csv", data["timezones"]).kind == "timezones"
    assert drop("incoming/hours/h.csv", data["hours"]).kind == "hours"
    # elsewhere under incoming/ the header decides
    record = drop("incoming/2023-01-25/anything.csv", data["status"])
    assert (record.status, record.kind) == ("Complete", "status")
    assert drop("incoming/misc/old-hours.csv",
                csv_bytes(["store_id", "day", "start_time_local", "end_time_local"],
                          [["old-style", "3", "10:00:00", "11:00:00"]])).kind == "hours"
    assert all_zones() == {fixtures.BIG_ID: "America/New_York", fixtures.SILENT: "America/Denver"}
    assert all_hours()["old-style"] == [[3, 36000, 39600]]
    assert len(all_hours()[fixtures.NIGHT_OWL]) == 7
    assert len(polls_of(fixtures.NIGHT_OWL)) == 96


def test_second_event_for_the_same_object_is_a_noop(aws):
    key = "incoming/status/twice.csv"
    etag = put(key, dataset_bytes()["status"])
    queued_ingest_messages()
    event = sqs_event(s3_notification(key, etag))
    app_module.ingest_csv_drop(event, None)
    first = IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}")
    assert first.status == "Complete"
    # The object is gone: a second real ingestion would fail to read it. The record makes it a no-op.
    s3_client().delete_object(Bucket=settings.bucket, Key=key)
    app_module.ingest_csv_drop(event, None)  # S3 sent two events / SQS delivered twice
    second = IngestionRepository().get(first.ingestion_id)
    assert (second.started_at, second.finished_at, second.status) == (first.started_at, first.finished_at,
                                                                      "Complete")
    assert len(IngestionRepository().recent()) == 1


def test_failed_ingestion_is_retried_by_the_next_delivery(aws, monkeypatch):
    key = "incoming/status/flaky.csv"
    etag = put(key, dataset_bytes()["status"])
    queued_ingest_messages()
    event = sqs_event(s3_notification(key, etag))
    original = PollRepository.add_store_days  # where every batch of polls is written

    def unavailable(self, by_store_day):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(PollRepository, "add_store_days", unavailable)
    with pytest.raises(RuntimeError):  # raise, so SQS redelivers
        app_module.ingest_csv_drop(event, None)
    record = IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}")
    assert record.status == "Failed" and "table unavailable" in record.error
    monkeypatch.setattr(PollRepository, "add_store_days", original)
    app_module.ingest_csv_drop(event, None)
    record = IngestionRepository().get(record.ingestion_id)
    assert record.status == "Complete" and record.error is None
    assert record.rows_accepted == len(fixtures.status_rows())


# -- streaming ---------------------------------------------------------------------------

def test_polls_are_read_as_a_stream_and_written_in_batches(aws, monkeypatch):
    assert settings.ingest_batch_rows == 1000
    rows = many_status_rows(2500)
    consumed = 0

    def lines():
        nonlocal consumed
        for line in csv_bytes(STATUS_HEADER, rows).splitlines(keepends=True):
            consumed += 1
            yield line

    batches: list[tuple[int, int]] = []
    original = PollRepository.add_store_days  # where both ways of reading rows write a batch

    def spy(self, by_store_day):
        batches.append((sum(map(len, by_store_day.values())), consumed))  # the rows are all distinct
        return original(self, by_store_day)

    monkeypatch.setattr(PollRepository, "add_store_days", spy)
    record, result = ingest_source(lines(), "test://stream", "test://stream#1", settings)
    assert record.status == "Complete" and result.rows_accepted == 2500
    assert [size for size, _ in batches] == [1000, 1000, 500]
    # the first batch went out when little more than its rows had been read: nothing holds the
    # file but the stray guard's few latest polls (chalicelib/core/strays.py)
    assert batches[0][1] <= 1002 + STRAY_MIN_ROWS and batches[1][1] <= 2002 + STRAY_MIN_ROWS

    # the S3 path streams too (same batches out of the object's body)
    batches.clear()
    record = drop("incoming/status/big.csv", csv_bytes(STATUS_HEADER, many_status_rows(2500, 11)))
    assert record.rows_accepted == 2500
    assert [size for size, _ in batches] == [1000, 1000, 500]


# -- idempotence ----------------------------------------------------------------------------

def _snapshot() -> dict[str, list]:
    """Every item of the data tables, minus bookkeeping that says when, not what."""
    snapshot = {}
    for name in DATA_TABLES:
        items = []
        for item in scan(getattr(settings, name)):
            item = {k: v for k, v in item.items() if k not in ("version", "updated_at", "generation")}
            if "chunks" in item:
                item["chunks"] = {"BS": sorted(item["chunks"]["BS"])}
            items.append(json.dumps(item, sort_keys=True, default=str))
        snapshot[name] = sorted(items)
    return snapshot


def test_the_same_file_ingested_twice_changes_nothing(aws, monkeypatch, tmp_path):
    frozen = time.time()
    monkeypatch.setattr(polls_module, "time", types.SimpleNamespace(time=lambda: frozen))
    data = dataset_bytes()
    for kind in ("timezones", "hours", "status"):
        assert drop(f"incoming/{kind}/a.csv", data[kind]).status == "Complete"
    once = _snapshot()
    assert all(once.values())
    # the same content again: under other keys (new objects), and through the CLI path
    for kind in ("timezones", "hours", "status"):
        assert drop(f"incoming/{kind}/copy of a.csv", data[kind]).status == "Complete"
        path = tmp_path / f"{kind}.csv"
        path.write_bytes(data[kind])
        assert ingest_file(path, expected_kind=kind, quiet=True).status == "Complete"
    assert len(IngestionRepository().recent(100)) == 9
    assert _snapshot() == once


def test_the_status_fast_path_stores_the_same_bytes_as_the_general_path(aws, monkeypatch):
    """Storage of one drop read both ways (chalicelib/ingestion.py ``FAST_STATUS``): the same
    items, byte for byte, and the same record; tests/unit/test_fast_status_path.py pins the rest."""
    from chalicelib import ingestion

    frozen = time.time()
    monkeypatch.setattr(polls_module, "time", types.SimpleNamespace(time=lambda: frozen))
    rows = fixtures.status_rows() + many_status_rows(700)
    rows[5][2] = rows[5][2].replace(" UTC", "UTC")  # the general path's forms, in between
    rows[9][0] = " " + rows[9][0]
    rows[11][1] = "nope"
    rows += rows[40:90] + [[row[0], "inactive" if row[1] == "active" else "active", row[2]]
                           for row in rows[60:70]]
    data = csv_bytes(STATUS_HEADER, rows)
    outcomes = []
    for fast in (False, True):
        fresh_account()
        monkeypatch.setattr(ingestion, "FAST_STATUS", fast)
        record = drop("incoming/status/mixed.csv", data)
        outcomes.append((_snapshot(), record.rows_accepted, record.rows_rejected, record.counts,
                         record.write_units, rejection_report("incoming/status/mixed.csv")))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][2] == 1 and outcomes[1][3]["duplicates"] and outcomes[1][3]["conflicts"]


def test_a_poll_in_two_drops_counts_once(aws):
    rows = fixtures.status_rows()
    drop("incoming/status/first.csv", csv_bytes(STATUS_HEADER, rows[:200]))
    drop("incoming/status/second.csv", csv_bytes(STATUS_HEADER, rows[100:]))
    expected: dict[str, set] = {}
    for store, status, stamp in rows:
        expected.setdefault(store, set()).add((parse_poll_timestamp(stamp), status == "active"))
    for store, polls in expected.items():
        assert polls_of(store) == sorted(polls)


def test_same_drop_twice_or_500_duplicated_rows_gives_a_byte_identical_report(aws):
    data = dataset_bytes()

    def ingest(files: dict[str, bytes], prefix: str, batch_rows: int = settings.ingest_batch_rows) -> None:
        chosen = dataclasses.replace(settings, ingest_batch_rows=batch_rows)
        for kind in ("timezones", "hours", "status"):
            key = f"incoming/{kind}/{prefix}.csv"
            etag = put(key, files[kind])
            queued_ingest_messages()
            record = ingest_drop(S3Drop(settings.bucket, key, etag), chosen)
            assert record.status == "Complete" and record.rows_rejected == 0

    # once
    ingest(data, "once")
    reference = report_csv()
    rows = list(csv.reader(io.StringIO(reference.decode("utf-8"))))
    assert len(rows) == 4 and {row[0] for row in rows[1:]} == {fixtures.BIG_ID, fixtures.NIGHT_OWL,
                                                               fixtures.SILENT}

    # the same drop twice: the second event is a no-op, the same bytes under a new key are re-ingested
    fresh_account()
    ingest(data, "twice")
    for kind in ("timezones", "hours", "status"):
        key = f"incoming/{kind}/twice.csv"
        head = s3_client().head_object(Bucket=settings.bucket, Key=key)
        ingest_drop(S3Drop(settings.bucket, key, head["ETag"].strip('"')), settings)
    ingest(data, "twice again")
    assert report_csv() == reference

    # 500 duplicated rows, spread over write batches (100 rows each here), in every kind
    fresh_account()
    rng = random.Random(3)
    status = fixtures.status_rows()
    duplicated_status = status + [rng.choice(status) for _ in range(500)]
    rng.shuffle(duplicated_status)
    hours = [[fixtures.NIGHT_OWL, str(day), "22:00:00", "02:00:00"] for day in range(7)]
    zones = [[fixtures.BIG_ID, "America/New_York"], [fixtures.SILENT, "America/Denver"]]
    ingest({"status": csv_bytes(STATUS_HEADER, duplicated_status),
            "hours": csv_bytes(HOURS_HEADER, hours + [rng.choice(hours) for _ in range(500)]),
            "timezones": csv_bytes(ZONES_HEADER, zones + [rng.choice(zones) for _ in range(500)])},
           "duplicated", batch_rows=100)
    assert report_csv() == reference

    # the polls split over two overlapping drops
    fresh_account()
    ingest({**data, "status": csv_bytes(STATUS_HEADER, status[:180])}, "part-1")
    ingest({**data, "status": csv_bytes(STATUS_HEADER, status[90:])}, "part-2")
    assert report_csv() == reference


# -- bad rows (bad files: test_ingestion_bad_files.py) --------------------------------------

def test_bad_status_rows_are_rejected_reported_next_to_the_file_and_the_rest_goes_in(aws):
    lines = [
        "\ufeffstore_id,status,timestamp_utc",           # 1 (BOM)
        "good-1,active,2023-01-25 17:00:00.123456 UTC",  # 2
        "good-1,active,2023-01-25 17:00:00 GMT",         # 3 malformed timestamp
        "",                                              # 4 blank
        "good-1,sleeping,2023-01-25 16:00:00 UTC",       # 5 unknown status
        "good-1,active",                                 # 6 missing field
        "good-1,active,2023-01-25 15:00:00 UTC,extra",   # 7 extra field
        "good-2,inactive,2023-02-30 10:00:00 UTC",       # 8 no such date
        f"good-2,active,{future_stamp(3600)}",          # 9 an hour after the ingestion clock
        ",active,2023-01-25 15:00:00 UTC",               # 10 no store
        "   ",                                           # 11 blank
        "good-2,INACTIVE,2023-01-25 16:30:00 UTC",       # 12, no final newline
    ]
    data = "\r\n".join(lines).encode("utf-8")
    key = "incoming/status/bad rows+1.csv"
    delivered: list[str] = []
    record = drop(key, data, delivered)
    assert record.status == "Complete" and record.kind == "status"
    assert (record.rows_accepted, record.rows_rejected) == (2, 7)
    assert record.error_report_key == key + ".rejections.csv"

    report = rejection_report(key)
    assert report[0] == ["line", "reason", "row"]
    by_line = {int(line): (reason, row) for line, reason, row in report[1:]}
    assert sorted(by_line) == [3, 5, 6, 7, 8, 9, 10]
    assert "does not end in ' UTC'" in by_line[3][0]
    assert by_line[3][1] == "good-1,active,2023-01-25 17:00:00 GMT"
    assert "'sleeping'" in by_line[5][0]
    assert "expected 3 fields, found 2" in by_line[6][0]
    assert "expected 3 fields, found 4" in by_line[7][0]
    assert "not a real date" in by_line[8][0]
    assert "future" in by_line[9][0]
    assert "store_id is empty" in by_line[10][0]

    assert polls_of("good-1") == [(parse_poll_timestamp("2023-01-25 17:00:00 UTC"), True)]
    assert polls_of("good-2") == [(parse_poll_timestamp("2023-01-25 16:30:00 UTC"), False)]
    assert DatasetStateRepository().latest_poll_at() == parse_poll_timestamp("2023-01-25 17:00:00 UTC")
    # the report's own notification reached the handler and was not ingested
    assert quote_plus(key + ".rejections.csv") in "".join(delivered)
    assert [r.source for r in IngestionRepository().recent()] == [f"s3://{settings.bucket}/{key}"]


def test_future_tolerance_is_five_minutes():
    clock = 1_700_000_000
    rows = [["s", "active", fixtures.stamp(datetime.fromtimestamp(clock + offset, timezone.utc))]
            for offset in (-60, FUTURE_TOLERANCE - 1, FUTURE_TOLERANCE, FUTURE_TOLERANCE + 1, 3600)]
    rejected = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PollRepository, "add_store_days", lambda self, by_store_day: 0)
        patch.setattr("chalicelib.ingestion.DatasetStateRepository",
                      lambda *model: types.SimpleNamespace(advance_latest_poll=lambda at: None,
                                                    latest_poll_at=lambda: None))
        result = ingest_lines(csv_bytes(STATUS_HEADER, rows).splitlines(), settings,
                              rejection_log=RejectionLog(rejected.append), wall_clock=lambda: clock)
    assert result.rows_accepted == 3 and [r.line for r in rejected] == [5, 6]
    assert result.latest_poll_at == clock + FUTURE_TOLERANCE


def test_bad_hours_and_zone_rows(aws):
    hours = csv_bytes(HOURS_HEADER, [
        ["h1", "0", "09:00:00", "17:00:00"],   # 2
        ["h1", "7", "09:00:00", "17:00:00"],   # 3 bad day
        ["h2", "1", "25:00:00", "17:00:00"],   # 4 bad time
        ["h3", "2", "09:00", "17:30"],         # 5 fine (HH:MM)
        ["h4", "1", "9am", "5pm"],             # 6 bad time
        ["h5", "Monday", "09:00:00", "17:00:00"],  # 7 bad day
        ["h3", "3", "09:00:00"],               # 8 missing field: h3 rejected whole
    ], newline="\r\n", final_newline=False)
    key = "incoming/hours/bad.csv"
    record = drop(key, hours)
    assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 0, 7)
    by_line = {int(line): reason for line, reason, _ in rejection_report(key)[1:]}
    assert "day '7'" in by_line[3] and "time '25:00:00'" in by_line[4] and "time '9am'" in by_line[6]
    assert "day 'Monday'" in by_line[7] and "expected 4 fields, found 3" in by_line[8]
    assert "store h1" in by_line[2] and "line 3" in by_line[2]
    assert "store h3" in by_line[5] and "line 8" in by_line[5]
    assert all_hours() == {}

    zones = csv_bytes(ZONES_HEADER, [["z1", "America/New_York"], ["z2", "Mars/Olympus_Mons"],
                                     ["z3", ""], ["z4", "America/Chicago", "extra"]], bom=True)
    key = "incoming/timezones/bad zones.csv"
    record = drop(key, zones)
    assert (record.rows_accepted, record.rows_rejected) == (2, 2)
    by_line = {int(line): reason for line, reason, _ in rejection_report(key)[1:]}
    assert "'Mars/Olympus_Mons' is not a known" in by_line[3] and "expected 2 fields" in by_line[5]
    assert all_zones() == {"z1": "America/New_York", "z3": "America/Chicago"}  # empty: the default zone


def test_cli_prints_the_first_rejections(aws, tmp_path, capsys):
    path = tmp_path / "store_status.csv"
    rows = [["s", "active", fixtures.stamp(fixtures.NOW)]] + [["s", "unknown",
                                                               fixtures.stamp(fixtures.NOW)]] * 12
    path.write_bytes(csv_bytes(STATUS_HEADER, rows))
    outcome = ingest_file(path, expected_kind="status")
    out = capsys.readouterr().out
    assert (outcome.status, outcome.accepted, outcome.rejected) == ("Complete", 1, 12)
    assert "line 3: status 'unknown' is neither 'active' nor 'inactive'" in out
    assert "line 12:" in out and "line 13:" not in out and "... 2 more" in out
    assert str(outcome.rejections_path) in out
    written = list(csv.reader(outcome.rejections_path.open()))
    assert written[0] == ["line", "reason", "row"] and [int(r[0]) for r in written[1:]] == list(range(3, 15))

    rejected = ingest_file(_write(tmp_path / "x.csv", b"a,b,c\n1,2,3\n"))
    assert rejected.status == "Rejected" and "header 'a,b,c'" in rejected.error


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_formatting_variants_are_all_fine(aws, tmp_path):
    rows = fixtures.status_rows()[:50]
    variants = {
        "lf": csv_bytes(STATUS_HEADER, rows),
        "crlf bom no-final-newline": csv_bytes(STATUS_HEADER, rows, newline="\r\n", bom=True,
                                               final_newline=False),
        "blank lines": b"\n" + csv_bytes(STATUS_HEADER, rows).replace(b"\n", b"\n\n", 10) + b"\n\n",
    }
    for name, data in variants.items():
        record = drop(f"incoming/status/{name}.csv", data)
        assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 50, 0), name
        path_outcome = ingest_file(_write(tmp_path / f"{name}.csv", data),
                                   expected_kind="status", quiet=True)
        assert (path_outcome.accepted, path_outcome.rejected) == (50, 0), name


# -- "now" -------------------------------------------------------------------------------------

def test_now_follows_the_latest_poll_and_never_moves_back(aws):
    state = DatasetStateRepository()
    assert state.latest_poll_at() is None
    drop("incoming/status/1.csv", csv_bytes(STATUS_HEADER, [["s", "active", "2023-01-25 10:00:00 UTC"],
                                                            ["s", "active", "2023-01-25 12:00:00 UTC"]]))
    assert state.latest_poll_at() == parse_poll_timestamp("2023-01-25 12:00:00 UTC")
    drop("incoming/status/2.csv", csv_bytes(STATUS_HEADER, [["s", "active", "2023-01-20 10:00:00 UTC"]]))
    assert state.latest_poll_at() == parse_poll_timestamp("2023-01-25 12:00:00 UTC")
    drop("incoming/status/3.csv", csv_bytes(STATUS_HEADER, [["t", "inactive", "2023-01-26 00:00:01 UTC"]]))
    assert state.latest_poll_at() == parse_poll_timestamp("2023-01-26 00:00:01 UTC")
    # hours, zones and all-rejected drops leave it alone
    drop("incoming/status/4.csv", csv_bytes(STATUS_HEADER, [["t", "inactive", future_stamp(7200)]]))
    drop("incoming/hours/h.csv", csv_bytes(HOURS_HEADER, [["t", "1", "09:00:00", "10:00:00"]]))
    assert state.latest_poll_at() == parse_poll_timestamp("2023-01-26 00:00:01 UTC")


# -- retention ------------------------------------------------------------------------------------------

def test_poll_items_carry_a_ttl_and_expired_items_are_not_read(aws, monkeypatch):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    ttl = dynamodb.describe_time_to_live(TableName=settings.polls_table)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    store = "retained"
    today = int(time.time()) // DAY * DAY
    old_at = today - 40 * DAY + 3600
    old_stamp = fixtures.stamp(datetime.fromtimestamp(old_at, timezone.utc))
    # midnight today: never in the future
    recent_stamp = fixtures.stamp(datetime.fromtimestamp(today, timezone.utc))
    drop("incoming/status/r.csv",
         csv_bytes(STATUS_HEADER, [[store, "active", old_stamp], [store, "inactive", recent_stamp]]))
    shard = shard_of(store, settings.poll_shards)
    retention = settings.retention_days * DAY
    directories = Tables.from_settings(settings).poll_directories
    recent_item = directories.get(day_key(shard, today))
    old_item = directories.get(day_key(shard, old_at // DAY * DAY))
    raw = scan(settings.polls_table)
    assert all("N" in item["expires_at"] for item in raw if "#stores" not in item["bucket_key"]["S"])
    assert len(raw) >= 5  # two directories and their blocks, the roster and its block
    # retention counts from the end of the poll's day, and never less than that from ingestion
    assert recent_item.expires_at.timestamp() == today + DAY + retention
    assert abs(old_item.expires_at.timestamp() - (time.time() + retention)) < 60
    window = {"start": old_at - DAY, "end": today + DAY}
    assert polls_of(store, **window) == [(old_at, True), (today, False)]

    # an item DynamoDB has not deleted yet (moto never does) is ignored once past its TTL
    expired = datetime.now(timezone.utc) - timedelta(seconds=1)
    directories(old_item.bucket_key).update(actions=[directories.expires_at.set(expired)])
    assert polls_of(store, **window) == [(today, False)]

    # and with the clock past the retention of the recent day, nothing is read at all
    later = today + DAY + retention + 1
    monkeypatch.setattr(polls_module, "time", types.SimpleNamespace(time=lambda: later))
    assert polls_of(store, **window) == []
    assert PollRepository(settings.poll_shards, settings.retention_days).read_roster(shard) == [store]


# -- odds and ends -------------------------------------------------------------------------------

def test_object_deleted_before_its_event_is_recorded_not_retried(aws):
    drop = S3Drop(settings.bucket, "incoming/status/gone.csv", "0123")
    record = ingest_drop(drop, settings)
    assert record.status == "Rejected" and "deleted" in record.error


def test_cli_says_plainly_when_the_emulator_is_not_running(capsys, monkeypatch):
    from storemon_app import cli

    monkeypatch.setattr(cli, "prepare_environment", lambda stage, endpoint: None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert cli.main(["ingestions"]) == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_both_paths_split_lines_the_same_way():
    from chalicelib.drops import byte_lines

    data = b"h1,h2\r\na,1\rb,2\nc,3\r\n\r\nd,4"
    expected = [b"h1,h2\r\n", b"a,1\r", b"b,2\n", b"c,3\r\n", b"\r\n", b"d,4"]
    for size in (1, 2, 3, 5, 7, 64):
        assert list(byte_lines(io.BytesIO(data), chunk_size=size)) == expected, size
