"""One part or many: the report is the same bytes."""
from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.aws import queue_url, s3_client, sqs_client
from chalicelib.reporting import ReportPart, ReportService, detail_report_key, report_key, strips_key
from chalicelib.settings import Settings
from storemon_app.local_ingest import ingest_file
from tests import fixtures

settings = Settings.from_env()  # the stage environment of the root conftest


def _report_bytes(parts: int) -> bytes:
    return _report_and_detail(parts)[0]


def _report_and_detail(parts: int, twice: bool = False) -> tuple[bytes, bytes, bytes, Any]:
    """The report, the detail report, the strips and the evidence summary; ``twice``: every
    part delivered twice in a row (the second after the job completes, for the last one), and
    the report assembled once more at the end."""
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
            if twice:
                service.run_part(ReportPart.from_json(message["Body"]))
            sqs_client().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1
    assert delivered == min(parts, settings.poll_shards)
    job = service.jobs.get(report_id)
    assert job.status == "Complete" and len(job.parts_done) == delivered
    if twice:
        service.assemble(job)
        job = service.jobs.get(report_id)
    report, detail, strips = (s3_client().get_object(Bucket=settings.bucket, Key=key)["Body"].read()
                              for key in (report_key(report_id), detail_report_key(report_id),
                                          strips_key(report_id)))
    return report, detail, strips, job.summary


def test_parts_give_identical_bytes(aws, tmp_path):
    files = fixtures.write_fleet(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    one = _report_and_detail(1)  # the report, the detail report (with its outages), strips, summary
    assert one[0].count(b"\n") == one[1].count(b"\n") == 61  # header + one row per store
    assert one[2].count(b"\n") == 60 and one[3]["stores_without_polls"]
    assert _report_and_detail(3) == one
    assert _report_and_detail(3, twice=True) == one
    assert _report_and_detail(settings.poll_shards) == one
