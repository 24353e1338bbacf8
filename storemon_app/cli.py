"""./storemon: run, feed and inspect storemon on this machine.

  ./storemon test [pytest args]   the test suite (./storemon test-dynamodb-local: on DynamoDB Local)
  ./storemon COMMAND --help       a command's options

Commands that talk to AWS use AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_DYNAMODB,
_S3, _SQS for one service), else the local stack of `up` on 127.0.0.1:4566;
--endpoint overrides both. The app's settings come from the stage in
.chalice/config.json, exactly as in Lambda. Inside the venv the same commands
are `python -m storemon_app COMMAND`.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
import urllib.error
from pathlib import Path
from typing import Callable, Optional

from botocore.exceptions import EndpointConnectionError

from chalicelib.storage.ingestions import IngestionRepository
from storemon_app.datasets import find_dataset
from storemon_app.errors import CommandError
from storemon_app.paths import OUT_DIR
from storemon_app.client import ApiError, ReportClient, download
from storemon_app.event_pump import EventPump
from storemon_app.local_ingest import KIND_ORDER, ingest_file
from storemon_app.progress import ProgressLine
from storemon_app.runtime import (
    DEFAULT_API_PORT,
    DEFAULT_EMULATOR_PORT,
    RuntimeFailure,
    StopRequested,
    clear_endpoints,
    describe_endpoints,
    free_port,
    prepare_environment,
    running_stack,
    stage_environment,
    stop_on_signals,
)
from storemon_app.packaging import register_commands as register_packaging
from storemon_app.simulation import register_commands as register_simulation
from storemon_app.simulation import write_dataset

SAMPLE_DIR = OUT_DIR / "sample-data"
DEFAULT_REPORT_PATH = Path("out") / "report.csv"


def output_path(value: str) -> Path:
    """Where a CSV goes: its directory must exist (only the default out/ is created)."""
    path = Path(value)
    parent = path.parent
    if not parent.is_dir() and parent != DEFAULT_REPORT_PATH.parent:
        raise CommandError(f"{path}: directory {parent} does not exist")
    if path.is_dir():
        raise CommandError(f"{path} is a directory; name a file")
    return path


def sample_dataset() -> Path:
    """The small generated sample the demo uses by default (made once, then reused)."""
    if not (SAMPLE_DIR / "store_status.csv").is_file():
        print(f"generating a sample data set in {SAMPLE_DIR} ...", file=sys.stderr)
        write_dataset(SAMPLE_DIR, "sample", seed=7)
    return SAMPLE_DIR


def _import_app():
    """Import app.py once the stage's environment is prepared: its queue handlers are bound to
    the queue names Chalice's decorators read when the module loads (everything else the app
    reads on first use, ``app.dependencies``)."""
    import app as app_module

    return app_module


def _ingest_dataset(files: dict[str, Path]) -> list:
    outcomes = []
    for kind in [k for k in KIND_ORDER if k in files]:
        outcome = ingest_file(files[kind], expected_kind=kind)
        if outcome.status != "Complete":
            raise CommandError(f"{files[kind]} was not ingested: {outcome.error}")
        outcomes.append(outcome)
    return outcomes


def _show_job(view: dict, elapsed: float, progress) -> None:
    if view["status"] == "Running":
        progress.update(f"Running, {view.get('parts_done', 0)}/{view.get('parts_total', '?')} parts done")


def run_report(api_url: str, out: Path, timeout: float = 900, as_of: Optional[str] = None,
               store_ids: Optional[list[str]] = None) -> dict:
    """trigger_report -> poll get_report -> download the CSV, as a client would."""
    client = ReportClient(api_url)
    try:
        report_id = client.trigger(as_of=as_of, store_ids=store_ids)
    except ApiError as error:
        reason = error.body.get("error") if isinstance(error.body, dict) else error.body
        raise CommandError(f"trigger_report refused (HTTP {error.status}): {reason}") from None
    except urllib.error.URLError as error:
        raise CommandError(f"cannot reach the API at {api_url} ({error.reason}). Start it with "
                           "`./storemon up`, or pass --api URL") from None
    progress = ProgressLine(f"report {report_id}")
    view = client.wait(report_id, timeout=timeout, on_progress=lambda v, e: _show_job(v, e, progress))
    if view["status"] != "Complete":
        progress.done(f"{view['status']}: {view.get('error')}")
        raise CommandError(f"report {report_id} {view['status']}: {view.get('error')}")
    size = download(view["download_url"], out)
    if view.get("detail_url"):
        view["detail_path"] = str(detail_path(out))
        download(view["detail_url"], detail_path(out))
    progress.done(f"Complete: {view['rows']:,} rows, {size:,} bytes")
    view["elapsed"] = progress.elapsed
    return view


def detail_path(report: Path) -> Path:
    """Where the detail report goes beside the report: ``report.csv`` -> ``report-detail.csv``."""
    return report.with_name(f"{report.stem}-detail{report.suffix or '.csv'}")


def summarise_report(path: Path, detail: Optional[Path] = None) -> str:
    """A few lines on the report; with the detail report, how much of it rests on evidence."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)  # header
        rows = list(reader)
    if not rows:
        return f"{path}: header only, no stores"
    inferred: dict[str, float] = {}
    if detail is not None and detail.is_file():
        with open(detail, newline="") as handle:
            for row in csv.DictReader(handle):
                business = float(row["business_hours_last_week"])
                inferred_hours = float(row["inferred_hours_last_week"])
                inferred[row["store_id"]] = inferred_hours / business if business else 0.0
    up = sum(float(r[3]) for r in rows)
    down = sum(float(r[6]) for r in rows)
    share = up / (up + down) if up + down else 0.0
    worst = sorted(rows, key=lambda r: -float(r[6]))[:3]

    def label(row: list[str]) -> str:
        note = f", {inferred[row[0]]:.0%} inferred" if row[0] in inferred else ""
        return f"{row[0]} ({row[6]} h{note})"

    lines = [f"{len(rows):,} stores; business hours in the last week: {up + down:,.1f} h, "
             f"{share:.1%} of it online",
             "most offline last week: " + ", ".join(label(r) for r in worst)]
    if inferred:
        little = sum(1 for value in inferred.values() if value > 0.5)
        lines.append(f"{little:,} of {len(inferred):,} stores rest on little evidence (more than half "
                     f"of their week inferred, not backed by a poll within 1.5 h); details: {detail}")
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    out = output_path(args.out)
    data_dir = Path(args.data) if args.data else sample_dataset()
    files = find_dataset(data_dir)
    _stack_endpoint(args)
    started = time.monotonic()
    with stop_on_signals(), running_stack(stage=args.stage, emulator_port=free_port(),
                                          api_port=free_port()) as stack:
        print(f"emulated AWS: {describe_endpoints()}; API at {stack.api_url}", file=sys.stderr)
        _ingest_dataset(files)
        pump = EventPump(_import_app(), concurrency=args.workers).start()
        try:
            view = run_report(stack.api_url, out)
            page_url = view.get("page_url") or f"{stack.api_url}/reports/{view['report_id']}"
            page = out.with_suffix(".html")  # self-contained: it opens offline, after the stack is gone
            page.write_bytes(ReportClient(stack.api_url).page(view["report_id"]))
        finally:
            pump.stop()
    now = view.get("data_now")
    print(f"report {view['report_id']} (now = {now}): {view['rows']:,} rows -> {out.resolve()}")
    print(summarise_report(out, detail_path(out)))
    print(f"done in {time.monotonic() - started:.1f} s")
    print(f"report page: {page.resolve().as_uri()} (saved; served at {page_url} while the stack runs)")
    return 0


class _OneLineWhenUnreachable(logging.Filter):
    """The pump retries every queue every second; an emulator that went away is one line, not a
    traceback each time. Once a process of the stack has died, whatever the pump fails on next
    (a refused connection, or a reply cut off mid-way, which botocore may parse as an empty
    one) is that death too: one line as well."""

    def __init__(self) -> None:
        super().__init__()
        self.stack_down: Callable[[], Optional[str]] = lambda: None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            unreachable = _unreachable_endpoint(error)
            why = f"cannot reach {unreachable}" if unreachable else None
            if why is None:
                down = self.stack_down()
                why = f"{type(error).__name__}: {error} ({down})" if down else None
            if why:
                record.msg, record.args = f"{record.getMessage()}: {why}", ()
                record.exc_info = record.exc_text = None
        return True


def cmd_up(args: argparse.Namespace) -> int:
    one_line = _OneLineWhenUnreachable()
    logging.getLogger("storemon.pump").addFilter(one_line)
    _stack_endpoint(args)
    reason = None
    try:
        with stop_on_signals(), running_stack(stage=args.stage, emulator_port=args.emulator_port,
                                              api_port=args.api_port) as stack:
            one_line.stack_down = stack.dead_child
            if not args.empty:
                _ingest_dataset(find_dataset(Path(args.data) if args.data else sample_dataset()))
            pump = EventPump(_import_app(), concurrency=args.workers).start()
            print(f"""
storemon is up.
  API:          {stack.api_url}
  emulated AWS: {describe_endpoints()}   (bucket {os.environ['DATA_BUCKET']})
Try:
  curl -X POST {stack.api_url}/trigger_report
  curl '{stack.api_url}/get_report?report_id=<id>'
  curl -H 'Accept: text/csv' '{stack.api_url}/get_report?report_id=<id>'
  open {stack.api_url}/reports/<id>   (the report page; /stores/<store_id>/timeline?report_id=<id>)
Drop a CSV into s3://{os.environ['DATA_BUCKET']}/incoming/status/ (or hours/, timezones/) to ingest it.
Logs: {stack.log_dir}. Ctrl-C stops everything.""", flush=True)
            try:
                while reason is None:
                    time.sleep(0.5)
                    reason = stack.dead_child()
            finally:
                pump.stop(timeout=5)
    except StopRequested as signal_name:
        print(f"{signal_name}: stopping", file=sys.stderr)
    if reason:
        raise RuntimeFailure(f"{reason}; everything else was stopped")
    print("stopped.")
    return 0


def localstack_endpoint() -> str:
    """LocalStack's endpoint by LocalStack's own conventions (AWS_ENDPOINT_URL, else
    LOCALSTACK_HOST, else localhost:4566), as its client library resolves it."""
    from localstack_client.config import get_service_endpoint

    return get_service_endpoint("s3")


def _stack_endpoint(args: argparse.Namespace) -> None:
    """demo and up: --endpoint URL or 'localstack' puts every service there, no moto started."""
    if not args.endpoint:
        return
    if args.endpoint == "aws":
        raise CommandError("demo and up create their tables, queues and bucket; they run on an emulator, "
                           "not --endpoint aws (deploy with ./storemon package, see README)")
    url = localstack_endpoint() if args.endpoint == "localstack" else args.endpoint
    clear_endpoints()
    os.environ["AWS_ENDPOINT_URL"] = url


def _connect(args: argparse.Namespace) -> None:
    """Point at ``--endpoint``: a URL, ``aws`` for the real thing, or by default
    ``AWS_ENDPOINT_URL`` and else the local stack of ``up``."""
    if args.endpoint == "aws":
        clear_endpoints()  # per-service ones too: every call goes to AWS
        os.environ.update(stage_environment(args.stage))
        return
    if args.endpoint:
        url = localstack_endpoint() if args.endpoint == "localstack" else args.endpoint
        clear_endpoints()  # an explicit endpoint takes every service
        prepare_environment(args.stage, url)
        return
    # the environment's endpoints; services it leaves out go to the local stack of `up`
    prepare_environment(args.stage,
                        os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}")


def cmd_ingest(args: argparse.Namespace) -> int:
    _connect(args)
    given = {"timezones": args.timezones or [], "hours": args.hours or [], "status": args.status or []}
    if not any(given.values()):
        raise CommandError("name at least one of --status, --hours, --timezones")
    for path in [p for paths in given.values() for p in paths]:
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such file")
    failed = 0
    for kind, paths in given.items():
        for path in paths:
            outcome = ingest_file(Path(path), expected_kind=kind, quiet=args.json,
                                  accept_strays=args.accept_strays)
            failed += outcome.status != "Complete"
            if args.json:
                print(json.dumps({"file": str(path), "kind": kind, "status": outcome.status,
                                  "rows": outcome.accepted + outcome.rejected, "rejected": outcome.rejected,
                                  "counts": outcome.counts, "storage": outcome.storage,
                                  "seconds": outcome.seconds}), flush=True)
    if args.json:
        print(json.dumps({"process": "ingest", **process_usage()}), flush=True)
    return 1 if failed else 0


def process_usage() -> dict:
    """Peak RSS and CPU seconds of this process so far (Linux reports ru_maxrss in KiB)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def cmd_pump(args: argparse.Namespace) -> int:
    """Deliver queue messages to the app's handlers until SIGTERM (the bench runs several)."""
    _connect(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pump = EventPump(_import_app(), concurrency=args.workers).start()
    print(json.dumps({"process": "pump", "ready": True}), flush=True)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    pump.stop(timeout=60)
    stats = {name: vars(s) for name, s in pump.stats.items()}
    print(json.dumps({"process": "pump", "handlers": stats, **process_usage()}), flush=True)
    return 0


def cmd_ingestions(args: argparse.Namespace) -> int:
    _connect(args)
    records = IngestionRepository().recent(args.limit)
    if not records:
        print("no ingestions yet")
        return 0
    print(f"{'started (UTC)':20} {'status':9} {'kind':9} {'accepted':>10} {'rejected':>9} "
          f"{'secs':>6}  source")
    for r in records:
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else float("nan")
        print(f"{r.started_at:%Y-%m-%d %H:%M:%S} {r.status:9} {r.kind or '-':9} {int(r.rows_accepted):>10,} "
              f"{int(r.rows_rejected):>9,} {seconds:>6.1f}  {r.source}")
        if r.error:
            print(f"{'':20} error: {r.error}")
        if r.error_report_key:
            print(f"{'':20} rejected rows: {r.error_report_key}")
        if getattr(r, "counts", None):
            counts = r.counts
            print(f"{'':20} " + ", ".join(f"{value:,} {name.replace('_', ' ')}"
                                          for name, value in sorted(counts.items())))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    store_ids = [s for s in args.store_ids.split(",") if s.strip()] if args.store_ids else None
    view = run_report(args.api, output_path(args.out), as_of=args.as_of, store_ids=store_ids)
    print(f"report {view['report_id']}: {view['rows']:,} rows -> {Path(args.out).resolve()}"
          + (f" (detail: {view['detail_path']})" if view.get("detail_path") else ""))
    return 0


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./storemon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="dev", help="stage of .chalice/config.json (default: dev)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the handlers do")
    parser.add_argument("--endpoint",
                        help="an AWS endpoint URL for every service, or 'localstack' (LocalStack's, "
                             "from AWS_ENDPOINT_URL or LOCALSTACK_HOST, default localhost:4566), or, "
                             "for ingest, ingestions, pump and keys, 'aws' for real AWS. Default: the "
                             "AWS_ENDPOINT_URL* variables; else demo and up start moto's server, and "
                             "the other commands use http://127.0.0.1:4566")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo",
                               help="the whole flow once on an embedded emulator: ingest, report, download")
    demo.add_argument("--data", help="directory with store_status.csv and, optionally, menu_hours.csv (or "
                                     "business_hours.csv) and timezones.csv (default: a generated sample)")
    demo.add_argument("--out", default=str(DEFAULT_REPORT_PATH),
                      help="where to write the CSV; its directory must exist (default: out/report.csv)")
    demo.add_argument("--workers", type=positive_int, default=2,
                      help="parallel queue-handler invocations (default: 2)")
    demo.set_defaults(func=cmd_demo)

    up = commands.add_parser("up", help="start the local stack and keep it running (Ctrl-C stops it)")
    up.add_argument("--data",
                    help="data directory to ingest at start, as for demo (default: the generated sample)")
    up.add_argument("--empty", action="store_true", help="ingest nothing at start")
    up.add_argument("--api-port", type=positive_int, default=DEFAULT_API_PORT,
                    help=f"port of the API server (default: {DEFAULT_API_PORT})")
    up.add_argument("--emulator-port", type=positive_int, default=DEFAULT_EMULATOR_PORT,
                    help=f"port of moto's server, when no AWS_ENDPOINT_URL is set "
                         f"(default: {DEFAULT_EMULATOR_PORT})")
    up.add_argument("--workers", type=positive_int, default=2,
                    help="parallel queue-handler invocations (default: 2)")
    up.set_defaults(func=cmd_up)

    ingest = commands.add_parser("ingest",
                                 help="load CSV files into the tables (streaming); each option may repeat")
    ingest.add_argument("--status", action="append", metavar="FILE",
                        help="polls: store_id,status,timestamp_utc")
    ingest.add_argument("--hours", action="append", metavar="FILE",
                        help="business hours: store_id,day (or dayOfWeek),start_time_local,end_time_local")
    ingest.add_argument("--timezones", action="append", metavar="FILE", help="zones: store_id,timezone_str")
    ingest.add_argument("--json", action="store_true", help="print one JSON line per file (for scripts)")
    ingest.add_argument("--accept-strays", action="store_true",
                        help="hold no poll back as a stray: for a genuine drop far beyond the data so "
                             "far (a small fleet after a long pause); 'now' moves to it")
    ingest.set_defaults(func=cmd_ingest)

    pump = commands.add_parser("pump", help="deliver SQS messages to the queue handlers until stopped")
    pump.add_argument("--workers", type=positive_int, default=1,
                      help="parallel invocations in this process (default: 1)")
    pump.set_defaults(func=cmd_pump)

    ingestions = commands.add_parser("ingestions",
                                     help="list recent ingestions: rows accepted, rejected, errors")
    ingestions.add_argument("--limit", type=positive_int, default=20,
                            help="how many, newest first (default: 20)")
    ingestions.set_defaults(func=cmd_ingestions)

    report = commands.add_parser("report", help="trigger a report on a running API, wait, download the CSV")
    report.add_argument("--api", default=f"http://127.0.0.1:{DEFAULT_API_PORT}",
                        help=f"the API's base URL (default: http://127.0.0.1:{DEFAULT_API_PORT}, "
                             "the one of up)")
    report.add_argument("--out", default=str(DEFAULT_REPORT_PATH),
                        help="where to write the CSV; its directory must exist (default: out/report.csv)")
    report.add_argument("--as-of", metavar="ISO8601",
                        help="the report as of that instant, e.g. 2023-01-25T14:00:00Z "
                             "(default: the latest poll)")
    report.add_argument("--store-ids", metavar="ID,ID,...",
                        help="only these stores (within what STOREMON_API_KEY may see)")
    report.set_defaults(func=cmd_report)

    register_simulation(commands)
    try:
        from storemon_app.bench import register_commands as register_bench
    except ImportError:
        register_bench = None
    if register_bench:
        register_bench(commands)
    register_packaging(commands)
    from storemon_app.keys import register_commands as register_keys

    register_keys(commands, connect=_connect)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except (CommandError, RuntimeFailure, FileNotFoundError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        unreachable = _unreachable_endpoint(error)
        if unreachable is None:
            raise
        print(f"error: cannot reach {unreachable}. Start the local stack with `./storemon up`, "
              "or point AWS_ENDPOINT_URL (or --endpoint) at a running emulator.", file=sys.stderr)
        return 1


def _unreachable_endpoint(error: BaseException) -> Optional[str]:
    """The endpoint URL if ``error`` (or what caused it) is a failure to connect."""
    seen = 0
    current: Optional[BaseException] = error
    while current is not None and seen < 10:
        if isinstance(current, EndpointConnectionError):
            return current.kwargs.get("endpoint_url", "the AWS endpoint")
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
        seen += 1
    return None
