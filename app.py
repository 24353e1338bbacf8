"""storemon: HTTP routes and queue handlers (the Lambda functions).

Handlers stay thin: they translate HTTP or SQS into calls on the services in
``chalicelib`` and back. All rules live in ``chalicelib.core``.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from chalice import Chalice, Response
from chalice.app import SQSEvent

from chalicelib.drops import drops_from_notification, ingest_drop
from chalicelib.reporting import ReportInputError, ReportPart, ReportService, job_view, parse_as_of
from chalicelib.settings import settings

app = Chalice(app_name="storemon")
app.api.cors = False

#: A job Running longer than this is reported Failed (its worker died unseen).
REPORT_TIMEOUT_SECONDS = 15 * 60
#: Deliveries of one part before the job is given up as Failed (the queue's DLQ takes 5).
MAX_PART_ATTEMPTS = 3


def _service() -> ReportService:
    return ReportService(settings)


def _error(status: int, message: str) -> Response:
    return Response(body={"error": message, "status_code": status}, status_code=status)


@app.route("/trigger_report", methods=["POST", "GET"], content_types=["application/json", "text/plain",
                                                                     "application/x-www-form-urlencoded"])
def trigger_report() -> Response:
    """Start a report; the client polls ``get_report`` with the returned id.
    Optional ``as_of`` (ISO 8601, query parameter or JSON body): the report as of then."""
    try:
        raw_as_of = _as_of_argument()
        as_of = parse_as_of(raw_as_of) if raw_as_of is not None else None
    except ValueError as error:
        return _error(400, str(error))
    report_id = _service().trigger(as_of=as_of)
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


@app.route("/get_report", methods=["GET"])
def get_report() -> Any:
    params = app.current_request.query_params or {}
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
    if job.status == "Running" and time.time() - job.created_at.timestamp() > REPORT_TIMEOUT_SECONDS:
        service.jobs.fail(report_id, f"the report did not finish within {REPORT_TIMEOUT_SECONDS} s")
        job = service.jobs.get(report_id)
    view = job_view(job)
    if job.status != "Complete":
        return view
    accept = (app.current_request.headers or {}).get("accept", "")
    if params.get("format") == "csv" or "text/csv" in accept:
        return Response(body=service.csv_body(job).decode("utf-8"), status_code=200,
                        headers={"Content-Type": "text/csv",
                                 "Content-Disposition": f'attachment; filename="report-{report_id}.csv"'})
    view["download_url"] = service.download_url(job)
    view["detail_url"] = service.download_url(job, detail=True)
    return view


@app.on_sqs_message(queue=settings.report_queue, batch_size=1)
def compute_report_part(event: SQSEvent) -> None:
    """One fan-out part of a report. Retries transient errors through SQS,
    then gives the job up as Failed so clients never wait forever."""
    service = _service()
    for record in event:
        part = ReportPart.from_json(record.body)
        attempts = int(record.to_dict().get("attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            service.run_part(part)
        except ReportInputError as error:
            service.jobs.fail(part.report_id, str(error))
        except Exception as error:
            app.log.exception("report %s part %s failed (attempt %s)", part.report_id, part.part, attempts)
            if attempts >= MAX_PART_ATTEMPTS:
                service.jobs.fail(part.report_id, f"part {part.part} failed {attempts} times: "
                                                  f"{type(error).__name__}: {error}")
                continue
            raise


@app.on_sqs_message(queue=settings.ingest_queue, batch_size=1)
def ingest_csv_drop(event: SQSEvent) -> None:
    """A CSV landed under incoming/ in the bucket (S3 -> SQS notification)."""
    for record in event:
        for drop in drops_from_notification(record.body):
            ingest_drop(drop, settings)
