"""Fill all business time from sparse polls: the interpolation rules.

A rule turns a store's evidence polls (sorted, one per instant) into an
``UptimeEstimate``: something that says how many seconds of ``[start, end)``
the store was up. Estimates may be fractional (an expected value); uptime and
downtime of a span always add up to its length because downtime is defined as
the rest.

The rules are kept so the simulator can measure them against ground truth (see
docs/ALGORITHM.md); ``paced_silence`` (``DEFAULT_RULE_NAME``) is the one reports use.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Protocol, Sequence, overload


class Poll(NamedTuple):
    """One observation. Plain ``(at, active)`` tuples are accepted everywhere too:
    storage decodes millions of them, and a plain tuple is cheaper to build."""

    at: int  # epoch seconds, UTC
    active: bool


class PollColumns(Sequence[Poll]):
    """Sorted polls as two parallel lists, instants and statuses: what storage decodes.

    A report reads ~150 polls per store for 140k stores; building a tuple per poll and
    taking it apart again in every pass was a good part of its CPU. The core's fast paths
    read ``times`` and ``actives`` directly; anything else sees ``(at, active)`` tuples.
    """

    __slots__ = ("times", "actives")

    def __init__(self, times: list[int], actives: list[bool]) -> None:
        self.times = times
        self.actives = actives

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> Poll: ...

    @overload
    def __getitem__(self, index: slice) -> "PollColumns": ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return PollColumns(self.times[index], self.actives[index])
        return (self.times[index], self.actives[index])

    def __iter__(self) -> Iterator[Poll]:
        return zip(self.times, self.actives, strict=True)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"PollColumns({list(self)!r})"

    def strictly_increasing(self) -> bool:
        """One poll per instant (two conflicting statuses stored at one instant are not)."""
        times = self.times
        return all(map(operator.lt, times, itertools.islice(times, 1, None)))


class UptimeEstimate(Protocol):
    def uptime_seconds(self, start: int, end: int) -> float:
        """Expected seconds of ``[start, end)`` during which the store was up."""


#: One piece of an estimate: ``(start, end, value)``, value 1 (surely up), 0 (surely down), or
#: None where the estimate is fractional and must be read through ``uptime_seconds``.
Piece = tuple[int, int, Optional[int]]


InterpolationRule = Callable[[Sequence[Poll]], UptimeEstimate]


def canonical_polls(polls: Sequence[Poll]) -> Sequence[Poll]:
    """Sorted, one poll per instant; of two conflicting polls at one instant the
    inactive one wins (a report should not claim uptime it cannot back)."""
    if isinstance(polls, PollColumns) and polls.strictly_increasing():
        return polls
    if all(a[0] < b[0] for a, b in itertools.pairwise(polls)):
        return polls  # already canonical: the common case, straight from storage
    by_instant: dict[int, bool] = {}
    for at, active in polls:
        by_instant[at] = by_instant.get(at, True) and active
    return [Poll(at, by_instant[at]) for at in sorted(by_instant)]


class NoEvidence:
    """No poll to go on: nothing can be confirmed up, so all of it counts as down."""

    def uptime_seconds(self, start: int, end: int) -> float:
        return 0.0

    def pieces(self, start: int, end: int) -> list[Piece]:
        """Where the estimate is exactly 0 or 1 (outages need the shape, not only sums)."""
        return [(start, end, 0)] if end > start else []


class ConstantShare:
    """No poll to go on, and a long-run share to fall back on: that share of every span."""

    def __init__(self, share: float) -> None:
        self._share = share

    def uptime_seconds(self, start: int, end: int) -> float:
        return self._share * (end - start) if end > start else 0.0


class StepEstimate:
    """Up (1) or down (0) on each piece between breakpoints; constant beyond both ends."""

    def __init__(self, breakpoints: Sequence[int], values: Sequence[int]) -> None:
        # values[i] holds on [breakpoints[i-1], breakpoints[i]); values has one more item.
        self._breaks = list(breakpoints)
        self._values = list(values)
        cumulative = [0]
        for i in range(1, len(self._breaks)):
            cumulative.append(cumulative[-1] + self._values[i] * (self._breaks[i] - self._breaks[i - 1]))
        self._cumulative = cumulative  # up seconds from breakpoints[0] to breakpoints[i]

    def _up_before(self, instant: int) -> float:
        """Up seconds in [breakpoints[0], instant), negative when instant is before it."""
        breaks = self._breaks
        if instant <= breaks[0]:
            return -self._values[0] * (breaks[0] - instant)
        index = bisect.bisect_right(breaks, instant) - 1
        return self._cumulative[index] + self._values[index + 1] * (instant - breaks[index])

    def uptime_seconds(self, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        return float(self._up_before(end) - self._up_before(start))

    def pieces(self, start: int, end: int) -> list[Piece]:
        """The steps inside ``[start, end)``: every one exactly 0 or 1."""
        breaks, values = self._breaks, self._values
        out: list[Piece] = []
        index = bisect.bisect_right(breaks, start)  # values[index] holds at start
        cursor = start
        while cursor < end:
            stop = min(end, breaks[index]) if index < len(breaks) else end
            out.append((cursor, stop, values[index]))
            cursor, index = stop, index + 1
        return out


def carry_forward(polls: Sequence[Poll]) -> UptimeEstimate:
    """Last observation carried forward; before the first poll, that poll holds."""
    if not polls:
        return NoEvidence()
    breaks = [at for at, _ in polls]
    values = [int(polls[0][1])] + [int(active) for _, active in polls]
    return StepEstimate(breaks, values)


def nearest_poll(polls: Sequence[Poll]) -> UptimeEstimate:
    """Each moment takes the status of the poll nearest in time; changes at midpoints."""
    if not polls:
        return NoEvidence()
    breaks = [(a[0] + b[0]) // 2 for a, b in itertools.pairwise(polls)] or [polls[0][0]]
    values = [int(active) for _, active in polls]
    if len(polls) == 1:
        values = values * 2
    return StepEstimate(breaks, values)


@dataclass(frozen=True)
class MarkovParameters:
    """A two-state (up/down) continuous-time Markov model of a store's connection.

    ``relaxation_hours`` is 1/(rate up->down + rate down->up): how long a
    status observed by a poll stays informative. The store's long-run share of
    up time is estimated from its own evidence polls, pulled towards
    ``prior_up_share`` with the weight of ``prior_weight`` polls.
    """

    relaxation_hours: float = 3.0
    prior_up_share: float = 0.8
    prior_weight: float = 2.0


class MarkovBridgeEstimate:
    """Expected uptime of a two-state Markov chain conditioned on every poll.

    Between two polls the chain is a bridge (conditioned on both ends); before
    the first and after the last poll it relaxes from the observed state to the
    store's long-run share. Integrals are closed-form, so this is exact for the
    model and costs O(log n) per span plus the polls inside it.
    """

    def __init__(self, polls: Sequence[Poll], params: MarkovParameters) -> None:
        if isinstance(polls, PollColumns):
            # float(bool) is 1.0 or 0.0: the conditional's values, built at C speed
            self._times, self._states = polls.times, list(map(float, map(bool, polls.actives)))
        else:
            self._times = [at for at, _ in polls]
            self._states = [1.0 if active else 0.0 for _, active in polls]
        active = sum(self._states)
        self._pi = (active + params.prior_up_share * params.prior_weight) / (len(polls) + params.prior_weight)
        self._kappa = 1.0 / (params.relaxation_hours * 3600.0)

    def _relaxing(self, state: float, d1: float, d2: float) -> float:
        """Integral of P(up) over distances [d1, d2] from a poll in ``state``."""
        k, pi = self._kappa, self._pi
        return pi * (d2 - d1) + (state - pi) * (math.exp(-k * d1) - math.exp(-k * d2)) / k

    def _gap_constants(self, gap: int) -> tuple[int, float, float, float, float, float]:
        """What the bridge of ``gap`` needs that depends on the gap alone: its length, the
        end state's long-run probability and both ends' offsets from it, the decay across it
        and the normaliser (shared by ``_bridge`` and the subclass's cached long gaps)."""
        k, pi = self._kappa, self._pi
        a, b = self._states[gap], self._states[gap + 1]
        length = self._times[gap + 1] - self._times[gap]
        pi_b = pi if b else 1.0 - pi
        big_a = a - pi
        big_b = (1.0 if b else 0.0) - pi_b
        decay = math.exp(-k * length)
        same = 1.0 if a == b else 0.0
        return length, pi_b, big_a, big_b, decay, pi_b + (same - pi_b) * decay

    def _bridge(self, gap: int, t1: float, t2: float) -> float:
        """Integral of P(up) over [t1, t2] (offsets from the earlier poll) in a gap."""
        k, pi = self._kappa, self._pi
        length, pi_b, big_a, big_b, decay, norm = self._gap_constants(gap)
        integral = (
            pi * pi_b * (t2 - t1)
            + pi * big_b * (math.exp(-k * (length - t2)) - math.exp(-k * (length - t1))) / k
            + big_a * pi_b * (math.exp(-k * t1) - math.exp(-k * t2)) / k
            + big_a * big_b * decay * (t2 - t1)
        )
        return integral / norm

    def _within_one_term(self, start: int, end: int) -> Optional[float]:
        """The integral when ``[start, end)`` lies inside one gap or one edge, as the cells of
        ``outages`` do: the one term straight away. None otherwise."""
        times = self._times
        first, last = times[0], times[-1]
        if first <= start and end <= last:
            gap = bisect.bisect_right(times, start) - 1
            if end <= times[gap + 1]:
                return self._bridge(gap, start - times[gap], end - times[gap])
            return None
        if end <= first:
            return self._relaxing(self._states[0], first - end, first - start)
        if start >= last:
            return self._relaxing(self._states[-1], start - last, end - last)
        return None

    def uptime_seconds(self, start: int, end: int) -> float:
        if end <= start:
            return 0.0
        single = self._within_one_term(start, end)
        if single is not None:
            return min(float(end - start), max(0.0, 0.0 + single))
        times = self._times
        first, last = times[0], times[-1]
        total = 0.0
        if start < first:
            lo, hi = start, min(end, first)
            total += self._relaxing(self._states[0], first - hi, first - lo)
        if end > last:
            lo, hi = max(start, last), end
            total += self._relaxing(self._states[-1], lo - last, hi - last)
        if end > first and start < last:
            gap = max(0, bisect.bisect_right(times, start) - 1)
            while gap < len(times) - 1 and times[gap] < end:
                g0, g1 = times[gap], times[gap + 1]
                lo, hi = max(start, g0), min(end, g1)
                if lo < hi:
                    total += self._bridge(gap, lo - g0, hi - g0)
                gap += 1
        return min(float(end - start), max(0.0, total))


def markov_bridge(polls: Sequence[Poll], params: MarkovParameters = MarkovParameters()) -> UptimeEstimate:
    if not polls:
        return NoEvidence()
    return MarkovBridgeEstimate(polls, params)


def _clamp(value: float, length: float) -> float:
    """``min(length, max(0.0, value))``, picking the very operand the builtins would."""
    value = value if value > 0.0 else 0.0
    return value if value < length else length


#: How far from the threshold ``NearestThenMarkovEstimate.settled`` wants its bounds: a cell's
#: uptime is computed to ~1e-12 of its length, so this leaves no doubt which side it falls.
SETTLED_MARGIN = 1e-6


class NearestThenMarkovEstimate(MarkovBridgeEstimate):
    """Nearest poll across short gaps, Markov expectation across long ones.

    Within ``hold`` seconds of a poll the store most likely kept its status (one
    poll an hour is the norm), so a short gap is split at its midpoint, as the
    nearest-poll rule does. Beyond that, across fleet-wide outages and sparse
    stores, the bridge's expected value is a far better guess than half and half.

    Silence at the edges (before the first evidence poll, after the last) is
    trusted less the longer it lasts: past the hold, the expected status is
    multiplied by ``exp(-u / trust)``, ``u`` the time beyond the hold. Far from
    any poll the credit therefore falls continuously to 0, which is exactly
    what a store with no evidence at all gets: one rule, no cliff where a
    poll leaves the read range. ``trust_hours = inf`` is the old rule.
    """

    def __init__(self, polls: Sequence[Poll], params: MarkovParameters, hold_hours: float,
                 trust_hours: float = math.inf, trust_gaps: float = 0.0, floor: float = 0.0) -> None:
        super().__init__(polls, params)
        self._hold = hold_hours * 3600.0
        self._floor = floor
        trust = trust_hours * 3600.0
        if trust_gaps and len(self._times) > 1:
            # A store polled every 12 hours is not silent after 12 hours: its own
            # typical spacing (the median gap between its evidence polls) sets the scale.
            gaps = sorted(b - a for a, b in itertools.pairwise(self._times))
            trust = max(trust, trust_gaps * gaps[len(gaps) // 2])
        self._trust_rate = 0.0 if math.isinf(trust) else 1.0 / trust
        self._whole: Optional[list[float]] = None  # _whole_gaps, built on first use
        self._runs: Optional[tuple[list[float], list[Piece]]] = None  # _exact_runs, likewise
        self._shape: Optional[tuple[list[int], list[int]]] = None  # _gap_shape, likewise
        self._long_gaps: dict[int, Callable[[float, float], float]] = {}  # _long_gap, likewise
        self._constants: dict[int, tuple[int, float, float, float, float, float]] = {}  # _gap_constants

    def _relaxing(self, state: float, d1: float, d2: float) -> float:
        held = max(0.0, min(d2, self._hold) - d1)
        rest_from = max(d1, self._hold)
        relaxed = 0.0
        if d2 > rest_from:
            u1, u2 = rest_from - self._hold, d2 - self._hold
            if self._trust_rate:
                relaxed = self._fading(state, u1, u2)
            else:
                relaxed = super()._relaxing(state, u1, u2)
        return state * held + relaxed

    def _fading(self, state: float, u1: float, u2: float) -> float:
        """Integral over [u1, u2] of (pi + (state - pi) e^(-k u)) e^(-r u) + floor (1 - e^(-r u)):
        relaxing, and fading towards ``floor``."""
        k, pi, r, floor = self._kappa, self._pi, self._trust_rate, self._floor
        both = k + r
        # (pi - 0) * (...) / r: with floor 0 the very same float operations as before it existed
        return ((pi - floor) * (math.exp(-r * u1) - math.exp(-r * u2)) / r
                + floor * (u2 - u1)
                + (state - pi) * (math.exp(-both * u1) - math.exp(-both * u2)) / both)

    def _bridge(self, gap: int, t1: float, t2: float) -> float:
        length = self._times[gap + 1] - self._times[gap]
        if length > 2 * self._hold:
            return self._long_gap(gap)(t1, t2)
        middle = length / 2.0
        # max(0.0, min(t2, middle) - t1) and max(0.0, t2 - max(t1, middle)) spelled out (called
        # per cut gap and per outage cell): each picks the very operand the builtin would.
        before = (middle if middle < t2 else t2) - t1
        after = t2 - (middle if middle > t1 else t1)
        return (self._states[gap] * (before if before > 0.0 else 0.0)
                + self._states[gap + 1] * (after if after > 0.0 else 0.0))

    def _gap_constants(self, gap: int) -> tuple[int, float, float, float, float, float]:
        """Once per gap: a long gap's are read by its integral (``_long_gap``) and by ``settled``."""
        constants = self._constants.get(gap)
        if constants is None:
            constants = self._constants[gap] = super()._gap_constants(gap)
        return constants

    def _long_gap(self, gap: int) -> Callable[[float, float], float]:
        """``MarkovBridgeEstimate._bridge`` of one long gap as a function of ``(t1, t2)``, the
        terms that depend on the gap alone computed once (the very floats: Python multiplies
        left to right, so ``pi * pi_b * x`` is ``(pi * pi_b) * x``). A long gap is integrated
        for every window it is cut by and every outage cell read in it."""
        term = self._long_gaps.get(gap)
        if term is None:
            k, pi, exp = self._kappa, self._pi, math.exp
            length, pi_b, big_a, big_b, decay, norm = self._gap_constants(gap)
            up, up_b, minus_k = pi * pi_b, pi * big_b, -k
            a_up_b, a_b_decay = big_a * pi_b, big_a * big_b * decay

            def term(t1: float, t2: float) -> float:
                return (up * (t2 - t1)
                        + up_b * (exp(minus_k * (length - t2)) - exp(minus_k * (length - t1))) / k
                        + a_up_b * (exp(minus_k * t1) - exp(minus_k * t2)) / k
                        + a_b_decay * (t2 - t1)) / norm
            self._long_gaps[gap] = term
        return term

    def uptime_seconds(self, start: int, end: int) -> float:
        """``MarkovBridgeEstimate.uptime_seconds`` with the same float operations in the same
        order (so the same bits), whole gaps read from ``_whole_gaps``: a report sums a week
        of hourly gaps per store, and calling ``_bridge`` per gap was most of its cost."""
        if end <= start:
            return 0.0
        times = self._times
        first, last = times[0], times[-1]
        if first <= start and end <= last:  # no edge: one gap (``_within_one_term``), or gaps
            gap = bisect.bisect_right(times, start) - 1
            g0 = times[gap]
            if end <= times[gap + 1]:
                return _clamp(0.0 + self._bridge(gap, start - g0, end - g0), float(end - start))
            return _clamp(self._gaps_uptime(0.0, start, end, gap), float(end - start))
        single = self._within_one_term(start, end)
        if single is not None:
            return _clamp(0.0 + single, float(end - start))
        total = 0.0
        if start < first:
            lo, hi = start, min(end, first)
            total += self._relaxing(self._states[0], first - hi, first - lo)
        if end > last:
            lo, hi = max(start, last), end
            total += self._relaxing(self._states[-1], lo - last, hi - last)
        if end > first and start < last:
            total = self._gaps_uptime(total, start, end)
        return _clamp(total, float(end - start))

    def term_uptime(self, start: int, end: int) -> Optional[Callable[[int, int], float]]:
        """``uptime_seconds`` of spans inside ``[start, end)``, when all of it lies in one gap
        or one edge (a fractional piece does: outages read it per cell), with the term found
        once; None otherwise. The same operations as ``uptime_seconds``, so the same floats."""
        times = self._times
        first, last = times[0], times[-1]
        if first <= start and end <= last:
            gap = bisect.bisect_right(times, start) - 1
            if end > times[gap + 1]:
                return None
            g0, bridge = times[gap], self._bridge
            own_bridge = type(self)._bridge is NearestThenMarkovEstimate._bridge
            if own_bridge and times[gap + 1] - g0 > 2 * self._hold:
                term = self._long_gap(gap)

                def long_gap_cell(lo: int, hi: int) -> float:  # _clamp inlined: one call per cell
                    value = 0.0 + term(lo - g0, hi - g0)
                    value = value if value > 0.0 else 0.0
                    length = float(hi - lo)
                    return value if value < length else length
                return long_gap_cell
            return lambda lo, hi: _clamp(0.0 + bridge(gap, lo - g0, hi - g0), float(hi - lo))
        relaxing = self._relaxing
        if end <= first:
            state = self._states[0]
            return lambda lo, hi: _clamp(0.0 + relaxing(state, first - hi, first - lo), float(hi - lo))
        if start >= last:
            state = self._states[-1]
            return lambda lo, hi: _clamp(0.0 + relaxing(state, lo - last, hi - last), float(hi - lo))
        return None

    def settled(self, start: int, end: int, below: float) -> Optional[bool]:
        """Whether every cell of ``[start, end)`` has its uptime below ``below`` of its length
        (True) or none has (False), when that is certain without reading cells; None otherwise.

        Inside one long gap the Markov bridge's chance of up is ``(c0 + c1 e^(-k (length - t))
        + c2 e^(-k t)) / norm``; each exponential is monotone in ``t``, so its coefficient's
        extremes over ``[start, end)`` bound the chance, and a cell's mean lies between them.
        Both polls up (or both down) keep it far from one half across most long gaps. The
        bounds must clear ``below`` by ``SETTLED_MARGIN``, far above the cells' rounding."""
        times = self._times
        if not times[0] <= start < end <= times[-1]:
            return None
        gap = bisect.bisect_right(times, start) - 1
        g0, g1 = times[gap], times[gap + 1]
        own_bridge = type(self)._bridge is NearestThenMarkovEstimate._bridge
        if end > g1 or g1 - g0 <= 2 * self._hold or not own_bridge:
            return None
        k, pi = self._kappa, self._pi
        length, pi_b, big_a, big_b, decay, norm = self._gap_constants(gap)
        c0, c1, c2 = pi * pi_b + big_a * big_b * decay, pi * big_b, big_a * pi_b
        t1, t2 = start - g0, end - g0
        near_end = (math.exp(-k * (length - t1)), math.exp(-k * (length - t2)))  # rising in t
        near_start = (math.exp(-k * t2), math.exp(-k * t1))  # falling in t: (min, max)
        # min(a, b) is ``b if b < a else a`` and max(a, b) ``b if b > a else a``, spelled out
        end_a, end_b = c1 * near_end[0], c1 * near_end[1]
        start_a, start_b = c2 * near_start[0], c2 * near_start[1]
        low = c0 + (end_b if end_b < end_a else end_a) + (start_b if start_b < start_a else start_a)
        high = c0 + (end_b if end_b > end_a else end_a) + (start_b if start_b > start_a else start_a)
        if low / norm >= below + SETTLED_MARGIN:
            return False
        if high / norm < below - SETTLED_MARGIN:
            return True
        return None

    def _gaps_uptime(self, total: float, start: int, end: int, gap: Optional[int] = None) -> float:
        """``total`` plus each gap's part of ``[start, end)``, in gap order: the gaps with
        ``times[gap] < end`` from the one holding ``start`` (``gap`` when the caller found it);
        the first and the last may be cut, every one between is whole."""
        times = self._times
        if gap is None:
            gap = max(0, bisect.bisect_right(times, start) - 1)
        stop, final = bisect.bisect_left(times, end), len(times) - 1
        stop = final if final < stop else stop  # min(final, stop)
        whole_from = gap if start <= times[gap] else gap + 1
        whole_to = stop if times[stop] <= end else stop - 1
        if gap < whole_from:
            g0, g1 = times[gap], times[gap + 1]
            total += self._bridge(gap, start - g0, (g1 if g1 < end else end) - g0)  # min(end, g1)
        if whole_from < whole_to:  # left to right, as a ``total += value`` loop adds (C speed)
            total = functools.reduce(operator.add, self._whole_gaps()[whole_from:whole_to], total)
        if whole_from <= whole_to < stop:
            cut = times[whole_to]
            total += self._bridge(whole_to, max(start, cut) - cut, end - cut)
        return total

    def _gap_shape(self) -> tuple[list[int], list[int]]:
        """Each gap's length, and the indices of the long ones (over twice the hold), once."""
        if self._shape is None:
            times = self._times
            lengths = list(map(operator.sub, itertools.islice(times, 1, None), times))
            # an integer length is over the float ``2 hold`` when it is over its floor (int
            # comparisons); ``operator.lt`` is a fast call per gap, a bound ``__lt__`` is not
            long_gap = 2 * self._hold
            limit: Any = math.floor(long_gap) if math.isfinite(long_gap) else long_gap
            over = map(operator.lt, itertools.repeat(limit), lengths)
            self._shape = lengths, list(itertools.compress(itertools.count(), over))
        return self._shape

    def gaps_over(self, times: Sequence[int], limit: int) -> Optional[list[int]]:
        """The indices of the gaps longer than ``limit`` between ``times``, when they are this
        estimate's own (the very list) and ``limit`` is at least the long-gap length: then they
        are among the long gaps found once (``_gap_shape``), a few, not a pass over every gap.
        None otherwise."""
        if times is not self._times or not limit >= 2 * self._hold:
            return None
        lengths, long_gaps = self._gap_shape()
        return [gap for gap in long_gaps if lengths[gap] > limit]

    def _whole_gaps(self) -> list[float]:
        """``_bridge(gap, 0, length)`` of every gap; short gaps by its own expression, inlined
        (tests/test_outages.py checks both agree to the bit). Only ever added to a float
        (``_gaps_uptime``): a gap up at both ends is kept as its int length, which that
        addition converts exactly as ``float`` would."""
        if self._whole is None:
            states = self._states
            lengths, long_gaps = self._gap_shape()
            # up at both ends (most gaps): ``1.0 * h + 1.0 * (length - h)`` with ``h = length / 2.0``
            # is exactly ``float(length)`` (half an integer and the rest are exact floats)
            whole: list[Any] = lengths.copy()
            if 0.0 in states:  # the gaps with a down end, by the expression
                both_up = map(operator.mul, states, itertools.islice(states, 1, None))
                for gap in itertools.compress(itertools.count(), map(operator.not_, both_up)):
                    length, before, after = lengths[gap], states[gap], states[gap + 1]
                    whole[gap] = before * (length / 2.0) + after * (length - length / 2.0)
            for gap in long_gaps:
                whole[gap] = self._bridge(gap, 0, lengths[gap])
            self._whole = whole
        return self._whole

    def pieces(self, start: int, end: int) -> list[Piece]:
        """Exact 0/1 within the hold of a poll and across short gaps (split at the midpoint,
        rounded up to the second); fractional (None) across long gaps and far from any poll.
        Neighbouring exact pieces of one value come merged (``_exact_runs``)."""
        starts, runs = self._exact_runs()
        out: list[Piece] = []
        index, count = bisect.bisect_right(starts, start) - 1, len(runs)
        while index < count:
            lo, hi, value = runs[index]
            if lo >= end:
                break
            lo, hi = (start if start > lo else lo), (end if end < hi else hi)  # max, min
            if lo < hi:
                out.append((lo, hi, value))
            index += 1
        return out

    def _exact_runs(self) -> tuple[list[float], list[Piece]]:
        """The pieces of all time, once per estimate (a report asks for them per business
        span): fractional before ``first - hold``, after ``last + hold`` and across each long
        gap; elsewhere runs of one exact value. Returns the runs and their starts."""
        if self._runs is None:
            times, states, hold, long_gap = self._times, self._states, int(self._hold), 2 * self._hold
            runs: list[Any] = [(-math.inf, times[0] - hold, None)]
            run_lo, run_value = times[0] - hold, int(states[0])
            # Only a long gap or a change of status makes a run; every other gap continues one.
            _, long_gaps = self._gap_shape()
            changes = itertools.compress(itertools.count(),
                                         map(operator.ne, states, itertools.islice(states, 1, None)))
            for gap in sorted(set(long_gaps).union(changes)):
                g0, g1 = times[gap], times[gap + 1]
                after = int(states[gap + 1])
                if g1 - g0 > long_gap:
                    if run_lo < g0:
                        runs.append((run_lo, g0, run_value))
                    runs.append((g0, g1, None))
                    run_lo, run_value = g1, after
                elif after != run_value:
                    middle = g0 + (g1 - g0 + 1) // 2
                    runs.append((run_lo, middle, run_value))
                    run_lo, run_value = middle, after
            if run_lo < times[-1] + hold:
                runs.append((run_lo, times[-1] + hold, run_value))
            runs.append((times[-1] + hold, math.inf, None))
            self._runs = ([lo for lo, _, _ in runs], runs)
        return self._runs


#: How far a poll is trusted as it stands: within this of an evidence poll its status holds
#: (and a gap of up to twice this is split at its midpoint). Time further away is inferred.
HOLD_HOURS = 1.5


def nearest_then_markov(polls: Sequence[Poll], params: MarkovParameters = MarkovParameters(),
                        hold_hours: float = HOLD_HOURS, trust_hours: float = math.inf,
                        trust_gaps: float = 0.0, floor: float = 0.0) -> UptimeEstimate:
    """``floor``: the share credited far from any poll (where fading ends) and with no poll at all."""
    if not polls:
        return ConstantShare(floor) if floor else NoEvidence()
    return NearestThenMarkovEstimate(polls, params, hold_hours, trust_hours, trust_gaps, floor)


#: How long silence at the edge of a store's evidence keeps its credit (e-folding time,
#: past the hold); chosen by measurement, docs/ALGORITHM.md section 6.
SILENCE_TRUST_HOURS = 12.0
#: ... or this many of the store's own typical gaps between polls, if longer (sparse stores).
SILENCE_TRUST_GAPS = 4.0
#: The long-run up share used when there is no fleet evidence to learn it from.
FALLBACK_UP_SHARE = 0.8


def fading_silence(polls: Sequence[Poll], prior_up_share: float = FALLBACK_UP_SHARE) -> UptimeEstimate:
    """The rule in use: nearest poll near evidence, Markov bridge across long gaps, credit
    fading with silence at the edges; the long-run share shrinks the store's own evidence
    towards ``prior_up_share`` (the fleet's, learned by ``fleet_up_share``)."""
    return nearest_then_markov(polls, MarkovParameters(prior_up_share=prior_up_share),
                               trust_hours=SILENCE_TRUST_HOURS, trust_gaps=SILENCE_TRUST_GAPS)


class PacedSilenceEstimate(NearestThenMarkovEstimate):
    """Silence weighs against a store in proportion to how often it is heard from.

    Far from any poll the estimate relaxes to the store's own long-run share, learned
    empirical-Bayes style: its evidence polls, each weighted by age (``poll_weight``), plus
    ``prior_weight`` polls at the fleet's share. Silence at the edges fades that credit with an
    e-folding time of ``trust_hours`` or ``pace_gaps`` times the store's own pace (the read
    range over its weighted poll count), whichever is longer: a store heard from every hour that
    goes quiet for a day was most likely down, one heard from once a week tells little by being
    quiet for three days. As a store's last polls age out of the read range their weight, the
    pace, and so the whole estimate tend continuously to a store with no evidence, which gets
    the fleet's share: no cliff.
    """

    def __init__(self, polls: Sequence[Poll], prior_up_share: float, read_start: int, now: int,
                 prior_weight: float = 1.0, trust_hours: float = 12.0, pace_gaps: float = 4.0) -> None:
        super().__init__(polls, MarkovParameters(prior_up_share=prior_up_share), HOLD_HOURS)
        weights = poll_weights(self._times, read_start)
        weighted = sum(weights)
        active = sum(itertools.compress(weights, self._states))
        self._pi = (active + prior_weight * prior_up_share) / (weighted + prior_weight)
        trust = trust_hours * 3600.0
        if weighted > 0:
            trust = max(trust, pace_gaps * (now - read_start) / weighted)
        self._trust_rate = 1.0 / trust if weighted > 0 else 0.0


#: A poll's weight ramps from 0 at the start of the read range to 1 a day later (the day read
#: before the week): a poll leaving the read range fades out instead of vanishing.
AGE_RAMP_SECONDS = 24 * 3600


def poll_weight(at: int, read_start: int) -> float:
    return min(1.0, max(0.0, (at - read_start) / AGE_RAMP_SECONDS))


def poll_weights(times: Sequence[int], read_start: int) -> list[float]:
    """``poll_weight`` of each of the sorted ``times``: past the ramp every weight is exactly
    1.0, so only the polls of the ramp's day are computed (most of a week's are past it)."""
    before = bisect.bisect_right(times, read_start)  # weight 0.0 (at read_start: 0 / ramp)
    ramped = bisect.bisect_left(times, read_start + AGE_RAMP_SECONDS)
    return ([0.0] * before + [(at - read_start) / AGE_RAMP_SECONDS for at in times[before:ramped]]
            + [1.0] * (len(times) - ramped))


def paced_silence(polls: Sequence[Poll], prior_up_share: float, read_start: int, now: int,
                  prior_weight: float = 1.0, trust_hours: float = 12.0,
                  pace_gaps: float = 4.0) -> UptimeEstimate:
    """No evidence: the fleet's share (the limit of ``PacedSilenceEstimate`` as polls age out)."""
    if not polls:
        return ConstantShare(prior_up_share)
    return PacedSilenceEstimate(polls, prior_up_share, read_start, now, prior_weight, trust_hours, pace_gaps)


#: How many stores the fallback share counts as in ``fleet_up_share``: enough that a shard of a
#: few stores (a small data set: the report learns the share per storage shard) cannot swing
#: every store's share, little against a real shard's hundreds of stores.
FALLBACK_WEIGHT_STORES = 10


def fleet_up_share(evidence: Iterable[Sequence[Poll]]) -> float:
    """Empirical-Bayes prior: the mean of the stores' shares of active evidence polls,
    with ``FALLBACK_UP_SHARE`` counted as ``FALLBACK_WEIGHT_STORES`` more stores (so no
    evidence gives it back, and a handful of stores move it only a little).

    Callers give the stores in a fixed order (by id), so the same stores give the
    same float whichever worker computes it."""
    total, stores = FALLBACK_UP_SHARE * FALLBACK_WEIGHT_STORES, FALLBACK_WEIGHT_STORES
    for polls in evidence:
        if not polls:
            continue
        active = sum(polls.actives) if isinstance(polls, PollColumns) else sum(1 for _, up in polls if up)
        total += active / len(polls)
        stores += 1
    return total / stores


RULES: dict[str, InterpolationRule] = {
    "carry_forward": carry_forward,
    "nearest_poll": nearest_poll,
    "markov_bridge": markov_bridge,
    "nearest_then_markov": nearest_then_markov,
    "fading_silence": fading_silence,
}

#: Chosen by measurement against the simulator; see docs/ALGORITHM.md. It needs the report's
#: read range (``chalicelib.core.report.default_rule`` builds it), so it is not in ``RULES``.
DEFAULT_RULE_NAME = "paced_silence"
