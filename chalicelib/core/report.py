"""A store's polls, schedule, zone and ``now`` -> its report row.

This is the only place the report's rules are applied; the worker, the CLI,
the simulator and the benchmarks all call ``store_report``.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import operator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Optional, Sequence

from chalicelib.core.interpolation import (
    FALLBACK_UP_SHARE,
    HOLD_HOURS,
    InterpolationRule,
    Poll,
    PollColumns,
    UptimeEstimate,
    canonical_polls,
    paced_silence,
)
from chalicelib.core.outages import (
    OUTAGE_HEADER,
    hundredths,
    open_per_hour,
    outage_fields,
    store_outages,
    up_strip,
    week_strip,
)
from chalicelib.core.schedule import (
    Span,
    WeeklySchedule,
    business_intervals,
    clip_spans,
    contains,
    total_seconds,
)
from chalicelib.core.units import DAY, HOUR, WEEK

#: The windows of the report, each ending at ``now``.
WINDOWS: tuple[tuple[str, int], ...] = (("hour", HOUR), ("day", DAY), ("week", WEEK))

#: How far before the week window polls are still read as evidence for its start.
LOOKBACK = DAY

#: Polls from here on (relative to now) are read for a report.
READ_RANGE = WEEK + LOOKBACK

#: The detail report: the standard columns, then the evidence behind each window's numbers
#: (business time, the part of it within ``HOLD_HOURS`` of an evidence poll, the inferred
#: rest, evidence polls in the window; hour in minutes, day and week in hours), and the
#: time of the store's latest poll read (any status; empty when none in the read range);
#: then the outages of each window (``core.outages``).
DETAIL_EXTRA_HEADER = tuple(
    f"{column}_last_{window}"
    for window, unit in (("hour", "minutes"), ("day", "hours"), ("week", "hours"))
    for column in (f"business_{unit}", f"backed_{unit}", f"inferred_{unit}", "polls")
) + ("last_poll_utc",) + OUTAGE_HEADER

CSV_HEADER = (
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
)


@dataclass(frozen=True)
class WindowTotals:
    """Seconds of business time and of estimated uptime in one window."""

    business: int
    uptime: float

    @property
    def downtime(self) -> float:
        return self.business - self.uptime


@dataclass(frozen=True)
class StoreReport:
    store_id: str
    hour: WindowTotals
    day: WindowTotals
    week: WindowTotals

    def csv_fields(self) -> list[str]:
        """The CSV row: hour in minutes, day and week in hours, two decimals.

        Each window's business time and uptime are rounded to hundredths and
        downtime is their difference, so the printed columns still add up.
        """
        ups, downs = [], []
        for totals, unit in ((self.hour, 60), (self.day, 3600), (self.week, 3600)):
            business = round(totals.business * 100 / unit)
            up = min(business, round(totals.uptime * 100 / unit))
            ups.append(_hundredths(up))
            downs.append(_hundredths(business - up))
        return [self.store_id, *ups, *downs]


_hundredths = hundredths


@functools.lru_cache(maxsize=64)
def _utc_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y-%m-%dT")


def utc_stamp(at: int) -> str:
    """``at`` as ``%Y-%m-%dT%H:%M:%SZ`` in UTC: the date formatted once per day (most of a
    part's stores were last heard from on one day), the time of day by arithmetic."""
    day, second = divmod(at, DAY)
    hour, second = divmod(second, HOUR)
    minute, second = divmod(second, 60)
    return f"{_utc_day(day)}{hour:02d}:{minute:02d}:{second:02d}Z"


def evidence_polls(polls: Sequence[Poll], business: Sequence[Span]) -> Sequence[Poll]:
    """Polls that say something about business time.

    A closed store often reports ``inactive``; such a poll outside business
    hours says only that it is closed. An ``active`` poll is evidence wherever
    it falls: the store was online then.
    """
    if all(active for _, active in polls):
        return polls
    return [poll for poll in polls if poll[1] or contains(business, poll[0])]


def _column_evidence(polls: PollColumns, business: Sequence[Span]) -> PollColumns:
    """``evidence_polls`` of sorted columns: one walk of the business spans along the
    inactive polls, instead of a bisection each."""
    times, actives = polls.times, polls.actives
    if all(actives):
        return polls
    kept, span, spans = [True] * len(times), 0, len(business)
    for index in itertools.compress(range(len(times)), map(operator.not_, actives)):
        at = times[index]
        while span < spans and business[span][1] <= at:
            span += 1
        if span == spans or at < business[span][0]:
            kept[index] = False
    if all(kept):
        return polls
    return PollColumns(list(itertools.compress(times, kept)), list(itertools.compress(actives, kept)))


def _instant(poll: Poll) -> int:
    return poll[0]


def _instants(polls: Sequence[Poll]) -> list[int]:
    return polls.times if isinstance(polls, PollColumns) else [at for at, _ in polls]


def _near_spans(polls: Sequence[Poll], hold: int, estimate: Optional[UptimeEstimate] = None) -> list[Span]:
    """``merge_spans`` of ``[at - hold, at + hold + 1)`` around each of the sorted ``polls``,
    in one pass: two neighbours' spans join unless the polls are over ``2 hold + 1`` apart.
    ``estimate``: the rule's of ``polls``, which may know those gaps already (``gaps_over``)."""
    if not polls:
        return []
    instants = _instants(polls)
    reach = 2 * hold + 1
    gaps_over = getattr(estimate, "gaps_over", None)
    known = gaps_over(instants, reach) if gaps_over is not None else None
    if known is not None:
        cuts = [gap + 1 for gap in known]
    else:  # the indices (from 1) whose gap to the poll before is over ``reach``, found at C speed
        gaps = map(operator.sub, itertools.islice(instants, 1, None), instants)
        cuts = list(itertools.compress(itertools.count(1), map(operator.lt, itertools.repeat(reach), gaps)))
    return [(instants[a] - hold, instants[b - 1] + hold + 1)
            for a, b in itertools.pairwise([0, *cuts, len(instants)])]


def _overlap_seconds(spans: Sequence[Span], others: Sequence[Span]) -> int:
    """Seconds in both of two lists of sorted disjoint spans (a merge of the two)."""
    total, j, count = 0, 0, len(others)
    for lo, hi in spans:
        while j < count and others[j][1] <= lo:
            j += 1
        k = j
        while k < count and others[k][0] < hi:
            other_lo, other_hi = others[k]
            total += (other_hi if other_hi < hi else hi) - (other_lo if other_lo > lo else lo)  # min - max
            k += 1
    return total


@dataclass(frozen=True)
class BusinessWindows:
    """What a row reads of a business time alone, not of the store's polls: each window's
    spans (``WINDOWS`` order) and seconds, and the week's open seconds per hour (the strip).
    Stores sharing a schedule and zone share their business time, so a part computes this once
    per business time instead of once per store (``business_windows``)."""

    business: list[Span]
    spans: tuple[list[Span], ...]
    seconds: tuple[int, ...]
    open_per_hour: list[int]
    #: the week strip of a store without outages (``outages.up_strip``)
    up_strip: str
    #: the windows' spans, each once (the windows nest, hour in day in week: a span whole in
    #: two windows is one), and each window's spans as indices into them
    distinct: list[Span]
    members: tuple[list[int], ...]


def business_windows(business: list[Span], now: int) -> BusinessWindows:
    spans = tuple(clip_spans(business, now - length, now) for _name, length in WINDOWS)
    hours = open_per_hour(business, now)
    index: dict[Span, int] = {}
    members = tuple([index.setdefault(span, len(index)) for span in window] for window in spans)
    return BusinessWindows(business, spans, tuple(map(total_seconds, spans)), hours, up_strip(hours),
                           list(index), members)


@dataclass(frozen=True)
class StoreEvidence:
    """A store's business time in the read range and the polls that speak about it."""

    business: list[Span]
    polls: Sequence[Poll]
    #: The latest poll read, evidence or not (None: no poll in the read range).
    last_poll: Optional[int] = None

    def detail_fields(self, now: int, hold: int = int(HOLD_HOURS * 3600),
                      windows: Optional[BusinessWindows] = None,
                      estimate: Optional[UptimeEstimate] = None) -> list[str]:
        """The detail report's extra columns (``DETAIL_EXTRA_HEADER``) for this store;
        ``windows``: ``business_windows`` of its business time when the caller has them;
        ``estimate``: the rule's of its polls, likewise (``_near_spans``)."""
        windows = windows if windows is not None else business_windows(self.business, now)
        near = _near_spans(self.polls, hold, estimate)
        instants = _instants(self.polls)
        fields = []
        for (_name, length), spans, seconds in zip(WINDOWS, windows.spans, windows.seconds, strict=True):
            unit = 60 if length == HOUR else 3600
            business = round(seconds * 100 / unit)
            backed = min(business, round(_overlap_seconds(spans, near) * 100 / unit))
            first = bisect.bisect_left(instants, now - length)
            fields += [_hundredths(business), _hundredths(backed), _hundredths(business - backed),
                       str(len(instants) - first)]
        return fields + ["" if self.last_poll is None else utc_stamp(self.last_poll)]


def store_evidence(polls: Iterable[Poll], schedule: Optional[WeeklySchedule], tz_name: str,
                   now: int) -> StoreEvidence:
    """Business spans of ``[now - READ_RANGE, now]`` and the evidence polls in it.

    Both ends are closed: a poll at exactly ``now`` is evidence like any other.
    Whether it falls in business time is decided by the second it opens,
    ``[now, now + 1)``, so business time is built one second past now (the
    windows are still clipped at now).
    """
    return evidence_in_business(polls, store_business(schedule, tz_name, now), now)


def store_business(schedule: Optional[WeeklySchedule], tz_name: str, now: int) -> list[Span]:
    """The business time ``store_evidence`` reads: ``[now - READ_RANGE, now + 1)``."""
    return business_intervals(schedule or WeeklySchedule.always_open(), tz_name, now - READ_RANGE, now + 1)


def evidence_in_business(polls: Iterable[Poll], business: list[Span], now: int) -> StoreEvidence:
    """``store_evidence`` once the business time (``[now - READ_RANGE, now + 1)``) is known:
    stores sharing a schedule and zone share it."""
    read_start = now - READ_RANGE
    ordered = canonical_polls(polls if isinstance(polls, (list, PollColumns)) else list(polls))
    if isinstance(ordered, PollColumns):
        times = ordered.times
        lo, hi = bisect.bisect_left(times, read_start), bisect.bisect_right(times, now)
        columns = ordered if lo == 0 and hi == len(times) else ordered[lo:hi]
        return StoreEvidence(business, _column_evidence(columns, business),
                             columns.times[-1] if columns.times else None)
    in_range = ordered[bisect.bisect_left(ordered, read_start, key=_instant):
                       bisect.bisect_right(ordered, now, key=_instant)]
    return StoreEvidence(business, evidence_polls(in_range, business),
                         in_range[-1][0] if len(in_range) else None)


def report_from_evidence(store_id: str, evidence: StoreEvidence, now: int,
                         rule: InterpolationRule, estimate: Optional[UptimeEstimate] = None,
                         windows: Optional[BusinessWindows] = None) -> StoreReport:
    """``estimate``: ``rule(evidence.polls)`` when the caller already has it; ``windows``:
    ``business_windows`` of its business time, likewise."""
    estimate = estimate if estimate is not None else rule(evidence.polls)
    windows = windows if windows is not None else business_windows(evidence.business, now)
    totals = {}
    # The windows nest (hour in day in week): a business span whole in two windows is
    # integrated once, the very same call, so the same float; each window adds its spans'
    # in order. Which spans those are depends on the business time alone (``windows``).
    uptimes = list(itertools.starmap(estimate.uptime_seconds, windows.distinct))
    for (name, _length), members, seconds in zip(WINDOWS, windows.members, windows.seconds, strict=True):
        totals[name] = WindowTotals(business=seconds, uptime=sum(map(uptimes.__getitem__, members)))
    return StoreReport(store_id=store_id, **totals)


def detail_row(store_id: str, evidence: StoreEvidence, now: int, rule: InterpolationRule,
               strip: bool = False, windows: Optional[BusinessWindows] = None) -> list[str]:
    """A detail report row: the standard columns, then ``DETAIL_EXTRA_HEADER``; one estimate
    for both, so the outages rest on the very numbers of the standard columns. ``strip``:
    then the week strip (``outages.week_strip``) the report page draws. ``windows``:
    ``business_windows(evidence.business, now)``, which stores sharing a business time share."""
    windows = windows if windows is not None else business_windows(evidence.business, now)
    estimate = rule(evidence.polls)
    outages = store_outages(estimate, evidence.business, now, week_business=windows.spans[-1])
    row = (report_from_evidence(store_id, evidence, now, rule, estimate, windows).csv_fields()
           + evidence.detail_fields(now, windows=windows, estimate=estimate)
           + outage_fields(estimate, evidence.business, now, outages))
    if strip:
        week = outages["week"].outages
        row.append(week_strip(evidence.business, week, now, windows.open_per_hour, windows.up_strip) if week
                   else windows.up_strip)
    return row


def default_rule(now: int, prior_up_share: Optional[float] = None) -> InterpolationRule:
    """The rule in use (``paced_silence``) for a report at ``now``: polls are weighted by their
    age in the read range, and the long-run share is the fleet's learned one when given."""
    return functools.partial(paced_silence, prior_up_share=FALLBACK_UP_SHARE if prior_up_share is None
                             else prior_up_share, read_start=now - READ_RANGE, now=now)


def store_report(
    store_id: str,
    polls: Iterable[Poll],
    schedule: Optional[WeeklySchedule],
    tz_name: str,
    now: int,
    rule: InterpolationRule | None = None,
    prior_up_share: Optional[float] = None,
) -> StoreReport:
    """Business time and estimated uptime of one store in each window ending at ``now``.

    Only polls in ``[now - READ_RANGE, now]`` are used, so a report costs the
    same whatever the length of the history. ``prior_up_share`` is the fleet's
    long-run up share (``fleet_up_share``); without it the fallback is used.
    """
    evidence = store_evidence(polls, schedule, tz_name, now)
    return report_from_evidence(store_id, evidence, now, rule or default_rule(now, prior_up_share))
