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

from storemon_app.datasets import find_dataset
from storemon_app.paths import OUT_DIR, PROJECT_ROOT

BENCH_DATA = OUT_DIR / "bench-data"
RESULTS_DIR = OUT_DIR / "bench"


def _peak_rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU of a running process so far (Linux ``/proc``), None elsewhere: the
    emulator shares the machine's cores with the workers, so its CPU is part of a report's cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
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
    #: CPU the emulator spent between trigger and Complete (serving the report's reads and writes).
    emulator_report_cpu_seconds: Optional[float] = None
    #: Poll table after ingestion: (items, largest item in bytes, total bytes).
    poll_items: tuple[int, int, int] = (0, 0, 0)
    hourly_drop_write_units: int = 0


def run_once(data: Path, workers: int, parts: Optional[int]) -> RunResult:
    from storemon_app.runtime import LocalStack, free_port

    files = find_dataset(data)
    result = RunResult()
    saved_env = dict(os.environ)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    stack = LocalStack(emulator_port=free_port(), api_port=free_port())
    pumps: list[subprocess.Popen] = []
    try:
        stack.start_emulator()
        stack.create_resources()
        if parts:  # after create_resources loads the stage's environment, which would set it back
            os.environ["REPORT_PARTS"] = str(parts)
        env = dict(os.environ)
        ingested = _cli("ingest", "--json", "--timezones", str(files["timezones"]),
                        "--hours", str(files["hours"]), "--status", str(files["status"]), env=env)
        result.ingest = [line for line in ingested if "file" in line]
        result.ingest_rss_mb = next(line["peak_rss_mb"] for line in ingested
                                    if line.get("process") == "ingest")

        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        drop = RESULTS_DIR / f"hourly_drop-{data.name}.csv"
        result.hourly_drop_rows = write_hourly_drop(files["status"], drop)
        dropped = _cli("ingest", "--json", "--status", str(drop), env=env)
        result.hourly_drop_seconds = dropped[0]["seconds"]
        result.hourly_drop_write_units = int(dropped[0].get("storage", {}).get("write_units", 0))
        result.poll_items = table_items(_current_settings().polls_table)

        stack.start_api()
        for _ in range(workers):
            pump = subprocess.Popen([sys.executable, "-m", "storemon_app", "pump", "--workers", "1"],
                                    cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
            pumps.append(pump)
            pump.stdout.readline()  # ready
        from storemon_app.client import ReportClient

        client = ReportClient(stack.api_url)
        emulator_cpu = _cpu_seconds(stack.emulator.pid) if stack.emulator else None
        started = time.monotonic()
        report_id = client.trigger()
        view = client.wait(report_id, timeout=900, interval=0.1)
        result.report_seconds = time.monotonic() - started
        emulator_after = _cpu_seconds(stack.emulator.pid) if stack.emulator else None
        if emulator_cpu is not None and emulator_after is not None:
            result.emulator_report_cpu_seconds = emulator_after - emulator_cpu
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


def split_hourly(status_file: Path, out_dir: Path) -> list[Path]:
    """The status file as the poller drops it in production: one file per UTC hour, oldest first.
    Made once per data set and reused."""
    if not (out_dir / ".complete").exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        handles: dict[str, Any] = {}
        with open(status_file, newline="") as source:
            header = source.readline()
            for line in source:
                hour = line.split(",", 2)[2][:13].replace("-", "").replace(" ", "")
                handle = handles.get(hour)
                if handle is None:
                    handle = handles[hour] = open(out_dir / f"status-{hour}.csv", "w", newline="")
                    handle.write(header)
                handle.write(line)
        for handle in handles.values():
            handle.close()
        (out_dir / ".complete").write_text(f"{len(handles)} files\n")
    return sorted(out_dir.glob("status-*.csv"))


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item as the low-level API returns it: names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        kind, content = next(iter(value.items()))
        if kind == "B":
            size += len(content)
        elif kind in ("SS", "NS", "BS"):
            size += sum(len(element) for element in content)
        else:
            size += len(str(content).encode())
    return size


def table_items(table: str) -> tuple[int, int, int]:
    """(items, largest item in bytes, total bytes) of a table on the current endpoint."""
    import boto3

    client = boto3.client("dynamodb", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    count = largest = total = 0
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            size = dynamodb_item_size(item)
            count, largest, total = count + 1, max(largest, size), total + size
    return count, largest, total


class _BenchStack:
    """A fresh emulator with the stack applied, worker pumps and (on demand) the API."""

    def __init__(self, workers: int) -> None:
        from storemon_app.runtime import LocalStack, free_port

        self.saved_env = dict(os.environ)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        self.stack = LocalStack(emulator_port=free_port(), api_port=free_port())
        self.workers = workers
        self.pumps: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    def __enter__(self) -> "_BenchStack":
        self.stack.start_emulator()
        self.names = self.stack.create_resources()
        self.env = dict(os.environ)
        return self

    def start_pumps(self) -> None:
        for _ in range(self.workers):
            pump = subprocess.Popen([sys.executable, "-m", "storemon_app", "pump", "--workers", "1"],
                                    cwd=PROJECT_ROOT, env=self.env, stdout=subprocess.PIPE, text=True)
            self.pumps.append(pump)
            pump.stdout.readline()  # ready

    def timed_reports(self, count: int) -> tuple[list[float], bytes]:
        """Trigger ``count`` reports one after another: their times and the last one's CSV."""
        from storemon_app.client import ReportClient

        self.stack.start_api()
        client = ReportClient(self.stack.api_url)
        seconds, body = [], b""
        for _ in range(count):
            started = time.monotonic()
            report_id = client.trigger()
            view = client.wait(report_id, timeout=900, interval=0.1)
            seconds.append(time.monotonic() - started)
            if view["status"] != "Complete":
                raise RuntimeError(f"report {view['status']}: {view.get('error')}")
            body = client.csv(report_id)
        return seconds, body

    def __exit__(self, *exc: Any) -> None:
        for pump in self.pumps:
            pump.terminate()
        for pump in self.pumps:
            pump.communicate(timeout=120)
        self.stack.stop()
        os.environ.clear()
        os.environ.update(self.saved_env)


@dataclass
class HourlyWeekResult:
    drops: int = 0
    failed_drops: list[str] = field(default_factory=list)
    drop_seconds: list[float] = field(default_factory=list)
    drop_write_units: list[int] = field(default_factory=list)
    drop_rows: list[int] = field(default_factory=list)
    hourly_report_seconds: list[float] = field(default_factory=list)
    bulk_report_seconds: list[float] = field(default_factory=list)
    bulk_ingest_seconds: float = 0.0
    bulk_write_units: int = 0
    identical: bool = False
    differing_rows: int = 0
    report_rows: int = 0
    hourly_items: tuple[int, int, int] = (0, 0, 0)
    bulk_items: tuple[int, int, int] = (0, 0, 0)


def _wait_for_ingestion(source: str, timeout: float = 600) -> dict[str, Any]:
    import boto3

    client = boto3.client("dynamodb", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    from chalicelib.settings import Settings

    table = Settings.from_env().ingestions_table
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = []
        for page in client.get_paginator("scan").paginate(
                TableName=table, FilterExpression="#s = :s", ExpressionAttributeNames={"#s": "source"},
                ExpressionAttributeValues={":s": {"S": source}}):
            items.extend(page["Items"])
        done = [item for item in items if item["status"]["S"] != "Running"]
        if done:
            return done[-1]
        time.sleep(0.05)
    raise TimeoutError(f"{source} not ingested after {timeout:.0f} s")


def run_hourly_week(data: Path, workers: int, reports: int = 3) -> HourlyWeekResult:
    """The week fed as production feeds it (one file per hour through S3 -> SQS -> the ingest
    handler), then the same polls as one bulk load; reports of both, in one run."""
    files = find_dataset(data)
    hourly_files = split_hourly(files["status"], data / "hourly")
    result = HourlyWeekResult(drops=len(hourly_files))
    with _BenchStack(workers) as bench:
        _cli("ingest", "--json", "--timezones", str(files["timezones"]), "--hours", str(files["hours"]),
             env=bench.env)
        bench.start_pumps()
        import boto3

        s3 = boto3.client("s3", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        bucket = _current_settings().bucket
        for index, path in enumerate(hourly_files):
            key = f"incoming/status/{path.name}"
            started = time.monotonic()
            s3.upload_file(str(path), bucket, key)
            record = _wait_for_ingestion(f"s3://{bucket}/{key}")
            result.drop_seconds.append(time.monotonic() - started)
            if record["status"]["S"] != "Complete":
                result.failed_drops.append(f"{path.name}: {record.get('error', {}).get('S')}")
            result.drop_write_units.append(int(record.get("write_units", {}).get("N", 0)))
            result.drop_rows.append(int(record.get("rows_accepted", {}).get("N", 0)))
            if index % 24 == 23:
                print(f"  {index + 1}/{len(hourly_files)} hourly drops, {len(result.failed_drops)} failed",
                      file=sys.stderr, flush=True)
        result.hourly_items = table_items(_current_settings().polls_table)
        result.hourly_report_seconds, hourly_csv = bench.timed_reports(reports)
    with _BenchStack(workers) as bench:
        ingested = _cli("ingest", "--json", "--timezones", str(files["timezones"]), "--hours",
                        str(files["hours"]), "--status", str(files["status"]), env=bench.env)
        status = [line for line in ingested if "file" in line and line["file"].endswith("store_status.csv")]
        result.bulk_ingest_seconds = status[0]["seconds"] if status else 0.0
        result.bulk_items = table_items(_current_settings().polls_table)
        bench.start_pumps()
        result.bulk_report_seconds, bulk_csv = bench.timed_reports(reports)
    hourly_rows, bulk_rows = hourly_csv.decode().splitlines(), bulk_csv.decode().splitlines()
    result.identical = hourly_csv == bulk_csv
    result.differing_rows = len(set(hourly_rows) ^ set(bulk_rows)) // 2
    result.report_rows = len(bulk_rows) - 1
    return result


def _current_settings() -> Any:
    """Read late: each bench leg has its own emulator and environment."""
    from chalicelib.settings import Settings

    return Settings.from_env()


def print_hourly_week(result: HourlyWeekResult) -> None:
    hourly, bulk = _median(result.hourly_report_seconds), _median(result.bulk_report_seconds)
    wru = sorted(result.drop_write_units)
    per_day = sum(result.drop_write_units) / max(1, result.drops) * 24
    print(f"\nscenario hourly-week: {result.drops} hourly drops through S3 -> SQS -> ingest handler, "
          f"then the same polls as one bulk load")
    print(f"  failed drops                           {len(result.failed_drops):>10}")
    for failure in result.failed_drops[:5]:
        print(f"    {failure}")
    print(f"  drop, S3 put -> ingested (median/max)  {_median(result.drop_seconds):>10.2f} s  "
          f"max {max(result.drop_seconds or [0]):.2f} s")
    print(f"  rows per drop (median)                 {_median(result.drop_rows):>10,.0f}")
    print(f"  WRU per drop (median/max, estimated)   {_median(wru):>10,.0f}    max {max(wru or [0]):,}; "
          f"per day {per_day:,.0f}")
    print(f"  bulk ingest of the status file         {result.bulk_ingest_seconds:>10.1f} s")
    for label, items in (("hourly", result.hourly_items), ("bulk", result.bulk_items)):
        print(f"  poll items after {label:6}                {items[0]:>10,}    largest {items[1]:,} B "
              f"({items[1] / 4096:.0f} % of 400 KB), total {items[2] / 1e6:.1f} MB")
    print(f"  report after hourly drops              {hourly:>10.2f} s  "
          f"[{', '.join(f'{v:.2f}' for v in result.hourly_report_seconds)}]")
    print(f"  report after bulk load                 {bulk:>10.2f} s  "
          f"[{', '.join(f'{v:.2f}' for v in result.bulk_report_seconds)}]")
    print(f"  hourly / bulk                          {hourly / bulk:>10.2f} x")
    print(f"  reports byte-identical                 {str(result.identical):>10}    "
          f"({result.report_rows:,} rows, {result.differing_rows:,} differ)")


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
    row("emulator CPU during the report", [r.emulator_report_cpu_seconds or 0 for r in runs], "s")
    row("worker CPU, whole pump processes", [r.worker_cpu_seconds for r in runs], "s")
    row("peak RSS, ingest process", [r.ingest_rss_mb for r in runs], "MB", 0)
    row("peak RSS, largest worker process", [max(r.worker_rss_mb or [0]) for r in runs], "MB", 0)
    row("peak RSS, emulator (moto server)", [r.emulator_rss_mb or 0 for r in runs], "MB", 0)
    row("peak RSS, API (chalice local)", [r.api_rss_mb or 0 for r in runs], "MB", 0)
    row("hourly drop, WRU (estimated)", [r.hourly_drop_write_units for r in runs], "WRU", 0)
    row("poll items after ingestion", [r.poll_items[0] for r in runs], "items", 0)
    row("  largest poll item", [r.poll_items[1] / 1000 for r in runs], "KB", 1)
    row("  all poll items", [r.poll_items[2] / 1e6 for r in runs], "MB", 1)


def cmd_bench(args: argparse.Namespace) -> int:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "started": datetime.now(timezone.utc).isoformat(), "scenarios": {}}
    targets = [(Path(args.data).name, Path(args.data))] if args.data else \
        [(scenario, None) for scenario in args.scenario]
    for scenario, data in targets:
        if scenario == "hourly-week" or args.hourly:
            week = run_hourly_week(data or scenario_data("uuid-week", args.seed), args.workers)
            print_hourly_week(week)
            summary["scenarios"][scenario] = vars(week)
            continue
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
                       help="simulator scenarios (old-full, new-full, new-last8, uuid-week, fleet-10x) or "
                            "hourly-week: uuid-week fed as hourly S3 drops, against a bulk load "
                            "(default: old-full)")
    bench.add_argument("--runs", type=int, default=3,
                       help="runs per scenario; medians are reported (default: 3)")
    bench.add_argument("--workers", type=int, default=2, help="worker (pump) processes (default: 2)")
    bench.add_argument("--parts", type=int, default=None,
                       help="report parts (default: the stage's REPORT_PARTS)")
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--data", help="bench this data directory instead of a generated scenario")
    bench.add_argument("--hourly", action="store_true",
                       help="with --data: feed it as hourly drops and compare with a bulk load "
                            "(as hourly-week)")
    bench.set_defaults(func=cmd_bench)
