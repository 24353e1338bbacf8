"""Ingest local CSV files through the same code path as S3 drops (``chalicelib.drops``)."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional

from chalicelib.drops import byte_lines
from chalicelib.ingestion import COUNT_NAMES, ingest_source
from chalicelib.settings import Settings
from storemon_app.progress import ProgressLine, rows_progress
from storemon_app.paths import OUT_DIR

REJECTIONS_DIR = OUT_DIR / "rejections"
#: Order matters only for readability of a live stack: zones and hours first,
#: so a report triggered meanwhile already sees schedules for the polls.
KIND_ORDER = ("timezones", "hours", "status")


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    kind: Optional[str]
    status: str
    accepted: int
    rejected: int
    seconds: float
    error: Optional[str]
    rejections_path: Optional[Path]
    sample: list
    #: Duplicates, conflicts, defaults applied (``chalicelib.ingestion.COUNT_NAMES``).
    counts: dict = field(default_factory=dict)
    #: Poll storage writes (``chalicelib.storage.polls.WriteStats``); empty for hours and zones.
    storage: dict = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return (self.accepted + self.rejected) / self.seconds if self.seconds else 0.0


def describe_counts(counts: dict) -> list[str]:
    """One line per non-zero count, e.g. ``5 duplicates: rows repeating another row ...``."""
    return [f"{counts[name]:,} {name.replace('_', ' ')}: {meaning}"
            for name, meaning in COUNT_NAMES.items() if counts.get(name)]


def ingest_file(path: Path, expected_kind: Optional[str] = None, quiet: bool = False,
                accept_strays: bool = False) -> FileOutcome:
    """Ingest one local CSV, streaming; rejected rows go to out/rejections/<name>.rejections.csv.
    ``accept_strays``: hold no poll back as a stray (``ingest --accept-strays``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    progress = ProgressLine(f"ingest {path.name}")
    rejections_path = REJECTIONS_DIR / f"{path.name}.rejections.csv"

    def save_rejections(data: IO[bytes]) -> str:
        REJECTIONS_DIR.mkdir(parents=True, exist_ok=True)
        with open(rejections_path, "wb") as out:
            shutil.copyfileobj(data, out)
        return str(rejections_path)

    started = time.perf_counter()
    with open(path, "rb") as stream:
        record, result = ingest_source(
            byte_lines(stream), f"file://{path.resolve()}", f"file://{path.resolve()}@{time.time_ns()}",
            Settings.from_env(),
            expected_kind=expected_kind, save_rejections=save_rejections,
            progress=None if quiet else rows_progress(progress), accept_strays=accept_strays)
    seconds = time.perf_counter() - started
    outcome = FileOutcome(path, record.kind, record.status, int(record.rows_accepted),
                          int(record.rows_rejected),
                          seconds, record.error, rejections_path if record.error_report_key else None,
                          list(result.sample) if result else [], dict(result.counts) if result else {},
                          dict(result.storage) if result else {})
    if not quiet:
        if outcome.status == "Rejected":
            progress.done(f"REJECTED: {outcome.error}")
        else:
            progress.done(f"{outcome.kind}: {outcome.accepted:,} rows in, {outcome.rejected:,} rejected "
                          f"({outcome.rows_per_second:,.0f} rows/s)")
            for line in describe_counts(outcome.counts):
                print(f"  {line}")
            if outcome.storage.get("blocks"):
                storage = outcome.storage
                print(f"  stored as {storage['blocks']:,} blocks ({storage['block_bytes'] / 1e6:,.1f} MB), "
                      f"{storage['compactions']:,} days compacted, ~{storage['write_units']:,} WRU, "
                      f"largest item {storage['largest_item'] / 1000:,.1f} KB")
            for rejection in outcome.sample[:10]:
                print(f"  line {rejection.line}: {rejection.reason}")
            if outcome.rejected > 10:
                print(f"  ... {outcome.rejected - 10:,} more")
            if outcome.rejections_path:
                print(f"  all rejected rows: {outcome.rejections_path}")
    return outcome
