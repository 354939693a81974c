"""The file sink through the real CLI: delivered lines land in monthly CSV files, edits update them in place."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from .conftest import run_cli
from .test_toy_plugins import AS_OF, toy_env, toy_registered

__all__ = ["toy_env", "toy_registered"]  # fixtures used below


@pytest.fixture
def files_env(toy_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HOURBRIDGE_TOYLEDGER__BOOK")
    monkeypatch.setenv("HOURBRIDGE_FILES__FOLDER", str(toy_env / "books"))
    return toy_env


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "books" / "accounting-2026-11.csv").open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def test_file_sink_holds_the_mapped_lines_and_follows_edits(files_env: Path) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    first = _rows(files_env)
    assert sorted((r["date"], r["code"], r["minutes"], r["payee"]) for r in first) == [
        ("2026-11-02", "ALPHA", "60", "Ada"),
        ("2026-11-03", "ALPHA", "30", "Ada"),
    ]
    assert all(r["key"].startswith("[hb:") for r in first)

    rows = json.loads((files_env / "rows.json").read_text(encoding="utf-8"))
    rows[1]["seconds"] = 2700  # r2: 30 -> 45 minutes
    (files_env / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    second = _rows(files_env)
    by_date = {r["date"]: r for r in second}
    assert by_date["2026-11-03"]["minutes"] == "45"
    # The edit updated the record it had written, it did not add a second one.
    assert {r["record"] for r in second} == {r["record"] for r in first}

    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    assert code == 0, output
    result = json.loads(output[output.index("{") :])
    assert result["ok"] is True and result["sinks"] == ["files"]
    code, output = run_cli("deliver", "--dry-run")
    assert code == 0, output


def test_file_sink_files_take_the_file_mode_and_bom_settings(files_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_FILE_MODE", "0660")
    previous = os.umask(0o077)  # the mode is applied exactly, not narrowed by the umask
    try:
        code, output = run_cli("sync", "--as-of", AS_OF)
    finally:
        os.umask(previous)
    assert code == 0, output
    path = files_env / "books" / "accounting-2026-11.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert path.read_bytes().startswith(b"\xef\xbb\xbfrecord,key,")
    assert len(_rows(files_env)) == 2
