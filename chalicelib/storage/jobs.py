"""Report jobs and the dataset's watermark ("now")."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import AbstractSet, Any, Optional

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from chalicelib.clock import utcnow
from chalicelib.storage.models import DatasetState, JobStatus, ReportJob, Tables

#: Shorter than the bucket's 7-day lifecycle of reports/: a job is never shown Complete
#: with no CSV behind it (items past ``expires_at`` that DynamoDB has not yet deleted
#: are treated as gone by ``get_report``).
JOB_RETENTION = timedelta(days=6)
POLLS_STATE = "polls"


class ReportJobRepository:
    def __init__(self, model: Optional[type[ReportJob]] = None) -> None:
        """``model``: the bound job table (``Tables.report_jobs``); by default the environment's
        (scripts and tests; the composition root always passes it)."""
        self.model = model or Tables.from_env().report_jobs

    def create(self, report_id: str, plan: list[list[int]], data_now: Optional[int],
               store_ids: Optional[AbstractSet[str]] = None, owner_key_id: Optional[str] = None,
               page_token: Optional[str] = None) -> ReportJob:
        """``store_ids``: the stores the report holds (None: all); ``owner_key_id``: the only
        key that may read it; ``page_token``: the secret of its page URL."""
        job = self.model(
            report_id,
            status=JobStatus.RUNNING,
            created_at=utcnow(),
            data_now=data_now,
            parts_total=len(plan),
            plan=json.dumps(plan, separators=(",", ":")),
            expires_at=utcnow() + JOB_RETENTION,
            store_ids=set(store_ids) if store_ids is not None else None,
            owner_key_id=owner_key_id,
            page_token=page_token,
        )
        job.save()
        return job

    def get(self, report_id: str) -> Optional[ReportJob]:
        try:
            return self.model.get(report_id, consistent_read=True)
        except self.model.DoesNotExist:
            return None

    def mark_part_done(self, report_id: str, part: int) -> Optional[ReportJob]:
        """Record a finished part and return the job as it is now (set: replays are harmless).

        Conditional: only a Running job whose plan has this part counts it; otherwise
        None (the job finished meanwhile, or the part is not in its plan).
        """
        job = self.model(report_id)
        try:
            job.update(actions=[ReportJob.parts_done.add({part})],
                       condition=(ReportJob.status == JobStatus.RUNNING) & (ReportJob.parts_total > part))
        except UpdateError as failure:
            if failure.cause_response_code != "ConditionalCheckFailedException":
                raise
            return None
        return job

    def complete(self, report_id: str, s3_key: str, rows: int,
                 summary: Optional[dict[str, Any]] = None) -> None:
        actions: list[Action] = [
            ReportJob.status.set(JobStatus.COMPLETE),
            ReportJob.s3_key.set(s3_key),
            ReportJob.rows.set(rows),
            ReportJob.completed_at.set(utcnow()),
        ]
        if summary is not None:
            actions.append(ReportJob.summary.set(summary))
        self.model(report_id).update(
            actions=actions,
            condition=ReportJob.status != JobStatus.FAILED,
        )

    def fail(self, report_id: str, code: str, message: str) -> bool:
        """Mark a Running job Failed with a stable ``code`` and a sentence for people;
        False when it had already finished either way."""
        try:
            self.model(report_id).update(
                actions=[ReportJob.status.set(JobStatus.FAILED), ReportJob.error_code.set(code),
                         ReportJob.error.set(message[:2000]), ReportJob.completed_at.set(utcnow())],
                condition=ReportJob.status == JobStatus.RUNNING,
            )
        except UpdateError as failure:
            if failure.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True


class DatasetStateRepository:
    def __init__(self, model: Optional[type[DatasetState]] = None) -> None:
        """``model``: the bound state table (``Tables.dataset_state``); by default the environment's."""
        self.model = model or Tables.from_env().dataset_state

    def latest_poll_at(self) -> Optional[int]:
        try:
            state = self.model.get(POLLS_STATE, consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return int(state.latest_poll_at) if state.latest_poll_at is not None else None

    def advance_latest_poll(self, at: int) -> None:
        """Move the watermark forward only: concurrent drops cannot move it back."""
        try:
            self.model(POLLS_STATE).update(
                actions=[DatasetState.latest_poll_at.set(at), DatasetState.updated_at.set(utcnow())],
                condition=DatasetState.latest_poll_at.does_not_exist() | (DatasetState.latest_poll_at < at),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
