"""The real `hourbridge` CLI against the Asana sandbox on 127.0.0.1: runs, re-runs, edits, deletions, errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.store import ledger
from sync.store.db import make_engine
from sync.store.tables import entry_versions

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"


@pytest.fixture
def env(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    return sandbox_env


def hourbridge(*args: str) -> tuple[int, str]:
    return run_cli(*args)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def versions(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(entry_versions)).scalar_one())
    finally:
        engine.dispose()


def test_sync_twice_writes_no_new_versions_and_identical_reports(env: Path, sandbox: AsanaSandbox) -> None:
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 0, output
    first_versions = versions(env)
    first_files = snapshot(env / "out")
    assert first_versions == len(sandbox.entry_gids())
    assert {"hours-2026-10.xlsx", "hours-2026-11.json", "entries-2026-11.csv"} <= set(first_files)

    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert versions(env) == first_versions
    assert snapshot(env / "out") == first_files


def test_report_totals_equal_the_sandbox_minutes(env: Path, sandbox: AsanaSandbox, dataset: Dataset) -> None:
    assert hourbridge("sync", "--as-of", AS_OF)[0] == 0
    total = 0
    for month in ("2026-10", "2026-11"):
        code, output = hourbridge("report", "--period", month)
        assert code == 0, output
        total += json.loads((env / "out" / f"hours-{month}.json").read_text())["totals"]["seconds"]
    assert dataset.start >= date(2026, 10, 1)
    assert total == sandbox.total_minutes() * 60
    code, output = hourbridge("report", "--from", dataset.start.isoformat(), "--to", "2026-11-20")
    assert code == 0, output
    whole = json.loads((env / "out" / f"hours-{dataset.start.isoformat()}_2026-11-20.json").read_text())
    assert whole["totals"]["seconds"] == total


def test_edit_becomes_a_version_and_deletion_a_tombstone(env: Path, sandbox: AsanaSandbox) -> None:
    assert hourbridge("sync", "--as-of", AS_OF)[0] == 0
    edited, deleted = sandbox.entry_gids(date(2026, 11, 2), date(2026, 11, 20))[:2]
    sandbox.edit_entry(edited, duration_minutes=123)
    sandbox.delete_entry(deleted)
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 0, output
    engine = make_engine(f"sqlite:///{env / 'state.db'}")
    with engine.connect() as conn:
        edit_history = ledger.entry_history(conn, "asana", sandbox.workspace_gids[0], edited)
        delete_history = ledger.entry_history(conn, "asana", sandbox.workspace_gids[0], deleted)
    engine.dispose()
    assert [(h["change"], h["duration_seconds"]) for h in edit_history][-1] == ("updated", 123 * 60)
    assert [h["change"] for h in delete_history] == ["created", "deleted"]
    report = json.loads((env / "out" / "hours-2026-11.json").read_text())
    ids = {line["external_id"] for line in report["entries"]}
    assert deleted not in ids and edited in ids
    assert report["totals"]["seconds"] == sandbox.total_minutes(date(2026, 11, 1), date(2026, 11, 30)) * 60


def test_invalid_mapping_document_names_the_line_and_writes_nothing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = env / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "codes:\n"
        "  X-1: {name: X, client: C, cost_center: CC}\n"
        "rules:\n"
        "  - id: r1\n"
        "    priority: 1\n"
        "    code: X-1\n"
        "    match: {projct: Web}\n"
    )
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(bad))
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 2
    assert "line 8" in output and "projct" in output
    assert not (env / "state.db").exists()
    assert not (env / "out").exists()
    code, output = hourbridge("mappings", "check", str(bad))
    assert code == 2 and "line 8" in output


def test_missing_token_names_the_variable_and_writes_nothing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOURBRIDGE_ASANA__TOKEN")
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 2
    assert "HOURBRIDGE_ASANA__TOKEN" in output
    assert not (env / "state.db").exists()


def test_refused_token_is_recorded_without_the_secret(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOURBRIDGE_ASANA__TOKEN", "0/revoked-secret-token")
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 1
    assert "HOURBRIDGE_ASANA__TOKEN" in output
    assert "revoked-secret-token" not in output + capsys.readouterr().err
    code, output = hourbridge("status", "--json")
    status = json.loads(output)
    assert status["runs"][0]["status"] == "failed"
    assert "revoked-secret-token" not in output


def test_status_shows_runs_cursors_and_unmapped_hours(env: Path) -> None:
    assert hourbridge("sync", "--as-of", AS_OF)[0] == 0
    code, output = hourbridge("status", "--json")
    assert code == 0
    status = json.loads(output)
    assert status["runs"][0]["status"] == "ok"
    assert status["cursors"][0]["scanned_through"] == "2026-11-20"
    assert status["ledger"]["unmapped_entries"] > 0
    code, output = hourbridge("status")
    assert code == 0 and "unmapped" in output


def test_db_upgrade_is_idempotent(env: Path) -> None:
    assert hourbridge("db", "upgrade")[0] == 0
    code, output = hourbridge("db", "upgrade")
    assert code == 0 and "revision" in output


def test_demo_through_the_console_script(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOURBRIDGE_")}
    # The checkout under test, not whichever copy the console script has installed.
    root = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, (root, environment.get("PYTHONPATH"))))
    script = Path(sys.executable).parent / "hourbridge"
    result = subprocess.run(
        [str(script), "demo", "--out", str(tmp_path / "demo"), "--as-of", "2026-11-20"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reconciled to the minute" in result.stdout
    # Its inbox's imported files count on the source side too: every month agrees across all three.
    assert "reconcile 2026-11" in result.stdout and "sources = ledger = sinks" in result.stdout
    assert (tmp_path / "demo" / "hours-2026-11.xlsx").exists()
    assert "mapped" in result.stdout and "unmapped (held, reported)" in result.stdout

    # The demo ends with the exact commands that explore its ledger: each of them works as printed.
    explore = result.stdout.split("Explore the demo's ledger", 1)[1].splitlines()[1:]
    commands = [line.split("    #", 1)[0].strip() for line in explore if line.startswith("  ")]
    assert [c.split(" hourbridge ")[-1].split()[0] for c in commands if " hourbridge " in c] == [
        "unmapped",
        "mappings",
        "mappings",
    ]
    assert all(
        f"HOURBRIDGE_DATABASE_URL=sqlite:///{tmp_path / 'demo' / 'demo.db'}" in c
        for c in commands
        if " hourbridge " in c
    )
    for command in commands:
        argv = shlex.split(command)  # as a POSIX shell reads it: VAR=value words first, then the program
        assignments: dict[str, str] = {}
        while re.match(r"[A-Z_][A-Z0-9_]*=", argv[0]):
            name, value = argv.pop(0).split("=", 1)
            assignments[name] = value
        program = str(script) if argv[0] == "hourbridge" else argv[0]
        ran = subprocess.run(
            [program, *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**environment, **assignments},
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, f"{command}\n{ran.stdout}{ran.stderr}"
        if " explain " in command:
            assert "against revision" in ran.stdout
    # The demo's contractors' bills are off in known ways: the check prints its findings, the demo still succeeds.
    assert "invoice check: rate_differs" in result.stdout
    assert (tmp_path / "demo" / "invoice-check-2026-10.json").exists()
