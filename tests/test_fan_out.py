"""One part or many: the report is the same bytes."""
from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

from chalicelib.aws import queue_url, s3_client, sqs_client
from chalicelib.reporting import ReportPart, ReportService, detail_report_key, report_key
from chalicelib.settings import Settings
from storemon_app.local_ingest import ingest_file
from tests import fixtures

settings = Settings.from_env()  # the stage environment of the root conftest


def _write_fleet(directory, stores: int = 60):
    rng = random.Random(5)
    status, hours, zones = [], [], []
    for index in range(stores):
        store = f"{rng.randrange(10**18, 10**19)}"
        for step in range(0, 8 * 24 * 60, 55 + rng.randrange(20)):
            moment = fixtures.NOW - timedelta(minutes=step)
            status.append([store, "active" if rng.random() < 0.8 else "inactive", fixtures.stamp(moment)])
        if index % 4:
            for day in range(7):
                if rng.random() < 0.85:
                    hours.append([store, str(day), f"{rng.randrange(6, 12):02d}:00:00", f"{rng.randrange(17, 24):02d}:30:00"])
        if index % 5:
            zones.append([store, rng.choice(["America/New_York", "America/Los_Angeles", "Asia/Beirut"])])
    rng.shuffle(status)
    return {
        "status": fixtures.write_csv(directory / "store_status.csv", ["store_id", "status", "timestamp_utc"], status),
        "hours": fixtures.write_csv(directory / "menu_hours.csv", ["store_id", "day", "start_time_local", "end_time_local"], hours),
        "timezones": fixtures.write_csv(directory / "timezones.csv", ["store_id", "timezone_str"], zones),
    }


def _report_bytes(parts: int) -> bytes:
    return _report_and_detail(parts)[0]


def _report_and_detail(parts: int) -> tuple[bytes, bytes]:
    service = ReportService.from_settings(dataclasses.replace(settings, report_parts=parts))
    report_id = service.trigger()
    url = queue_url(settings.report_queue)
    delivered = 0
    while True:
        messages = sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for message in messages:
            service.run_part(ReportPart.from_json(message["Body"]))
            sqs_client().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1
    assert delivered == min(parts, settings.poll_shards)
    job = service.jobs.get(report_id)
    assert job.status == "Complete" and len(job.parts_done) == delivered
    return tuple(s3_client().get_object(Bucket=settings.bucket, Key=key(report_id))["Body"].read()
                 for key in (report_key, detail_report_key))


def test_parts_give_identical_bytes(aws, tmp_path):
    files = _write_fleet(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    one = _report_and_detail(1)  # the report and the detail report (with its outages)
    assert one[0].count(b"\n") == one[1].count(b"\n") == 61  # header + one row per store
    assert _report_and_detail(3) == one
    assert _report_and_detail(settings.poll_shards) == one
