"""One structured logger for every handler: JSON lines with the ids that tie a line to a
report or a file (report_id, part, message_id, request_id, ingestion_id).

AWS Lambda Powertools' Logger is the ecosystem's standard for this (CloudWatch Logs
Insights queries its fields directly). On Lambda it logs at INFO (``LOG_LEVEL`` or
``POWERTOOLS_LOG_LEVEL`` override); off Lambda (the local stack, tests, the CLI) at
WARNING unless ``STOREMON_LOG_LEVEL`` says otherwise, so terminals stay readable.
"""
from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger


def _level() -> str:
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return os.environ.get("LOG_LEVEL") or os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO"
    return os.environ.get("STOREMON_LOG_LEVEL") or "WARNING"


log = Logger(service="storemon", level=_level())


def bind_request(context: Any) -> None:
    """Tag this thread's following lines with the invocation's request id (Lambda's
    ``aws_request_id``; API Gateway's id for HTTP). Thread-local: the local event pump
    runs several invocations at once in one process."""
    log.thread_safe_clear_keys()
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        log.thread_safe_append_keys(request_id=request_id)
