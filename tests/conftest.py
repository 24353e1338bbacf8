"""What every test directory shares: the real data sets, when they are present.

The fixtures that touch AWS live with the tests that may use them: ``tests/integration``
(in-process moto) and ``tests/e2e`` (the local stack over HTTP); ``tests/unit`` has none."""
from __future__ import annotations

from pathlib import Path

import pytest

from storemon_app.paths import SHARED_REAL


@pytest.fixture
def real_data() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real data not found at {SHARED_REAL} (only present beside the project's CI checkout)")
    return SHARED_REAL


TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its directory, so ``-m "not e2e"`` works like a path, and with
    ``real_data`` when it reads the real files (the slow part of tests/unit)."""
    for item in items:
        layer = next((part for part in item.path.relative_to(TESTS).parts[:1] if part in LAYERS), None)
        if layer:
            item.add_marker(getattr(pytest.mark, layer))
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)
