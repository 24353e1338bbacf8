"""A CSV dropped into the bucket is ingested with no other action, on the local stack:
moto's server (S3 -> SQS notification) + the event pump (SQS -> ``ingest_csv_drop``),
and the next report, triggered over HTTP, reflects it."""
from __future__ import annotations

import csv
import io
import json
import time
import urllib.request
from urllib.parse import unquote_plus

import pytest

from chalicelib.settings import Settings
from storemon_app.client import ReportClient
from tests import fixtures

settings = Settings.from_env()  # the stage environment of the root conftest

INGEST_TIMEOUT = 60
KEYS = {
    "timezones": "incoming/timezones/time zones+2023.csv",
    "hours": "incoming/hours/menu hours+v1.csv",
    "status": "incoming/status/store status 2023-01-25+1.csv",
}


def _announced_keys() -> tuple[set[str], bool]:
    """Peek at the ingest queue (messages stay for the pump): the object keys S3 announced,
    decoded, and whether S3's test event is there too. Few peeks: each one counts as a
    receive, and the queue's redrive policy moves a message away after 5."""
    from chalicelib.aws import queue_url, sqs_client

    url = queue_url(settings.ingest_queue)
    keys: set[str] = set()
    test_event = False
    for _ in range(2):
        if keys >= set(KEYS.values()) and test_event:
            break
        for message in sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                                    WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(message["Body"])
            test_event |= body.get("Event") == "s3:TestEvent"
            for record in body.get("Records", []):
                keys.add(unquote_plus(record["s3"]["object"]["key"]))
    return keys, test_event


def _queue_is_empty(queue: str) -> bool:
    from chalicelib.aws import queue_url, sqs_client

    attributes = sqs_client().get_queue_attributes(
        QueueUrl=queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return all(value == "0" for value in attributes.values())


def test_csv_dropped_in_the_bucket_is_ingested_and_reported(stack, tmp_path):
    import app as app_module
    from chalicelib.aws import s3_client
    from chalicelib.storage.ingestions import IngestionRepository
    from storemon_app.event_pump import EventPump

    files = fixtures.write_dataset(tmp_path)
    bad_row = f"{fixtures.NIGHT_OWL},sleeping,{fixtures.stamp(fixtures.NOW)}\n".encode()
    bodies = {kind: path.read_bytes() for kind, path in files.items()}
    bodies["status"] += bad_row  # line 290: one rejected row, reported next to the file

    etags = {}
    for kind in ("timezones", "hours", "status"):
        etags[kind] = s3_client().put_object(Bucket=settings.bucket, Key=KEYS[kind],
                                             Body=bodies[kind])["ETag"].strip('"')

    # moto's server really delivers the bucket's notifications to the ingest queue
    announced, test_event = _announced_keys()
    missing = set(KEYS.values()) - announced
    assert not missing, f"S3 did not notify the ingest queue of {missing}"
    assert test_event, "S3's s3:TestEvent was expected first on the queue"

    ids = {kind: f"s3://{settings.bucket}/{KEYS[kind]}#{etags[kind]}" for kind in KEYS}
    pump = EventPump(app_module, concurrency=2).start()
    try:
        records = IngestionRepository()
        deadline = time.monotonic() + INGEST_TIMEOUT
        while True:
            found = {kind: records.get(ingestion_id) for kind, ingestion_id in ids.items()}
            if all(r is not None and r.status != "Running" for r in found.values()):
                break
            assert time.monotonic() < deadline, f"not ingested within {INGEST_TIMEOUT} s: {found}"
            time.sleep(0.2)
        for kind, record in found.items():
            assert (record.status, record.kind) == ("Complete", kind), (kind, record.error)
            assert record.source == f"s3://{settings.bucket}/{KEYS[kind]}"
        assert found["status"].rows_accepted == len(fixtures.status_rows())
        assert found["status"].rows_rejected == 1
        assert found["status"].error_report_key == KEYS["status"] + ".rejections.csv"
        stored = s3_client().get_object(Bucket=settings.bucket, Key=found["status"].error_report_key)
        bad_line = len(fixtures.status_rows()) + 2
        assert stored["Body"].read().decode().splitlines()[1].startswith(f"{bad_line},status 'sleeping'")

        # the rejection report's own notification is consumed and not ingested; the test event did not fail
        deadline = time.monotonic() + 20
        while not _queue_is_empty(settings.ingest_queue):
            assert time.monotonic() < deadline, "the ingest queue did not drain"
            time.sleep(0.2)
        assert len(records.recent(100)) == 3
        assert pump.stats["ingest_csv_drop"].failed == 0
        # the test event, 3 drops and the rejection report's notification
        assert pump.stats["ingest_csv_drop"].succeeded >= 5

        client = ReportClient(stack.api_url)
        report_id = client.trigger()
        view = client.wait(report_id, timeout=120, interval=0.2)
    finally:
        pump.stop()
    assert view["status"] == "Complete", view
    assert view["data_now"] == fixtures.NOW.isoformat()
    with urllib.request.urlopen(view["download_url"], timeout=30) as response:
        rows = list(csv.reader(io.StringIO(response.read().decode("utf-8"))))
    by_store = fixtures.check_report_rows(rows)
    # BIG_ID is open 24x7 and was down for the last 3 hourly polls
    big = [float(v) for v in by_store[fixtures.BIG_ID][1:]]
    assert big[0] == 0 and big[3] == 60 and big[1] + big[4] == pytest.approx(24.0)
