"""Business hours in the store's local wall-clock time, mapped onto UTC.

A moment is business time when its local time (daylight saving included) falls
inside one of the intervals of that local weekday. The mapping is exact: the
UTC axis is cut at every offset change of the zone, and on each piece local
time is UTC plus a constant, so each local interval maps to one UTC span.
A spring-forward day therefore loses its missing hour and a fall-back day
counts its repeated hour twice, with no special cases.
"""
from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Optional, Sequence

import pytz

from chalicelib.core.parsing import SECONDS_PER_DAY, normalise_interval

Span = tuple[int, int]  # half-open [start, end) in epoch seconds

#: 1970-01-01 (local day number 0) was a Thursday; weekday 0 is Monday.
_EPOCH_WEEKDAY = 3


@dataclass(frozen=True)
class WeeklySchedule:
    """Business intervals per local weekday (0 = Monday).

    ``days`` maps a weekday to spans in seconds from that day's local midnight;
    an end beyond 86,400 runs into the next day. ``None`` means open 24x7 (the
    store has no business-hours rows). A weekday absent from ``days`` is closed.
    """

    days: Optional[dict[int, tuple[Span, ...]]]

    @classmethod
    def always_open(cls) -> "WeeklySchedule":
        return cls(days=None)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, int]]) -> "WeeklySchedule":
        """Build from ``(weekday, start_seconds, end_seconds)`` rows as written in the feed."""
        days: dict[int, list[Span]] = {}
        for weekday, start, end in rows:
            days.setdefault(weekday, []).append(normalise_interval(start, end))
        if not days:
            return cls.always_open()
        return cls(days={day: tuple(sorted(set(spans))) for day, spans in sorted(days.items())})

    @property
    def is_always_open(self) -> bool:
        return self.days is None


@lru_cache(maxsize=None)
def _offset_table(tz_name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(UTC transition instants, offset in seconds from each instant on) for a zone."""
    tz = pytz.timezone(tz_name)
    transitions = getattr(tz, "_utc_transition_times", None)
    if not transitions:  # fixed-offset zones (UTC, Etc/GMT+5, ...)
        offset = tz.utcoffset(None) if tz.utcoffset(None) is not None else tz._utcoffset
        return (-(2**62),), (int(offset.total_seconds()),)
    instants = [-(2**62)] + [calendar.timegm(t.timetuple()) for t in transitions[1:]]
    offsets = [int(info[0].total_seconds()) for info in tz._transition_info]
    return tuple(instants), tuple(offsets)


def utc_offset_segments(tz_name: str, start: int, end: int) -> list[tuple[int, int, int]]:
    """Cut ``[start, end)`` into ``(seg_start, seg_end, utc_offset_seconds)`` pieces."""
    instants, offsets = _offset_table(tz_name)
    index = bisect.bisect_right(instants, start) - 1
    segments = []
    cursor = start
    while cursor < end:
        next_change = instants[index + 1] if index + 1 < len(instants) else end
        seg_end = min(end, next_change)
        segments.append((cursor, seg_end, offsets[index]))
        cursor = seg_end
        index += 1
    return segments


def business_intervals(schedule: WeeklySchedule, tz_name: str, start: int, end: int) -> list[Span]:
    """The business time inside ``[start, end)`` as sorted, disjoint UTC spans."""
    if start >= end:
        return []
    if schedule.days is None:
        return [(start, end)]
    pieces: list[Span] = []
    for seg_start, seg_end, offset in utc_offset_segments(tz_name, start, end):
        local_start, local_end = seg_start + offset, seg_end + offset
        # An interval may start on the previous local day and run past midnight.
        first_day = local_start // SECONDS_PER_DAY - 1
        last_day = (local_end - 1) // SECONDS_PER_DAY
        for day in range(first_day, last_day + 1):
            spans = schedule.days.get((day + _EPOCH_WEEKDAY) % 7)
            if not spans:
                continue
            midnight = day * SECONDS_PER_DAY
            for span_start, span_end in spans:
                lo = max(local_start, midnight + span_start)
                hi = min(local_end, midnight + span_end)
                if lo < hi:
                    pieces.append((lo - offset, hi - offset))
    return merge_spans(pieces)


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Union of spans as sorted, disjoint, non-touching spans."""
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def clip_spans(spans: Sequence[Span], start: int, end: int) -> list[Span]:
    """The parts of sorted disjoint ``spans`` inside ``[start, end)``."""
    # (max(lo, start), min(hi, end)) spelled out: a report clips a dozen times per store
    return [(start if start > lo else lo, end if end < hi else hi)
            for lo, hi in spans if hi > start and lo < end]


def total_seconds(spans: Iterable[Span]) -> int:
    return sum(hi - lo for lo, hi in spans)


def contains(spans: Sequence[Span], instant: int) -> bool:
    """Whether ``instant`` lies inside one of the sorted disjoint ``spans``."""
    index = bisect.bisect_right(spans, (instant, float("inf"))) - 1
    return index >= 0 and spans[index][0] <= instant < spans[index][1]
