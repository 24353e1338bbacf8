"""Ingestion that holds up: S3 drops through the queue handler, streaming, idempotence,
bad input, replacement semantics, "now", ingestion records and retention.

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
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest
from chalice.test import Client

import app as app_module
from chalicelib.aws import queue_url, s3_client, sqs_client
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
from chalicelib.storage.store_maps import business_hours_repository, timezone_repository
from storemon_app import local_ingest
from storemon_app.local_ingest import ingest_file
from storemon_app.stack import apply_stack, destroy_stack
from tests import fixtures, targets

settings = Settings.from_env()  # the stage environment of the root conftest

STATUS_HEADER = ["store_id", "status", "timestamp_utc"]
HOURS_HEADER = ["store_id", "dayOfWeek", "start_time_local", "end_time_local"]
ZONES_HEADER = ["store_id", "timezone_str"]
DATA_TABLES = ("polls_table", "business_hours_table", "timezones_table", "dataset_state_table")


# -- helpers ---------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _local_rejections(tmp_path, monkeypatch):
    """The CLI path writes its rejection reports under out/; keep tests out of the project tree."""
    monkeypatch.setattr(local_ingest, "REJECTIONS_DIR", tmp_path / "rejections")


def csv_bytes(header: list[str], rows: Iterable[list[str]], newline: str = "\n", bom: bool = False,
              final_newline: bool = True) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows([header, *rows])
    text = buffer.getvalue()
    if not final_newline:
        text = text[: -len(newline)]
    return (("\ufeff" if bom else "") + text).encode("utf-8")


def put(key: str, data: bytes) -> str:
    """Upload like a user would; returns the ETag S3 announces (without quotes)."""
    return s3_client().put_object(Bucket=settings.bucket, Key=key, Body=data)["ETag"].strip('"')


def sqs_event(*bodies: str) -> dict:
    """What Lambda's SQS event source hands the function."""
    return {"Records": [{
        "messageId": str(uuid.uuid4()),
        "receiptHandle": f"handle-{index}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{settings.ingest_queue}",
        "awsRegion": "us-east-1",
    } for index, body in enumerate(bodies)]}


def s3_notification(key: str, etag: str, event_name: str = "ObjectCreated:Put",
                    bucket: Optional[str] = None) -> str:
    """An S3 event notification as S3 puts it on the queue: the key URL-encoded."""
    bucket = bucket or settings.bucket
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": datetime.now(timezone.utc).isoformat(), "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "incoming",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key), "size": 1, "eTag": etag, "sequencer": "0A1B2C3D4E5F678901"}},
    }]})


def s3_test_event(bucket: Optional[str] = None) -> str:
    return json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T00:00:00.000Z",
                       "Bucket": bucket or settings.bucket, "RequestId": "R", "HostId": "H"})



def queued_ingest_messages() -> list[str]:
    """Take every message off the ingest queue (what S3 sent)."""
    url = queue_url(settings.ingest_queue)
    bodies = []
    while True:
        got = sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(message["Body"])
            sqs_client().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def deliver_queued() -> list[str]:
    """Run the ingestion handler on every queued notification, one message per invocation,
    until the queue stays empty (a rejection report written meanwhile is announced too)."""
    delivered = []
    while True:
        bodies = queued_ingest_messages()
        if not bodies:
            return delivered
        for body in bodies:
            app_module.ingest_csv_drop(sqs_event(body), None)
        delivered.extend(bodies)


def drop(key: str, data: bytes, delivered: Optional[list] = None):
    """Put a file under incoming/ and let the S3 -> SQS -> handler path ingest it."""
    etag = put(key, data)
    bodies = deliver_queued()
    if delivered is not None:
        delivered.extend(bodies)
    record = IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}")
    assert record is not None, f"{key} was not ingested"
    return record


def rejection_report(key: str) -> list[list[str]]:
    body = s3_client().get_object(Bucket=settings.bucket, Key=key + ".rejections.csv")["Body"].read()
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


def object_exists(key: str) -> bool:
    listed = s3_client().list_objects_v2(Bucket=settings.bucket, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def scan(table: str) -> list[dict]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    items, start = [], None
    while True:
        page = client.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items.extend(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def data_tables_are_empty() -> bool:
    return all(not scan(getattr(settings, name)) for name in DATA_TABLES)


def all_hours() -> dict:
    return business_hours_repository(settings.poll_shards).read(range(settings.poll_shards))


def all_zones() -> dict:
    return timezone_repository(settings.poll_shards).read(range(settings.poll_shards))


def polls_of(store: str, start: int = int(fixtures.NOW.timestamp()) - 30 * DAY,
             end: int = int(fixtures.NOW.timestamp()) + DAY) -> list[tuple[int, bool]]:
    repository = PollRepository(settings.poll_shards, settings.retention_days)
    return repository.read_shard(shard_of(store, settings.poll_shards), start, end).polls_by_store.get(store, [])


def fresh_account() -> None:
    """Forget everything moto holds and apply the stack again (within the ``aws`` fixture)."""
    from moto.moto_api._internal.models import moto_api_backend

    if targets.TARGETS:  # an external emulator keeps its data through moto's reset
        destroy_stack(targets.NAMES_STAGE)
    moto_api_backend.reset()  # the cached clients stay valid: same names, same account
    apply_stack(targets.NAMES_STAGE)
    queued_ingest_messages()  # the s3:TestEvent of the new bucket configuration


def report_csv() -> bytes:
    """trigger_report -> every part through the worker -> the CSV bytes, as tests/test_api.py does."""
    # The app reads its settings on first use; the test client applies the stage's
    # .chalice/config.json names during each request, not this run's (tests/targets.py).
    app_module.dependencies()
    with Client(app_module.app, stage_name="dev") as client:
        response = client.http.post("/trigger_report")
        assert response.status_code == 202
        report_id = response.json_body["report_id"]
        url = queue_url(settings.report_queue)
        while True:
            got = sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                               AttributeNames=["All"]).get("Messages", [])
            if not got:
                break
            for message in got:
                event = client.events.generate_sqs_event(message_bodies=[message["Body"]],
                                                         queue_name=settings.report_queue)
                client.lambda_.invoke("compute_report_part", event)
                sqs_client().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        view = client.http.get(f"/get_report?report_id={report_id}").json_body
        assert view["status"] == "Complete", view
        body = client.http.get(f"/get_report?report_id={report_id}&format=csv").body
    return body if isinstance(body, bytes) else body.encode("utf-8")


def dataset_bytes() -> dict[str, bytes]:
    with_hours = [[fixtures.NIGHT_OWL, str(day), "22:00:00", "02:00:00"] for day in range(7)]
    return {
        "timezones": csv_bytes(ZONES_HEADER, [[fixtures.BIG_ID, "America/New_York"],
                                              [fixtures.SILENT, "America/Denver"]]),
        "hours": csv_bytes(HOURS_HEADER, with_hours),
        "status": csv_bytes(STATUS_HEADER, fixtures.status_rows()),
    }


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
    assert (second.started_at, second.finished_at, second.status) == (first.started_at, first.finished_at, "Complete")
    assert len(IngestionRepository().recent()) == 1


def test_failed_ingestion_is_retried_by_the_next_delivery(aws, monkeypatch):
    key = "incoming/status/flaky.csv"
    etag = put(key, dataset_bytes()["status"])
    queued_ingest_messages()
    event = sqs_event(s3_notification(key, etag))
    original = PollRepository.add_polls

    def unavailable(self, polls):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(PollRepository, "add_polls", unavailable)
    with pytest.raises(RuntimeError):  # raise, so SQS redelivers
        app_module.ingest_csv_drop(event, None)
    record = IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}")
    assert record.status == "Failed" and "table unavailable" in record.error
    monkeypatch.setattr(PollRepository, "add_polls", original)
    app_module.ingest_csv_drop(event, None)
    record = IngestionRepository().get(record.ingestion_id)
    assert record.status == "Complete" and record.error is None
    assert record.rows_accepted == len(fixtures.status_rows())


# -- streaming ---------------------------------------------------------------------------

def _many_status_rows(count: int, store_count: int = 7) -> list[list[str]]:
    start = fixtures.NOW - timedelta(days=3)
    return [[f"store-{index % store_count}", "active" if index % 3 else "inactive",
             fixtures.stamp(start + timedelta(minutes=index))] for index in range(count)]


def test_polls_are_read_as_a_stream_and_written_in_batches(aws, monkeypatch):
    assert settings.ingest_batch_rows == 1000
    rows = _many_status_rows(2500)
    consumed = 0

    def lines():
        nonlocal consumed
        for line in csv_bytes(STATUS_HEADER, rows).splitlines(keepends=True):
            consumed += 1
            yield line

    batches: list[tuple[int, int]] = []
    original = PollRepository.add_polls

    def spy(self, polls):
        polls = list(polls)
        batches.append((len(polls), consumed))
        return original(self, polls)

    monkeypatch.setattr(PollRepository, "add_polls", spy)
    record, result = ingest_source(lines(), "test://stream", "test://stream#1", settings)
    assert record.status == "Complete" and result.rows_accepted == 2500
    assert [size for size, _ in batches] == [1000, 1000, 500]
    # the first batch went out when little more than its rows had been read: nothing holds the
    # file but the stray guard's few latest polls (chalicelib/core/strays.py)
    assert batches[0][1] <= 1002 + STRAY_MIN_ROWS and batches[1][1] <= 2002 + STRAY_MIN_ROWS

    # the S3 path streams too (same batches out of the object's body)
    batches.clear()
    record = drop("incoming/status/big.csv", csv_bytes(STATUS_HEADER, _many_status_rows(2500, 11)))
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
    assert len(rows) == 4 and {row[0] for row in rows[1:]} == {fixtures.BIG_ID, fixtures.NIGHT_OWL, fixtures.SILENT}

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


# -- bad input ----------------------------------------------------------------------------

def _future_stamp(seconds: int) -> str:
    return fixtures.stamp(datetime.now(timezone.utc) + timedelta(seconds=seconds))


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
        f"good-2,active,{_future_stamp(3600)}",          # 9 an hour after the ingestion clock
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
    assert "does not end in ' UTC'" in by_line[3][0] and by_line[3][1] == "good-1,active,2023-01-25 17:00:00 GMT"
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
        written = []
        patch.setattr(PollRepository, "add_polls", lambda self, polls: written.extend(polls))
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
    rows = [["s", "active", fixtures.stamp(fixtures.NOW)]] + [["s", "unknown", fixtures.stamp(fixtures.NOW)]] * 12
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
        "crlf bom no-final-newline": csv_bytes(STATUS_HEADER, rows, newline="\r\n", bom=True, final_newline=False),
        "blank lines": b"\n" + csv_bytes(STATUS_HEADER, rows).replace(b"\n", b"\n\n", 10) + b"\n\n",
    }
    for name, data in variants.items():
        record = drop(f"incoming/status/{name}.csv", data)
        assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 50, 0), name
        path_outcome = ingest_file(_write(tmp_path / f"{name}.csv", data),
                                   expected_kind="status", quiet=True)
        assert (path_outcome.accepted, path_outcome.rejected) == (50, 0), name


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 3
WHOLE_FILE_REJECTIONS = [
    ("incoming/unknown.csv", b"id,state,when\n1,active,2023-01-25 10:00:00 UTC\n", "header 'id,state,when'"),
    ("incoming/status/garbage.bin", bytes(range(256)) * 8, "NUL byte"),
    ("incoming/status/empty.csv", b"", "empty"),
    ("incoming/timezones/blank.csv", b"\n\r\n   \n", "empty"),
    ("incoming/status/hours-really.csv", csv_bytes(HOURS_HEADER, [["s", "1", "09:00:00", "10:00:00"]]),
     "dropped as 'status' but its header is that of 'hours'"),
    ("incoming/hours/zones-really.csv", csv_bytes(ZONES_HEADER, [["s", "Asia/Beirut"]]),
     "dropped as 'hours' but its header is that of 'timezones'"),
    ("incoming/status/picture.png", PNG, "UTF-8"),
    ("incoming/status/utf-16.csv", "store_id,status,timestamp_utc\n".encode("utf-16"), "NUL byte"),
]


@pytest.mark.parametrize("key,data,reason", WHOLE_FILE_REJECTIONS, ids=[k for k, _, _ in WHOLE_FILE_REJECTIONS])
def test_unusable_files_are_rejected_whole(aws, key, data, reason):
    record = drop(key, data)
    assert record.status == "Rejected"
    assert reason in record.error
    assert record.rows_accepted == 0 and record.error_report_key is None
    assert not object_exists(key + ".rejections.csv")
    assert data_tables_are_empty()


def test_a_nul_byte_after_written_batches_leaves_record_and_tables_consistent(aws):
    rows = _many_status_rows(1500)
    data = csv_bytes(STATUS_HEADER, rows) + b"store-1,act\x00ive,2023-01-23 10:00:00 UTC\n" + \
        csv_bytes(STATUS_HEADER, _many_status_rows(1600)[1500:]).split(b"\n", 1)[1]
    key = "incoming/status/nul-in-the-middle.csv"
    record = drop(key, data)
    # 1,000 polls are in the table before line 1,502 is read: the file cannot be "rejected whole"
    # any more, so the line is rejected like any other bad line and the rest goes in.
    assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 1600, 1)
    [(line, reason, _)] = rejection_report(key)[1:]
    assert line == "1502" and "NUL" in reason


def test_an_undecodable_first_line_rejects_the_file(aws):
    record = drop("incoming/status/latin-1.csv", "störe_id,status,timestamp_utc\n".encode("latin-1"))
    assert record.status == "Rejected" and "UTF-8" in record.error
    assert data_tables_are_empty()


def test_an_undecodable_row_is_rejected_and_counts_as_its_stores_bad_row(aws):
    drop("incoming/hours/before.csv", csv_bytes(HOURS_HEADER, [["cafe", "0", "08:00:00", "20:00:00"]]))
    data = (b"store_id,dayOfWeek,start_time_local,end_time_local\n"
            b"cafe,1,09:00:00,17:00:00\n"
            b"cafe,2,09:00:00,17:00:00 \xe9t\xe9\n"  # Latin-1 in a UTF-8 file
            b"other,3,09:00:00,17:00:00\n")
    key = "incoming/hours/latin-1 row.csv"
    record = drop(key, data)
    assert (record.rows_accepted, record.rows_rejected) == (1, 2)
    by_line = {int(line): reason for line, reason, _ in rejection_report(key)[1:]}
    assert "UTF-8" in by_line[3] and "line 3" in by_line[2]
    assert all_hours() == {"cafe": [[0, 8 * 3600, 20 * 3600]], "other": [[3, 9 * 3600, 17 * 3600]]}


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
    drop("incoming/timezones/1.csv", csv_bytes(ZONES_HEADER, [["a", "America/New_York"], ["b", "America/Denver"]]))
    drop("incoming/timezones/2.csv", csv_bytes(ZONES_HEADER, [["a", "Asia/Beirut"]]))
    assert all_zones() == {"a": "Asia/Beirut", "b": "America/Denver"}
    key = "incoming/timezones/3.csv"
    record = drop(key, csv_bytes(ZONES_HEADER, [["a", "Europe/Nowhere"], ["b", "Europe/Paris"], ["b", "Europe/Rome"]]))
    assert (record.rows_accepted, record.rows_rejected) == (0, 3)
    assert all_zones() == {"a": "Asia/Beirut", "b": "America/Denver"}
    assert "conflicting time zones" in rejection_report(key)[2][1]


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
    drop("incoming/status/4.csv", csv_bytes(STATUS_HEADER, [["t", "inactive", _future_stamp(7200)]]))
    drop("incoming/hours/h.csv", csv_bytes(HOURS_HEADER, [["t", "1", "09:00:00", "10:00:00"]]))
    assert state.latest_poll_at() == parse_poll_timestamp("2023-01-26 00:00:01 UTC")


# -- ingestion records and the CLI listing -----------------------------------------------------------

def test_ingestions_command_lists_recent_ingestions(aws, monkeypatch, capsys):
    from storemon_app import cli

    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: {})
    assert cli.main(["ingestions"]) == 0
    assert "no ingestions yet" in capsys.readouterr().out

    drop("incoming/timezones/zones.csv", dataset_bytes()["timezones"])
    time.sleep(0.01)
    drop("incoming/status/with bad row.csv",
         csv_bytes(STATUS_HEADER, [["s", "active", "2023-01-25 10:00:00 UTC"], ["s", "on", "2023-01-25 11:00:00 UTC"]]))
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


# -- retention ------------------------------------------------------------------------------------------

def test_poll_items_carry_a_ttl_and_expired_items_are_not_read(aws, monkeypatch):
    ttl = boto3.client("dynamodb", region_name="us-east-1").describe_time_to_live(TableName=settings.polls_table)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    store = "retained"
    today = int(time.time()) // DAY * DAY
    old_at = today - 40 * DAY + 3600
    old_stamp = fixtures.stamp(datetime.fromtimestamp(old_at, timezone.utc))
    recent_stamp = fixtures.stamp(datetime.fromtimestamp(today, timezone.utc))  # midnight today: never in the future
    drop("incoming/status/r.csv", csv_bytes(STATUS_HEADER, [[store, "active", old_stamp], [store, "inactive", recent_stamp]]))
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
    directories(old_item.bucket_key).update(actions=[directories.expires_at.set(datetime.now(timezone.utc) - timedelta(seconds=1))])
    assert polls_of(store, **window) == [(today, False)]

    # and with the clock past the retention of the recent day, nothing is read at all
    later = today + DAY + retention + 1
    monkeypatch.setattr(polls_module, "time", types.SimpleNamespace(time=lambda: later))
    assert polls_of(store, **window) == []
    assert PollRepository(settings.poll_shards, settings.retention_days).read_roster(shard) == [store]


# -- the real files ---------------------------------------------------------------------------------------

REAL_FILES = [
    ("new/menu_hours.csv", "hours", 35_457),
    ("new/timezones.csv", "timezones", 4_559),
    ("new/store_status.csv", "status", 1_000),
    ("old/menu_hours.csv", "hours", 86_198),
    ("old/timezones.csv", "timezones", 13_559),
]


@pytest.mark.parametrize("name,kind,rows", REAL_FILES, ids=[name for name, _, _ in REAL_FILES])
def test_real_files_are_ingested_whole(aws, real_data, name, kind, rows):
    outcome = ingest_file(real_data / name, expected_kind=kind, quiet=True)
    assert (outcome.status, outcome.kind) == ("Complete", kind), outcome.error
    assert (outcome.accepted, outcome.rejected) == (rows, 0), outcome.sample[:5]
    if kind == "hours":
        assert sum(len(v) for v in all_hours().values()) <= rows and all_hours()
    if kind == "timezones":
        assert len(all_zones()) == len({line.split(b",", 1)[0] for line in
                                       (real_data / name).read_bytes().splitlines()[1:] if line.strip()})


def test_a_row_too_long_for_the_csv_reader_is_rejected_and_the_rest_goes_in(aws):
    data = csv_bytes(STATUS_HEADER, [["s", "active", "2023-01-25 10:00:00 UTC"],
                                     ["s", "active", "2023-01-25 11:00:00 UTC" + " " * 200_000],
                                     ["s", "inactive", "2023-01-25 12:00:00 UTC"]])
    key = "incoming/status/long line.csv"
    record = drop(key, data)
    assert (record.status, record.rows_accepted, record.rows_rejected) == ("Complete", 2, 1)
    [(line, reason, row)] = rejection_report(key)[1:]
    assert line == "3" and "cannot be read as CSV" in reason and len(row) <= 500
    assert polls_of("s") == [(parse_poll_timestamp("2023-01-25 10:00:00 UTC"), True),
                             (parse_poll_timestamp("2023-01-25 12:00:00 UTC"), False)]


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


def test_a_file_with_lone_cr_line_endings_goes_in(aws, tmp_path):
    path = tmp_path / "timezones.csv"
    path.write_bytes(b"store_id,timezone_str\ra,America/Denver\rb,Asia/Beirut\r")
    outcome = local_ingest.ingest_file(path, quiet=True)
    assert (outcome.status, outcome.accepted, outcome.rejected) == ("Complete", 2, 0)
