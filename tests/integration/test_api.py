"""Routes through chalice.test.Client and the worker through generated SQS events, on in-process moto."""
from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import reporting
from chalicelib.core.interpolation import Poll
from chalicelib.core.report import CSV_HEADER
from chalicelib.core.schedule import WeeklySchedule
from chalicelib.settings import Settings
from chalicelib.storage.jobs import ReportJobRepository
from tests import fixtures

settings = Settings.from_env()  # the stage environment of the root conftest


def _sqs_messages(queue: str) -> list[dict]:
    from chalicelib.aws import queue_url, sqs_client

    messages = []
    while True:
        got = sqs_client().receive_message(QueueUrl=queue_url(queue), MaxNumberOfMessages=10,
                                           AttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)


def _run_queued_parts(client: Client, attempts: int = 1) -> int:
    """Deliver every queued report part to the worker as a Lambda SQS event."""
    messages = _sqs_messages(settings.report_queue)
    for message in messages:
        event = client.events.generate_sqs_event(message_bodies=[message["Body"]],
                                                 queue_name=settings.report_queue)
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(attempts)
        client.lambda_.invoke("compute_report_part", event)
    return len(messages)


def _trigger(client: Client) -> str:
    response = client.http.post("/trigger_report")
    assert response.status_code == 202
    report_id = response.json_body["report_id"]
    assert uuid.UUID(report_id).version == 4
    return report_id


def _expected_rows() -> dict[str, list[str]]:
    """The same inputs straight through the core: the plumbing must not change a digit.
    The learned up share is per storage shard, as the worker computes it."""
    from chalicelib.core.interpolation import fleet_up_share
    from chalicelib.core.parsing import parse_poll_timestamp
    from chalicelib.core.report import default_rule, report_from_evidence, store_evidence
    from chalicelib.storage.polls import shard_of

    now = int(fixtures.NOW.timestamp())
    polls: dict[str, list[Poll]] = {}
    for store, status, ts in fixtures.status_rows():
        polls.setdefault(store, []).append(Poll(parse_poll_timestamp(ts), status == "active"))
    night = WeeklySchedule.from_rows([(d, 22 * 3600, 2 * 3600) for d in range(7)])
    inputs = {fixtures.BIG_ID: (None, "America/New_York"), fixtures.NIGHT_OWL: (night, "America/Chicago"),
              fixtures.SILENT: (None, "America/Denver")}
    evidence = {store: store_evidence(polls[store], schedule, zone, now)
                for store, (schedule, zone) in inputs.items()}
    rows = {}
    for store in evidence:
        shard = shard_of(store, settings.poll_shards)
        neighbours = sorted(s for s in evidence if shard_of(s, settings.poll_shards) == shard)
        rule = default_rule(now, fleet_up_share(evidence[s].polls for s in neighbours))
        rows[store] = report_from_evidence(store, evidence[store], now, rule).csv_fields()
    return rows


def test_trigger_get_and_complete(client, ingested):
    report_id = _trigger(client)
    running = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert running["status"] == "Running"
    assert running["parts_done"] == 0 and running["parts_total"] == settings.report_parts
    assert _run_queued_parts(client) == settings.report_parts

    done = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert done["status"] == "Complete", done
    assert done["rows"] == 3
    assert done["data_now"] == "2023-01-25T18:00:00+00:00"
    assert done["download_url"].startswith("https://")

    body = client.http.get(f"/get_report?report_id={report_id}", headers={"Accept": "text/csv"})
    assert body.headers["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(body.body.decode())))
    assert tuple(rows[0]) == CSV_HEADER
    assert {row[0]: row for row in rows[1:]} == _expected_rows()
    fixtures.check_report_rows(rows)  # the silent store: the learned share, as for no polls at all

    same = client.http.get(f"/get_report?report_id={report_id}&format=csv")
    assert same.body == body.body


def test_get_report_errors_are_json(client, aws):
    missing = client.http.get("/get_report")
    assert missing.status_code == 400 and "report_id" in missing.json_body["error"]
    malformed = client.http.get("/get_report?report_id=not-a-uuid")
    assert malformed.status_code == 400 and "not a UUID" in malformed.json_body["error"]
    unknown = client.http.get(f"/get_report?report_id={uuid.uuid4()}")
    assert unknown.status_code == 404 and "no report" in unknown.json_body["error"]


def test_trigger_accepts_get_too(client, ingested):
    response = client.http.get("/trigger_report")
    assert response.status_code == 202 and "report_id" in response.json_body


def test_no_data_fails_with_reason(client, aws):
    report_id = _trigger(client)
    view = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert view["status"] == "Failed"
    assert "no polls" in view["error"]


def test_replayed_part_is_harmless(client, ingested):
    report_id = _trigger(client)
    messages = _sqs_messages(settings.report_queue)
    for message in messages + messages[:1]:  # SQS delivers at least once
        event = client.events.generate_sqs_event(message_bodies=[message["Body"]],
                                                 queue_name=settings.report_queue)
        client.lambda_.invoke("compute_report_part", event)
    view = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert view["status"] == "Complete" and view["rows"] == 3


def test_worker_retries_then_fails_job(client, ingested, monkeypatch):
    report_id = _trigger(client)

    def broken(self, shards, data_now):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr("chalicelib.reporting.ReportService.compute_rows", broken)
    body = _sqs_messages(settings.report_queue)[0]["Body"]
    event = client.events.generate_sqs_event(message_bodies=[body], queue_name=settings.report_queue)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "1"
    with pytest.raises(RuntimeError):
        app_module.compute_report_part(event, None)  # first attempt: raise, so SQS redelivers
    assert client.http.get(f"/get_report?report_id={report_id}").json_body["status"] == "Running"
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(reporting.MAX_PART_ATTEMPTS)
    app_module.compute_report_part(event, None)  # last attempt: give the job up, do not crash-loop
    view = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert view["status"] == "Failed" and view["error_code"] == "PART_FAILED"
    assert "table unavailable" not in view["error"]  # details go to the logs, not to clients


def test_running_job_past_deadline_is_failed(client, ingested, monkeypatch):
    report_id = _trigger(client)
    monkeypatch.setattr("chalicelib.reporting.REPORT_TIMEOUT_SECONDS", -1)
    view = client.http.get(f"/get_report?report_id={report_id}").json_body
    assert view["status"] == "Failed" and view["error_code"] == "TIMED_OUT" and "in time" in view["error"]
    assert ReportJobRepository().get(report_id).status == "Failed"


def test_part_message_round_trip():
    from chalicelib.reporting import ReportPart, plan_parts

    part = ReportPart("r", 2, [2, 6], 123)
    assert ReportPart.from_json(part.to_json()) == part
    plan = plan_parts(16, 4)
    assert sorted(s for shards in plan for s in shards) == list(range(16))
    assert plan_parts(3, 10) == [[0], [1], [2]]
    assert json.loads(part.to_json())["shards"] == [2, 6]
