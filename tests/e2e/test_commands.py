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

import pytest

from storemon_app.runtime import free_port
from storemon_app.paths import PROJECT_ROOT
from tests import fixtures



def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env.pop("INGEST_BATCH_ROWS", None)
    return env


def test_demo_writes_the_report_and_exits_zero(tmp_path):
    fixtures.write_dataset(tmp_path / "data")
    out = tmp_path / "report.csv"
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path / "data"),
                           "--out", str(out)], cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "store_id" and len(rows) == 4
    assert f"3 rows -> {out}" in done.stdout
    assert "ingest store_status.csv" in done.stderr  # progress is shown
    last = done.stdout.strip().splitlines()[-1]  # the demo ends with the report page
    assert last.startswith(f"report page: {out.with_suffix('.html').as_uri()} (saved; served at http")
    assert "<table id=\"ranking\">" in out.with_suffix(".html").read_text()


def test_demo_fails_with_a_reason(tmp_path):
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path)],
                          cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no store_status.csv" in done.stderr


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _gone(pids: set[int], within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
                 and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]  # zombies are gone
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _start_up(*extra: str) -> tuple[subprocess.Popen, int]:
    api_port, emulator_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "storemon_app", "up", "--empty", "--api-port", str(api_port),
         "--emulator-port", str(emulator_port), *extra],
        cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    for line in process.stdout:
        if "storemon is up" in line or time.monotonic() > deadline:
            break
    return process, api_port


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_up_serves_until_stopped_and_stops_every_child(tmp_path, stop_signal):
    """SIGHUP is the terminal closing: moto's server and the API server must not outlive `up`."""
    process, api_port = _start_up()
    children = _children(process.pid)
    try:
        assert len(children) == 2, children  # moto's server, the API server
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/trigger_report", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            report_id = json.loads(response.read())["report_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/get_report?report_id={report_id}",
                                    timeout=10) as response:
            view = json.loads(response.read())
        assert view["status"] == "Failed" and "no polls" in view["error"]  # --empty: nothing ingested
    finally:
        process.send_signal(stop_signal)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "stopped." in rest
    assert _gone(children), f"left running: {children}"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_demo_stopped_midway_stops_every_child(tmp_path, stop_signal):
    fixtures.write_dataset(tmp_path / "data")
    process = subprocess.Popen([sys.executable, "-m", "storemon_app", "demo", "--data",
                                str(tmp_path / "data"),
                                "--out", str(tmp_path / "r.csv")],
                               cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 90
        for line in process.stderr:  # "emulated AWS: ..." once the stack is running
            if "emulated AWS" in line or time.monotonic() > deadline:
                break
        children = _children(process.pid)
        assert len(children) == 2, children
    finally:
        process.send_signal(stop_signal)
        process.communicate(timeout=60)
    assert process.returncode == 130
    assert _gone(children), f"left running: {children}"


def test_up_stops_with_one_line_when_the_emulator_dies(tmp_path):
    process, _ = _start_up()
    try:
        moto = [pid for pid in _children(process.pid)
                if b"moto.server" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(moto) == 1
        os.kill(moto[0], signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert "error: the emulator (moto's server) stopped" in rest and "Traceback" not in rest, rest


def test_a_stale_stack_is_named_when_its_port_is_in_use(tmp_path):
    """What an earlier run killed with SIGKILL leaves behind: a moto server on the port."""
    port = free_port()
    stale = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        done = subprocess.run([sys.executable, "-m", "storemon_app", "up", "--empty", "--emulator-port",
                               str(port),
                               "--api-port", str(free_port())],
                              cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    finally:
        stale.kill()
        stale.wait()
    assert done.returncode == 1
    assert f"port {port} is in use by moto's server of a storemon stack left by an earlier run " \
           f"(pid {stale.pid}" in done.stderr, done.stderr
    assert f"kill {stale.pid}" in done.stderr


def test_demo_with_polls_only(tmp_path):
    """By the specification hours and zones are optional: 24x7, America/Chicago."""
    fixtures.write_csv(tmp_path / "data" / "store_status.csv", ["store_id", "status", "timestamp_utc"],
                       fixtures.status_rows())
    out = tmp_path / "report.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path / "data"),
                           "--out", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "every store is open 24x7" in done.stderr and "America/Chicago" in done.stderr
    with open(out, newline="") as handle:
        rows = {row[0]: row for row in csv.reader(handle)}
    for store in (fixtures.BIG_ID, fixtures.NIGHT_OWL, fixtures.SILENT):  # without hours: open 24x7
        up_hour, up_day, up_week, down_hour, down_day, down_week = map(float, rows[store][1:])
        business = (up_hour + down_hour, up_day + down_day, up_week + down_week)
        assert business == pytest.approx((60, 24, 168)), store
