"""The layout rules of the README: what each top-level package may import."""

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = sys.stdlib_module_names


def imported_roots(package):
    """``{top-level module: [file:line, ...]}`` of every import in ``package``."""
    roots = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                roots.setdefault(name.split(".")[0], []).append(where)
    return roots


def test_imports_of_roots_are_found():
    # the check below must see the imports it judges
    roots = imported_roots("sim")
    assert "amaranth" in roots and "hw" in roots


def test_gateware_needs_amaranth_only():
    # A user of the core installs only the runtime dependencies (pyproject.toml).
    foreign = {name: where for name, where in imported_roots("hw").items()
               if name not in STDLIB and name not in {"amaranth", "hw"}}
    assert foreign == {}


@pytest.mark.parametrize("package", ["hw", "sim"])
def test_models_and_gateware_do_not_import_boards(package):
    assert imported_roots(package).get("boards", []) == []


def test_gateware_does_not_import_models():
    assert imported_roots("hw").get("sim", []) == []


def test_runtime_dependencies_are_amaranth_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [dep.split("[")[0].split(">")[0] for dep in project["dependencies"]] == ["amaranth"]
    assert isinstance(project["license"], str)   # an SPDX expression, not a deprecated table
