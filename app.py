"""storemon: HTTP routes and queue handlers (the Lambda functions).

Handlers stay thin: they translate HTTP or SQS into calls on the services in
``chalicelib`` and back. All rules live in ``chalicelib.core``.
"""
from __future__ import annotations

import functools
import json
import os
import time
import uuid
from typing import Any, Callable, Mapping, Optional, Union

from chalice import Chalice, Response
from chalice.app import Request, SQSEvent

from chalicelib.dead_letters import (
    dead_letter_queue,
    forward_to_dead_letters,
    settle_ingest_dead_letter,
    settle_report_dead_letter,
)
from chalicelib.drops import drops_from_notification, ingest_drop
from chalicelib.logs import bind_request, log
from chalicelib.owner_keys import (
    Caller,
    KeyRefused,
    identify,
    may_read,
    report_scope,
    store_ids_argument,
    token_matches,
)
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
from chalicelib.settings import settings
from chalicelib.storage.models import ReportJob
from chalicelib.storage.owner_keys import OwnerKeyRepository
from chalicelib.timeline import UnknownStore, store_timeline

app = Chalice(app_name="storemon")
app.api.cors = False

#: Deliveries of one part before the job is given up as Failed (the queue's DLQ takes 5).
MAX_PART_ATTEMPTS = 3
#: A job Running longer than this is reported Failed (its worker died unseen). Sized to the
#: retries: a part takes ~1 s, its function times out at 30 s, and a failed or lost delivery
#: comes back after the report queue's 90 s visibility timeout, so 3 attempts end within
#: 2 x 90 + 30 = 210 s (tests/integration/test_pipeline_safety.py checks the three settings agree).
REPORT_TIMEOUT_SECONDS = 5 * 60


def _service() -> ReportService:
    return ReportService(settings)


#: Deployed stages: API Gateway refuses calls without a valid ``x-api-key`` (the usage
#: plan and key are in infra/resources.json). ``chalice local`` ignores this flag, so
#: locally ``STOREMON_API_KEY`` turns on the same check in the app (``_refusal``).
API_KEY_REQUIRED = True
#: What get_report can answer in: ``format=`` values and media types of ``Accept``.
FORMATS = {"json", "csv"}
_ACCEPTABLE = ("*/*", "application/*", "application/json", "text/*", "text/csv", "text/html")


def _error(status: int, message: str, **extra: Any) -> Response:
    return Response(body={"error": message, "status_code": status, **extra}, status_code=status)


#: Routes a report's page token (``?token=``) opens instead of a key: the page and the
#: timelines it links to. The ``/shared/...`` pair needs no key at API Gateway either.
TOKEN_ROUTES = {"report_page", "store_timeline_view", "shared_report_page", "shared_store_timeline"}
SHARED_ROUTES = {"shared_report_page", "shared_store_timeline"}


def _owner_keys() -> OwnerKeyRepository:
    return OwnerKeyRepository()


def _caller() -> Optional[Caller]:
    """Who the current request is (``chalicelib.owner_keys``); None when a page token,
    not a key, authorises it (the view then checks the token against the report)."""
    return getattr(app.current_request, "storemon_caller", None)


def _key_caller() -> Caller:
    """The caller of a route that takes no page token: never guessed (fail closed)."""
    caller = _caller()
    if caller is None:
        raise RuntimeError("the request's API key was not checked (_refusal) before the view")
    return caller


def _refusal(route: str = "") -> Optional[Response]:
    """The error every route answers before doing anything: a missing, wrong or revoked
    API key (401), or an ``Accept`` header asking only for what we cannot produce (406).
    A request with a page token on a token route is checked by its view instead."""
    request = _request()
    headers: Mapping[str, str] = request.headers or {}
    by_token = route in SHARED_ROUTES or (route in TOKEN_ROUTES and "token" in _params())
    if not by_token:
        try:
            caller = identify(headers.get("x-api-key", ""), _owner_keys(), os.environ.get("STOREMON_API_KEY"))
        except KeyRefused as refused:
            return _error(401, str(refused))
        setattr(request, "storemon_caller", caller)  # noqa: B010 (Request declares no such attribute)
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
        refusal = _refusal(view.__name__)
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
    Optional ``as_of`` (ISO 8601, query parameter or JSON body): the report as of then.
    Optional ``store_ids`` (JSON list, or comma-separated query parameter): only those
    stores. An owner key's report holds only its stores (``chalicelib.owner_keys``)."""
    caller = _key_caller()
    try:
        raw_as_of, raw_stores = _trigger_arguments()
        as_of = parse_as_of(raw_as_of) if raw_as_of is not None else None
        stores = report_scope(caller, store_ids_argument(raw_stores))
    except ValueError as error:
        return _error(400, str(error))
    try:
        report_id = _service().trigger(as_of=as_of, store_ids=stores, owner_key_id=caller.key_id)
    except TriggerError as error:
        # The job exists and is Failed: say so with its id, so nobody waits on it.
        return _error(503, str(error), error_code=error.code, report_id=error.report_id)
    return Response(body={"report_id": report_id}, status_code=202)


def _trigger_arguments() -> tuple[Any, Any]:
    """``as_of`` and ``store_ids``, each from the query string or else the JSON body."""
    request = _request()
    params = _params()
    names = ("as_of", "store_ids")
    values = [params.get(name) for name in names]
    if None in values and request.raw_body:
        try:
            body = json.loads(request.raw_body)
        except ValueError:
            raise ValueError("the request body is not JSON: send {\"as_of\": \"<ISO 8601>\"} "
                             "or nothing") from None
        body = body if isinstance(body, dict) else {}
        values = [body.get(name) if value is None else value
                  for name, value in zip(names, values, strict=True)]
    if values[0] is not None and not isinstance(values[0], str):
        raise ValueError("as_of must be a string such as \"2023-01-25T18:00:00Z\"")
    return values[0], values[1]


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
    if job is None or not may_read(_key_caller(), job.owner_key_id):
        return _error(404, f"no report with id {report_id}")  # another owner's: as if unknown
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
    view.update(_page_url(job))
    return view


def _request() -> Request:
    request = app.current_request
    assert request is not None, "only called while handling a request"
    return request


def _page_url(job: Optional[ReportJob]) -> dict[str, str]:
    """``page_url``: the report page's capability URL (``/shared/reports/{id}?token=``),
    absolute when the request says where the API is (its Host and, deployed, the stage in
    its path). Nothing for a job made before page tokens."""
    if job is None or not job.page_token:
        return {}
    request = _request()
    headers: Mapping[str, str] = request.headers or {}
    context: Mapping[str, Any] = request.context or {}
    path = f"/shared/reports/{job.report_id}?token={job.page_token}"
    host = headers.get("host")
    if not host:
        return {"page_url": path}
    full, resource = str(context.get("path") or ""), str(context.get("resourcePath") or "")
    stage = full[:-len(resource)] if resource and full.endswith(resource) else ""
    return {"page_url": f"{headers.get('x-forwarded-proto', 'http')}://{host}{stage}{path}"}


def _report_job(raw_id: str, service: ReportService) -> tuple[Any, Optional[Response]]:
    """The job of a ``report_id`` parameter, or the error to answer (400 not a UUID, 404
    unknown, or not this caller's: with a page token, not that report's token)."""
    raw_id = (raw_id or "").strip()
    try:
        report_id = str(uuid.UUID(raw_id))
    except ValueError:
        return None, _error(400, f"report_id {raw_id[:80]!r} is not a UUID")
    job = service.jobs.get(report_id)
    caller = _caller()
    if job is None:
        readable = False
    elif caller is None:
        readable = token_matches(job.page_token, _token())
    else:
        readable = may_read(caller, job.owner_key_id)
    if not readable:
        return None, _error(404, f"no report with id {report_id}")
    return job, None


def _token() -> str:
    return _params().get("token", "")


def _params() -> dict[str, str]:
    return dict(_request().query_params or {})


@app.route("/stores/{store_id}/timeline", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def store_timeline_view(store_id: str) -> Any:
    """One store's week (business spans, polls, up/down segments and their evidence) as of a
    report's ``now`` (``report_id=``) or of ``as_of=`` (ISO 8601): the report's own numbers."""
    return _timeline(store_id)


def _timeline(store_id: str) -> Any:
    params = _params()
    if len(store_id) > 200:
        return _error(400, "store_id is longer than 200 characters")
    if ("report_id" in params) == ("as_of" in params):
        return _error(400, "give exactly one of the query parameters report_id and as_of")
    service = _service()
    now = _timeline_now(store_id, params, service)
    if isinstance(now, Response):
        return now
    try:
        return store_timeline(service, store_id, now)
    except UnknownStore:
        return _unknown_store(store_id)


def _unknown_store(store_id: str) -> Response:
    return _error(404, f"no store with id {store_id[:80]!r} in the data of that week")


def _timeline_now(store_id: str, params: dict[str, str], service: ReportService) -> Union[int, Response]:
    """The "now" of a timeline (its report's, or ``as_of``), or the error to answer: a store
    outside the report's stores, or outside the caller's, is as unknown as one never seen."""
    caller = _caller()
    if "report_id" in params:
        job, error = _report_job(params["report_id"], service)
        if error is not None:
            return error
        if job.data_now is None:
            return _error(404, f"report {job.report_id} has no data to show a timeline of")
        if job.store_ids is not None and store_id not in job.store_ids:
            return _unknown_store(store_id)
        return int(job.data_now)
    if caller is None:
        return _error(400, "a page token goes with report_id, not as_of")
    if not caller.sees(store_id):
        return _unknown_store(store_id)
    try:
        now = parse_as_of(params["as_of"])
    except ValueError as error:
        return _error(400, str(error))
    if service.state.latest_poll_at() is None:
        return _error(404, FAILURES["NO_DATA"])
    return now


@app.route("/reports/{report_id}", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def report_page(report_id: str) -> Any:
    """The report as one HTML page: fleet uptime, stores ranked by week downtime with a week
    strip each, ``page=`` (50 a page) and ``q=`` (store id contains)."""
    return _page(report_id)


def _page(report_id: str) -> Any:
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
        body = report_page_html(service, job, page, query, token=_token() or None)
    except ReportGone:
        return _error(410, FAILURES["REPORT_EXPIRED"], error_code="REPORT_EXPIRED", report_id=job.report_id)
    return Response(body=body, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/shared/reports/{report_id}", methods=["GET"], api_key_required=False)
@_json_errors
def shared_report_page(report_id: str) -> Any:
    """The report page by its ``page_url`` (``?token=``), with no API key: a browser cannot
    send one. API Gateway lets it through; the token is the whole check (404 without it)."""
    return _page(report_id)


@app.route("/shared/stores/{store_id}/timeline", methods=["GET"], api_key_required=False)
@_json_errors
def shared_store_timeline(store_id: str) -> Any:
    """A timeline the shared page links to: ``report_id`` and that report's ``token``."""
    return _timeline(store_id)


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


@app.on_sqs_message(queue=settings.report_queue, batch_size=1)
def compute_report_part(event: SQSEvent) -> None:
    """One fan-out part of a report. Retries transient errors through SQS,
    then gives the job up as Failed so clients never wait forever."""
    bind_request(event.context)
    service = _service()
    for record in event:
        try:
            part = ReportPart.from_json(record.body)
        except (ValueError, KeyError, TypeError) as error:
            forward_to_dead_letters(settings.report_queue, record.body, str(error), _message_id(record))
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


@app.on_sqs_message(queue=settings.ingest_queue, batch_size=1)
def ingest_csv_drop(event: SQSEvent) -> None:
    """A CSV landed under incoming/ in the bucket (S3 -> SQS notification)."""
    bind_request(event.context)
    for record in event:
        try:
            drops = drops_from_notification(record.body)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            forward_to_dead_letters(settings.ingest_queue, record.body, str(error), _message_id(record))
            continue
        for drop in drops:
            log.thread_safe_append_keys(ingestion_id=drop.ingestion_id, message_id=_message_id(record))
            log.info("ingesting")
            ingest_drop(drop, settings)


@app.on_sqs_message(queue=dead_letter_queue(settings.report_queue), batch_size=10)
def report_dead_letters(event: SQSEvent) -> None:
    """Parts SQS gave up on: their reports become Failed (DEAD_LETTER), never silently stuck."""
    bind_request(event.context)
    for record in event:
        settle_report_dead_letter(record.body, _message_id(record))


@app.on_sqs_message(queue=dead_letter_queue(settings.ingest_queue), batch_size=10)
def ingest_dead_letters(event: SQSEvent) -> None:
    """S3 events SQS gave up on: their ingestions become Failed with the reason."""
    bind_request(event.context)
    for record in event:
        settle_ingest_dead_letter(record.body, _message_id(record))


def _message_id(record: Any) -> str:
    return str(record.to_dict().get("messageId", ""))
