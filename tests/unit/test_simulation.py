"""The simulator: data sets in the real files' formats, deterministic, with sane truth."""
from __future__ import annotations

import csv
import hashlib
import itertools
import statistics
from dataclasses import replace

from chalicelib.core import parsing
from chalicelib.core.schedule import business_intervals
from storemon_app.simulation import SCENARIOS, compare_rules, errors_table, simulate, write_dataset


def _digest(directory) -> str:
    names = ("store_status.csv", "menu_hours.csv", "timezones.csv")
    return hashlib.sha256(b"".join((directory / name).read_bytes() for name in names)).hexdigest()


def test_generated_files_have_the_real_formats(tmp_path):
    counts = write_dataset(tmp_path, "tiny", seed=3)
    assert counts["store_status.csv"] > 100
    with open(tmp_path / "store_status.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["store_id", "status", "timestamp_utc"]
        rows = list(reader)
    for store, status, stamp in rows:
        assert len(store) == 19 and store.isdigit()
        parsing.parse_status(status)
        parsing.parse_poll_timestamp(stamp)
    with open(tmp_path / "menu_hours.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["store_id", "dayOfWeek", "start_time_local", "end_time_local"]
        for _store, day, start, end in reader:
            parsing.parse_weekday(day), parsing.parse_local_time(start), parsing.parse_local_time(end)
    with open(tmp_path / "timezones.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["store_id", "timezone_str"]
        assert all(parsing.parse_timezone(zone) for _, zone in reader)
    latest = max(parsing.parse_poll_timestamp(stamp) for _, _, stamp in rows)
    assert latest == int(SCENARIOS["tiny"].now.timestamp())  # "now" is pinned


def test_same_seed_same_bytes(tmp_path):
    write_dataset(tmp_path / "a", "tiny", seed=9)
    write_dataset(tmp_path / "b", "tiny", seed=9)
    write_dataset(tmp_path / "c", "tiny", seed=10)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_uuid_ids_for_the_new_shape():
    scenario = replace(SCENARIOS["new-last8"], stores=5)
    assert all(len(store.store_id) == 36 for store in simulate(scenario, 1))


def test_truth_is_within_business_time():
    scenario = SCENARIOS["tiny"]
    now = int(scenario.now.timestamp())
    for store in simulate(scenario, 2):
        spans = business_intervals(store.schedule, store.tz_name, now - 7 * 86_400, now)
        up = sum(store.timeline.up_seconds(lo, hi) for lo, hi in spans)
        assert 0 <= up <= sum(hi - lo for lo, hi in spans)


def test_rule_comparison_runs_and_ranks():
    errors = compare_rules(SCENARIOS["tiny"], seeds=[1], nows_per_seed=1)
    assert {e.window for e in errors} == {"hour", "day", "week"}
    assert all(e.mae >= 0 and e.p90 >= 0 for e in errors)
    assert "| `nearest_then_markov` |" in errors_table(errors)


def test_sparse_stores_and_store_silences():
    from storemon_app.simulation import DarkTimeline

    scenario = replace(SCENARIOS["sample"], stores=120, sparse_share=0.2, silent_share=0.2)
    stores = list(simulate(scenario, 4))
    dark = [s for s in stores if isinstance(s.timeline, DarkTimeline)]
    assert dark
    for store in dark:
        lo, hi = store.timeline.dark
        assert not any(lo <= p.at < hi for p in store.polls)  # no polls while dark
        assert store.timeline.up_seconds(lo, min(hi, lo + 3600)) == 0  # and truly down
    gaps = [statistics.median(b.at - a.at for a, b in itertools.pairwise(s.polls))
            for s in stores if len(s.polls) > 3]
    assert any(g > 5 * 3600 for g in gaps) and any(g < 2 * 3600 for g in gaps)


def test_stores_know_their_kind_and_rare_stores_can_be_down_away_from_their_poll():
    """The per-kind table of compare-rules, and the one assumption that decides what days of
    silence are worth (docs/ALGORITHM.md section 6)."""
    base = replace(SCENARIOS["sample"], stores=80, rare_share=0.3)
    usual = list(simulate(base, 5))
    down = list(simulate(replace(base, rare_down=True), 5))
    assert {s.kind for s in usual} >= {"hourly", "rare"}
    # the same fleet and poll times; only the rare stores' truth differs
    for s, t in zip(usual, down, strict=True):
        assert (s.store_id, s.kind, [p.at for p in s.polls]) == (t.store_id, t.kind, [p.at for p in t.polls])
        assert s.kind == "rare" or s.polls == t.polls
    for store in (s for s in down if s.kind == "rare" and s.polls):
        (at, active), *_ = store.polls
        assert store.timeline.is_up(at) and not store.timeline.is_up(at - 2 * 3600)
        assert not store.timeline.is_up(at + 2 * 3600)


def test_rule_comparison_breaks_the_week_down_by_kind_of_store():
    from storemon_app.simulation import kinds_table

    scenario = replace(SCENARIOS["sample"], stores=40, rare_share=0.2)
    errors = compare_rules(scenario, seeds=[1], nows_per_seed=1, only=["nearest_then_markov", "in use"])
    assert {e.rule for e in errors} == {"nearest_then_markov", "nearest_then_markov(learned prior)",
                                        "paced_silence (in use)"}
    kinds = {e.kind for e in errors}
    assert {"all", "hourly", "rare"} <= kinds
    counts = {e.kind: e.count for e in errors if e.rule == "nearest_then_markov" and e.window == "week"}
    assert counts["all"] == sum(n for kind, n in counts.items() if kind != "all")
    assert "| `paced_silence (in use)` |" in kinds_table(errors)


def test_the_bound_on_stores_polled_once_holds_for_a_rule_giving_no_evidence_zero():
    """The bound is what forced the choice (docs/ALGORITHM.md section 6): the second pass's
    rule, which gives no evidence 0, cannot beat it; the rule in use, which gives the fleet's
    share, is not bound by it."""
    from storemon_app.simulation import rare_store_bound

    scenario = replace(SCENARIOS["sample"], stores=40, rare_share=0.2)
    count, bound = rare_store_bound(scenario, seeds=[1], nows_per_seed=1)
    errors = compare_rules(scenario, seeds=[1], nows_per_seed=1, only=["second pass", "in use"])
    rare = {e.rule: e for e in errors if e.kind == "rare"}
    second, in_use = rare["fading_silence (second pass)"], rare["paced_silence (in use)"]
    assert count == second.count == in_use.count and 0 < bound <= second.mae
    assert in_use.mae < bound
