"""Report rows from polls: the worked example, edge cases, the interpolation rules."""
from __future__ import annotations

import itertools
import math

import pytest

from chalicelib.core.interpolation import (
    DEFAULT_RULE_NAME,
    RULES,
    MarkovBridgeEstimate,
    MarkovParameters,
    Poll,
)
from chalicelib.core.parsing import InvalidField, parse_poll_timestamp, parse_status
from chalicelib.core.report import store_report
from chalicelib.core.schedule import WeeklySchedule
from tests.unit.test_core_schedule import at

CHICAGO = "America/Chicago"
H = 3600


def test_worked_example_of_the_specification():
    monday_9_to_12 = WeeklySchedule.from_rows([(0, 9 * H, 12 * H)])
    polls = [Poll(at("2023-01-23 10:14", CHICAGO), True), Poll(at("2023-01-23 11:15", CHICAGO), False)]
    now = at("2023-01-23 12:00", CHICAGO)
    report = store_report("s", polls, monday_9_to_12, CHICAGO, now)
    assert DEFAULT_RULE_NAME == "paced_silence"
    assert report.day.business == 3 * H
    assert report.day.uptime == pytest.approx(104.5 * 60)  # 09:00 - 10:44:30
    assert report.day.downtime == pytest.approx(75.5 * 60)  # 10:44:30 - 12:00
    assert report.hour.uptime == 0 and report.hour.business == H
    assert report.csv_fields() == ["s", "0.00", "1.74", "1.74", "60.00", "1.26", "1.26"]
    assert store_report("s", polls, monday_9_to_12, CHICAGO, now, RULES["nearest_poll"]).csv_fields() == \
        report.csv_fields()
    locf = store_report("s", polls, monday_9_to_12, CHICAGO, now, RULES["carry_forward"])
    assert locf.day.uptime == 135 * 60 and locf.csv_fields()[1:] == ["15.00", "2.25", "2.25", "45.00", "0.75",
                                                                     "0.75"]


def test_store_with_one_poll():
    now = 1_700_000_000
    report = store_report("s", [Poll(now - 10 * H, True)], None, "UTC", now)
    # held for 1.5 h either side, then relaxing towards its (prior-weighted) up share: fractional
    assert report.week.business == 7 * 24 * H
    assert 0 < report.week.uptime < report.week.business
    nearest = store_report("s", [Poll(now - 10 * H, True)], None, "UTC", now, RULES["nearest_poll"])
    assert nearest.week.uptime == 7 * 24 * H


def test_no_polls_in_the_last_hour_but_before_it():
    now = 1_700_000_000
    polls = [Poll(now - 2 * H - k * H, False) for k in range(10)]
    report = store_report("s", polls, None, "UTC", now, RULES["nearest_poll"])
    assert report.hour.uptime == 0 and report.hour.downtime == H
    polls_up = [Poll(now - 2 * H - k * H, True) for k in range(10)]
    assert store_report("s", polls_up, None, "UTC", now, RULES["nearest_poll"]).hour.uptime == H


def test_inactive_polls_outside_business_hours_are_not_evidence():
    schedule = WeeklySchedule.from_rows([(day, 9 * H, 17 * H) for day in range(7)])
    now = at("2023-01-25 23:00", CHICAGO)
    night_polls = [Poll(at(f"2023-01-{d} 22:30", CHICAGO), False) for d in range(18, 26)]
    report = store_report("s", night_polls, schedule, CHICAGO, now)
    assert report.week.business == 7 * 8 * H
    # no evidence at all: exactly what a store without polls gets (the fleet's share)
    assert report == store_report("s", [], schedule, CHICAGO, now)
    with_day_poll = night_polls + [Poll(at("2023-01-25 12:00", CHICAGO), True)]
    report = store_report("s", with_day_poll, schedule, CHICAGO, now, RULES["nearest_poll"])
    assert report.week.uptime == report.week.business  # the closed-hours polls do not pull it down


def test_no_polls_at_all_gets_the_fleets_share():
    """No evidence: the limit of a store whose polls age out of the read range (no cliff), the
    fleet's learned share; the detail report marks all of it inferred."""
    report = store_report("silent", [], None, "America/Denver", 1_700_000_000, prior_up_share=0.75)
    assert report.csv_fields()[1:] == ["45.00", "18.00", "126.00", "15.00", "6.00", "42.00"]
    assert store_report("silent", [], None, "UTC", 1_700_000_000, RULES["nearest_poll"]).week.uptime == 0


def test_closed_for_the_whole_window_is_all_zero():
    closed_all_week_but_monday = WeeklySchedule.from_rows([(0, 9 * H, 10 * H)])
    now = at("2023-01-25 12:00", CHICAGO)  # Wednesday
    report = store_report("s", [Poll(now - H, True)], closed_all_week_but_monday, CHICAGO, now,
                          RULES["nearest_poll"])
    assert report.hour.business == report.day.business == 0
    assert report.csv_fields()[1:] == ["0.00", "0.00", "1.00", "0.00", "0.00", "0.00"]
    # the rule in use: Monday's hour is two days from the only poll of a store heard from once
    # this week, so it has the store's (shrunk) share; the hour still splits completely
    fields = store_report("s", [Poll(now - H, True)], closed_all_week_but_monday, CHICAGO, now).csv_fields()
    assert fields[1:3] == ["0.00", "0.00"] and float(fields[3]) + float(fields[6]) == 1.0
    assert 0.5 < float(fields[3]) < 1.0


def test_polls_outside_the_read_range_are_ignored():
    now = 1_700_000_000
    old = [Poll(now - 30 * 24 * H, True)]
    assert store_report("s", old, None, "UTC", now) == store_report("s", [], None, "UTC", now)


def test_conflicting_polls_at_one_instant_count_as_inactive():
    now = 1_700_000_000
    report = store_report("s", [Poll(now - 60, True), Poll(now - 60, False)], None, "UTC", now,
                          RULES["nearest_poll"])
    assert report.hour.uptime == 0


def test_csv_columns_add_up_after_rounding():
    from chalicelib.core.report import StoreReport, WindowTotals

    row = StoreReport("s", WindowTotals(3600, 1234.567), WindowTotals(86_399, 40_000.4),
                      WindowTotals(604_799, 1.0))
    fields = [float(v) for v in row.csv_fields()[1:]]
    assert fields[0] + fields[3] == pytest.approx(60.00)
    assert fields[1] + fields[4] == pytest.approx(24.00)
    assert fields[2] + fields[5] == pytest.approx(168.00)


def _bridge_probability(a: float, b: float, t: float, length: float, pi: float, k: float) -> float:
    """Independent pointwise formula: P(up at t | a at 0, b at T)."""
    def transition(x: float, y: float, s: float) -> float:  # P(y at s | x at 0)
        share = pi if y else 1 - pi
        return share + ((1.0 if x == y else 0.0) - share) * math.exp(-k * s)
    return transition(a, 1.0, t) * transition(1.0, b, length - t) / transition(a, b, length)


@pytest.mark.parametrize("states", [(True, True), (True, False), (False, True), (False, False)])
def test_markov_bridge_closed_form_matches_numerical_integration(states):
    polls = [Poll(0, states[0]), Poll(8 * H, states[1])]
    params = MarkovParameters(relaxation_hours=2.0)
    estimate = MarkovBridgeEstimate(polls, params)
    pi, k = estimate._pi, 1 / (2.0 * H)
    lo, hi, steps = 1_000, 20_000, 20_000
    width = (hi - lo) / steps
    numeric = sum(_bridge_probability(float(states[0]), float(states[1]), lo + (i + 0.5) * width, 8 * H, pi,
                                      k)
                  for i in range(steps)) * width
    assert estimate.uptime_seconds(lo, hi) == pytest.approx(numeric, rel=1e-6)


def test_parsing_keeps_big_ids_and_drops_fractions():
    midnight = parse_poll_timestamp("2023-01-22 00:00:00 UTC")
    whole_second = parse_poll_timestamp("2023-01-22 12:09:39 UTC")
    assert parse_poll_timestamp("2023-01-22 12:09:39.388884 UTC") == whole_second
    assert parse_poll_timestamp("2023-01-22 12:09:39.3 UTC") - midnight == 12 * H + 9 * 60 + 39
    assert parse_poll_timestamp("2024-02-29 23:59:59 UTC") == 1709251199
    for bad in ["2023-01-22 12:09:39", "2023-13-01 00:00:00 UTC", "2023-02-30 00:00:00 UTC",
                "2023-01-22 12:09:39.1234567 UTC", "yesterday UTC", "", "2023-0a-22 12:09:39 UTC",
                "1969-12-31 23:59:59 UTC", "٢٠٢٣-01-22 12:09:39 UTC", "2023-01-22 24:00:00 UTC",
                "2023-02-29 00:00:00 UTC", "+023-01-22 12:09:39 UTC"]:
        with pytest.raises(InvalidField):
            parse_poll_timestamp(bad)
    assert parse_status(" Active ") is True
    with pytest.raises(InvalidField):
        parse_status("up")


def test_a_poll_at_exactly_now_is_evidence():
    """Issue 12: X inactive at now and Y inactive one second earlier must tell the same story."""
    now = at("2023-01-25 18:00", "UTC")
    x = store_report("x", [Poll(now - 2 * H, True), Poll(now, False)], None, "UTC", now)
    y = store_report("y", [Poll(now - 2 * H, True), Poll(now - 1, False)], None, "UTC", now)
    assert abs(x.hour.uptime - y.hour.uptime) < 60
    assert x.hour.uptime < 60  # both inactive for the last half of the gap and more
    # and inside business hours only: a poll at now just after closing is not evidence
    nine_to_six = WeeklySchedule.from_rows([(2, 9 * H, 18 * H)])
    closed = store_report("z", [Poll(now - 2 * H, True), Poll(now, False)], nine_to_six, "UTC", now)
    assert closed == store_report("z", [Poll(now - 2 * H, True)], nine_to_six, "UTC", now)


def test_real_store_whose_only_poll_is_now(real_data):
    """``006c9910…`` in the new files: one inactive poll, the latest of the file."""
    path = real_data / "new" / "store_status.csv"
    store = "006c9910-9126-4bb9-b5d8-cd37bc14790b"
    polls, now = [], 0
    with open(path) as handle:
        next(handle)
        for line in handle:
            store_id, status, stamp = line.rstrip("\n").split(",")
            moment = parse_poll_timestamp(stamp)
            now = max(now, moment)
            if store_id == store:
                polls.append(Poll(moment, parse_status(status)))
    if polls != [Poll(now, False)]:
        pytest.skip("the real new files no longer have this store's single poll at now")
    report = store_report(store, polls, None, "America/New_York", now)
    assert report.hour.uptime == 0


def test_silence_has_no_cliff_at_the_edge_of_the_read_range():
    """Issue 12: one active poll 7 d 23 h ago gave 145.6 h of weekly uptime, at 8 d 01 h 0."""
    now = 1_700_000_000
    inside = store_report("a", [Poll(now - (7 * 24 + 23) * H, True)], None, "UTC", now)
    outside = store_report("b", [Poll(now - (8 * 24 + 1) * H, True)], None, "UTC", now)
    assert outside == store_report("b", [], None, "UTC", now)  # out of the read range: no evidence
    assert abs(inside.week.uptime - outside.week.uptime) < 3 * H
    # the poll's weight ramps down over the day before the week, so the credit moves smoothly
    ages = range(24 * 7 - 2, 24 * 8 + 2)
    weekly = [store_report("c", [Poll(now - age * H, True)], None, "UTC", now).week.uptime for age in ages]
    assert max(abs(a - b) for a, b in itertools.pairwise(weekly)) < H


def test_a_store_with_only_inactive_evidence_is_not_credited_with_its_week():
    """Issue 12: one inactive poll 3 days ago was credited with 84.8 h of uptime."""
    now = 1_700_000_000
    report = store_report("s", [Poll(now - 3 * 24 * H, False)], None, "UTC", now, prior_up_share=0.9)
    assert report.week.uptime < 0.45 * report.week.business
    active = store_report("s", [Poll(now - 3 * 24 * H, True)], None, "UTC", now, prior_up_share=0.9)
    assert report.week.uptime < 0.5 * active.week.uptime


def test_a_store_polled_hourly_until_now_keeps_its_credit():
    """Fading is about silence: a store heard from every hour loses nothing."""
    now = 1_700_000_000
    polls = [Poll(now - k * H, True) for k in range(8 * 24)]
    assert store_report("s", polls, None, "UTC", now).week.uptime == 7 * 24 * H


def test_silence_counts_against_a_store_by_its_own_pace():
    """Eleven quiet hours say little about a store polled every 12 hours, much about one
    polled every hour (whose device has most likely gone off)."""
    now = 1_700_000_000
    sparse = [Poll(now - 11 * H - k * 12 * H, True) for k in range(16)]
    hourly = [Poll(now - 11 * H - k * H, True) for k in range(180)]
    sparse_hour = store_report("s", sparse, None, "UTC", now).hour.uptime
    hourly_hour = store_report("s", hourly, None, "UTC", now).hour.uptime
    assert sparse_hour > 1.5 * hourly_hour
    # and three quiet days after four days of hourly polls leave almost nothing
    quiet = [Poll(now - 3 * 24 * H - k * H, True) for k in range(4 * 24)]
    assert store_report("s", quiet, None, "UTC", now).day.uptime < 0.01 * 24 * H


def test_paced_silence_edge_is_the_integral_of_its_curve():
    """Past the hold, (pi + (a - pi) e^(-k u)) e^(-u / tau), pi the age-weighted share and
    tau = max(12 h, 4 x read range / weighted polls), integrated in closed form."""
    from chalicelib.core.interpolation import paced_silence

    now = 1_700_000_000
    start = now - 8 * 24 * H
    polls = [Poll(start + 6 * H, True), Poll(now - 39 * H, False), Poll(now - 30 * H, True)]
    estimate = paced_silence(polls, 0.9, start, now)
    weights = [0.25, 1.0, 1.0]
    pi = (0.25 + 1.0 + 0.9) / (sum(weights) + 1)
    tau = max(12 * H, 4 * 8 * 24 * H / sum(weights))
    last, hold, k = now - 30 * H, 1.5 * H, 1 / (3 * H)

    def expected(t):
        u = t - last - hold
        return 1.0 if u < 0 else (pi + (1 - pi) * math.exp(-k * u)) * math.exp(-u / tau)

    step = 60
    numeric = sum(expected(t + step / 2) * step for t in range(last, now, step))
    assert estimate.uptime_seconds(last, now) == pytest.approx(numeric, rel=1e-4)
    assert paced_silence([], 0.9, start, now).uptime_seconds(0, 100) == pytest.approx(90)


def test_learned_up_share_is_the_mean_of_store_shares_with_the_fallback_as_ten_stores():
    from chalicelib.core.interpolation import FALLBACK_UP_SHARE, fleet_up_share

    assert fleet_up_share([]) == FALLBACK_UP_SHARE
    shares = [[Poll(0, True), Poll(1, False)], [Poll(0, True)], []]
    assert fleet_up_share(shares) == pytest.approx((10 * FALLBACK_UP_SHARE + 0.5 + 1.0) / 12)


def test_a_few_neighbours_in_a_shard_move_the_learned_share_little():
    """Found by black-box testing: with the fallback counted as one store, a poll 7 d 23 h old
    in a shard with one half-down neighbour got 4.8 h less of its week than one 8 d 01 h old
    alone in its shard (the 8-day check allows 3 h)."""
    from chalicelib.core.interpolation import fleet_up_share

    now = 1_700_000_000
    a = [Poll(now - (7 * 24 + 23) * H, True)]
    x = [Poll(now - 2 * H, True), Poll(now, False)]
    with_neighbour = store_report("a", a, None, "UTC", now, prior_up_share=fleet_up_share([a, x]))
    alone = store_report("b", [], None, "UTC", now, prior_up_share=fleet_up_share([[]]))
    assert abs(with_neighbour.week.uptime - alone.week.uptime) < 3 * H


def test_fading_towards_a_floor_is_the_integral_of_its_curve():
    """The measured alternative (docs/ALGORITHM.md section 6): past the hold, the expected status
    (pi + (a - pi) e^(-k u)) e^(-u / tau) + floor (1 - e^(-u / tau)), integrated in closed form."""
    import math

    from chalicelib.core.interpolation import MarkovParameters, nearest_then_markov

    now = 1_700_000_000
    polls = [Poll(now - 40 * H, True), Poll(now - 39 * H, False), Poll(now - 30 * H, True)]
    estimate = nearest_then_markov(polls, MarkovParameters(prior_up_share=0.9), trust_hours=12, floor=0.4)
    pi = (2 + 0.9 * 2) / (3 + 2)
    last, hold, k, r = now - 30 * H, 1.5 * H, 1 / (3 * H), 1 / (12 * H)

    def expected(t):
        u = t - last - hold
        if u < 0:
            return 1.0
        return (pi + (1 - pi) * math.exp(-k * u)) * math.exp(-r * u) + 0.4 * (1 - math.exp(-r * u))

    step = 60
    numeric = sum(expected(t + step / 2) * step for t in range(last, now, step))
    assert estimate.uptime_seconds(last, now) == pytest.approx(numeric, rel=1e-4)
    assert nearest_then_markov([], floor=0.4).uptime_seconds(0, 100) == pytest.approx(40)
    assert nearest_then_markov([]).uptime_seconds(0, 100) == 0
