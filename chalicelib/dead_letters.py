"""Dead letters that someone reads: what reaches a DLQ ends in a recorded failure.

Each queue sends a message to its dead-letter queue after 5 failed deliveries (or
the handler forwards a message it cannot even parse, so it does not crash-loop).
The drain functions (``app.report_dead_letters``, ``app.ingest_dead_letters``) mark
the report or the ingestion Failed with the reason, and log the message with its
ids; README "Operations" says how to replay.
"""
from __future__ import annotations

from typing import Any

from chalicelib.aws import AwsClients
from chalicelib.drops import drops_from_notification
from chalicelib.logs import log
from chalicelib.reporting import FAILURES, ReportPart
from chalicelib.storage.ingestions import IngestionRepository
from chalicelib.storage.jobs import ReportJobRepository
from chalicelib.storage.models import JobStatus

DEAD_LETTER_SUFFIX = "-dlq"
INGEST_DEAD_LETTER_ERROR = ("the file's event was dead-lettered after repeated failures; the details "
                            "are in the logs under this ingestion id. Replay: put the file again")


def dead_letter_queue(queue: str) -> str:
    """The DLQ of ``queue`` (infra/resources.json names them so)."""
    return queue + DEAD_LETTER_SUFFIX


class DeadLetters:
    """Forward unparseable messages to their DLQ, and settle what reaches one."""

    def __init__(self, aws: AwsClients, jobs: ReportJobRepository, ingestions: IngestionRepository) -> None:
        self.aws = aws
        self.jobs = jobs
        self.ingestions = ingestions

    def forward(self, queue: str, body: str, reason: str, message_id: str = "") -> None:
        """Move a message its handler cannot parse straight to the DLQ: retrying cannot help."""
        log.error("malformed message sent to the dead-letter queue: %s", reason, queue=queue,
                  message_id=message_id, body=body[:500])
        self.aws.sqs.send_message(QueueUrl=self.aws.queue_url(dead_letter_queue(queue)), MessageBody=body)

    def settle_report(self, body: str, message_id: str = "") -> bool:
        """Mark the part's report Failed (DEAD_LETTER); False for a message that names none."""
        try:
            part = ReportPart.from_json(body)
        except (ValueError, KeyError, TypeError) as error:
            log.error("malformed report dead letter dropped: %s", error, message_id=message_id,
                      body=body[:500])
            return False
        failed = self.jobs.fail(part.report_id, "DEAD_LETTER", FAILURES["DEAD_LETTER"])
        log.error("report part dead-lettered", report_id=part.report_id, part=part.part,
                  message_id=message_id, job_marked_failed=failed)
        return True

    def settle_ingest(self, body: str, message_id: str = "") -> int:
        """Mark each file the S3 event names Failed unless it was ingested after all; returns how many."""
        try:
            drops = drops_from_notification(body)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.error("malformed ingest dead letter dropped: %s", error, message_id=message_id,
                      body=body[:500])
            return 0
        settled = 0
        for drop in drops:
            record: Any = self.ingestions.get(drop.ingestion_id)
            if record is not None and record.status in (JobStatus.COMPLETE, JobStatus.REJECTED):
                continue
            record = record or self.ingestions.start(drop.ingestion_id, f"s3://{drop.bucket}/{drop.key}")
            self.ingestions.finish(record, JobStatus.FAILED, kind=record.kind,
                                   accepted=int(record.rows_accepted or 0),
                                   rejected=int(record.rows_rejected or 0), error=INGEST_DEAD_LETTER_ERROR)
            log.error("ingestion dead-lettered", ingestion_id=drop.ingestion_id, message_id=message_id)
            settled += 1
        return settled
