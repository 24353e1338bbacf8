"""A fleet simulator with ground truth: the project's way to make test data of any size,
and to measure interpolation rules against what really happened.

Each simulated store has a hidden up/down timeline (an alternating renewal process with
lognormal durations: most stores reliable, some flaky, a few with long outages), a real
schedule and zone (sampled from ``../shared/data/real`` when present, synthetic otherwise)
and a poller: about hourly with jitter and dropped polls, fleet-wide poll outages, a few
stores polled only rarely, and most stores reporting ``inactive`` while closed.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import math
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from chalicelib.core import parsing
from chalicelib.core.interpolation import (
    FALLBACK_UP_SHARE,
    HOLD_HOURS,
    SILENCE_TRUST_GAPS,
    SILENCE_TRUST_HOURS,
    ConstantShare,
    NearestThenMarkovEstimate,
    UptimeEstimate,
    RULES,
    InterpolationRule,
    MarkovParameters,
    Poll,
    fading_silence,
    paced_silence,
    fleet_up_share,
    nearest_then_markov,
)
from chalicelib.core.report import (
    LOOKBACK,
    READ_RANGE,
    WINDOWS,
    StoreEvidence,
    default_rule,
    report_from_evidence,
    store_evidence,
)
from chalicelib.core.schedule import WeeklySchedule, business_intervals, clip_spans, contains, merge_spans
from chalicelib.core.units import DAY, HOUR
from storemon_app.paths import SHARED_REAL


@dataclass(frozen=True)
class Scenario:
    name: str
    stores: int
    days: int
    id_style: str  # "int19" (old data set) or "uuid" (new)
    now: datetime
    poll_interval: float = HOUR
    jitter: float = 0.25  # of the interval, either way
    drop_rate: float = 0.05
    #: Hours before now at which a fleet-wide stretch without polls starts, and its length.
    fleet_gap: Optional[tuple[float, float]] = None
    rare_share: float = 0.01  # stores polled once in the whole period
    #: Whether those are truly up only around their one poll (down otherwise) instead of as usual:
    #: an assumption no data can check, which decides what silence of days is worth.
    rare_down: bool = False
    #: Stores polled only every 6-24 hours (their status is the truth at each poll).
    sparse_share: float = 0.0
    #: Stores that go dark for a while (lognormal, median 24 h, may last until now): no polls,
    #: and truly down meanwhile (the device is off, which is why the poller cannot reach it).
    silent_share: float = 0.0
    inactive_when_closed_share: float = 0.3
    no_hours_share: float = 0.1  # 24x7
    no_zone_share: float = 0.05  # default zone
    flaky_share: float = 0.2


OLD_NOW = datetime(2023, 1, 25, 18, 13, 22, tzinfo=timezone.utc)
NEW_NOW = datetime(2024, 10, 14, 23, 55, 18, tzinfo=timezone.utc)

SCENARIOS: dict[str, Scenario] = {
    "tiny": Scenario("tiny", 20, 9, "int19", OLD_NOW, fleet_gap=(60, 12)),
    "sample": Scenario("sample", 200, 9, "int19", OLD_NOW, fleet_gap=(80, 36), sparse_share=0.03,
                       silent_share=0.05),
    # The weeks of the US daylight-saving changes (2023-03-12 and 2023-11-05), otherwise like sample.
    "dst-spring": Scenario("dst-spring", 200, 9, "int19",
                           datetime(2023, 3, 15, 18, 13, 22, tzinfo=timezone.utc),
                           fleet_gap=(80, 36), sparse_share=0.03, silent_share=0.05),
    # The spring week with the 1 % of stores polled once down except around that poll.
    "dst-spring-rare-down": Scenario("dst-spring-rare-down", 200, 9, "int19",
                                     datetime(2023, 3, 15, 18, 13, 22, tzinfo=timezone.utc),
                                     fleet_gap=(80, 36), sparse_share=0.03, silent_share=0.05,
                                     rare_down=True),
    "dst-fall": Scenario("dst-fall", 200, 9, "int19", datetime(2023, 11, 8, 18, 13, 22, tzinfo=timezone.utc),
                         fleet_gap=(80, 36), sparse_share=0.03, silent_share=0.05),
    # Shaped like the real older data set: 14,092 stores, ~1.8M polls over 8 days, a 36-hour gap.
    "old-full": Scenario("old-full", 14_092, 8, "int19", OLD_NOW, drop_rate=0.18, fleet_gap=(100, 36)),
    # The issue-8 fleet: today's size with UUID ids (the newer format), hourly for 8 days, ~2.2M polls;
    # the hourly-week bench feeds it as one file per hour.
    "uuid-week": Scenario("uuid-week", 14_092, 8, "uuid", OLD_NOW, drop_rate=0.18),
    # Ten times that fleet: 140,920 stores, ~22M polls.
    "fleet-10x": Scenario("fleet-10x", 140_920, 8, "uuid", OLD_NOW, drop_rate=0.18),
    # Shaped like the newer one: 4,560 stores, ~1.9M polls over two months.
    "new-full": Scenario("new-full", 4_560, 61, "uuid", NEW_NOW, poll_interval=3.4 * HOUR, drop_rate=0.03),
    "new-last8": Scenario("new-last8", 4_560, 8, "uuid", NEW_NOW, poll_interval=3.4 * HOUR, drop_rate=0.03),
}


# -- ground truth ------------------------------------------------------------------

class Timeline:
    """A store's true status: ``initial`` at ``start``, flipping at each of ``changes``."""

    def __init__(self, start: int, initial: bool, changes: list[int]) -> None:
        self.start, self.initial, self.changes = start, initial, changes

    def is_up(self, instant: int) -> bool:
        flips = bisect.bisect_right(self.changes, instant)
        return self.initial ^ (flips % 2 == 1)

    def up_seconds(self, lo: int, hi: int) -> int:
        total = 0
        index = bisect.bisect_right(self.changes, lo)
        state = self.initial ^ (index % 2 == 1)
        cursor = lo
        while cursor < hi:
            next_change = self.changes[index] if index < len(self.changes) else hi
            end = min(hi, next_change)
            if state:
                total += end - cursor
            cursor = end
            state = not state
            index += 1
        return total


class DarkTimeline(Timeline):
    """A timeline forced down during ``dark`` (a store-specific silence)."""

    def __init__(self, base: Timeline, dark: tuple[int, int]) -> None:
        super().__init__(base.start, base.initial, base.changes)
        self.dark = dark

    def is_up(self, instant: int) -> bool:
        return not (self.dark[0] <= instant < self.dark[1]) and super().is_up(instant)

    def up_seconds(self, lo: int, hi: int) -> int:
        dark_lo, dark_hi = max(lo, self.dark[0]), min(hi, self.dark[1])
        hidden = super().up_seconds(dark_lo, dark_hi) if dark_lo < dark_hi else 0
        return super().up_seconds(lo, hi) - hidden


def simulate_timeline(rng: random.Random, start: int, end: int, flaky: bool) -> Timeline:
    """Alternating up/down periods with lognormal lengths (heavy-tailed, not memoryless)."""
    up_median = 3 * HOUR if flaky else 30 * HOUR
    down_median = 45 * 60 if flaky else 60 * 60
    changes: list[int] = []
    state = rng.random() < (0.75 if flaky else 0.95)
    initial = state
    cursor = start - int(rng.random() * up_median)
    while cursor < end:
        median = up_median if state else down_median
        cursor += max(60, int(rng.lognormvariate(math.log(median), 1.0)))
        if cursor > start:
            changes.append(min(cursor, end))
        state = not state
    return Timeline(start, initial, changes)


# -- schedules and zones -------------------------------------------------------------

def _real_profiles(id_style: str) -> tuple[list[list[tuple[int, int, int]]], list[str]]:
    """Every real store's schedule rows and every real zone name (empty when absent)."""
    folder = SHARED_REAL / ("old" if id_style == "int19" else "new")
    schedules: dict[str, list[tuple[int, int, int]]] = {}
    zones: list[str] = []
    if (folder / "menu_hours.csv").is_file():
        with open(folder / "menu_hours.csv", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            day_col = header.index("day") if "day" in header else header.index("dayOfWeek")
            for row in reader:
                schedules.setdefault(row[0], []).append((
                    parsing.parse_weekday(row[day_col]), parsing.parse_local_time(row[2]),
                    parsing.parse_local_time(row[3])))
    if (folder / "timezones.csv").is_file():
        with open(folder / "timezones.csv", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            zones = [row[1] for row in reader if row and parsing.is_known_timezone(row[1])]
    return list(schedules.values()), zones


def _synthetic_schedule(rng: random.Random) -> list[tuple[int, int, int]]:
    kind = rng.random()
    rows = []
    for day in range(7):
        if kind < 0.15 and day == 0:
            continue  # closed on Mondays
        if kind < 0.3:
            rows.append((day, 22 * HOUR, 2 * HOUR))  # overnight
        elif kind < 0.45:
            rows += [(day, 11 * HOUR, 14 * HOUR + 30 * 60), (day, 17 * HOUR, 23 * HOUR)]  # split
        else:
            rows.append((day, rng.choice([6, 7, 9, 10, 11]) * HOUR,
                         rng.choice([20, 21, 22]) * HOUR + 59 * 60 + 59))
    return rows


SYNTHETIC_ZONES = ["America/New_York"] * 9 + ["America/Chicago"] * 5 + ["America/Los_Angeles"] * 4 + \
    ["America/Denver", "America/Phoenix", "America/Edmonton", "Asia/Beirut"]


@dataclass
class SimulatedStore:
    store_id: str
    schedule_rows: Optional[list[tuple[int, int, int]]]  # None: no hours rows (24x7)
    zone: Optional[str]  # None: no zone row (default zone)
    timeline: Timeline
    polls: list[Poll]
    #: How the poller treats it: "hourly" (the scenario's interval), "sparse", "silent" (goes
    #: dark for a while) or "rare" (polled once); for measuring rules per kind of store.
    kind: str = "hourly"

    @property
    def schedule(self) -> WeeklySchedule:
        return WeeklySchedule.from_rows(self.schedule_rows or [])

    @property
    def tz_name(self) -> str:
        return self.zone or parsing.DEFAULT_TIMEZONE


def _store_id(rng: random.Random, style: str) -> str:
    if style == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return str(rng.randrange(10**18, 10**19))


def simulate(scenario: Scenario, seed: int = 1) -> Iterator[SimulatedStore]:
    """Stores one at a time (memory stays flat whatever the size)."""
    rng = random.Random(seed)
    real_schedules, real_zones = _real_profiles(scenario.id_style)
    now = int(scenario.now.timestamp())
    start = now - scenario.days * DAY
    gap = None
    if scenario.fleet_gap:
        gap_start = now - int(scenario.fleet_gap[0] * HOUR)
        gap = (gap_start, gap_start + int(scenario.fleet_gap[1] * HOUR))
    for index in range(scenario.stores):
        store_id = _store_id(rng, scenario.id_style)
        rows, zone = _profile(rng, scenario, real_schedules, real_zones)
        timeline = simulate_timeline(rng, start, now, flaky=rng.random() < scenario.flaky_share)
        schedule = WeeklySchedule.from_rows(rows or [])
        business = business_intervals(schedule, zone or parsing.DEFAULT_TIMEZONE, start, now + 1)
        inactive_when_closed = rng.random() < scenario.inactive_when_closed_share
        interval, kind, timeline = _poller(rng, scenario, index, now, timeline)
        moments, kind, timeline = _poll_moments(rng, scenario, now, interval, kind, timeline)
        if index == 0:
            moments.append(now)  # "now" is the latest poll: pin it to the scenario's now
        polls = []
        for moment in sorted(set(m for m in moments if start <= m <= now)):
            if _unheard(moment, gap, timeline):
                continue
            up = timeline.is_up(moment)
            if inactive_when_closed and not contains(business, moment):
                up = False
            polls.append(Poll(moment, up))
        yield SimulatedStore(store_id, rows, zone, timeline, polls, kind)


def _profile(rng: random.Random, scenario: Scenario, real_schedules: list[list[tuple[int, int, int]]],
             real_zones: list[str]) -> tuple[Optional[list[tuple[int, int, int]]], Optional[str]]:
    """A store's hours rows and zone (None: no row, the specification's default)."""
    rows = None
    if rng.random() >= scenario.no_hours_share:
        rows = rng.choice(real_schedules) if real_schedules else _synthetic_schedule(rng)
    zone = None
    if rng.random() >= scenario.no_zone_share:
        zone = rng.choice(real_zones) if real_zones else rng.choice(SYNTHETIC_ZONES)
    return rows, zone


def _poller(rng: random.Random, scenario: Scenario, index: int, now: int,
            timeline: Timeline) -> tuple[float, str, Timeline]:
    """How the poller treats a store: its interval, its kind, and its timeline (a silent
    store goes dark for a while). The first store stays hourly: it pins "now"."""
    interval = scenario.poll_interval
    kind = "hourly"
    if index and scenario.sparse_share and rng.random() < scenario.sparse_share:
        interval = rng.uniform(6, 24) * HOUR
        kind = "sparse"
    if index and scenario.silent_share and rng.random() < scenario.silent_share:
        dark_start = now - rng.randrange(scenario.days * DAY)
        dark = (dark_start, dark_start + max(HOUR, int(rng.lognormvariate(math.log(24 * HOUR), 0.8))))
        timeline = DarkTimeline(timeline, dark)
        kind = "silent"
    return interval, kind, timeline


def _poll_moments(rng: random.Random, scenario: Scenario, now: int, interval: float, kind: str,
                  timeline: Timeline) -> tuple[list[int], str, Timeline]:
    """When the poller asks: once for a rare store (which, with ``rare_down``, is up only
    around that poll), else every ``interval`` with jitter and dropped polls."""
    if rng.random() < scenario.rare_share:
        moments = [now - rng.randrange(scenario.days * DAY)]
        if scenario.rare_down:
            timeline = Timeline(now - scenario.days * DAY, False, [moments[0] - HOUR, moments[0] + HOUR])
        return moments, "rare", timeline
    phase = rng.random() * interval
    count = int(scenario.days * DAY / interval)
    moments = []
    for slot in range(count):
        if rng.random() < scenario.drop_rate:
            continue
        jitter = (rng.random() * 2 - 1) * scenario.jitter * interval
        moments.append(int(now - phase - slot * interval + jitter))
    return moments, kind, timeline


def _unheard(moment: int, gap: Optional[tuple[int, int]], timeline: Timeline) -> bool:
    """A poll lost in the fleet-wide gap or in the store's own dark stretch."""
    if gap and gap[0] <= moment < gap[1]:
        return True
    return isinstance(timeline, DarkTimeline) and timeline.dark[0] <= moment < timeline.dark[1]


# -- writing data sets -----------------------------------------------------------------

def _stamp(moment: int, micro: int) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{micro:06d} UTC"


def _clock(seconds: int) -> str:
    seconds = min(seconds, DAY - 1)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_dataset(out_dir: Path, scenario: str | Scenario, seed: int = 1,
                  progress: bool = False) -> dict[str, int]:
    """Write store_status.csv, menu_hours.csv and timezones.csv, streaming; returns row counts."""
    spec = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"store_status.csv": 0, "menu_hours.csv": 0, "timezones.csv": 0}
    rng = random.Random(seed + 1)
    started = time.monotonic()
    with open(out_dir / "store_status.csv", "w", newline="") as status, \
            open(out_dir / "menu_hours.csv", "w", newline="") as hours, \
            open(out_dir / "timezones.csv", "w", newline="") as zones:
        status.write("store_id,status,timestamp_utc\n")
        hours.write("store_id,dayOfWeek,start_time_local,end_time_local\n")
        zones.write("store_id,timezone_str\n")
        for index, store in enumerate(simulate(spec, seed)):
            lines = [f"{store.store_id},{'active' if up else 'inactive'},{_stamp(at, rng.randrange(10**6))}\n"
                     for at, up in store.polls]
            status.writelines(lines)
            counts["store_status.csv"] += len(lines)
            for day, start, end in store.schedule_rows or ():
                hours.write(f"{store.store_id},{day},{_clock(start)},{_clock(end)}\n")
                counts["menu_hours.csv"] += 1
            if store.zone:
                zones.write(f"{store.store_id},{store.zone}\n")
                counts["timezones.csv"] += 1
            if progress and index % 1000 == 999:
                print(f"  {index + 1:,}/{spec.stores:,} stores, {counts['store_status.csv']:,} polls "
                      f"[{time.monotonic() - started:.0f} s]", file=sys.stderr, flush=True)
    return counts


# -- measuring rules against the truth ---------------------------------------------------

@dataclass(frozen=True)
class RuleError:
    rule: str
    window: str
    mae: float
    p90: float
    bias: float
    #: Mean absolute error as a share of the mean business time of the window (%).
    share: float = 0.0
    #: "all", or one kind of store (``SimulatedStore.kind``): the week's error on those only.
    kind: str = "all"
    count: int = 0


class AgedEvidenceEstimate(NearestThenMarkovEstimate):
    """Measured, not used: no fading; far from polls the store's share relaxes to its own
    empirical-Bayes share, in which a poll counts less the closer it is to the start of the
    read range (full weight inside the week, falling linearly to 0 over the day before)."""

    def __init__(self, polls: Sequence[Poll], prior: float, weight: float, now: int) -> None:
        super().__init__(polls, MarkovParameters(prior_up_share=prior, prior_weight=weight), HOLD_HOURS)
        weights = [min(1.0, max(0.0, (at - (now - READ_RANGE)) / LOOKBACK)) for at, _ in polls]
        up_weight = sum(w for w, (_, up) in zip(weights, polls, strict=True) if up)
        self._pi = (up_weight + weight * prior) / (sum(weights) + weight)


def aged_evidence(polls: Sequence[Poll], prior: float, weight: float, now: int) -> UptimeEstimate:
    """No evidence: the fleet's share (the limit of ``AgedEvidenceEstimate`` as polls age out)."""
    if not polls:
        return ConstantShare(prior)
    return AgedEvidenceEstimate(polls, prior, weight, now)


def candidate_rules(prior: float = FALLBACK_UP_SHARE, now: int = 0) -> dict[str, InterpolationRule]:
    """The rules measured; ``prior`` is the fleet's learned up share for the rules that use it,
    ``now`` the report's (for the rules whose evidence weights depend on age)."""
    rules = {name: rule for name, rule in RULES.items() if name != "fading_silence"}
    rules["nearest_then_markov(learned prior)"] = \
        lambda polls: nearest_then_markov(polls, MarkovParameters(prior_up_share=prior))
    learned = MarkovParameters(prior_up_share=prior)
    for trust in (6.0, 12.0, 24.0):
        rules[f"fading_silence(trust={trust:g}h)"] = \
            lambda polls, t=trust: nearest_then_markov(polls, learned, trust_hours=t)
        for gaps in (2.0, 4.0):
            rules[f"fading_silence(trust={trust:g}h or {gaps:g} gaps)"] = \
                lambda polls, t=trust, g=gaps: nearest_then_markov(polls, learned, trust_hours=t,
                                                                   trust_gaps=g)
    # Issue 12 (second pass): far from any poll, credit a fraction of the fleet's share instead of 0.
    for floor in (0.25, 0.5, 0.6, 0.75, 0.9, 1.0):
        rules[f"fading_silence(floor={floor:g} x fleet share)"] = \
            lambda polls, f=floor: nearest_then_markov(polls, learned, trust_hours=SILENCE_TRUST_HOURS,
                                                       trust_gaps=SILENCE_TRUST_GAPS, floor=f * prior)
    for weight in (1.0, 2.0):
        rules[f"aged_evidence(k={weight:g}, no evidence = fleet share)"] = \
            lambda polls, w=weight: aged_evidence(polls, prior, w, now)
    # Issue 12 (third pass): fading scaled by the store's own pace of polls (age-weighted).
    for k in (1.0, 2.0):
        for gaps in (1.0, 2.0, 8.0):
            rules[f"paced_silence(k={k:g}, {gaps:g} paces)"] = \
                lambda polls, k=k, g=gaps: paced_silence(polls, prior, now - READ_RANGE, now, k, pace_gaps=g)
    rules["fading_silence (second pass)"] = lambda polls: fading_silence(polls, prior)
    rules["paced_silence (in use)"] = default_rule(now, prior)
    return rules


def compare_rules(scenario: Scenario, seeds: Sequence[int],
                  rules: Optional[Callable[[float, int], dict[str, InterpolationRule]]] = None,
                  nows_per_seed: int = 3, only: Sequence[str] = ()) -> list[RuleError]:
    """Error of each rule against the truth, per window (hour in minutes, day and week in hours),
    and the week's per kind of store.

    Each seed's fleet is evaluated at several "now"s (the real one and earlier ones, with the
    polls after them hidden), so windows fall on every part of the day and of the outage gap.
    ``rules`` builds the rules from the fleet's learned up share (``fleet_up_share``), computed
    as the report computes it, and the report's now; ``only`` keeps the rules whose names
    contain one of these strings.
    """
    rules = rules or candidate_rules
    errors: dict[tuple[str, str, str], list[float]] = {}
    business_total: dict[str, float] = {}
    for seed in seeds:
        stores = sorted(simulate(scenario, seed), key=lambda store: store.store_id)
        now = int(scenario.now.timestamp())
        for shift in range(nows_per_seed):
            report_now = now - shift * 7 * HOUR
            evidence = {store.store_id: store_evidence([p for p in store.polls if p.at <= report_now],
                                                       store.schedule, store.tz_name, report_now)
                        for store in stores}
            fleet_rules = rules(fleet_up_share(e.polls for e in evidence.values()), report_now)
            if only:
                fleet_rules = {n: r for n, r in fleet_rules.items() if any(o in n for o in only)}
            for store in stores:
                if any(p.at <= report_now for p in store.polls):
                    _measure_store(store, evidence[store.store_id], report_now, fleet_rules, errors,
                                   business_total)
    return [_rule_error(key, values, business_total) for key, values in errors.items()]


def _true_uptime(store: SimulatedStore, report_now: int) -> dict[str, int]:
    """The simulated truth: seconds up inside business hours, per report window."""
    business = business_intervals(store.schedule, store.tz_name, report_now - 7 * DAY, report_now)
    return {window: sum(store.timeline.up_seconds(max(lo, report_now - length), min(hi, report_now))
                        for lo, hi in business if hi > report_now - length)
            for window, length in WINDOWS}


def _measure_store(store: SimulatedStore, evidence: StoreEvidence, report_now: int,
                   fleet_rules: dict[str, InterpolationRule], errors: dict[tuple[str, str, str], list[float]],
                   business_total: dict[str, float]) -> None:
    """Append each rule's error on ``store`` to ``errors`` (by rule, window, and for the week by
    kind of store); the first rule's business time is summed into ``business_total``."""
    truths = _true_uptime(store, report_now)
    first = next(iter(fleet_rules), None)
    for name, rule in fleet_rules.items():
        row = report_from_evidence(store.store_id, evidence, report_now, rule)
        for window, _ in WINDOWS:
            unit = 60 if window == "hour" else 3600
            totals = getattr(row, window)
            error = (totals.uptime - truths[window]) / unit
            errors.setdefault((name, window, "all"), []).append(error)
            if window == "week":
                errors.setdefault((name, window, store.kind), []).append(error)
            if name == first:
                business_total[window] = business_total.get(window, 0.0) + totals.business / unit


def _rule_error(key: tuple[str, str, str], values: list[float],
                business_total: dict[str, float]) -> RuleError:
    """Summary of one rule's errors in one window (and kind of store)."""
    name, window, kind = key
    absolute = sorted(abs(v) for v in values)
    total = business_total.get(window) if kind == "all" else None
    share = 100 * sum(absolute) / total if total else 0.0
    return RuleError(name, window, statistics.fmean(absolute), absolute[int(0.9 * (len(absolute) - 1))],
                     statistics.fmean(values), share, kind, len(values))


def errors_table(errors: list[RuleError]) -> str:
    errors = [e for e in errors if e.kind == "all"]
    rules = list(dict.fromkeys(e.rule for e in errors))
    cell = {(e.rule, e.window): e for e in errors}
    lines = ["| rule | hour: MAE (min) | hour: P90 | hour: bias | day: MAE (h) | day: P90 | day: bias "
             "| week: MAE (h) | week: P90 | week: bias | week: MAE % of business |",
             "|---|" + "---:|" * 10]
    for rule in rules:
        parts = []
        for window, _ in WINDOWS:
            e = cell[(rule, window)]
            parts += [f"{e.mae:.2f}", f"{e.p90:.2f}", f"{e.bias:+.2f}"]
        parts.append(f"{cell[(rule, 'week')].share:.2f} %")
        lines.append(f"| `{rule}` | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def kinds_table(errors: list[RuleError]) -> str:
    """The week's error per kind of store: mean absolute / bias in hours (store-reports)."""
    kinds = [k for k in ("hourly", "sparse", "silent", "rare") if any(e.kind == k for e in errors)]
    cell = {(e.rule, e.kind): e for e in errors if e.window == "week"}
    rules = list(dict.fromkeys(e.rule for e in errors))
    lines = ["| rule | " + " | ".join(f"{k} ({cell[(rules[0], k)].count})" for k in kinds) + " |",
             "|---|" + "---:|" * len(kinds)]
    for rule in rules:
        lines.append(f"| `{rule}` | " + " | ".join(
            f"{cell[(rule, k)].mae:.2f} / {cell[(rule, k)].bias:+.2f}" for k in kinds) + " |")
    return "\n".join(lines)


def rare_store_bound(scenario: Scenario, seeds: Sequence[int], nows_per_seed: int = 3,
                     reach_hours: float = 23.0, tail_hours: float = 3.0) -> tuple[int, float]:
    """(store-reports, lower bound on the mean absolute week error of the stores polled once)
    for every rule that gives a store without evidence 0, fills silence by distance from its
    polls alone, and passes the 8-day check (one active poll 7 d 23 h before now earns less than
    ``tail_hours`` of a 24x7 week more than one at 8 d 01 h, that is, less than that beyond
    ``reach_hours`` of a poll on each side). Best case: the truth within ``reach_hours`` of each
    poll and ``tail_hours`` more per side."""
    total, count = 0.0, 0
    for seed in seeds:
        now = int(scenario.now.timestamp())
        for store in simulate(scenario, seed):
            if store.kind != "rare":
                continue
            for shift in range(nows_per_seed):
                report_now = now - shift * 7 * HOUR
                if not any(p.at <= report_now for p in store.polls):
                    continue
                evidence = store_evidence([p for p in store.polls if p.at <= report_now],
                                          store.schedule, store.tz_name, report_now)
                business = business_intervals(store.schedule, store.tz_name, report_now - 7 * DAY, report_now)
                truth = sum(store.timeline.up_seconds(lo, hi) for lo, hi in business)
                reach = int(reach_hours * HOUR)
                near = merge_spans([(at - reach, at + reach) for at, _ in evidence.polls])
                best = sum(store.timeline.up_seconds(lo, hi)
                           for a, b in near for lo, hi in clip_spans(business, a, b))
                best += 2 * tail_hours * HOUR * len(evidence.polls)
                total += max(0.0, truth - best) / HOUR
                count += 1
    return count, total / count if count else 0.0


# -- commands ---------------------------------------------------------------------------

def cmd_generate(args: argparse.Namespace) -> int:
    started = time.monotonic()
    counts = write_dataset(Path(args.out), args.scenario, seed=args.seed, progress=True)
    print(f"scenario {args.scenario} (seed {args.seed}) -> {Path(args.out).resolve()} "
          f"in {time.monotonic() - started:.1f} s: "
          + ", ".join(f"{k} {v:,} rows" for k, v in counts.items()))
    return 0


def cmd_compare_rules(args: argparse.Namespace) -> int:
    scenario = replace(SCENARIOS[args.scenario], stores=args.stores)
    started = time.monotonic()
    errors = compare_rules(scenario, seeds=range(1, args.seeds + 1), only=args.rules or ())
    print(f"scenario {args.scenario}: {args.stores} stores x {args.seeds} seeds x 3 report times, "
          f"{time.monotonic() - started:.0f} s; "
          f"real schedules and zones: {'yes' if SHARED_REAL.is_dir() else 'no (synthetic)'}\n")
    print(errors_table(errors))
    print("\nweek error per kind of store, mean absolute / bias (h):\n")
    print(kinds_table(errors))
    count, bound = rare_store_bound(scenario, seeds=range(1, args.seeds + 1))
    if count:
        print(f"\nstores polled once ({count} store-reports): no rule that gives no evidence 0, fills "
              f"silence by distance from polls and passes the 8-day check can have a week error below "
              f"{bound:.2f} h on them")
    return 0


def register_commands(commands: Any) -> None:
    generate = commands.add_parser("generate", help="write a simulated data set (status, hours, zones)")
    generate.add_argument("--scenario", choices=sorted(SCENARIOS), default="sample")
    generate.add_argument("--out", required=True, help="directory to write the three CSV files into")
    generate.add_argument("--seed", type=int, default=1)
    generate.set_defaults(func=cmd_generate)

    compare = commands.add_parser("compare-rules", help="measure interpolation rules against simulated truth")
    compare.add_argument("--scenario", choices=sorted(SCENARIOS), default="sample")
    compare.add_argument("--stores", type=int, default=300)
    compare.add_argument("--seeds", type=int, default=3)
    compare.add_argument("--rules", nargs="*", help="measure only the rules whose names contain one of these")
    compare.set_defaults(func=cmd_compare_rules)
