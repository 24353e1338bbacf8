"""CSV drops: from an S3 object (or a local file) to an ingestion record.

S3 -> SQS notifications arrive here through the ingestion handler; the
``ingest`` CLI calls ``ingest_source`` with a local file. Both go through
``chalicelib.ingestion.ingest_lines`` and leave the same ingestion record.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterable, Iterator, Optional
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from chalicelib.aws import s3_client
from chalicelib.ingestion import (
    HOURS,
    STATUS,
    TIMEZONES,
    FileRejected,
    IngestResult,
    ProgressCallback,
    Rejection,
    RejectionLog,
    ingest_lines,
)
from chalicelib.settings import Settings
from chalicelib.storage.ingestions import COMPLETE, FAILED, REJECTED, IngestionRepository
from chalicelib.storage.models import IngestionRecord

log = logging.getLogger(__name__)

INCOMING_PREFIX = "incoming/"
KIND_BY_PREFIX = {f"{INCOMING_PREFIX}status/": STATUS, f"{INCOMING_PREFIX}hours/": HOURS,
                  f"{INCOMING_PREFIX}timezones/": TIMEZONES}
REJECTIONS_SUFFIX = ".rejections.csv"


@dataclass(frozen=True)
class S3Drop:
    bucket: str
    key: str
    etag: str

    @property
    def ingestion_id(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.etag}"

    @property
    def expected_kind(self) -> Optional[str]:
        """The kind named by the prefix; elsewhere under incoming/ the header decides."""
        for prefix, kind in KIND_BY_PREFIX.items():
            if self.key.startswith(prefix):
                return kind
        return None


def byte_lines(stream: IO[bytes] | Any, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a byte stream split on \\n, \\r\\n or a lone \\r, read ``chunk_size`` at a time.

    Both ingestion paths (an S3 body, a local file) use this, so a file is split
    the same way wherever it comes from. A chunk ending in \\r is held back: it
    may be the first half of \\r\\n, which must not count as two lines.
    """
    pending = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        lines = (pending + chunk).splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        yield from lines
    if pending:
        yield pending


def drops_from_notification(body: str) -> list[S3Drop]:
    """S3 event notification (the SQS message body) -> the objects it announces.

    Skips S3's ``s3:TestEvent`` (no Records), non-creation events and our own
    rejection reports; keys arrive URL-encoded.
    """
    message = json.loads(body)
    drops = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])
        if key.endswith(REJECTIONS_SUFFIX) or not key.startswith(INCOMING_PREFIX):
            continue
        drops.append(S3Drop(s3["bucket"]["name"], key, str(s3["object"].get("eTag", "")).strip('"')))
    return drops


class _RejectionFile:
    """Collects rejected rows as CSV in a spooled temporary file."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        self._text = io.TextIOWrapper(self.file, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.writer(self._text, lineterminator="\n")
        self._writer.writerow(["line", "reason", "row"])

    def write(self, rejection: Rejection) -> None:
        self._writer.writerow([rejection.line, rejection.reason, rejection.raw])

    def bytes_io(self) -> IO[bytes]:
        self._text.flush()
        self.file.seek(0)
        return self.file


def ingest_source(
    lines: Iterable[bytes],
    source: str,
    ingestion_id: str,
    settings: Settings,
    *,
    expected_kind: Optional[str] = None,
    save_rejections: Optional[Callable[[IO[bytes]], str]] = None,
    progress: Optional[ProgressCallback] = None,
) -> tuple[IngestionRecord, Optional[IngestResult]]:
    """Ingest one file and record it. Whole-file rejections are recorded, not raised;
    unexpected errors mark the record Failed and propagate (so SQS retries)."""
    records = IngestionRepository()
    record = records.start(ingestion_id, source)
    rejections = _RejectionFile()
    try:
        result = ingest_lines(lines, settings, expected_kind=expected_kind,
                              rejection_log=RejectionLog(rejections.write), progress=progress)
    except FileRejected as error:
        return records.finish(record, REJECTED, error=str(error)), None
    except Exception as error:
        records.finish(record, FAILED, error=f"{type(error).__name__}: {error}")
        raise
    report_key = None
    if result.rows_rejected and save_rejections is not None:
        report_key = save_rejections(rejections.bytes_io())
    record = records.finish(record, COMPLETE, kind=result.kind, accepted=result.rows_accepted,
                            rejected=result.rows_rejected, error_report_key=report_key,
                            storage=result.storage, counts=result.counts)
    return record, result


def ingest_drop(drop: S3Drop, settings: Settings) -> Optional[IngestionRecord]:
    """Ingest an S3 object once: a second event for the same object version is a no-op."""
    previous = IngestionRepository().get(drop.ingestion_id)
    if previous is not None and previous.status in (COMPLETE, REJECTED):
        log.info("already ingested %s (%s)", drop.ingestion_id, previous.status)
        return previous
    try:
        body = s3_client().get_object(Bucket=drop.bucket, Key=drop.key)["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        # Deleted before we got to it: retrying cannot help, so record it and move on.
        log.warning("s3://%s/%s is gone; nothing to ingest", drop.bucket, drop.key)
        records = IngestionRepository()
        return records.finish(records.start(drop.ingestion_id, f"s3://{drop.bucket}/{drop.key}"), REJECTED,
                              error="the object was deleted before it could be ingested")

    def save_rejections(data: IO[bytes]) -> str:
        key = drop.key + REJECTIONS_SUFFIX
        s3_client().upload_fileobj(data, drop.bucket, key, ExtraArgs={"ContentType": "text/csv"})
        return key

    record, _ = ingest_source(byte_lines(body), f"s3://{drop.bucket}/{drop.key}",
                              drop.ingestion_id, settings, expected_kind=drop.expected_kind,
                              save_rejections=save_rejections)
    log.info("ingested %s: %s, %s accepted, %s rejected", drop.key, record.status,
             record.rows_accepted, record.rows_rejected)
    return record
