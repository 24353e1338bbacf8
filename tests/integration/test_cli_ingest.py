"""The CLI's ingest and ingestions commands against in-process moto."""
from __future__ import annotations

from storemon_app import cli
from tests import fixtures


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
