"""The commands a user runs, as subprocesses: `demo` end to end, and `up` until SIGTERM."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from storemon_app.runtime import free_port
from tests import fixtures

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env.pop("INGEST_BATCH_ROWS", None)
    return env


def test_demo_writes_the_report_and_exits_zero(tmp_path):
    fixtures.write_dataset(tmp_path / "data")
    out = tmp_path / "report.csv"
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path / "data"),
                           "--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "store_id" and len(rows) == 4
    assert f"3 rows -> {out}" in done.stdout
    assert "ingest store_status.csv" in done.stderr  # progress is shown


def test_demo_fails_with_a_reason(tmp_path):
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no store_status.csv" in done.stderr


def test_up_serves_until_sigterm(tmp_path):
    api_port, emulator_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "storemon_app", "up", "--empty", "--api-port", str(api_port),
         "--emulator-port", str(emulator_port)],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        for line in process.stdout:
            if "storemon is up" in line or time.monotonic() > deadline:
                break
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/trigger_report", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            report_id = json.loads(response.read())["report_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/get_report?report_id={report_id}",
                                    timeout=10) as response:
            view = json.loads(response.read())
        assert view["status"] == "Failed" and "no polls" in view["error"]  # --empty: nothing ingested
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "stopped." in rest
