"""Issue 10: the pipeline never loses a report, never lies about one, and lets only
the right callers in. Each test here reproduced a measured defect before its fix.

In-process moto (the ``aws`` fixture); routes through ``chalice.test.Client``, the
worker through Lambda-shaped SQS events, as in test_api.py.
"""
from __future__ import annotations

import csv
import io
import json
import re
import uuid
from pathlib import Path
from typing import Optional

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.aws import queue_url, s3_client, sqs_client
from chalicelib.core import parsing
from chalicelib.core.parsing import InvalidField
from chalicelib.ingestion import IngestResult, RejectionLog, Rejection, ingest_lines
from chalicelib.settings import settings
from storemon_app.local_ingest import ingest_file
from tests import fixtures

STATUS_HEADER = "store_id,status,timestamp_utc"


@pytest.fixture
def client(aws):
    with Client(app_module.app, stage_name="dev") as chalice_client:
        yield chalice_client


@pytest.fixture
def ingested(aws, tmp_path: Path) -> dict[str, Path]:
    files = fixtures.write_dataset(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    return files


def take_messages(queue: str) -> list[dict]:
    """Take every message off ``queue`` (deleted: the test delivers them itself)."""
    url = queue_url(queue)
    messages = []
    while True:
        got = sqs_client().receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           AttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        for message in got:
            sqs_client().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(got)


def deliver_part(client: Client, body: str, attempts: int = 1) -> None:
    event = client.events.generate_sqs_event(message_bodies=[body], queue_name=settings.report_queue)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(attempts)
    client.lambda_.invoke("compute_report_part", event)


def trigger(client: Client) -> str:
    response = client.http.post("/trigger_report")
    assert response.status_code == 202, response.body
    return response.json_body["report_id"]


def view_of(client: Client, report_id: str) -> dict:
    return client.http.get(f"/get_report?report_id={report_id}").json_body


def run_report(client: Client) -> tuple[str, dict]:
    report_id = trigger(client)
    for message in take_messages(settings.report_queue):
        deliver_part(client, message["Body"])
    return report_id, view_of(client, report_id)


def report_csv(client: Client, report_id: str) -> bytes:
    response = client.http.get(f"/get_report?report_id={report_id}&format=csv")
    assert response.status_code == 200, response.body
    return response.body


def ingest_text(text: str) -> tuple[IngestResult, list[Rejection]]:
    rejected: list[Rejection] = []
    result = ingest_lines(io.BytesIO(text.encode("utf-8")).readlines(), settings,
                          rejection_log=RejectionLog(rejected.append))
    return result, rejected


# -- defect 2: a store id holding a separator ------------------------------------------

@pytest.mark.parametrize("raw, reason", [
    ("tab\tstore", "non-printable character (TAB)"),
    ("bell\x07store", "non-printable character (U+0007)"),
    ("line\u2028sep", "non-printable character (U+2028)"),
    ("nb\u00a0space", "non-printable character (U+00A0)"),
    ("pipe|store", "separator '|'"),
    ("comma,store", "separator ','"),
    ("x" * (parsing.STORE_ID_MAX_LENGTH + 1), "more than 128"),
])
def test_store_ids_outside_the_allow_list_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidField, match=re.escape(reason)):
        parsing.parse_store_id(raw)


@pytest.mark.parametrize("raw", ["8419537941919820732", "night-owl", "a b", "=1+1", "café-7",
                                 "x" * parsing.STORE_ID_MAX_LENGTH, "0f6f3b5e-4a3b-4a5e-9b0f-3c1f2a7d9e11"])
def test_ordinary_store_ids_are_accepted_unchanged(raw):
    assert parsing.parse_store_id(f" {raw} ") == raw


def test_a_store_id_with_a_tab_is_rejected_and_later_reports_still_complete(client, ingested):
    """Before: the row went in, and every report part died on ``int('store\\t...')``."""
    result, rejected = ingest_text(
        f"{STATUS_HEADER}\n"
        '"tab\tstore",active,2023-01-25 10:05:00 UTC\n'
        '"ctl\x01store",active,2023-01-25 10:05:00 UTC\n'
        "fine-store,active,2023-01-25 10:05:00 UTC\n")
    assert (result.rows_accepted, result.rows_rejected) == (1, 2)
    assert [(r.line, "non-printable character" in r.reason) for r in rejected] == [(2, True), (3, True)]
    assert "TAB" in rejected[0].reason

    _, view = run_report(client)
    assert view["status"] == "Complete", view
    assert view["rows"] == 4  # the data set's 3 stores and fine-store


# -- defect 5: spreadsheet formula injection ---------------------------------------------

FORMULA_IDS = ["=1+1", "+1+1", "@SUM(A1)", "-2+3", "=HYPERLINK(evil)", " =2+2"]


def test_formula_like_store_ids_are_written_inert_in_the_report(client, ingested):
    rows = "".join(f"{store},active,2023-01-25 17:30:00 UTC\n" for store in FORMULA_IDS)
    result, _ = ingest_text(f"{STATUS_HEADER}\n{rows}")
    assert result.rows_accepted == len(FORMULA_IDS)
    report_id, view = run_report(client)
    assert view["status"] == "Complete", view
    lines = report_csv(client, report_id).decode("utf-8").splitlines()
    first_fields = [line.split(",", 1)[0] for line in lines[1:]]
    for store in FORMULA_IDS:
        assert "'" + store.strip() in first_fields
    assert not [field for field in first_fields if field[:1] in "=+-@\t\r"]
    # ordinary ids are untouched, so the report of ordinary data is the same bytes as before
    assert {fixtures.BIG_ID, fixtures.NIGHT_OWL, fixtures.SILENT} <= set(first_fields)
    assert lines[0] == "store_id,uptime_last_hour,uptime_last_day,uptime_last_week," \
                       "downtime_last_hour,downtime_last_day,downtime_last_week"


def test_formula_like_rejected_rows_are_written_inert(aws):
    from chalicelib.drops import ingest_source

    saved: list[bytes] = []
    lines = [f"{STATUS_HEADER}\n", "=1+1,sleeping,2023-01-25 17:30:00 UTC\n",
             " @SUM(A1),active,never\n", "\t-2+3,active\n", "plain,active,soon\n"]
    record, _ = ingest_source([line.encode() for line in lines], "test", f"test-{uuid.uuid4()}", settings,
                              save_rejections=lambda data: saved.append(data.read()) or "key")
    assert record.rows_rejected == 4
    rows = list(csv.reader(io.StringIO(saved[0].decode("utf-8"))))
    assert [row[2] for row in rows[1:]] == ["'=1+1,sleeping,2023-01-25 17:30:00 UTC",
                                           "' @SUM(A1),active,never", "'\t-2+3,active",
                                           "plain,active,soon"]
    assert all(row[1][:1] not in "=+-@" for row in rows[1:])


def test_what_counts_as_a_formula():
    from chalicelib.core.spreadsheet import inert

    assert [inert(v) for v in ["=1", "+1", "-1", "@a", "\t=1", "\r1", "  =1", "a=1", "1", ""]] == \
        ["'=1", "'+1", "'-1", "'@a", "'\t=1", "'\r1", "'  =1", "a=1", "1", ""]
