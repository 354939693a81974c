"""`hourbridge statement` against the Asana sandbox: one statement per contractor that adds up to the report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sync.ops.demo import EXAMPLE_MAPPINGS

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"


@pytest.fixture
def env(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    return sandbox_env


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_statements_add_up_to_the_report_and_rerun_changes_nothing(env: Path) -> None:
    code, output = run_cli("report", "--period", "2026-10")
    assert code == 0, output
    report = json.loads((env / "out" / "hours-2026-10.json").read_text(encoding="utf-8"))
    per_contractor, entries = Counter[str](), Counter[str]()
    for entry in report["entries"]:
        per_contractor[entry["contractor"]] += entry["seconds"]
        entries[entry["contractor"]] += 1
    assert len(per_contractor) >= 2

    code, output = run_cli("statement", "--period", "2026-10")
    assert code == 0, output
    folder = env / "out" / "statements" / "2026-10"
    statements = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    assert {s["statement"]["contractor"] for s in statements} == set(per_contractor)
    assert len(list(folder.glob("*.csv"))) == len(list(folder.glob("*.xlsx"))) == len(statements)
    for statement in statements:
        name = statement["statement"]["contractor"]
        assert statement["totals"]["seconds"] == per_contractor[name]
        assert statement["totals"]["entries"] == len(statement["entries"]) == entries[name]
    assert sum(s["totals"]["seconds"] for s in statements) == report["totals"]["seconds"]
    assert sum(s["totals"]["not_yet_coded"]["seconds"] for s in statements) == report["totals"]["unmapped_seconds"]

    before = snapshot(folder)
    code, output = run_cli("statement", "--period", "2026-10")
    assert code == 0, output
    assert "0 changed" in output
    assert snapshot(folder) == before


def test_one_contractor_in_any_letter_case_and_an_unknown_one(env: Path) -> None:
    code, output = run_cli("statement", "--period", "2026-10", "--out", str(env / "mine"))
    assert code == 0, output
    everyone = sorted(
        json.loads(p.read_text(encoding="utf-8"))["statement"]["contractor"]
        for p in (env / "mine" / "statements" / "2026-10").glob("*.json")
    )
    chosen, others = everyone[0], everyone[1:]

    code, output = run_cli(
        "statement", "--period", "2026-10", "--contractor", chosen.upper(), "--out", str(env / "one")
    )
    assert code == 0, output
    assert chosen in output
    for other in others:
        assert other not in output
    files = sorted(p.name for p in (env / "one" / "statements" / "2026-10").iterdir())
    assert len(files) == 3
    assert {Path(name).suffix for name in files} == {".csv", ".xlsx", ".json"}

    code, output = run_cli(
        "statement", "--period", "2026-10", "--contractor", "Nobody Known", "--out", str(env / "none")
    )
    assert code == 1
    assert "no hours for Nobody Known in 2026-10" in output
    for name in everyone:
        assert name not in output
    assert not (env / "none" / "statements").exists()


def test_bad_period_is_an_admin_error(env: Path) -> None:
    code, output = run_cli("statement", "--period", "2026-13")
    assert code == 2
    assert "--period" in output


def test_report_and_statement_read_the_ledger_without_the_mapping_document(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run_cli("report", "--period", "2026-10")
    assert code == 0, output
    before = (env / "out" / "hours-2026-10.json").read_bytes()
    # Code names come from the stored revision that mapped each entry: a broken document, or none
    # at all, does not matter to commands that only read.
    broken = env / "broken.yaml"
    broken.write_text("codes: [not a mapping document\n", encoding="utf-8")
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(broken))
    code, output = run_cli("report", "--period", "2026-10")
    assert code == 0, output
    assert (env / "out" / "hours-2026-10.json").read_bytes() == before
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(env / "missing.yaml"))
    code, output = run_cli("statement", "--period", "2026-10")
    assert code == 0, output
