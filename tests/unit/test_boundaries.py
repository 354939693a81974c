"""The seams hold: connectors never import sync or mappings; mappings imports no I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("forbidden", ["sync", "mappings"])
def test_connectors_never_import_sync_or_mappings(forbidden: str) -> None:
    offenders = {
        path: sorted(n for n in names if n == forbidden or n.startswith(forbidden + "."))
        for path, names in imported_modules("connectors").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_mappings_imports_no_io_library() -> None:
    io_libraries = ("httpx", "sqlalchemy", "sync", "asana", "requests", "urllib", "urllib3", "socket", "alembic")
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] in io_libraries)
        for path, names in imported_modules("mappings").items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_the_scan_sees_real_imports() -> None:
    # Guard against a scan that finds nothing and so can never fail.
    assert "connectors.model" in set().union(*imported_modules("mappings").values())
    assert "httpx" in set().union(*imported_modules("connectors").values())
