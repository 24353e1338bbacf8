"""What a new user meets at the command line: one clear line per mistake, help that says
how to run things, and every option doing what it says."""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storemon_app import cli
from tests import fixtures

ROOT = Path(__file__).resolve().parents[1]
MY_COMMANDS = ("demo", "up", "ingest", "pump", "ingestions", "report", "package")


def test_report_without_an_api_is_one_line(capsys):
    assert cli.main(["report", "--api", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the API at http://127.0.0.1:9" in err and "./storemon up" in err


def test_help_says_how_to_run_and_documents_every_option():
    parser = cli.build_parser()
    text = parser.format_help()
    assert text.startswith("usage: ./storemon") and "./storemon test" in text
    assert "``" not in text and "python -m storemon_app [" not in text
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in MY_COMMANDS:
        for action in commands[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_ingest_takes_repeated_options(aws, tmp_path, monkeypatch):
    from chalicelib.storage.ingestions import IngestionRepository

    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: None)
    first = fixtures.write_csv(tmp_path / "a.csv", ["store_id", "status", "timestamp_utc"],
                               [["a", "active", fixtures.stamp(fixtures.NOW)]])
    second = fixtures.write_csv(tmp_path / "b.csv", ["store_id", "status", "timestamp_utc"],
                                [["b", "active", fixtures.stamp(fixtures.NOW)]])
    assert cli.main(["ingest", "--status", str(first), "--status", str(second)]) == 0
    sources = {record.source.rsplit("/", 1)[1] for record in IngestionRepository().recent(10)}
    assert sources == {"a.csv", "b.csv"}


def test_ingest_refuses_a_missing_file_before_ingesting_anything(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_connect", lambda args: None)
    assert cli.main(["ingest", "--status", str(tmp_path / "nope.csv")]) == 1
    assert "nope.csv: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["-3", "0", "x"])
def test_ingestions_limit_must_be_positive(limit, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["ingestions", "--limit", limit])
    assert exit_.value.code == 2


def test_an_output_in_a_missing_directory_is_refused_before_anything_starts(tmp_path, capsys):
    missing = tmp_path / "nonexistent-dir"
    assert cli.main(["demo", "--out", str(missing / "x.csv")]) == 1
    assert f"directory {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()
    assert cli.main(["report", "--out", str(missing / "x.csv"), "--api", "http://127.0.0.1:9"]) == 1


def test_endpoint_localstack_follows_localstack_conventions(monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ, LOCALSTACK_HOST="ls.example:4599",
                                            AWS_ENDPOINT_URL_DYNAMODB="http://elsewhere:1"))
    cli._connect(argparse.Namespace(endpoint="localstack", stage="dev"))
    assert os.environ["AWS_ENDPOINT_URL"] == "http://ls.example:4599"
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ
    with pytest.raises(cli.CommandError, match="not --endpoint aws"):
        cli._stack_endpoint(argparse.Namespace(endpoint="aws"))


def test_demo_with_polls_only(tmp_path):
    """By the specification hours and zones are optional: 24x7, America/Chicago."""
    fixtures.write_csv(tmp_path / "data" / "store_status.csv", ["store_id", "status", "timestamp_utc"],
                       fixtures.status_rows())
    out = tmp_path / "report.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    done = subprocess.run([sys.executable, "-m", "storemon_app", "demo", "--data", str(tmp_path / "data"),
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "every store is open 24x7" in done.stderr and "America/Chicago" in done.stderr
    with open(out, newline="") as handle:
        rows = {row[0]: row for row in csv.reader(handle)}
    for store in (fixtures.BIG_ID, fixtures.NIGHT_OWL, fixtures.SILENT):  # without hours, every store is open 24x7
        up_hour, up_day, up_week, down_hour, down_day, down_week = map(float, rows[store][1:])
        assert (up_hour + down_hour, up_day + down_day, up_week + down_week) == pytest.approx((60, 24, 168)), store
