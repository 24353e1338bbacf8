"""Helpers for the ingestion tests on in-process moto: files as bytes, drops through the
bucket's S3 -> SQS notification and ``app.ingest_csv_drop``, and looks into the tables."""
from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterable, Optional
from urllib.parse import quote_plus

import boto3
from chalice.test import Client

import app as app_module
from chalicelib.aws import queue_url, s3_client, sqs_client
from chalicelib.settings import Settings
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.polls import DAY, PollRepository, shard_of
from chalicelib.storage.store_maps import business_hours_repository, timezone_repository
from storemon_app.stack import apply_stack, destroy_stack
from tests import fixtures, targets

settings = Settings.from_env()  # the stage environment of the root conftest


STATUS_HEADER = ["store_id", "status", "timestamp_utc"]
HOURS_HEADER = ["store_id", "dayOfWeek", "start_time_local", "end_time_local"]
ZONES_HEADER = ["store_id", "timezone_str"]
DATA_TABLES = ("polls_table", "business_hours_table", "timezones_table", "dataset_state_table")


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
               "object": {"key": quote_plus(key), "size": 1, "eTag": etag,
                          "sequencer": "0A1B2C3D4E5F678901"}},
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
    shard = repository.read_shard(shard_of(store, settings.poll_shards), start, end)
    return shard.polls_by_store.get(store, [])


def fresh_account() -> None:
    """Forget everything moto holds and apply the stack again (within the ``aws`` fixture)."""
    from moto.moto_api._internal.models import moto_api_backend

    if targets.TARGETS:  # an external emulator keeps its data through moto's reset
        destroy_stack(targets.NAMES_STAGE)
    moto_api_backend.reset()  # the cached clients stay valid: same names, same account
    apply_stack(targets.NAMES_STAGE)
    queued_ingest_messages()  # the s3:TestEvent of the new bucket configuration


def report_csv() -> bytes:
    """trigger_report -> every part through the worker -> the CSV bytes, as
    tests/integration/test_api.py does."""
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


def many_status_rows(count: int, store_count: int = 7) -> list[list[str]]:
    start = fixtures.NOW - timedelta(days=3)
    return [[f"store-{index % store_count}", "active" if index % 3 else "inactive",
             fixtures.stamp(start + timedelta(minutes=index))] for index in range(count)]


def future_stamp(seconds: int) -> str:
    return fixtures.stamp(datetime.now(timezone.utc) + timedelta(seconds=seconds))

