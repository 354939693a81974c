"""mappings stays pure: it imports no I/O, network, storage or clock and opens no files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mappings"

# Top-level modules the package may import: the stdlib parts a pure engine needs, its two parsers,
# and the shared domain values.
ALLOWED = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "fnmatch",
    "hashlib",
    "json",
    "operator",
    "re",
    "typing",
    "unicodedata",
    "pydantic",
    "yaml",
    "connectors.model",
    "connectors.errors",
    "mappings",
}
FORBIDDEN = {
    "httpx",
    "requests",
    "urllib",
    "urllib3",
    "http",
    "socket",
    "ssl",
    "asyncio",
    "sqlalchemy",
    "alembic",
    "sync",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "subprocess",
    "logging",
    "structlog",
    "time",
    "random",
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint"}
CLOCK_ATTRIBUTES = {"now", "today", "utcnow", "time", "monotonic", "perf_counter"}


def violations(source: str, filename: str = "<module>") -> list[str]:
    """Every import or call in ``source`` that breaks the package's purity, as readable lines."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            allowed = any(module == name or module.startswith(f"{name}.") for name in ALLOWED)
            if module.split(".")[0] in FORBIDDEN or not allowed:
                found.append(f"{filename}:{getattr(node, 'lineno', 0)}: imports {module}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{filename}:{node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES:
                found.append(f"{filename}:{node.lineno}: calls .{func.attr}()")
            if isinstance(func, ast.Attribute) and func.attr in {"read_text", "write_text", "open"}:
                found.append(f"{filename}:{node.lineno}: calls .{func.attr}()")
    return found


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_modules_to_scan() -> None:
    names = {path.name for path in package_files()}
    assert {"schema.py", "loader.py", "engine.py", "check.py"} <= names


@pytest.mark.parametrize("path", package_files(), ids=lambda path: path.name)
def test_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx", "imports httpx"),
        ("from sqlalchemy import select", "imports sqlalchemy"),
        ("from sync.store import tables", "imports sync.store"),
        ("import urllib.request", "imports urllib.request"),
        ("import socket", "imports socket"),
        ("import requests", "imports requests"),
        ("from os import path", "imports os"),
        ("from connectors.asana import client", "imports connectors.asana"),
        ("data = open('rules.yaml').read()", "calls open()"),
        ("from pathlib import Path\nPath('x').read_text()", "calls .read_text()"),
        ("from datetime import date\ndate.today()", "calls .today()"),
    ],
)
def test_the_scan_catches_violations(source: str, expected: str) -> None:
    assert any(expected in line for line in violations(source)), violations(source)


def test_the_scan_allows_the_permitted_imports() -> None:
    source = (
        "from __future__ import annotations\nimport yaml\nfrom pydantic import BaseModel\n"
        "from connectors.model import TimeEntry\nfrom mappings.schema import Rule\nfrom . import engine\n"
    )
    assert violations(source) == []
