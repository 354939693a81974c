"""CLI habits end to end: output off a terminal, file summaries, file modes, CSV BOM, --version, --period, names."""

from __future__ import annotations

import json
import os
import stat
from importlib.metadata import version
from pathlib import Path

import pytest

from sync.ops.demo import EXAMPLE_MAPPINGS

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"


@pytest.fixture
def env(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    return sandbox_env


@pytest.fixture
def synced(env: Path) -> Path:
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-deliver")
    assert code == 0, output
    return env


@pytest.fixture
def umask_022() -> object:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_version_comes_from_the_package_metadata() -> None:
    code, output = run_cli("--version")
    assert code == 0
    assert output == f"hourbridge {version('hourbridge')}\n"


def test_output_off_a_terminal_is_never_cut_to_80_columns(env: Path) -> None:
    # CliRunner's stream is no terminal, as in cron, journald or CI.
    code, output = run_cli("config")
    assert code == 0, output
    row = next(line for line in output.splitlines() if "HOURBRIDGE_DELIVERY__SETTLE_HOURS" in line)
    assert "Settled = the work date ended at least this many hours ago (UTC), so late edits land first." in row
    assert len(row) > 120
    assert not any(line.rstrip().endswith("…") for line in output.splitlines())


def test_sync_summarises_files_per_folder_and_states_mapped_and_unmapped_hours(env: Path) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    out = env / "out"
    assert f"10 files in {out}/" in output  # 2 months x (3 CSV + XLSX + JSON)
    assert f"24 files in {out / 'statements' / '2026-10'}/" in output  # 8 contractors x 3 formats
    assert "hours-2026-10.xlsx" not in output
    hours = next(line for line in output.splitlines() if line.startswith("hours in work dates"))
    assert " h mapped, " in hours and " h unmapped in " in hours
    report = json.loads((out / "hours-2026-11.json").read_text(encoding="utf-8"))
    assert report["totals"]["unmapped_entries"] > 0  # so the line has something to state
    # No progress bar leaks into output that is not a terminal.
    assert "0:00:0" not in output and "entries of" not in output

    code, output = run_cli("sync", "--as-of", AS_OF, "--verbose")
    assert code == 0, output
    assert str(out / "hours-2026-10.xlsx") in output
    assert str(out / "statements" / "2026-10" / "zoe-muller.json") in output


def test_report_lists_files_only_with_verbose_and_states_mapped_hours(synced: Path) -> None:
    code, output = run_cli("report", "--period", "2026-11")
    assert code == 0, output
    assert " h mapped, " in output and "h unmapped" in output
    assert f"5 files in {synced / 'out'}/" in output
    code, output = run_cli("report", "--period", "2026-11", "--verbose")
    assert str(synced / "out" / "entries-2026-11.csv") in output


def test_files_get_the_deliberate_mode_whatever_the_umask(
    env: Path, monkeypatch: pytest.MonkeyPatch, umask_022: object
) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-deliver")
    assert code == 0, output
    database = env / "state.db"
    files = [p for p in (env / "out").rglob("*") if p.is_file()]
    assert files and {mode(p) for p in files} == {0o640}, "umask 022 would give 0644"
    assert mode(database) == 0o640
    assert mode(Path(f"{database}.migrate.lock")) == 0o640

    monkeypatch.setenv("HOURBRIDGE_FILE_MODE", "600")
    code, output = run_cli("report", "--period", "2026-11")
    assert code == 0, output
    assert {mode(p) for p in (env / "out").glob("*2026-11*")} == {0o600}  # unchanged bytes, mode still applied
    code, output = run_cli("statement", "--period", "2026-11")
    assert code == 0, output
    assert {mode(p) for p in (env / "out" / "statements" / "2026-11").iterdir()} == {0o600}


@pytest.mark.parametrize("value", ["0755", "0400", "rw-r-----", "0o1640"])
def test_a_file_mode_that_cannot_work_exits_2_naming_the_variable(
    env: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HOURBRIDGE_FILE_MODE", value)
    code, output = run_cli("report", "--period", "2026-11")
    assert code == 2
    assert "HOURBRIDGE_FILE_MODE" in output


def test_csv_carries_a_bom_and_its_period_unless_turned_off(synced: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hours = synced / "out" / "hours-2026-11.csv"
    data = hours.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfperiod,level,")
    assert all(line.startswith(b"2026-11,") for line in data[3:].splitlines()[1:])
    assert (synced / "out" / "statements" / "2026-11" / "zoe-muller.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    monkeypatch.setenv("HOURBRIDGE_CSV_BOM", "false")
    code, output = run_cli("report", "--period", "2026-11")
    assert code == 0, output
    assert hours.read_bytes() == data[3:]


def test_period_is_accepted_everywhere_and_month_stays_an_alias(synced: Path) -> None:
    for flag in ("--period", "--month"):
        code, output = run_cli("deliver", flag, "2026-11")
        assert code == 0, output
        assert "no accounting sink is configured" in output
    code, output = run_cli("deliver", "--period", "2026-13")
    assert code == 2 and "2026-13" in output

    code, output = run_cli("periods", "close", "--period", "2026-10")
    assert code == 0 and "2026-10 closed" in output, output
    code, output = run_cli("periods", "reopen", "2026-10", "--period", "2026-11", "--reason", "typo")
    assert code == 2 and "disagree" in output
    code, output = run_cli("periods", "reopen", "--reason", "late edits")
    assert code == 2 and "--period" in output
    code, output = run_cli("periods", "reopen", "--period", "2026-10", "--reason", "late edits")
    assert code == 0 and "2026-10 reopened" in output, output


@pytest.mark.parametrize("typed", ["zoe muller", "ZOË MÜLLER", "  Zoe   Müller "])
def test_statement_contractor_matches_without_accents_or_case(synced: Path, typed: str) -> None:
    code, output = run_cli("statement", "--period", "2026-11", "--contractor", typed, "--out", str(synced / "one"))
    assert code == 0, output
    assert sorted(p.name for p in (synced / "one" / "statements" / "2026-11").iterdir()) == [
        "zoe-muller.csv",
        "zoe-muller.json",
        "zoe-muller.xlsx",
    ]
    code, output = run_cli("statement", "--period", "2026-11", "--contractor", "Zoe Mueller")
    assert code == 1 and "no hours for Zoe Mueller" in output
