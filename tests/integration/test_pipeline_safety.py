"""Issue 10: the pipeline never loses a report, never lies about one, and lets only
the right callers in. Each test here reproduced a measured defect before its fix.

In-process moto (the ``aws`` fixture); routes through ``chalice.test.Client``, the
worker through Lambda-shaped SQS events, as in test_api.py.
"""
from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import reporting
from chalicelib.aws import queue_url, s3_client, sqs_client
from chalicelib.core import parsing
from chalicelib.ingestion import IngestResult, RejectionLog, Rejection, ingest_lines
from chalicelib.settings import Settings
from tests import fixtures

settings = Settings.from_env()  # the stage environment of the root conftest

STATUS_HEADER = "store_id,status,timestamp_utc"


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


# -- defect 2: a store id holding a separator (the parser's allow-list: tests/unit/test_input_safety.py)

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


# -- defect 6: internals leak to clients -----------------------------------------------

LEAKY = ("EndpointConnectionError: Could not connect to the endpoint URL: "
         "\"http://127.0.0.1:4566/storemon-dev-data/reports/x/parts/0000.csv\"")


def test_a_failed_job_tells_clients_a_code_and_a_sentence_and_the_logs_the_details(client, ingested,
                                                                                     monkeypatch, caplog):
    report_id = trigger(client)

    def broken(self, shards, data_now):
        raise RuntimeError(LEAKY)

    monkeypatch.setattr("chalicelib.reporting.ReportService.compute_rows", broken)
    body = take_messages(settings.report_queue)[0]["Body"]
    deliver_part(client, body, attempts=reporting.MAX_PART_ATTEMPTS)
    view = view_of(client, report_id)
    assert view["status"] == "Failed" and view["error_code"] == "PART_FAILED"
    for secret in ("http", "127.0.0.1", "storemon-dev", "reports/", "Error", "RuntimeError", "parts/"):
        assert secret not in view["error"], secret
    assert "report id" in view["error"]
    failures = [r for r in caplog.records
                if getattr(r, "report_id", None) == report_id and r.levelname == "ERROR"]
    assert failures and failures[0].part == 0
    assert "storemon-dev-data" in str(failures[0].exc_info[1])


# -- defect 4: part messages are not trusted blindly ------------------------------------

def test_a_replayed_part_with_other_shards_or_an_invented_part_does_not_count(client, ingested):
    report_id = trigger(client)
    messages = [json.loads(m["Body"]) for m in take_messages(settings.report_queue)]
    assert len(messages) == settings.report_parts > 1
    first = messages[0]
    deliver_part(client, json.dumps(first))
    deliver_part(client, json.dumps({**first, "shards": []}))               # replay, emptied
    deliver_part(client, json.dumps({**first, "part": len(messages)}))      # invented part
    deliver_part(client, json.dumps({**first, "part": -1}))
    deliver_part(client, json.dumps({**messages[1], "data_now": first["data_now"] - 3600}))
    view = view_of(client, report_id)
    assert view["status"] == "Running" and view["parts_done"] == 1, view
    for message in messages[1:]:
        deliver_part(client, json.dumps(message))
    view = view_of(client, report_id)
    assert view["status"] == "Complete" and view["rows"] == 3, view


def test_a_part_of_a_finished_job_is_not_counted(client, ingested):
    from chalicelib.storage.jobs import ReportJobRepository

    report_id = trigger(client)
    messages = take_messages(settings.report_queue)
    assert ReportJobRepository().fail(report_id, "TIMED_OUT", "late")
    assert ReportJobRepository().mark_part_done(report_id, 0) is None
    deliver_part(client, messages[0]["Body"])
    assert view_of(client, report_id)["parts_done"] == 0


# -- defect 7: orphans and mismatched lifetimes ------------------------------------------

def test_a_trigger_whose_parts_cannot_be_queued_ends_failed_with_its_id(client, ingested, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    real = sqs_client()

    class Unreachable:
        def __getattr__(self, name):
            return getattr(real, name)

        def send_message_batch(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/")

    monkeypatch.setattr(app_module.dependencies().aws, "sqs", Unreachable())
    response = client.http.post("/trigger_report")
    assert response.status_code == 503
    body = response.json_body
    assert body["error_code"] == "QUEUE_UNAVAILABLE" and "127.0.0.1" not in body["error"]
    view = view_of(client, body["report_id"])
    assert view["status"] == "Failed" and view["error_code"] == "QUEUE_UNAVAILABLE"


def test_a_job_that_outlives_its_csv_answers_410_not_500(client, ingested):
    from chalicelib.reporting import report_key

    report_id, view = run_report(client)
    assert view["status"] == "Complete"
    s3_client().delete_object(Bucket=settings.bucket, Key=report_key(report_id))  # the lifecycle rule's doing
    for path in (f"/get_report?report_id={report_id}", f"/get_report?report_id={report_id}&format=csv"):
        response = client.http.get(path)
        assert response.status_code == 410, (path, response.body)
        assert response.json_body["error_code"] == "REPORT_EXPIRED"
        assert "download_url" not in response.json_body


# -- defect 9: every API error is JSON ---------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/trigger_report", "GET, POST"), ("DELETE", "/trigger_report", "GET, POST"),
    ("POST", "/get_report", "GET"), ("PATCH", "/get_report", "GET"),
])
def test_a_wrong_method_answers_405_in_the_api_shape(client, aws, method, path, allowed):
    response = client.http.request(method, path)
    assert response.status_code == 405
    assert response.json_body["status_code"] == 405 and method in response.json_body["error"]
    assert response.headers["Allow"] == allowed


def test_formats_we_cannot_produce_answer_406(client, ingested):
    report_id, view = run_report(client)
    assert view["status"] == "Complete"
    xml = client.http.get(f"/get_report?report_id={report_id}&format=xml")
    assert xml.status_code == 406 and "json or csv" in xml.json_body["error"]
    accept = client.http.get(f"/get_report?report_id={report_id}", headers={"Accept": "application/xml"})
    assert accept.status_code == 406 and accept.json_body["status_code"] == 406
    assert client.http.post("/trigger_report", headers={"Accept": "application/xml"}).status_code == 406
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    from_a_browser = client.http.get(f"/get_report?report_id={report_id}", headers={"Accept": browser})
    assert from_a_browser.status_code == 200
    assert client.http.get(f"/get_report?report_id={report_id}&format=json").json_body["status"] == "Complete"


def test_an_unexpected_error_answers_json_500_without_details(client, aws, monkeypatch):
    def broken(self, report_id):
        raise RuntimeError("http://127.0.0.1:4566 storemon-dev-report-jobs is down")

    monkeypatch.setattr("chalicelib.storage.jobs.ReportJobRepository.get", broken)
    response = client.http.get(f"/get_report?report_id={uuid.uuid4()}")
    assert response.status_code == 500 and "storemon" not in response.json_body["error"]


# -- access control ----------------------------------------------------------------------

def test_with_storemon_api_key_set_the_app_checks_x_api_key(client, ingested, monkeypatch):
    monkeypatch.setenv("STOREMON_API_KEY", "s3cret-key")
    for headers in ({}, {"x-api-key": "wrong"}):
        for call in (lambda h=headers: client.http.post("/trigger_report", headers=h),
                     lambda h=headers: client.http.get(f"/get_report?report_id={uuid.uuid4()}", headers=h)):
            response = call()
            assert response.status_code == 401 and "x-api-key" in response.json_body["error"]
    response = client.http.post("/trigger_report", headers={"x-api-key": "s3cret-key"})
    assert response.status_code == 202


def test_the_report_client_sends_the_api_key(monkeypatch):
    from storemon_app.client import ReportClient

    monkeypatch.setenv("STOREMON_API_KEY", "k-123")
    sent = {}

    def fake_urlopen(request, timeout):
        sent.update({k.lower(): v for k, v in request.header_items()})
        raise OSError("not sending")

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    with pytest.raises(OSError):
        ReportClient("http://127.0.0.1:9").trigger()
    assert sent["x-api-key"] == "k-123"


# -- defect 1: a lost or failed part is retried in time ----------------------------------

def _report_queue_visibility() -> int:
    from storemon_app.stack import load_template

    return int(load_template()["Resources"]["ReportQueue"]["Properties"]["VisibilityTimeout"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_report_queue_timeouts_let_three_attempts_finish_before_the_deadline(stage):
    from storemon_app.paths import CHALICE_DIR

    config = json.loads((CHALICE_DIR / "config.json").read_text())["stages"][stage]
    function_timeout = config["lambda_functions"]["compute_report_part"]["lambda_timeout"]
    visibility = _report_queue_visibility()
    assert function_timeout < visibility <= 120  # retried within 2 minutes, never while still running
    last_attempt_ends = (reporting.MAX_PART_ATTEMPTS - 1) * visibility + function_timeout
    assert last_attempt_ends < reporting.REPORT_TIMEOUT_SECONDS <= 10 * 60


def test_the_pump_leaves_a_failed_message_to_the_queues_visibility_timeout(aws):
    """As Lambda's event source mapping does: no shortcut that makes local retries look fast."""
    from storemon_app.event_pump import EventPump, QueueMapping

    changes: list[dict] = []
    sqs_client().meta.events.register("provide-client-params.sqs.ChangeMessageVisibility",
                                      lambda params, **_: changes.append(params))

    def failing(event, context):
        raise RuntimeError("worker died")

    pump = EventPump(app_module)
    pump.mappings = [QueueMapping(settings.report_queue, "failing", failing, 1)]
    pump.stats = {"failing": pump.stats["compute_report_part"]}
    url = queue_url(settings.report_queue)
    sqs_client().send_message(QueueUrl=url, MessageBody="{}")
    assert pump.pump_once(pump.mappings[0]) == 1
    assert pump.stats["failing"].failed == 1
    assert changes == []
    assert sqs_client().receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    attributes = sqs_client().get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert int(attributes["Attributes"]["VisibilityTimeout"]) == _report_queue_visibility()


# -- defect 3: a drop overwritten before it is processed ---------------------------------

def _ingest_queued_drops() -> None:
    url = queue_url(settings.ingest_queue)
    for message in take_messages(settings.ingest_queue):
        app_module.ingest_csv_drop(client_sqs_event(message["Body"], url), None)


def client_sqs_event(body: str, url: str) -> dict:
    return {"Records": [{"messageId": str(uuid.uuid4()), "receiptHandle": "h", "body": body,
                         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                         "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                         "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{settings.ingest_queue}"}]}


def test_a_drop_overwritten_before_it_is_processed_is_read_as_it_was(aws):
    from chalicelib.storage.ingestions import IngestionRepository
    from chalicelib.storage.polls import PollRepository

    key = "incoming/status/x.csv"
    first = f"{STATUS_HEADER}\n" + "".join(f"first-{i},active,2023-01-25 17:00:00 UTC\n" for i in range(3))
    second = f"{STATUS_HEADER}\n" + "".join(f"second-{i},active,2023-01-25 17:00:00 UTC\n" for i in range(5))
    etags = [s3_client().put_object(Bucket=settings.bucket, Key=key, Body=body.encode())["ETag"].strip('"')
             for body in (first, second)]  # in quick succession: both events are still queued
    _ingest_queued_drops()
    records = [IngestionRepository().get(f"s3://{settings.bucket}/{key}#{etag}") for etag in etags]
    assert [(r.status, int(r.rows_accepted)) for r in records] == [("Complete", 3), ("Complete", 5)]
    stores = set()
    polls = PollRepository(settings.poll_shards, settings.retention_days)
    at = parsing.parse_poll_timestamp("2023-01-25 17:00:00 UTC")
    for shard in range(settings.poll_shards):
        stores |= set(polls.read_shard(shard, at - 3600, at + 1).polls_by_store)
    assert {f"first-{i}" for i in range(3)} | {f"second-{i}" for i in range(5)} <= stores


def test_a_version_that_no_longer_exists_is_recorded_as_superseded(aws):
    from chalicelib.drops import S3Drop, ingest_drop

    key = "incoming/status/y.csv"
    s3_client().put_object(Bucket=settings.bucket, Key=key, Body=f"{STATUS_HEADER}\n".encode())
    record = ingest_drop(S3Drop(settings.bucket, key, "0" * 32), settings)
    assert record.status == "Rejected" and record.error.startswith("superseded")
    take_messages(settings.ingest_queue)


def test_the_event_s_version_id_is_read_when_s3_sends_it(aws):
    from chalicelib.drops import drops_from_notification, open_drop

    key = "incoming/status/z.csv"
    old = s3_client().put_object(Bucket=settings.bucket, Key=key, Body=b"old")
    s3_client().put_object(Bucket=settings.bucket, Key=key, Body=b"new")
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": settings.bucket},
        "object": {"key": key, "eTag": old["ETag"].strip('"'), "versionId": old["VersionId"]}}}]})
    drop, = drops_from_notification(body)
    assert drop.version_id == old["VersionId"]
    assert open_drop(drop).read() == b"old"


# -- idempotent ingestion claims ---------------------------------------------------------

def test_a_second_delivery_of_a_file_being_ingested_stops_at_the_claim(aws, monkeypatch):
    from chalicelib.drops import S3Drop, ingest_drop
    from chalicelib.storage.ingestions import IngestionRepository

    key = "incoming/status/claimed.csv"
    body = f"{STATUS_HEADER}\nc-1,active,2023-01-25 17:00:00 UTC\n".encode()
    etag = s3_client().put_object(Bucket=settings.bucket, Key=key, Body=body)["ETag"]
    drop = S3Drop(settings.bucket, key, etag.strip('"'))
    records = IngestionRepository()
    assert records.claim(drop.ingestion_id, "first delivery") is not None  # still ingesting
    assert records.claim(drop.ingestion_id, "second delivery") is None
    second = ingest_drop(drop, settings)  # SQS delivered the event again meanwhile
    assert (second.status, second.source, int(second.rows_accepted)) == ("Running", "first delivery", 0)
    from chalicelib.storage.jobs import DatasetStateRepository
    assert DatasetStateRepository().latest_poll_at() is None  # nothing was ingested twice

    # the first worker died: once its claim has run out, the next delivery takes over
    import time as real_time
    later = real_time.time() + 1000
    monkeypatch.setattr("chalicelib.storage.ingestions.time",
                        type("Clock", (), {"time": staticmethod(lambda: later)}))
    third = ingest_drop(drop, settings)
    assert (third.status, int(third.rows_accepted)) == ("Complete", 1)
    assert records.claim(drop.ingestion_id, "after") is None  # done: nobody claims it again
    take_messages(settings.ingest_queue)


# -- presigned URLs expire ---------------------------------------------------------------

def test_download_urls_expire_after_15_minutes_by_default_and_the_setting_is_used(client, ingested,
                                                                                  monkeypatch):
    """The emulator does not enforce expiry, so the signed parameter is what is checked."""
    import dataclasses
    from urllib.parse import parse_qs, urlparse

    from chalicelib.settings import Settings

    monkeypatch.delenv("PRESIGN_SECONDS", raising=False)
    assert Settings.from_env().presign_seconds == 15 * 60
    monkeypatch.setenv("PRESIGN_SECONDS", "120")
    assert Settings.from_env().presign_seconds == 120
    app_module.dependencies.cache_clear()  # a new container: it reads the settings on first use
    assert app_module.dependencies().reports.settings.presign_seconds == 120

    report_id, view = run_report(client)
    expires = parse_qs(urlparse(view["download_url"]).query)["X-Amz-Expires"]
    assert expires == ["120"]
    monkeypatch.setattr(app_module.dependencies().reports, "settings",
                        dataclasses.replace(settings, presign_seconds=60))
    again = view_of(client, report_id)["download_url"]
    assert parse_qs(urlparse(again).query)["X-Amz-Expires"] == ["60"]


def test_the_packaged_api_requires_an_api_key_on_every_route_and_method():
    """What `chalice package --stage prod` writes into the RestAPI's swagger (the same
    generator, without building the deployment zip), and the usage plan beside it."""
    from chalice.deploy.swagger import CFNSwaggerGenerator
    from storemon_app.stack import StackApplier, load_template

    swagger = CFNSwaggerGenerator().generate_swagger(app_module.app)
    assert swagger["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key",
                                                         "in": "header"}
    methods = {(path, method): spec.get("security") for path, ops in swagger["paths"].items()
               for method, spec in ops.items()}
    assert {("/trigger_report", "post"), ("/trigger_report", "get"), ("/get_report", "get")} <= set(methods)
    # but the report page and its timelines by page token (README, Owner keys): a browser sends no key
    shared = {("/shared/reports/{report_id}", "get"), ("/shared/stores/{store_id}/timeline", "get")}
    assert all(methods.pop(route) is None for route in shared)
    assert all(security == [{"api_key": []}] for security in methods.values()), methods

    resources = load_template()["Resources"]
    plan = resources["ApiUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}]
    assert plan["Throttle"]["RateLimit"] > 0 and plan["Throttle"]["BurstLimit"] > 0
    assert resources["ApiUsagePlanKey"]["Properties"]["KeyId"] == {"Ref": "ApiKey"}
    # the local applier skips what only exists around a deployed API, and nothing else
    local = {logical for logical, _ in StackApplier("dev").validate()}
    assert "ApiUsagePlan" not in local and "ReportQueue" in local


# -- dead letters that someone reads ---------------------------------------------------------

def _dlq_bodies(queue: str) -> list[str]:
    from chalicelib.dead_letters import dead_letter_queue

    return [m["Body"] for m in take_messages(dead_letter_queue(queue))]


@pytest.mark.parametrize("body", ["not json", "{}", '{"report_id": "x", "part": "one"}', "[1]"])
def test_a_malformed_part_message_goes_to_the_dead_letters_without_a_crash_loop(client, aws, body):
    deliver_part(client, body)  # does not raise: SQS would redeliver it 5 times for nothing
    assert _dlq_bodies(settings.report_queue) == [body]


def test_a_dead_lettered_part_fails_its_report(client, ingested):
    report_id = trigger(client)
    body = take_messages(settings.report_queue)[0]["Body"]
    event = client.events.generate_sqs_event(message_bodies=[body, "garbage"],
                                             queue_name=settings.report_queue + "-dlq")
    client.lambda_.invoke("report_dead_letters", event)
    view = view_of(client, report_id)
    assert view["status"] == "Failed" and view["error_code"] == "DEAD_LETTER", view


def test_malformed_and_dead_lettered_ingest_events_end_in_a_recorded_failure(aws):
    from chalicelib.storage.ingestions import IngestionRepository

    take_messages(settings.ingest_queue)
    app_module.ingest_csv_drop(client_sqs_event('{"Records": [{"eventName": "ObjectCreated:Put"}]}', ""),
                               None)
    assert len(_dlq_bodies(settings.ingest_queue)) == 1

    key = "incoming/status/poison.csv"
    notification = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": settings.bucket}, "object": {"key": key, "eTag": "abc"}}}]})
    app_module.ingest_dead_letters(client_sqs_event(notification, ""), None)
    record = IngestionRepository().get(f"s3://{settings.bucket}/{key}#abc")
    assert record.status == "Failed"
    assert "dead-lettered" in record.error and "put the file again" in record.error


# -- structured logs -----------------------------------------------------------------------

def test_every_step_logs_a_json_line_with_its_ids(client, ingested, caplog):
    from chalicelib.logs import log

    caplog.set_level("INFO", logger="storemon")
    log.setLevel("INFO")
    try:
        report_id = trigger(client)
        for message in take_messages(settings.report_queue):
            event = client.events.generate_sqs_event(message_bodies=[message["Body"]],
                                                     queue_name=settings.report_queue)
            context = type("Context", (), {"aws_request_id": "req-" + message["MessageId"]})()
            app_module.compute_report_part(event, context)
    finally:
        log.setLevel("WARNING")
    lines = [json.loads(log.registered_formatter.format(r)) for r in caplog.records if r.name == "storemon"]
    assert all({"level", "message", "timestamp", "service"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("report_id") == report_id]
    assert {"report triggered", "report part done"} <= {line["message"] for line in mine}
    parts = [line for line in mine if line["message"] == "report part done"]
    assert len(parts) == settings.report_parts
    assert all(line["request_id"].startswith("req-") and "part" in line and line["message_id"]
               for line in parts)


# -- fault tests (bounded, loopback only) ----------------------------------------------------

def test_a_part_whose_invocation_is_lost_is_redelivered_and_the_report_completes(client, ingested):
    """A worker killed mid-part: its message was received and never deleted. The pump, like
    Lambda, gets it again once its visibility timeout ends. The test ends that timeout itself
    (ChangeMessageVisibility to 0) instead of waiting for a short one: a 1 s timeout could end
    while the other parts were still being pumped on a loaded machine, and the report then
    completed before the test looked at it."""
    import time

    from storemon_app.event_pump import EventPump

    report_id = trigger(client)
    pump = EventPump(app_module, wait_seconds=0)
    compute = next(m for m in pump.mappings if m.handler_name == "compute_report_part")
    url = pump.aws.queue_url(settings.report_queue)
    lost = pump.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1,
                                        VisibilityTimeout=600)["Messages"]
    assert len(lost) == 1  # ... and the invocation that had it died
    while pump.pump_once(compute):
        pass
    assert view_of(client, report_id)["status"] == "Running"
    pump.aws.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=lost[0]["ReceiptHandle"],
                                           VisibilityTimeout=0)  # ... and its visibility timeout ends
    deadline = time.monotonic() + 30
    while view_of(client, report_id)["status"] == "Running":
        assert time.monotonic() < deadline, "the lost part was not redelivered"
        pump.pump_once(compute)
        time.sleep(0.2)
    assert view_of(client, report_id)["status"] == "Complete"


def test_a_worker_that_cannot_reach_storage_ends_failed_with_a_clear_reason(client, ingested, monkeypatch):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError
    from chalicelib.settings import region

    report_id = trigger(client)
    unreachable = boto3.client("s3", region_name=region(), endpoint_url="http://127.0.0.1:9",
                               config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    monkeypatch.setattr(app_module.dependencies().aws, "s3", unreachable)
    body = take_messages(settings.report_queue)[0]["Body"]
    for _attempt in range(1, reporting.MAX_PART_ATTEMPTS):
        with pytest.raises(EndpointConnectionError):
            app_module.compute_report_part(
                client.events.generate_sqs_event(message_bodies=[body], queue_name=settings.report_queue),
                None)
        assert view_of(client, report_id)["status"] == "Running"
    deliver_part(client, body, attempts=reporting.MAX_PART_ATTEMPTS)
    view = view_of(client, report_id)
    assert view["status"] == "Failed" and view["error_code"] == "PART_FAILED"
    assert "127.0.0.1" not in view["error"]
