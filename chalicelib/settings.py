"""Names and knobs of one deployment, read from the environment.

Chalice sets these per stage from ``.chalice/config.json``; the local runtime
loads the same file, so there is one source for every name. Nothing here is read
at import: the composition root (``chalicelib.dependencies``) calls
``Settings.from_env()`` once, on first use; ``app.py`` reads only the queue names
its decorators need (``QueueNames.from_env()``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _stage_prefix() -> str:
    return f"storemon-{_env('STOREMON_STAGE', 'dev')}"


@dataclass(frozen=True)
class QueueNames:
    """The queues Chalice's ``on_sqs_message`` decorators name when ``app.py`` is imported."""

    report: str
    ingest: str

    @classmethod
    def from_env(cls) -> "QueueNames":
        prefix = _stage_prefix()
        return cls(report=_env("REPORT_QUEUE", f"{prefix}-report-parts"),
                   ingest=_env("INGEST_QUEUE", f"{prefix}-ingest"))


@dataclass(frozen=True)
class Settings:
    stage: str
    polls_table: str
    business_hours_table: str
    timezones_table: str
    report_jobs_table: str
    ingestions_table: str
    dataset_state_table: str
    #: API keys bound to a set of store ids (issue 13): see ``chalicelib.owner_keys``.
    owner_keys_table: str
    bucket: str
    report_queue: str
    ingest_queue: str
    #: Stores are hashed into this many shards; polls are stored per (shard, hour).
    #: Changing it on a populated deployment needs a re-ingest (docs/ARCHITECTURE.md).
    poll_shards: int
    #: Largest block (bytes) a poll or roster item may hold; blocks split to fit (under half of 400 KB).
    poll_item_budget: int
    #: How many SQS messages (parallel worker invocations) one report fans out to.
    report_parts: int
    retention_days: int
    #: Rows per write batch when ingesting polls; bounds ingestion memory.
    ingest_batch_rows: int
    #: Lifetime of a report's download URL (``PRESIGN_SECONDS``, default 15 minutes): long
    #: enough to start a download, short enough that a leaked URL soon stops working.
    presign_seconds: int
    #: AWS region of the tables (PynamoDB needs it; boto3 clients read the same variables).
    region: str = "us-east-1"

    @classmethod
    def from_env(cls) -> "Settings":
        stage = _env("STOREMON_STAGE", "dev")
        prefix = _stage_prefix()
        queues = QueueNames.from_env()
        return cls(
            stage=stage,
            polls_table=_env("POLLS_TABLE", f"{prefix}-polls"),
            business_hours_table=_env("BUSINESS_HOURS_TABLE", f"{prefix}-business-hours"),
            timezones_table=_env("TIMEZONES_TABLE", f"{prefix}-timezones"),
            report_jobs_table=_env("REPORT_JOBS_TABLE", f"{prefix}-report-jobs"),
            ingestions_table=_env("INGESTIONS_TABLE", f"{prefix}-ingestions"),
            dataset_state_table=_env("DATASET_STATE_TABLE", f"{prefix}-dataset-state"),
            owner_keys_table=_env("OWNER_KEYS_TABLE", f"{prefix}-owner-keys"),
            bucket=_env("DATA_BUCKET", f"{prefix}-data"),
            report_queue=queues.report,
            ingest_queue=queues.ingest,
            poll_shards=int(_env("POLL_SHARDS", "16")),
            poll_item_budget=int(_env("POLL_ITEM_BUDGET", "180000")),
            report_parts=int(_env("REPORT_PARTS", "4")),
            retention_days=int(_env("POLL_RETENTION_DAYS", "30")),
            ingest_batch_rows=int(_env("INGEST_BATCH_ROWS", "250000")),
            presign_seconds=int(_env("PRESIGN_SECONDS", "900")),
            region=region(),
        )


def region() -> str:
    """The region botocore would pick from the environment, us-east-1 when none is set."""
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
