"""The import graph, read from the source with ``ast`` (nothing is imported): no cycles among
the project's modules, a core that stays pure, and deployed code that never reaches into the
local tools. Imports inside functions count (they run too); ``if TYPE_CHECKING:`` ones do not."""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chalicelib", "storemon_app")
CORE = "chalicelib.core"
#: What the pure core must never import: the AWS SDK, the ORM, the framework, the Lambda toolkit.
AWS_BOUND = frozenset({"boto3", "botocore", "pynamodb", "chalice", "aws_lambda_powertools"})


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for app.py and every module of the project's packages."""
    modules = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Absolute names a module imports at run time (``from a import b`` gives ``a`` and ``a.b``)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        self.names.add(base)
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def imported_names(module: str, path: Path) -> set[str]:
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.names


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (the longest matching prefix), if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> project modules it imports, module -> every absolute name it imports)."""
    modules = project_modules()
    names = {module: imported_names(module, path) for module, path in modules.items()}
    graph = {module: {owner for name in imported if (owner := _owner(name, modules)) not in (None, module)}
             for module, imported in names.items()}
    return graph, names


GRAPH, NAMES = import_graph()


def test_the_graph_is_read():
    """Guards the checks below against passing on an empty graph."""
    assert len(GRAPH) > 20
    assert "chalicelib.core.schedule" in GRAPH["chalicelib.core.report"]
    assert any(target.startswith("chalicelib.") for target in GRAPH["app"])
    assert any(name.split(".")[0] in AWS_BOUND for names in NAMES.values() for name in names)


def test_no_import_cycles():
    try:
        order = list(TopologicalSorter(GRAPH).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert set(order) >= set(GRAPH)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m == CORE or m.startswith(CORE + ".")))
def test_the_core_imports_nothing_from_aws_nor_from_outside_itself(module):
    top_levels = {name.split(".")[0] for name in NAMES[module]}
    assert not top_levels & AWS_BOUND, f"{module} imports {sorted(top_levels & AWS_BOUND)}"
    outside = sorted(t for t in GRAPH[module] if t != CORE and not t.startswith(CORE + "."))
    assert not outside, f"{module} imports {outside} (the core imports only itself and libraries)"


def test_deployed_code_never_imports_the_local_tools():
    """storemon_app is not packaged for Lambda: an import of it would fail only once deployed."""
    deployed = [m for m in GRAPH if m == "app" or m.startswith("chalicelib")]
    offenders = {m: sorted(t for t in GRAPH[m] if t.startswith("storemon_app")) for m in deployed}
    assert not {m: t for m, t in offenders.items() if t}


def test_the_reader_resolves_relative_and_type_checking_imports(tmp_path):
    source = ("from typing import TYPE_CHECKING\nfrom . import sibling\nfrom ..core import report\n"
              "if TYPE_CHECKING:\n    import boto3\nelse:\n    import json\n"
              "def later():\n    import pynamodb.models\n")
    path = tmp_path / "module.py"
    path.write_text(source)
    names = imported_names("chalicelib.storage.module", path)
    assert {"chalicelib.storage.sibling", "chalicelib.core.report", "json", "pynamodb.models"} <= names
    assert "boto3" not in names
