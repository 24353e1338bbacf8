"""Report jobs and the dataset's watermark ("now")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from pynamodb.exceptions import UpdateError

from chalicelib.storage.models import DatasetState, ReportJob

RUNNING, COMPLETE, FAILED = "Running", "Complete", "Failed"
JOB_RETENTION = timedelta(days=7)
POLLS_STATE = "polls"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReportJobRepository:
    def create(self, report_id: str, parts_total: int, data_now: Optional[int]) -> ReportJob:
        job = ReportJob(
            report_id,
            status=RUNNING,
            created_at=utcnow(),
            data_now=data_now,
            parts_total=parts_total,
            expires_at=utcnow() + JOB_RETENTION,
        )
        job.save()
        return job

    def get(self, report_id: str) -> Optional[ReportJob]:
        try:
            return ReportJob.get(report_id, consistent_read=True)
        except ReportJob.DoesNotExist:
            return None

    def mark_part_done(self, report_id: str, part: int) -> ReportJob:
        """Record a finished part and return the job as it is now (set: replays are harmless)."""
        job = ReportJob(report_id)
        job.update(actions=[ReportJob.parts_done.add({part})], condition=ReportJob.report_id.exists())
        return job

    def complete(self, report_id: str, s3_key: str, rows: int, summary: Optional[str] = None) -> None:
        actions = [
            ReportJob.status.set(COMPLETE),
            ReportJob.s3_key.set(s3_key),
            ReportJob.rows.set(rows),
            ReportJob.completed_at.set(utcnow()),
        ]
        if summary is not None:
            actions.append(ReportJob.summary.set(summary))
        ReportJob(report_id).update(
            actions=actions,
            condition=ReportJob.status != FAILED,
        )

    def fail(self, report_id: str, error: str) -> bool:
        """Mark a Running job Failed; False when it had already finished either way."""
        try:
            ReportJob(report_id).update(
                actions=[ReportJob.status.set(FAILED), ReportJob.error.set(error[:2000]),
                         ReportJob.completed_at.set(utcnow())],
                condition=ReportJob.status == RUNNING,
            )
        except UpdateError as failure:
            if failure.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True


class DatasetStateRepository:
    def latest_poll_at(self) -> Optional[int]:
        try:
            state = DatasetState.get(POLLS_STATE, consistent_read=True)
        except DatasetState.DoesNotExist:
            return None
        return int(state.latest_poll_at) if state.latest_poll_at is not None else None

    def advance_latest_poll(self, at: int) -> None:
        """Move the watermark forward only: concurrent drops cannot move it back."""
        try:
            DatasetState(POLLS_STATE).update(
                actions=[DatasetState.latest_poll_at.set(at), DatasetState.updated_at.set(utcnow())],
                condition=DatasetState.latest_poll_at.does_not_exist() | (DatasetState.latest_poll_at < at),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
