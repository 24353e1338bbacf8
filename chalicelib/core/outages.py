"""Outages: the stretches of business time a store's estimate says it was down.

The report's downtime is an expected value (the estimate may say "up with
probability 0.3" deep in a long silence); an outage needs a yes or no per
moment. The rules, stated once:

* A moment is **down** when the estimate's chance that the store was up is
  below ``DOWN_BELOW`` (one half). Where the estimate is exactly 0 or 1 (near
  polls: within the hold of one, across short gaps) this is read to the second
  from the estimate's ``pieces``; where it is fractional (the Markov bridge
  across long gaps, silence at the edges) it is read per ``CELL_SECONDS``
  cell of business time: a cell is down when its expected uptime is below
  half its length (cells are sampled hourly and changes bisected to the cell:
  ``_fractional``).
* An **outage** is a maximal stretch of down business time. Business time is
  where outages live: one never extends over closed hours (a store down at
  closing and still down at opening has two), and each window cuts its
  outages at its own start and at ``now``.
* Stretches shorter than ``MIN_OUTAGE_SECONDS`` (after that cut) are blips,
  not outages.
* **Mean time to recovery** is the mean length of the window's outages that
  ended before ``now`` (the store came back, or closed); an outage still
  running at ``now`` counts in the number, longest and total, not here.

Under a 0/1 estimate with ``min_seconds=1`` the outages' total is exactly the
window's downtime in the report (tests/unit/test_outages.py checks it).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from chalicelib.core.interpolation import Piece, UptimeEstimate
from chalicelib.core.schedule import Span, clip_spans
from chalicelib.core.units import DAY, HOUR, WEEK

#: Down when the chance of up is below this.
DOWN_BELOW = 0.5
#: Where the estimate is fractional it is read in cells this long (the report is correct to the minute).
CELL_SECONDS = 60
#: ... and sampled every this many cells, changes found between samples by bisection.
SAMPLE_CELLS = 60
#: Shorter down stretches are not outages.
MIN_OUTAGE_SECONDS = 60

_WINDOWS = (("hour", HOUR, 60), ("day", DAY, 3600), ("week", WEEK, 3600))

#: Columns appended to the detail report: per window the number of outages, the longest,
#: their total and the mean time to recovery (hour in minutes, day and week in hours).
OUTAGE_HEADER = tuple(
    column.format(window=window, unit="minutes" if window == "hour" else "hours")
    for window, _, _ in _WINDOWS
    for column in ("outages_last_{window}", "longest_outage_{unit}_last_{window}",
                   "outage_{unit}_last_{window}", "mttr_{unit}_last_{window}")
)


def _no_pieces(estimate: UptimeEstimate, start: int, end: int) -> list[Piece]:
    """The pieces of an estimate without ``pieces``: all of it fractional."""
    return [(start, end, None)]


def _fractional(estimate: UptimeEstimate, start: int, end: int) -> list[tuple[int, int, bool]]:
    """``[start, end)`` as runs of down or up cells, where the estimate is fractional.

    Reading every minute of a week costs ~1.4 s per 100 stores polled once (measured on the
    real data set), so cells are read every ``SAMPLE_CELLS`` and the change between two
    samples that disagree is found by bisection, to the cell. Between two samples that
    agree the state is taken to hold: the fractional parts of the estimate move on scales
    of hours (relaxation 3 h, silence trust 12 h), so only a dip across one half narrower
    than the samples' spacing can be missed."""
    settled = getattr(estimate, "settled", None)
    state = settled(start, end, DOWN_BELOW) if settled is not None else None
    if state is not None:  # every cell on one side: what the samples below would all say
        return [(start, end, state)]
    cells = -(-(end - start) // CELL_SECONDS)
    term = getattr(estimate, "term_uptime", None)
    uptime_seconds = (term(start, end) if term is not None else None) or estimate.uptime_seconds

    def down(index: int) -> bool:
        lo = start + index * CELL_SECONDS
        hi = lo + CELL_SECONDS
        if hi > end:
            hi = end
        return uptime_seconds(lo, hi) < DOWN_BELOW * (hi - lo)

    samples = list(range(0, cells, SAMPLE_CELLS))
    if samples[-1] != cells - 1:
        samples.append(cells - 1)
    states = [down(index) for index in samples]
    if len(samples) == 1 or all(state == states[0] for state in states):
        return [(start, end, states[0])]
    runs: list[tuple[int, int, bool]] = []
    run_start, run_state = 0, states[0]
    for (a, state_a), (b, state_b) in itertools.pairwise(zip(samples, states, strict=True)):
        if state_a == state_b:
            continue
        lo, hi = a, b  # down(lo) == state_a, down(hi) == state_b: find the first cell like hi
        while hi - lo > 1:
            middle = (lo + hi) // 2
            if down(middle) == state_a:
                lo = middle
            else:
                hi = middle
        runs.append((start + run_start * CELL_SECONDS, start + hi * CELL_SECONDS, run_state))
        run_start, run_state = hi, state_b
    runs.append((start + run_start * CELL_SECONDS, end, run_state))
    return runs


def down_spans(estimate: UptimeEstimate, business: Sequence[Span]) -> list[Span]:
    """The down stretches inside ``business`` (sorted disjoint spans), sorted, disjoint,
    never crossing from one business span into the next."""
    down: list[Span] = []
    pieces = getattr(estimate, "pieces", None) or functools.partial(_no_pieces, estimate)
    for lo, hi in business:
        run_start: Optional[int] = None  # the open down stretch in this business span
        for start, end, value in pieces(lo, hi):
            cells = ((start, end, value == 0),) if value is not None else _fractional(estimate, start, end)
            for cell_start, _cell_end, is_down in cells:
                if is_down and run_start is None:
                    run_start = cell_start
                elif not is_down and run_start is not None:
                    down.append((run_start, cell_start))
                    run_start = None
        if run_start is not None:
            down.append((run_start, hi))
    return down


def up_down_segments(business: Sequence[Span], down: Sequence[Span]) -> list[tuple[int, int, bool]]:
    """``business`` cut into ``(start, end, is_down)`` segments by ``down_spans``' result."""
    segments = []
    for lo, hi in business:
        cursor = lo
        for d_lo, d_hi in clip_spans(down, lo, hi):
            if cursor < d_lo:
                segments.append((cursor, d_lo, False))
            segments.append((d_lo, d_hi, True))
            cursor = d_hi
        if cursor < hi:
            segments.append((cursor, hi, False))
    return segments


@dataclass(frozen=True)
class OutageStats:
    """One window's outages, in seconds."""

    outages: list[Span]
    now: int

    @property
    def count(self) -> int:
        return len(self.outages)

    @property
    def longest(self) -> int:
        return max((hi - lo for lo, hi in self.outages), default=0)

    @property
    def total(self) -> int:
        return sum(hi - lo for lo, hi in self.outages)

    @property
    def mean_time_to_recovery(self) -> Optional[float]:
        """Mean length of the outages that ended before ``now``; None when none did."""
        ended = [hi - lo for lo, hi in self.outages if hi < self.now]
        return sum(ended) / len(ended) if ended else None


def window_outages(down: Sequence[Span], start: int, end: int,
                   min_seconds: int = MIN_OUTAGE_SECONDS) -> OutageStats:
    """The outages among ``down`` inside ``[start, end)``, cut at its ends."""
    kept = [(lo, hi) for lo, hi in clip_spans(down, start, end) if hi - lo >= min_seconds]
    return OutageStats(kept, end)


def store_outages(estimate: UptimeEstimate, business: Sequence[Span], now: int,
                  min_seconds: int = MIN_OUTAGE_SECONDS,
                  week_business: Optional[Sequence[Span]] = None) -> dict[str, OutageStats]:
    """Each report window's outages, from one pass over the week's business time
    (``week_business``: ``business`` clipped to the week, when the caller has it)."""
    week = week_business if week_business is not None else clip_spans(business, now - WEEK, now)
    down = down_spans(estimate, week)
    if not down:  # no window has outages: each is the clip of the week's down stretches
        return {name: OutageStats([], now) for name, _, _ in _WINDOWS}
    return {name: window_outages(down, now - length, now, min_seconds) for name, length, _ in _WINDOWS}


class _Hundredths(dict[int, str]):
    """Hundredths as printed (``1234`` -> ``"12.34"``), each value formatted once: a detail row
    prints ~20 of them and a week has only 16,800 hundredths of an hour."""

    def __missing__(self, value: int) -> str:
        text = self[value] = f"{value // 100}.{value % 100:02d}"
        return text


#: ``hundredths(value)``: ``f"{value // 100}.{value % 100:02d}"`` (a lookup at C speed).
hundredths: Callable[[int], str] = _Hundredths().__getitem__


def _hundredths(seconds: float, unit: int) -> str:
    return hundredths(round(seconds * 100 / unit))


#: ``outage_fields`` of a window without outages: none, the longest and total zero, no MTTR.
_NO_OUTAGE_FIELDS = ("0", "0.00", "0.00", "")


def outage_fields(estimate: UptimeEstimate, business: Sequence[Span], now: int,
                  stats: Optional[dict[str, OutageStats]] = None) -> list[str]:
    """The detail report's ``OUTAGE_HEADER`` columns for one store (MTTR empty when no
    outage ended in the window); ``stats``: ``store_outages`` when the caller has them."""
    stats = stats if stats is not None else store_outages(estimate, business, now)
    fields: list[str] = []
    for name, _, unit in _WINDOWS:
        window = stats[name]
        if not window.outages:  # most windows of most stores: the fields below, known
            fields += _NO_OUTAGE_FIELDS
            continue
        mttr = window.mean_time_to_recovery
        fields += [str(window.count), _hundredths(window.longest, unit), _hundredths(window.total, unit),
                   "" if mttr is None else _hundredths(mttr, unit)]
    return fields


#: ``week_strip`` characters: no business time in the hour, no outage, all of it in outage, some.
STRIP_CLOSED, STRIP_UP, STRIP_DOWN, STRIP_PARTLY = ".", "+", "-", "~"


def week_strip(business: Sequence[Span], outages: Sequence[Span], now: int,
               open_seconds: Optional[list[int]] = None, up: Optional[str] = None) -> str:
    """The week ending at ``now`` in 168 characters, one per hour, oldest first: what the
    report page draws (``STRIP_*``); ``outages`` are the week's. ``open_seconds``:
    ``open_per_hour(business, now)`` and ``up``: ``up_strip`` of it, when the caller has them
    (stores share business times). The hours the outages touch are redrawn on ``up``: most
    of a week is not in outage even for a store with some."""
    start = now - WEEK
    open_seconds = open_seconds if open_seconds is not None else _seconds_per_hour(business, start)
    up = up if up is not None else up_strip(open_seconds)
    strip = None
    for hour, down in _touched_hours(outages, start).items():
        opened = open_seconds[hour]
        if down and opened:  # an open hour in outage: all of its business time, or some
            strip = strip or list(up)
            strip[hour] = STRIP_DOWN if down >= opened else STRIP_PARTLY
    return up if strip is None else "".join(strip)


def up_strip(open_seconds: Sequence[int]) -> str:
    """``week_strip`` of a week without outages, from ``open_per_hour``: it depends on the
    business time alone, so stores sharing one share it."""
    return "".join([STRIP_UP if opened else STRIP_CLOSED for opened in open_seconds])


def open_per_hour(business: Sequence[Span], now: int) -> list[int]:
    """Business seconds in each hour of the week ending at ``now``: ``week_strip``'s open hours."""
    return _seconds_per_hour(business, now - WEEK)


def _touched_hours(spans: Sequence[Span], start: int) -> dict[int, int]:
    """``_seconds_per_hour`` of ``spans`` where it is not zero, or may not be: the hours the
    spans touch (by index), in no useful order."""
    totals: dict[int, int] = {}
    end = start + WEEK
    for lo, hi in spans:
        lo, hi = (start if start > lo else lo), (end if end < hi else hi)  # max, min
        if lo >= hi:
            continue
        first, last = (lo - start) // HOUR, (hi - 1 - start) // HOUR
        if first == last:
            totals[first] = totals.get(first, 0) + hi - lo
            continue
        totals[first] = totals.get(first, 0) + start + (first + 1) * HOUR - lo
        for hour in range(first + 1, last):
            totals[hour] = totals.get(hour, 0) + HOUR
        totals[last] = totals.get(last, 0) + hi - (start + last * HOUR)
    return totals


def _seconds_per_hour(spans: Sequence[Span], start: int) -> list[int]:
    """Seconds of ``spans`` in each of the 168 hours from ``start``: ``_touched_hours`` laid out
    as a list (a report computes it once per business time, not once per row)."""
    totals = [0] * 168
    for hour, seconds in _touched_hours(spans, start).items():
        totals[hour] = seconds
    return totals
