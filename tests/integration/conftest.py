"""Integration fixtures: in-process moto with the stack of infra/resources.json applied (or
fresh resources on the run's targets, tests/targets.py), the app through chalice's test
client, and the hand-made data set ingested."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Iterator

import botocore.session
import pynamodb.connection.base
import pytest
from moto import mock_aws

import app as app_module
from storemon_app import local_ingest
from storemon_app.stack import apply_stack, destroy_stack
from tests import targets


@pytest.fixture
def aws() -> Iterator[dict[str, str]]:
    """A fresh emulated account with every table, queue and bucket of the template:
    in-process moto, or fresh resources on the run's targets (tests/targets.py)."""
    with targets.target_environment(), (nullcontext() if targets.ALL_EXTERNAL else mock_aws()):
        app_module.dependencies.cache_clear()
        names = apply_stack(targets.NAMES_STAGE)
        try:
            yield names
        finally:
            if targets.TARGETS:
                app_module.dependencies.cache_clear()
                destroy_stack(targets.NAMES_STAGE)
    app_module.dependencies.cache_clear()


_SHARED_LOADER = botocore.session.get_session().get_component("data_loader")


@pytest.fixture(autouse=True)
def _warm_botocore_sessions(monkeypatch):
    """Speed only: PynamoDB opens a botocore session per model and thread, and the ``aws``
    fixture drops them all, so every test would parse the DynamoDB service JSON again
    (about 1 s a test). Sessions made here share one loader; nothing else changes."""
    def session():
        fresh = botocore.session.get_session()
        fresh.register_component("data_loader", _SHARED_LOADER)
        return fresh

    monkeypatch.setattr(pynamodb.connection.base, "get_session", session)


@pytest.fixture(autouse=True)
def _local_rejections(tmp_path, monkeypatch):
    """The CLI path writes its rejection reports under out/; keep tests out of the project tree."""
    monkeypatch.setattr(local_ingest, "REJECTIONS_DIR", tmp_path / "rejections")


@pytest.fixture
def client(aws):
    """``chalice.test.Client`` on the app, against the ``aws`` fixture's emulated account."""
    from chalice.test import Client

    import app as app_module

    # The app reads its settings on first use; the test client applies the stage's
    # .chalice/config.json names during each request, not this run's (tests/targets.py).
    app_module.dependencies()
    with Client(app_module.app, stage_name="dev") as chalice_client:
        yield chalice_client


@pytest.fixture
def ingested(aws, tmp_path: Path) -> dict[str, Path]:
    """The hand-made data set of ``tests/fixtures.py``, ingested through the CLI path."""
    from storemon_app.local_ingest import ingest_file
    from tests import fixtures

    files = fixtures.write_dataset(tmp_path)
    for kind in ("timezones", "hours", "status"):
        assert ingest_file(files[kind], expected_kind=kind, quiet=True).status == "Complete"
    return files
