"""storemon: HTTP routes and queue handlers (the Lambda functions).

Handlers stay thin: they translate HTTP or SQS into calls on the services in
``chalicelib`` and back. All rules live in ``chalicelib.core``.
"""
from __future__ import annotations

import functools
import hmac
import json
import os
import time
import uuid
from typing import Any, Callable, Optional

from chalice import Chalice, Response
from chalice.app import SQSEvent

from chalicelib.dead_letters import dead_letter_queue
from chalicelib.dependencies import Dependencies
from chalicelib.drops import drops_from_notification
from chalicelib.logs import bind_request, log
from chalicelib.reporting import (
    FAILURES,
    ReportGone,
    ReportInputError,
    ReportPart,
    ReportService,
    TriggerError,
    job_view,
    parse_as_of,
)
from chalicelib.report_page import report_page_html
from chalicelib.settings import QueueNames
from chalicelib.timeline import UnknownStore, store_timeline

app = Chalice(app_name="storemon")
app.api.cors = False
#: The only settings read at import: Chalice's ``on_sqs_message`` decorators need the queue names.
QUEUES = QueueNames.from_env()

#: Deliveries of one part before the job is given up as Failed (the queue's DLQ takes 5).
MAX_PART_ATTEMPTS = 3
#: A job Running longer than this is reported Failed (its worker died unseen). Sized to the
#: retries: a part takes ~1 s, its function times out at 30 s, and a failed or lost delivery
#: comes back after the report queue's 90 s visibility timeout, so 3 attempts end within
#: 2 x 90 + 30 = 210 s (tests/test_pipeline_safety.py checks the three settings agree).
REPORT_TIMEOUT_SECONDS = 5 * 60


@functools.lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    """The container's services and clients, built on first use from the environment and kept
    (``dependencies.cache_clear()`` makes the next call build them anew: tests do, between
    emulators)."""
    return Dependencies.from_env()


def _service() -> ReportService:
    return dependencies().reports


#: Deployed stages: API Gateway refuses calls without a valid ``x-api-key`` (the usage
#: plan and key are in infra/resources.json). ``chalice local`` ignores this flag, so
#: locally ``STOREMON_API_KEY`` turns on the same check in the app (``_refusal``).
API_KEY_REQUIRED = True
#: What get_report can answer in: ``format=`` values and media types of ``Accept``.
FORMATS = {"json", "csv"}
_ACCEPTABLE = ("*/*", "application/*", "application/json", "text/*", "text/csv", "text/html")


def _error(status: int, message: str, **extra: Any) -> Response:
    return Response(body={"error": message, "status_code": status, **extra}, status_code=status)


def _refusal() -> Optional[Response]:
    """The error every route answers before doing anything: a missing or wrong local API
    key (401), or an ``Accept`` header asking only for what we cannot produce (406)."""
    request = app.current_request
    headers = request.headers or {}
    expected = os.environ.get("STOREMON_API_KEY")
    if expected and not hmac.compare_digest(headers.get("x-api-key", "").encode(), expected.encode()):
        return _error(401, "a valid API key is required in the x-api-key header")
    accept = headers.get("accept", "").strip()
    if accept:
        types = [item.split(";", 1)[0].strip().lower() for item in accept.split(",")]
        if not any(media in _ACCEPTABLE for media in types):
            return _error(406, f"cannot answer in {accept[:80]!r}: this API answers application/json "
                               "(and text/csv for a Complete report, text/html for its page)")
    return None


def _json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Unexpected errors answer JSON like every other error; the details go to the log.
    URI parameters (``/stores/{store_id}/...``) are passed on to the view."""
    @functools.wraps(view)
    def guarded(**uri_params: str) -> Any:
        bind_request(app.current_request.lambda_context)
        refusal = _refusal()
        if refusal is not None:
            return refusal
        try:
            return view(**uri_params)
        except Exception:
            log.exception("unhandled error in %s", view.__name__,
                          request_id=(app.current_request.context or {}).get("requestId"))
            return _error(500, "internal error; try again, and if it persists tell the operators the time "
                               "of the request")
    return guarded


@app.route("/trigger_report", methods=["POST", "GET"], api_key_required=API_KEY_REQUIRED,
           content_types=["application/json", "text/plain", "application/x-www-form-urlencoded"])
@_json_errors
def trigger_report() -> Response:
    """Start a report; the client polls ``get_report`` with the returned id.
    Optional ``as_of`` (ISO 8601, query parameter or JSON body): the report as of then."""
    try:
        raw_as_of = _as_of_argument()
        as_of = parse_as_of(raw_as_of) if raw_as_of is not None else None
    except ValueError as error:
        return _error(400, str(error))
    try:
        report_id = _service().trigger(as_of=as_of)
    except TriggerError as error:
        # The job exists and is Failed: say so with its id, so nobody waits on it.
        return _error(503, str(error), error_code=error.code, report_id=error.report_id)
    return Response(body={"report_id": report_id}, status_code=202)


def _as_of_argument() -> Any:
    request = app.current_request
    value = (request.query_params or {}).get("as_of")
    if value is None and request.raw_body:
        try:
            body = json.loads(request.raw_body)
        except ValueError:
            raise ValueError("the request body is not JSON: send {\"as_of\": \"<ISO 8601>\"} or nothing") from None
        value = body.get("as_of") if isinstance(body, dict) else None
    if value is not None and not isinstance(value, str):
        raise ValueError("as_of must be a string such as \"2023-01-25T18:00:00Z\"")
    return value


@app.route("/get_report", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def get_report() -> Any:
    params = app.current_request.query_params or {}
    if params.get("format", "json") not in FORMATS:
        return _error(406, f"format {params['format'][:20]!r} is not available; use json or csv")
    raw_id = (params.get("report_id") or "").strip()
    if not raw_id:
        return _error(400, "query parameter report_id is required")
    try:
        report_id = str(uuid.UUID(raw_id))
    except ValueError:
        return _error(400, f"report_id {raw_id[:80]!r} is not a UUID")
    service = _service()
    job = service.jobs.get(report_id)
    if job is None:
        return _error(404, f"no report with id {report_id}")
    if job.expires_at is not None and job.expires_at.timestamp() < time.time():
        return _error(410, FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=report_id)
    if job.status == "Running" and time.time() - job.created_at.timestamp() > REPORT_TIMEOUT_SECONDS:
        log.warning("report timed out", report_id=report_id, seconds=REPORT_TIMEOUT_SECONDS,
                    parts_done=sorted(int(p) for p in job.parts_done or ()), parts_total=int(job.parts_total))
        service.jobs.fail(report_id, "TIMED_OUT", FAILURES["TIMED_OUT"])
        job = service.jobs.get(report_id)
    view = job_view(job)
    if job.status != "Complete":
        return view
    accept = (app.current_request.headers or {}).get("accept", "")
    try:
        if params.get("format") == "csv" or "text/csv" in accept:
            return Response(body=service.csv_body(job).decode("utf-8"), status_code=200,
                            headers={"Content-Type": "text/csv",
                                     "Content-Disposition": f'attachment; filename="report-{report_id}.csv"'})
        service.check_csv_exists(job)
    except ReportGone:
        log.info("report CSV is gone", report_id=report_id)
        return _error(410, FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=report_id)
    view["download_url"] = service.download_url(job)
    view["detail_url"] = service.download_url(job, detail=True)
    return view


def _report_job(raw_id: str, service: ReportService) -> tuple[Any, Optional[Response]]:
    """The job of a ``report_id`` parameter, or the error to answer (400 not a UUID, 404 unknown)."""
    raw_id = (raw_id or "").strip()
    try:
        report_id = str(uuid.UUID(raw_id))
    except ValueError:
        return None, _error(400, f"report_id {raw_id[:80]!r} is not a UUID")
    job = service.jobs.get(report_id)
    if job is None:
        return None, _error(404, f"no report with id {report_id}")
    return job, None


@app.route("/stores/{store_id}/timeline", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def store_timeline_view(store_id: str) -> Any:
    """One store's week (business spans, polls, up/down segments and their evidence) as of a
    report's ``now`` (``report_id=``) or of ``as_of=`` (ISO 8601): the report's own numbers."""
    params = app.current_request.query_params or {}
    if len(store_id) > 200:
        return _error(400, "store_id is longer than 200 characters")
    if ("report_id" in params) == ("as_of" in params):
        return _error(400, "give exactly one of the query parameters report_id and as_of")
    service = _service()
    if "report_id" in params:
        job, error = _report_job(params["report_id"], service)
        if error is not None:
            return error
        if job.data_now is None:
            return _error(404, f"report {job.report_id} has no data to show a timeline of")
        now = int(job.data_now)
    else:
        try:
            now = parse_as_of(params["as_of"])
        except ValueError as error:
            return _error(400, str(error))
        if service.state.latest_poll_at() is None:
            return _error(404, FAILURES["NO_DATA"])
    try:
        return store_timeline(service, store_id, now)
    except UnknownStore:
        return _error(404, f"no store with id {store_id[:80]!r} in the data of that week")


@app.route("/reports/{report_id}", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def report_page(report_id: str) -> Any:
    """The report as one HTML page: fleet uptime, stores ranked by week downtime with a week
    strip each, ``page=`` (50 a page) and ``q=`` (store id contains)."""
    params = app.current_request.query_params or {}
    service = _service()
    job, error = _report_job(report_id, service)
    if error is not None:
        return error
    try:
        page = int(params.get("page", "1"))
    except ValueError:
        return _error(400, f"page {params['page'][:20]!r} is not a whole number")
    query = params.get("q", "").strip()
    if page < 1 or len(query) > 200:
        return _error(400, "page must be 1 or more and q at most 200 characters")
    if job.expires_at is not None and job.expires_at.timestamp() < time.time():
        return _error(410, FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=job.report_id)
    if job.status != "Complete":
        return _error(409, f"report {job.report_id} is {job.status}; its page exists once it is Complete",
                      report_id=job.report_id, report_status=job.status)
    try:
        body = report_page_html(service, job, page, query)
    except ReportGone:
        return _error(410, FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=job.report_id)
    return Response(body=body, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/trigger_report", methods=["PUT", "DELETE", "PATCH"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def trigger_report_other_methods() -> Response:
    """Answer wrong methods ourselves: Chalice's own 405 is not in the API's JSON shape."""
    return _not_allowed("GET, POST")


@app.route("/get_report", methods=["POST", "PUT", "DELETE", "PATCH"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def get_report_other_methods() -> Response:
    return _not_allowed("GET")


def _not_allowed(allowed: str) -> Response:
    response = _error(405, f"method {app.current_request.method} is not allowed here; use {allowed}")
    response.headers["Allow"] = allowed
    return response


@app.on_sqs_message(queue=QUEUES.report, batch_size=1)
def compute_report_part(event: SQSEvent) -> None:
    """One fan-out part of a report. Retries transient errors through SQS,
    then gives the job up as Failed so clients never wait forever."""
    bind_request(event.context)
    service = _service()
    for record in event:
        try:
            part = ReportPart.from_json(record.body)
        except (ValueError, KeyError, TypeError) as error:
            dependencies().dead_letters.forward(QUEUES.report, record.body, str(error), _message_id(record))
            continue
        attempts = int(record.to_dict().get("attributes", {}).get("ApproximateReceiveCount", "1"))
        ids = {"report_id": part.report_id, "part": part.part, "message_id": _message_id(record),
               "attempt": attempts}
        log.thread_safe_append_keys(**ids)  # on every line this part logs, wherever it is logged
        try:
            service.run_part(part)
        except ReportInputError:
            log.exception("report part cannot succeed", **ids)
            service.jobs.fail(part.report_id, "PART_FAILED", FAILURES["PART_FAILED"])
        except Exception:
            log.exception("report part failed", **ids)
            if attempts >= MAX_PART_ATTEMPTS:
                service.jobs.fail(part.report_id, "PART_FAILED", FAILURES["PART_FAILED"])
                continue
            raise


@app.on_sqs_message(queue=QUEUES.ingest, batch_size=1)
def ingest_csv_drop(event: SQSEvent) -> None:
    """A CSV landed under incoming/ in the bucket (S3 -> SQS notification)."""
    bind_request(event.context)
    for record in event:
        try:
            drops = drops_from_notification(record.body)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            dependencies().dead_letters.forward(QUEUES.ingest, record.body, str(error), _message_id(record))
            continue
        for drop in drops:
            log.thread_safe_append_keys(ingestion_id=drop.ingestion_id, message_id=_message_id(record))
            log.info("ingesting")
            dependencies().drops.ingest(drop)


@app.on_sqs_message(queue=dead_letter_queue(QUEUES.report), batch_size=10)
def report_dead_letters(event: SQSEvent) -> None:
    """Parts SQS gave up on: their reports become Failed (DEAD_LETTER), never silently stuck."""
    bind_request(event.context)
    for record in event:
        dependencies().dead_letters.settle_report(record.body, _message_id(record))


@app.on_sqs_message(queue=dead_letter_queue(QUEUES.ingest), batch_size=10)
def ingest_dead_letters(event: SQSEvent) -> None:
    """S3 events SQS gave up on: their ingestions become Failed with the reason."""
    bind_request(event.context)
    for record in event:
        dependencies().dead_letters.settle_ingest(record.body, _message_id(record))


def _message_id(record: Any) -> str:
    return str(record.to_dict().get("messageId", ""))
