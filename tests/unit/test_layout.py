"""Every test lives in the directory that says what it needs (README, Development): a module
dropped at the top of tests/ (as a merge may bring) or a unit test that imports an emulator
fails here, not later as a slow or flaky "unit" run."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import LAYERS, TESTS

#: What only integration and e2e tests may import: the emulator, chalice's test client, the app.
NOT_IN_UNIT = ("moto", "chalice.test", "app")


def test_every_test_module_is_in_a_layer():
    stray = sorted(str(path.relative_to(TESTS)) for path in TESTS.rglob("test_*.py")
                   if path.relative_to(TESTS).parts[0] not in LAYERS)
    assert not stray, f"move {stray} into tests/unit, tests/integration or tests/e2e"


@pytest.mark.parametrize("path", sorted((TESTS / "unit").glob("*.py")), ids=lambda path: path.name)
def test_unit_tests_import_no_emulator(path: Path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    offending = sorted(name for name in imported
                       if any(name == banned or name.startswith(banned + ".") for banned in NOT_IN_UNIT))
    assert not offending, f"{path.name} imports {offending}: it belongs in tests/integration"
