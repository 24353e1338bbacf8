"""storemon: HTTP routes and queue handlers (the Lambda functions).

Handlers stay thin: they translate HTTP or SQS into calls on the services in
``chalicelib`` and back. All rules live in ``chalicelib.core``.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Iterator, Mapping, Optional

from aws_lambda_powertools.utilities.data_classes import SQSEvent as LambdaSQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Chalice, Response
from chalice.app import Request, SQSEvent

from chalicelib.dead_letters import dead_letter_queue
from chalicelib.dependencies import Dependencies
from chalicelib.drops import drops_from_notification
from chalicelib.errors import BadRequest, Conflict, Gone, NotFound, RequestError, Unavailable
from chalicelib.logs import bind_request, log
from chalicelib.negotiation import prefers_csv
from chalicelib.owner_keys import (
    Caller,
    KeyRefused,
    identify,
    may_read,
    report_scope,
    store_ids_argument,
    token_matches,
)
from chalicelib.report_page import report_page_html
from chalicelib.reporting import (
    FAILURES,
    ReportPart,
    ReportService,
    attachment,
    job_view,
    parse_as_of,
    parse_report_id,
    settle_heap_once,
)
from chalicelib.settings import QueueNames
from chalicelib.storage.models import JobStatus, ReportJob
from chalicelib.timeline import UnknownStore, store_timeline

app = Chalice(app_name="storemon")
app.api.cors = False
#: The only settings read at import: Chalice's ``on_sqs_message`` decorators need the queue names.
QUEUES = QueueNames.from_env()


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
#: The one place a domain error becomes an HTTP status (``chalicelib.errors``).
_STATUS_OF: tuple[tuple[type[RequestError], int], ...] = (
    (BadRequest, 400), (NotFound, 404), (Conflict, 409), (Gone, 410), (Unavailable, 503))


def _error(status: int, message: str, **extra: Any) -> Response:
    return Response(body={"error": message, "status_code": status, **extra}, status_code=status)


def _request() -> Request:
    request = app.current_request
    assert request is not None, "a route runs with a current request"
    return request


def _params() -> dict[str, str]:
    params: dict[str, str] = dict(_request().query_params or {})
    return params


def _headers() -> dict[str, str]:
    headers: dict[str, str] = dict(_request().headers or {})
    return headers


#: Routes a report's page token (``?token=``) opens instead of a key: the page and the
#: timelines it links to. The ``/shared/...`` pair needs no key at API Gateway either.
TOKEN_ROUTES = {"report_page", "store_timeline_view", "shared_report_page", "shared_store_timeline"}
SHARED_ROUTES = {"shared_report_page", "shared_store_timeline"}


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


def _token() -> str:
    return _params().get("token", "")


def _refusal(route: str = "") -> Optional[Response]:
    """The error every route answers before doing anything: a missing, wrong or revoked
    API key (401), or an ``Accept`` header asking only for what we cannot produce (406).
    A request with a page token on a token route is checked by its view instead."""
    request = _request()
    headers = _headers()
    by_token = route in SHARED_ROUTES or (route in TOKEN_ROUTES and "token" in _params())
    if not by_token:
        try:
            caller = identify(headers.get("x-api-key", ""), dependencies().owner_keys,
                              os.environ.get("STOREMON_API_KEY"))
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


def _translated(error: RequestError) -> Response:
    status = next(code for kind, code in _STATUS_OF if isinstance(error, kind))
    return _error(status, error.message, **error.details)


def _json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors answer their status (``_STATUS_OF``); unexpected errors answer JSON 500 like
    every other error, the details go to the log. URI parameters (``/stores/{store_id}/...``)
    are passed on to the view."""
    @functools.wraps(view)
    def guarded(**uri_params: str) -> Any:
        bind_request(_request().lambda_context)
        refusal = _refusal(view.__name__)
        if refusal is not None:
            return refusal
        try:
            return view(**uri_params)
        except RequestError as error:
            return _translated(error)
        except Exception:
            log.exception("unhandled error in %s", view.__name__,
                          request_id=(_request().context or {}).get("requestId"))
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
        raise BadRequest(str(error)) from None
    report_id = _service().trigger(as_of=as_of, store_ids=stores, owner_key_id=caller.key_id,
                                   named=raw_stores is not None)
    return Response(body={"report_id": report_id}, status_code=202)


def _trigger_arguments() -> tuple[Any, Any]:
    """``as_of`` and ``store_ids``, each from the query string or else the JSON body."""
    request = _request()
    params = _params()
    names = ("as_of", "store_ids")
    values: list[Any] = [params.get(name) for name in names]
    if request.raw_body and request.raw_body.strip():
        try:
            body = json.loads(request.raw_body)
        except ValueError:
            raise BadRequest("the request body is not JSON: send {\"as_of\": \"<ISO 8601>\"} "
                             "or nothing") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object such as "
                             "{\"as_of\": \"2023-01-25T18:00:00Z\", \"store_ids\": [\"…\"]}, or nothing")
        unknown = sorted(str(key)[:40] for key in body if key not in names)
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown[:5]))} in the request "
                             "body; trigger_report takes as_of and store_ids")
        values = [body.get(name) if value is None else value
                  for name, value in zip(names, values, strict=True)]
    if values[0] is not None and not isinstance(values[0], str):
        raise BadRequest("as_of must be a string such as \"2023-01-25T18:00:00Z\"")
    return values[0], values[1]


def _readable_job(raw_id: str) -> ReportJob:
    """The job of a ``report_id`` parameter for this caller: ``BadRequest`` when not a UUID,
    ``NotFound`` when unknown or not this caller's (with a page token: not that report's
    token), as if unknown."""
    report_id = parse_report_id(raw_id)
    job = _service().jobs.get(report_id)
    caller = _caller()
    if job is None:
        readable = False
    elif caller is None:
        readable = token_matches(job.page_token, _token())
    else:
        readable = may_read(caller, job.owner_key_id)
    if not readable or job is None:
        raise NotFound(f"no report with id {report_id}")
    return job


def _page_url(job: ReportJob) -> dict[str, str]:
    """``page_url``: the report page's capability URL (``/shared/reports/{id}?token=``),
    absolute when the request says where the API is (its Host and, deployed, the stage in
    its path). Nothing for a job made before page tokens."""
    if not job.page_token:
        return {}
    request = _request()
    headers = _headers()
    context: Mapping[str, Any] = request.context or {}
    path = f"/shared/reports/{job.report_id}?token={job.page_token}"
    host = headers.get("host")
    if not host:
        return {"page_url": path}
    full, resource = str(context.get("path") or ""), str(context.get("resourcePath") or "")
    stage = full[:-len(resource)] if resource and full.endswith(resource) else ""
    return {"page_url": f"{headers.get('x-forwarded-proto', 'http')}://{host}{stage}{path}"}


@app.route("/get_report", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def get_report() -> Any:
    params = _params()
    if params.get("format", "json") not in FORMATS:
        return _error(406, f"format {params['format'][:20]!r} is not available; use json or csv")
    if not (params.get("report_id") or "").strip():
        raise BadRequest("query parameter report_id is required")
    _key_caller()  # not a token route: a caller was identified, or this fails closed
    service = _service()
    job = service.current(_readable_job(params["report_id"]))
    view = job_view(job)
    if job.status != JobStatus.COMPLETE:
        return view
    wants_csv = params.get("format") == "csv" or (
        params.get("format") != "json" and prefers_csv(_headers().get("accept", "")))
    if wants_csv:
        headers: dict[str, str | list[str]] = {"Content-Type": "text/csv",
                                               "Content-Disposition": attachment(job.report_id)}
        return Response(body=service.csv_body(job).decode("utf-8"), status_code=200, headers=headers)
    service.check_csv_exists(job)
    view["download_url"] = service.download_url(job)
    view["detail_url"] = service.download_url(job, detail=True)
    view.update(_page_url(job))
    return view


@app.route("/stores/{store_id}/timeline", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def store_timeline_view(store_id: str) -> Any:
    """One store's week (business spans, polls, up/down segments and their evidence) as of a
    report's ``now`` (``report_id=``) or of ``as_of=`` (ISO 8601): the report's own numbers."""
    return _timeline(store_id)


def _timeline(store_id: str) -> Any:
    params = _params()
    if len(store_id) > 200:
        raise BadRequest("store_id is longer than 200 characters")
    if ("report_id" in params) == ("as_of" in params):
        raise BadRequest("give exactly one of the query parameters report_id and as_of")
    service = _service()
    return store_timeline(service, store_id, _timeline_now(store_id, params, service))


def _timeline_now(store_id: str, params: dict[str, str], service: ReportService) -> int:
    """The "now" of a timeline (its report's, or ``as_of``): a store outside the report's
    stores, or outside the caller's, is as unknown as one never seen."""
    caller = _caller()
    if "report_id" in params:
        job = _readable_job(params["report_id"])
        if job.data_now is None:
            raise NotFound(f"report {job.report_id} has no data to show a timeline of")
        if job.store_ids is not None and store_id not in job.store_ids:
            raise UnknownStore(store_id)
        return int(job.data_now)
    if caller is None:
        raise BadRequest("a page token goes with report_id, not as_of")
    if not caller.sees(store_id):
        raise UnknownStore(store_id)
    now = parse_as_of(params["as_of"])
    if not service.has_data():
        raise NotFound(FAILURES["NO_DATA"])
    return now


@app.route("/reports/{report_id}", methods=["GET"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def report_page(report_id: str) -> Any:
    """The report as one HTML page: fleet uptime, stores ranked by week downtime with a week
    strip each, ``page=`` (50 a page) and ``q=`` (store id contains)."""
    return _page(report_id)


def _page(report_id: str) -> Any:
    service = _service()
    job = _readable_job(report_id)
    page, query = _page_arguments(_params())
    service.check_not_expired(job)
    if job.status != JobStatus.COMPLETE:
        raise Conflict(f"report {job.report_id} is {job.status.value}; its page exists once it is Complete",
                       report_id=job.report_id, report_status=job.status.value)
    body = report_page_html(service, job, page, query, token=_token() or None)
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


def _page_arguments(params: dict[str, str]) -> tuple[int, str]:
    try:
        page = int(params.get("page", "1"))
    except ValueError:
        raise BadRequest(f"page {params['page'][:20]!r} is not a whole number") from None
    query = params.get("q", "").strip()
    if page < 1 or len(query) > 200:
        raise BadRequest("page must be 1 or more and q at most 200 characters")
    return page, query


@app.route("/trigger_report", methods=["PUT", "DELETE", "PATCH"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def trigger_report_other_methods() -> Response:
    """Answer wrong methods ourselves: Chalice's own 405 is not in the API's JSON shape."""
    return _not_allowed("GET, POST")


@app.route("/get_report", methods=["POST", "PUT", "DELETE", "PATCH"], api_key_required=API_KEY_REQUIRED)
@_json_errors
def get_report_other_methods() -> Response:
    return _not_allowed("GET")


_OTHER_METHODS = ["POST", "PUT", "DELETE", "PATCH"]


@app.route("/stores/{store_id}/timeline", methods=_OTHER_METHODS, api_key_required=API_KEY_REQUIRED)
@_json_errors
def store_timeline_other_methods(store_id: str) -> Response:
    return _not_allowed("GET")


@app.route("/reports/{report_id}", methods=_OTHER_METHODS, api_key_required=API_KEY_REQUIRED)
@_json_errors
def report_page_other_methods(report_id: str) -> Response:
    return _not_allowed("GET")


def _not_allowed(allowed: str) -> Response:
    response = _error(405, f"method {_request().method} is not allowed here; use {allowed}")
    response.headers["Allow"] = allowed
    return response


def _records(event: SQSEvent) -> Iterator[SQSRecord]:
    """The event's records through Powertools' typed SQS data classes."""
    return LambdaSQSEvent(event.to_dict()).records


@app.on_sqs_message(queue=QUEUES.report, batch_size=1)
def compute_report_part(event: SQSEvent) -> None:
    """One fan-out part of a report; the service decides between a retry (raise) and giving
    the job up (``ReportService.deliver_part``)."""
    bind_request(event.context)
    service = _service()
    settle_heap_once()  # the worker's imports and clients out of the part's collections
    for record in _records(event):
        try:
            part = ReportPart.from_json(record.body)
        except (ValueError, KeyError, TypeError) as error:
            dependencies().dead_letters.forward(QUEUES.report, record.body, str(error), record.message_id)
            continue
        attempt = int(record.attributes.approximate_receive_count)
        ids = {"report_id": part.report_id, "part": part.part, "message_id": record.message_id,
               "attempt": attempt}
        log.thread_safe_append_keys(**ids)  # on every line this part logs, wherever it is logged
        service.deliver_part(part, attempt, ids)


@app.on_sqs_message(queue=QUEUES.ingest, batch_size=1)
def ingest_csv_drop(event: SQSEvent) -> None:
    """A CSV landed under incoming/ in the bucket (S3 -> SQS notification)."""
    bind_request(event.context)
    for record in _records(event):
        try:
            drops = drops_from_notification(record.body)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            dependencies().dead_letters.forward(QUEUES.ingest, record.body, str(error), record.message_id)
            continue
        for drop in drops:
            log.thread_safe_append_keys(ingestion_id=drop.ingestion_id, message_id=record.message_id)
            log.info("ingesting")
            dependencies().drops.ingest(drop)


@app.on_sqs_message(queue=dead_letter_queue(QUEUES.report), batch_size=10)
def report_dead_letters(event: SQSEvent) -> None:
    """Parts SQS gave up on: their reports become Failed (DEAD_LETTER), never silently stuck."""
    bind_request(event.context)
    for record in _records(event):
        dependencies().dead_letters.settle_report(record.body, record.message_id)


@app.on_sqs_message(queue=dead_letter_queue(QUEUES.ingest), batch_size=10)
def ingest_dead_letters(event: SQSEvent) -> None:
    """S3 events SQS gave up on: their ingestions become Failed with the reason."""
    bind_request(event.context)
    for record in _records(event):
        dependencies().dead_letters.settle_ingest(record.body, record.message_id)
