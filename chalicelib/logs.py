"""One structured logger for every handler: JSON lines with the ids that tie a line to a
report or a file (report_id, part, message_id, request_id, ingestion_id).

AWS Lambda Powertools' Logger is the ecosystem's standard for this (CloudWatch Logs
Insights queries its fields directly). On Lambda it logs at INFO (``LOG_LEVEL`` or
``POWERTOOLS_LOG_LEVEL`` override); off Lambda (the local stack, tests, the CLI) at
WARNING unless ``STOREMON_LOG_LEVEL`` says otherwise, so terminals stay readable.
"""
from __future__ import annotations

import os

from aws_lambda_powertools import Logger


def _level() -> str:
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return os.environ.get("LOG_LEVEL") or os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO"
    return os.environ.get("STOREMON_LOG_LEVEL") or "WARNING"


log = Logger(service="storemon", level=_level())
