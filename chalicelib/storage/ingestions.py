"""Ingestion records: one item per ingested file."""
from __future__ import annotations

import time
from typing import Optional

from pynamodb.exceptions import PutError

from chalicelib.clock import utcnow
from chalicelib.storage.models import IngestionRecord, JobStatus, Tables

#: How long a claim holds a file: above the ingest function's 900 s timeout, so only a
#: dead worker's claim ever expires (then the next delivery takes the file over).
CLAIM_SECONDS = 960


class IngestionRepository:
    def __init__(self, model: Optional[type[IngestionRecord]] = None) -> None:
        """``model``: the bound ingestions table (``Tables.ingestions``); by default the environment's
        (scripts and tests; the composition root always passes it)."""
        self.model = model or Tables.from_env().ingestions

    def get(self, ingestion_id: str) -> Optional[IngestionRecord]:
        try:
            return self.model.get(ingestion_id, consistent_read=True)
        except self.model.DoesNotExist:
            return None

    def start(self, ingestion_id: str, source: str) -> IngestionRecord:
        record = self.model(ingestion_id, source=source, status=JobStatus.RUNNING, started_at=utcnow())
        record.save()
        return record

    def claim(self, ingestion_id: str, source: str,
              seconds: int = CLAIM_SECONDS) -> Optional[IngestionRecord]:
        """Start ingesting a file unless another delivery already has it: a conditional write
        (the Powertools idempotency pattern). None when the file is done, or Running under a
        live claim; a Failed record, or a Running one whose worker died (claim expired), is
        taken over."""
        now = time.time()
        record = self.model(ingestion_id, source=source, status=JobStatus.RUNNING, started_at=utcnow(),
                                 claimed_until=int(now) + seconds)
        try:
            running = IngestionRecord.status == JobStatus.RUNNING
            dead_claim = running & (IngestionRecord.claimed_until < int(now))
            record.save(condition=IngestionRecord.ingestion_id.does_not_exist()
                        | (IngestionRecord.status == JobStatus.FAILED)
                        | dead_claim)
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return None
        return record

    def finish(self, record: IngestionRecord, status: JobStatus, *, kind: Optional[str] = None,
               accepted: int = 0, rejected: int = 0, error: Optional[str] = None,
               error_report_key: Optional[str] = None,
               storage: Optional[dict[str, int]] = None,
               counts: Optional[dict[str, int]] = None) -> IngestionRecord:
        record.status = status
        record.kind = kind
        record.rows_accepted = accepted
        record.rows_rejected = rejected
        record.error = error[:2000] if error else None
        record.error_report_key = error_report_key
        if storage:
            record.write_units = storage.get("write_units")
            record.largest_item = storage.get("largest_item")
        record.counts = dict(counts) if counts else None
        record.finished_at = utcnow()
        record.save()
        return record

    def recent(self, limit: int = 20) -> list[IngestionRecord]:
        """Newest first. A scan: the table holds one small item per file, not per row."""
        records = list(self.model.scan())
        records.sort(key=lambda r: r.started_at, reverse=True)
        return records[:limit]
