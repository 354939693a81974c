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


# The layers of sync/, top to bottom: a module may import its own layer and the layers below it,
# never one above. sync.settings and sync.logging (and the package itself) are usable by every layer.
SYNC_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli", "console"}),
    frozenset({"ops"}),
    frozenset({"run", "delivery", "reporting", "admin", "invoices"}),
    frozenset({"store"}),
)
SYNC_SHARED = frozenset({"settings", "settings_env", "logging", "__init__"})


def sync_layer(module: str) -> int | None:
    """The layer index (0 = top) of a ``sync.<subpackage>`` module; None for shared modules."""
    parts = module.split(".")
    if parts[0] != "sync" or len(parts) < 2 or parts[1] in SYNC_SHARED:
        return None
    for index, names in enumerate(SYNC_LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} belongs to no layer of sync/: add its subpackage to SYNC_LAYERS")


def upward_imports(found: dict[str, set[str]]) -> dict[str, list[str]]:
    """Per module path: the sync modules it imports from a higher layer than its own."""
    offenders: dict[str, list[str]] = {}
    for path, names in found.items():
        own = sync_layer(path.removesuffix(".py").replace("/", "."))
        if own is None:
            continue
        above = sorted(name for name in names if (layer := sync_layer(name)) is not None and layer < own)
        if above:
            offenders[path] = above
    return offenders


def test_sync_layers_never_import_upwards() -> None:
    assert upward_imports(imported_modules("sync")) == {}


def test_the_layer_check_sees_an_upward_import() -> None:
    # A store module that reached up into the run stages would be reported; the scan itself works.
    assert upward_imports({"sync/store/ledger.py": {"sync.run.pipeline", "sync.settings"}}) == {
        "sync/store/ledger.py": ["sync.run.pipeline"]
    }
    assert "sync.run.pipeline" in set().union(*imported_modules("sync").values())


def test_every_sync_subpackage_has_a_layer() -> None:
    for path in imported_modules("sync"):
        sync_layer(path.removesuffix(".py").replace("/", "."))
