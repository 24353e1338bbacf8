"""The report page in a real browser: headless Chromium over real HTTP against the local stack.

Needs Debian's ``chromium`` (.ci/run installs it when it runs as root); skipped without it.
The screenshot goes to out/report-page.png.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from storemon_app.client import ReportClient
from storemon_app.paths import OUT_DIR
from tests import fixtures

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="no `chromium` on PATH (Debian: apt-get install chromium; "
                                       ".ci/run installs it when it runs as root)")


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_page_in_chromium(stack, tmp_path):
    import app as app_module
    from storemon_app.event_pump import EventPump
    from storemon_app.local_ingest import ingest_file

    files = fixtures.write_fleet(tmp_path, stores=60)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    client = ReportClient(stack.api_url)
    pump = EventPump(app_module, concurrency=2).start()
    try:
        view = client.wait(client.trigger(), timeout=120, interval=0.2)
    finally:
        pump.stop()
    assert view["status"] == "Complete", view
    with urllib.request.urlopen(view["detail_url"], timeout=30) as response:
        detail = list(csv.DictReader(io.StringIO(response.read().decode("utf-8"))))
    expected = sorted(detail, key=lambda r: (-float(r["downtime_last_week"]), r["store_id"]))

    url = view["page_url"]  # what a person opens: the page token, no x-api-key (a browser sends none)
    assert url.startswith(f"{stack.api_url}/shared/reports/{view['report_id']}?token=")
    shown = []
    for page in (1, 2):
        dom = _chromium(tmp_path, "--dump-dom", f"{url}&page={page}")
        rows = re.findall(r'<tr class="store"><td>(\d+)</td><td class="id"><a [^>]*>([^<]*)</a></td>'
                          r'<td class="down">([^<]*)</td>.*?(<svg.*?</svg>)', dom, flags=re.S)
        assert len(rows) == (50 if page == 1 else 10)
        shown += rows
    assert [(int(rank), store, down) for rank, store, down, _ in shown] == \
        [(rank, r["store_id"], r["downtime_last_week"]) for rank, r in enumerate(expected, start=1)]
    # each strip agrees with the CSV: outage colours exactly where the week has outages
    for (_, store, _, svg), row in zip(shown, expected, strict=True):
        in_outage = "#dc2626" in svg or "#f59e0b" in svg
        assert in_outage == (row["outages_last_week"] != "0"), (store, row["outages_last_week"])
    assert "page 1 of 2 (60 stores)" in _chromium(tmp_path, "--dump-dom", url)

    out = OUT_DIR
    out.mkdir(exist_ok=True)
    screenshot = out / "report-page.png"
    screenshot.unlink(missing_ok=True)
    _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1300,1400", "--hide-scrollbars", url)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
