"""Progress lines for long work: one updating line on a terminal, sparse lines elsewhere."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressLine:
    def __init__(self, label: str, stream: Optional[TextIO] = None, min_interval: float = 0.5) -> None:
        self.label = label
        self.stream = stream or sys.stderr  # at call time: sys.stderr may have been replaced since import
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()
        self._interval = min_interval if self._tty else 5.0
        self._shown = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        line = f"{self.label}: {text} [{self.elapsed:.1f} s]"
        if self._tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def done(self, text: str) -> None:
        line = f"{self.label}: {text} [{self.elapsed:.1f} s]"
        self.stream.write(("\r\033[K" if self._tty and self._shown else "") + line + "\n")
        self.stream.flush()


def rows_progress(progress: ProgressLine):
    """An ingestion progress callback that shows rows so far and rows per second."""
    def report(read: int, accepted: int) -> None:
        rate = read / progress.elapsed if progress.elapsed > 0 else 0.0
        progress.update(f"{read:,} rows read, {rate:,.0f} rows/s")
    return report
