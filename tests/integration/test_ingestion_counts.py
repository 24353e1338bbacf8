"""Ingestion counts what it did: duplicates, conflicts and defaults, in the CLI output and the record."""
from __future__ import annotations


from chalicelib.storage.ingestions import IngestionRepository
from storemon_app import local_ingest
from storemon_app import cli
from storemon_app.local_ingest import ingest_file
from tests import fixtures


def test_duplicates_conflicts_and_defaults_are_counted(aws, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(local_ingest, "REJECTIONS_DIR", tmp_path / "rejections")
    stamp = "2023-01-25 17:00:00.123456 UTC"
    status = fixtures.write_csv(tmp_path / "status.csv", ["store_id", "status", "timestamp_utc"],
                                [["a", "active", stamp]] * 5 + [["a", "inactive", stamp],
                                                                ["b", "active", stamp]])
    zones = fixtures.write_csv(tmp_path / "zones.csv", ["store_id", "timezone_str"],
                               [["a", ""], ["b", "Asia/Beirut"], ["b", "Asia/Beirut"]])
    hours = fixtures.write_csv(tmp_path / "hours.csv",
                               ["store_id", "day", "start_time_local", "end_time_local"],
                               [["a", "0", "09:00:00", "17:00:00"]] * 2)

    outcome = ingest_file(status, expected_kind="status")
    printed = capsys.readouterr().out
    assert (outcome.accepted, outcome.rejected) == (7, 0)
    assert outcome.counts == {"duplicates": 4, "conflicts": 1}
    assert "4 duplicates: rows repeating another row" in printed and "1 conflicts:" in printed
    assert "inactive kept" in printed

    assert ingest_file(zones, expected_kind="timezones", quiet=True).counts == {"default_zone": 1,
                                                                                "duplicates": 1}
    assert ingest_file(hours, expected_kind="hours", quiet=True).counts == {"duplicate_hours": 1}

    records = {r.source.rsplit("/", 1)[-1]: r for r in IngestionRepository().recent()}
    assert records["status.csv"].counts == {"conflicts": 1, "duplicates": 4}
    assert records["zones.csv"].counts == {"default_zone": 1, "duplicates": 1}

    monkeypatch.setattr(cli, "prepare_environment", lambda *args, **kwargs: {})
    assert cli.main(["ingestions"]) == 0
    listing = capsys.readouterr().out
    assert "1 conflicts, 4 duplicates" in listing and "1 default zone" in listing
