"""Ingestion records: one item per ingested file."""
from __future__ import annotations

import json
from typing import Optional

from chalicelib.storage.jobs import utcnow
from chalicelib.storage.models import IngestionRecord

RUNNING, COMPLETE, REJECTED, FAILED = "Running", "Complete", "Rejected", "Failed"


class IngestionRepository:
    def get(self, ingestion_id: str) -> Optional[IngestionRecord]:
        try:
            return IngestionRecord.get(ingestion_id, consistent_read=True)
        except IngestionRecord.DoesNotExist:
            return None

    def start(self, ingestion_id: str, source: str) -> IngestionRecord:
        record = IngestionRecord(ingestion_id, source=source, status=RUNNING, started_at=utcnow())
        record.save()
        return record

    def finish(self, record: IngestionRecord, status: str, *, kind: Optional[str] = None,
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
        record.counts = json.dumps(counts, sort_keys=True) if counts else None
        record.finished_at = utcnow()
        record.save()
        return record

    def recent(self, limit: int = 20) -> list[IngestionRecord]:
        """Newest first. A scan: the table holds one small item per file, not per row."""
        records = list(IngestionRecord.scan())
        records.sort(key=lambda r: r.started_at, reverse=True)
        return records[:limit]
