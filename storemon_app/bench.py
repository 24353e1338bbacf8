"""``python -m storemon_app bench``: the whole pipeline at scale on the embedded emulator.

Each run starts a fresh moto server, applies the stack, ingests the scenario's
three files (a separate process, as the CLI would), ingests an hourly drop
(one poll per store), then serves the API with ``chalice local``, runs the
event pump in separate worker processes, and times ``trigger_report`` ->
Complete as a client sees it. Peak RSS is read for every process. Results are
printed as a table and saved as JSON under out/bench/.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from storemon_app.stack import PROJECT_ROOT

BENCH_DATA = PROJECT_ROOT / "out" / "bench-data"
RESULTS_DIR = PROJECT_ROOT / "out" / "bench"


def _peak_rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def scenario_data(scenario: str, seed: int = 1) -> Path:
    """Generated once per scenario and seed, then reused."""
    from storemon_app.simulation import write_dataset

    directory = BENCH_DATA / f"{scenario}-seed{seed}"
    if not (directory / ".complete").exists():
        print(f"generating scenario {scenario} in {directory} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        write_dataset(directory, scenario, seed=seed)
        (directory / ".complete").write_text(f"{time.monotonic() - started:.1f} s\n")
    return directory


def write_hourly_drop(status_file: Path, out: Path, seed: int = 3) -> int:
    """One poll per store, stamped within the hour after the data's latest poll."""
    stores: set[str] = set()
    latest = ""
    with open(status_file, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            stores.add(row[0])
            if row[2] > latest:
                latest = row[2]
    base = datetime.strptime(latest[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    rng = random.Random(seed)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["store_id", "status", "timestamp_utc"])
        for store in sorted(stores):
            moment = datetime.fromtimestamp(base + rng.randrange(60, 3600), timezone.utc)
            writer.writerow([store, "active" if rng.random() < 0.9 else "inactive",
                             moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")])
    return len(stores)


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _cli(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "storemon_app", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"storemon_app {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return _json_lines(done.stdout)


@dataclass
class RunResult:
    ingest: list[dict[str, Any]] = field(default_factory=list)
    ingest_rss_mb: float = 0.0
    hourly_drop_seconds: float = 0.0
    hourly_drop_rows: int = 0
    report_seconds: float = 0.0
    report_rows: int = 0
    worker_seconds: float = 0.0
    worker_max_invocation_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    invocation_cpu_seconds: float = 0.0
    worker_rss_mb: list[float] = field(default_factory=list)
    emulator_rss_mb: Optional[float] = None
    api_rss_mb: Optional[float] = None


def run_once(data: Path, workers: int, parts: Optional[int]) -> RunResult:
    from storemon_app.cli import find_dataset
    from storemon_app.runtime import LocalStack, free_port

    files = find_dataset(data)
    result = RunResult()
    saved_env = dict(os.environ)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    if parts:
        os.environ["REPORT_PARTS"] = str(parts)
    stack = LocalStack(emulator_port=free_port(), api_port=free_port())
    pumps: list[subprocess.Popen] = []
    try:
        stack.start_emulator()
        stack.create_resources()
        env = dict(os.environ)
        ingested = _cli("ingest", "--json", "--timezones", str(files["timezones"]), "--hours", str(files["hours"]),
                        "--status", str(files["status"]), env=env)
        result.ingest = [line for line in ingested if "file" in line]
        result.ingest_rss_mb = next(line["peak_rss_mb"] for line in ingested if line.get("process") == "ingest")

        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        drop = RESULTS_DIR / f"hourly_drop-{data.name}.csv"
        result.hourly_drop_rows = write_hourly_drop(files["status"], drop)
        dropped = _cli("ingest", "--json", "--status", str(drop), env=env)
        result.hourly_drop_seconds = dropped[0]["seconds"]

        stack.start_api()
        for _ in range(workers):
            pump = subprocess.Popen([sys.executable, "-m", "storemon_app", "pump", "--workers", "1"],
                                    cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
            pumps.append(pump)
            pump.stdout.readline()  # ready
        from storemon_app.client import ReportClient

        client = ReportClient(stack.api_url)
        started = time.monotonic()
        report_id = client.trigger()
        view = client.wait(report_id, timeout=900, interval=0.1)
        result.report_seconds = time.monotonic() - started
        if view["status"] != "Complete":
            raise RuntimeError(f"report {view['status']}: {view.get('error')}")
        result.report_rows = view["rows"]
        result.emulator_rss_mb = _peak_rss_mb(stack.emulator.pid) if stack.emulator else None
        result.api_rss_mb = _peak_rss_mb(stack.api.pid) if stack.api else None
    finally:
        for pump in pumps:
            pump.terminate()
        for pump in pumps:
            out, _ = pump.communicate(timeout=120)
            for line in _json_lines(out):
                if "handlers" in line:
                    handler = line["handlers"].get("compute_report_part", {})
                    result.worker_seconds += handler.get("seconds", 0.0)
                    result.worker_cpu_seconds += line["cpu_seconds"]
                    result.invocation_cpu_seconds += handler.get("cpu_seconds", 0.0)
                    result.worker_rss_mb.append(line["peak_rss_mb"])
                    result.worker_max_invocation_seconds = max(result.worker_max_invocation_seconds,
                                                               handler.get("max_seconds", 0.0))
        stack.stop()
        os.environ.clear()
        os.environ.update(saved_env)
    return result


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(scenario: str, runs: list[RunResult]) -> None:
    print(f"\nscenario {scenario}: {len(runs)} run(s); median, with all runs in brackets")

    def row(label: str, values: list[float], unit: str, digits: int = 1) -> None:
        each = ", ".join(f"{v:.{digits}f}" for v in values)
        print(f"  {label:38} {_median(values):>10.{digits}f} {unit:6} [{each}]")

    for index, line in enumerate(runs[0].ingest):
        name = Path(line["file"]).name
        row(f"ingest {name} ({line['rows']:,} rows)", [r.ingest[index]["seconds"] for r in runs], "s")
        row("  rows/s", [r.ingest[index]["rows"] / r.ingest[index]["seconds"] for r in runs], "rows/s", 0)
    row("ingest, all three files", [sum(i["seconds"] for i in r.ingest) for r in runs], "s")
    row(f"hourly drop ({runs[0].hourly_drop_rows:,} rows)", [r.hourly_drop_seconds for r in runs], "s")
    row(f"trigger_report -> Complete ({runs[0].report_rows:,} rows)", [r.report_seconds for r in runs], "s")
    row("worker handler time, all parts", [r.worker_seconds for r in runs], "s")
    row("report CPU, all part invocations", [r.invocation_cpu_seconds for r in runs], "s")
    row("  largest part, wall", [r.worker_max_invocation_seconds for r in runs], "s")
    row("worker CPU, whole pump processes", [r.worker_cpu_seconds for r in runs], "s")
    row("peak RSS, ingest process", [r.ingest_rss_mb for r in runs], "MB", 0)
    row("peak RSS, largest worker process", [max(r.worker_rss_mb or [0]) for r in runs], "MB", 0)
    row("peak RSS, emulator (moto server)", [r.emulator_rss_mb or 0 for r in runs], "MB", 0)
    row("peak RSS, API (chalice local)", [r.api_rss_mb or 0 for r in runs], "MB", 0)


def cmd_bench(args: argparse.Namespace) -> int:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "started": datetime.now(timezone.utc).isoformat(), "scenarios": {}}
    targets = [(Path(args.data).name, Path(args.data))] if args.data else \
        [(scenario, None) for scenario in args.scenario]
    for scenario, data in targets:
        data = data or scenario_data(scenario, args.seed)
        runs = []
        for index in range(args.runs):
            print(f"{scenario}: run {index + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            runs.append(run_once(data, args.workers, args.parts))
        print_table(scenario, runs)
        summary["scenarios"][scenario] = [vars(r) for r in runs]
    if not args.data and {"new-full", "new-last8"} <= set(args.scenario):
        full = _median([r["report_seconds"] for r in summary["scenarios"]["new-full"]])
        last8 = _median([r["report_seconds"] for r in summary["scenarios"]["new-last8"]])
        print(f"\nnew-full / new-last8 trigger->Complete: {full:.1f} s / {last8:.1f} s = {full / last8:.2f}x")
    path = RESULTS_DIR / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {path}")
    return 0


def register_commands(commands: Any) -> None:
    bench = commands.add_parser("bench", help="time the whole pipeline at scale on the embedded emulator")
    bench.add_argument("--scenario", nargs="+", default=["old-full"],
                       help="scenario names of the simulator (default: old-full)")
    bench.add_argument("--runs", type=int, default=3, help="runs per scenario; medians are reported (default: 3)")
    bench.add_argument("--workers", type=int, default=2, help="worker (pump) processes (default: 2)")
    bench.add_argument("--parts", type=int, default=None, help="report parts (default: the stage's REPORT_PARTS)")
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--data", help="bench this data directory instead of a generated scenario")
    bench.set_defaults(func=cmd_bench)
