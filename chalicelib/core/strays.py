"""Keep one stray poll from moving "now" for the whole fleet.

"Now" is the latest poll in the data, so a single row with a wrong year would
make every store's week downtime. The rule (docs/ALGORITHM.md section 1):

    A poll is **held back** (rejected with its line and reason) when it is more
    than ``STRAY_GAP`` (24 h) later than everything else known: the latest poll
    accepted so far (the watermark) and the rest of its own drop, chained, so a
    drop that runs on from the data so far, hour after hour, is never cut; and
    when fewer than ``STRAY_MIN_ROWS`` (10) polls back it up (a gap of more than
    24 h, then a cluster of fewer than 10 polls within 24 h of each other).

A genuine catch-up drop after a pause has many polls together and goes in; a
typo'd year or month is one or a few rows far from the rest and is held back.
Fewer than 10 polls into an empty data set are taken as they are: there is
nothing to compare them with.

Streaming and bounded: only the ``STRAY_MIN_ROWS`` latest polls of a drop are
kept back until its end; every other poll is released for writing at once
(it cannot be a stray: at least ``STRAY_MIN_ROWS`` polls are as late or later).
"""
from __future__ import annotations

import heapq
import itertools
from typing import Generic, Optional, TypeVar

from chalicelib.core.units import DAY

STRAY_GAP = DAY
STRAY_MIN_ROWS = 10

T = TypeVar("T")


class StrayGuard(Generic[T]):
    """Feed polls as ``(at, item)``; ``add`` returns the items safe to write now,
    ``finish`` the held-back latest ones split into (accepted, strays)."""

    def __init__(self, watermark: Optional[int], gap: int = STRAY_GAP,
                 min_rows: int = STRAY_MIN_ROWS) -> None:
        self.watermark = watermark
        self.gap = gap
        self.min_rows = min_rows
        self._latest: list[tuple[int, int, T]] = []  # min-heap of the min_rows latest
        self._released_max: Optional[int] = None
        self._order = itertools.count()

    def add(self, at: int, item: T) -> Optional[T]:
        """The item released for writing by this call, if any (at most one).

        Called once per accepted row, so the usual case (a poll no later than the held
        ones) is released without touching the heap."""
        latest = self._latest
        if len(latest) < self.min_rows:
            heapq.heappush(latest, (at, next(self._order), item))
            return None
        if at < latest[0][0]:
            released_at, released = at, item
        else:
            released_at, _, released = heapq.heappushpop(latest, (at, next(self._order), item))
        if self._released_max is None or released_at > self._released_max:
            self._released_max = released_at
        return released

    @property
    def floor(self) -> float:
        """``add`` releases a poll earlier than this at once, untouched. A hot loop may release
        such polls itself, without calling ``add``, and then tell ``note_released`` the latest
        of them before ``finish``. Changes only through ``add``."""
        latest = self._latest
        return latest[0][0] if len(latest) >= self.min_rows else float("-inf")

    def note_released(self, at: Optional[int]) -> None:
        """Polls up to ``at`` were released by the caller (see ``floor``)."""
        if at is not None and (self._released_max is None or at > self._released_max):
            self._released_max = at

    def finish(self) -> tuple[list[T], list[tuple[T, int]]]:
        """(accepted items, [(stray item, the latest trusted instant before it)])."""
        held = sorted(self._latest)
        self._latest = []
        anchors = [a for a in (self.watermark, self._released_max) if a is not None]
        if not anchors:  # fewer than min_rows polls into an empty data set: nothing to compare with
            return [entry[2] for entry in held], []
        trusted = max(anchors)
        accepted: list[T] = []
        for index, (at, _, item) in enumerate(held):
            if at > trusted + self.gap:
                beyond = held[index:]
                chained = all(b[0] - a[0] <= self.gap for a, b in itertools.pairwise(beyond))
                if chained and len(beyond) >= self.min_rows:
                    accepted.extend(entry[2] for entry in beyond)
                    return accepted, []
                return accepted, [(entry[2], trusted) for entry in beyond]
            accepted.append(item)
            trusted = max(trusted, at)
        return accepted, []
