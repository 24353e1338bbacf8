"""Numbers an owner can trust, without AWS: the stray guard that keeps one far row from moving
"now", and the demo's summary of how much of the report is inferred (the ingestion and the
reports over chalice's test client: tests/integration/test_now_and_evidence.py)."""
from __future__ import annotations

from chalicelib.core.strays import STRAY_GAP, STRAY_MIN_ROWS, StrayGuard
from tests import fixtures

H = 3600
DAY = 24 * H


def _run(watermark, times):
    guard = StrayGuard(watermark)
    released = [item for item in (guard.add(at, at) for at in times) if item is not None]
    accepted, strays = guard.finish()
    return sorted(released + accepted), sorted(item for item, _ in strays)


def test_a_lone_far_poll_is_held_back_whatever_its_place_in_the_file():
    body = [1_000_000 + k * H for k in range(50)]
    stray = 1_000_000 + 400 * DAY
    for position in (0, 25, 50):
        times = body[:position] + [stray] + body[position:]
        accepted, strays = _run(None, times)
        assert strays == [stray] and accepted == body


def test_a_drop_of_one_row_far_beyond_the_data_so_far_is_held_back():
    watermark = 1_000_000
    assert _run(watermark, [watermark + 400 * DAY]) == ([], [watermark + 400 * DAY])
    assert _run(watermark, [watermark + STRAY_GAP]) == ([watermark + STRAY_GAP], [])  # 24 h exactly: fine


def test_a_catch_up_drop_after_a_pause_goes_in():
    watermark = 1_000_000
    later = [watermark + 5 * DAY + k * H for k in range(STRAY_MIN_ROWS)]
    assert _run(watermark, later) == (later, [])
    too_few = later[: STRAY_MIN_ROWS - 1]
    assert _run(watermark, too_few) == ([], too_few)
    # an hourly drop that runs on from the data so far is never cut, however long it is
    chained = [watermark + k * 20 * H for k in range(30)]
    assert _run(watermark, chained) == (chained, [])


def test_a_small_first_drop_is_taken_as_it_is():
    assert _run(None, [0, 40 * DAY]) == ([0, 40 * DAY], [])


def test_earlier_polls_are_never_strays():
    watermark = 1_000_000_000
    old = [watermark - 300 * DAY, watermark - 2 * DAY]
    assert _run(watermark, old) == (old, [])


def test_demo_summary_says_which_numbers_are_inferred(tmp_path):
    from chalicelib.core.report import CSV_HEADER, DETAIL_EXTRA_HEADER
    from storemon_app.cli import detail_path, summarise_report

    report = tmp_path / "report.csv"
    standard = [["well-seen", "60.00", "24.00", "160.00", "0.00", "0.00", "8.00"],
                ["one-poll", "0.00", "0.00", "10.00", "60.00", "24.00", "158.00"]]
    extra = {"well-seen": ["60.00", "60.00", "0.00", "1", "24.00", "24.00", "0.00", "24",
                           "168.00", "167.00", "1.00", "168", "2023-01-25T18:00:00Z"],
             "one-poll": ["60.00", "0.00", "60.00", "0", "24.00", "0.00", "24.00", "0",
                          "168.00", "3.00", "165.00", "1", "2023-01-21T10:00:00Z"]}
    fixtures.write_csv(report, list(CSV_HEADER), standard)
    fixtures.write_csv(detail_path(report), list(CSV_HEADER + DETAIL_EXTRA_HEADER),
                       [row + extra[row[0]] for row in standard])
    text = summarise_report(report, detail_path(report))
    assert "one-poll (158.00 h, 98% inferred)" in text
    assert "1 of 2 stores rest on little evidence" in text
    assert "stores rest on little evidence" not in summarise_report(report)  # no detail: as before
