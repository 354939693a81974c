"""End to end: `hourbridge import` and the inbox -> ledger -> report -> QuickBooks emulator, closed months included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from connectors.sandbox.dataset import Dataset
from connectors.sandbox.quickbooks import BATCH, TIME_ACTIVITY, QuickBooksSandbox
from sync.admin.revisions import read_document
from sync.ops.demo import EXAMPLE_MAPPINGS, quickbooks_sandbox
from sync.store.tables import entries

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-21T09:00:00"
HEADER = "date,contractor_email,hours,description,project_code\n"
PRIYA = "priya.raman@example.org"


@pytest.fixture
def qbo(dataset: Dataset) -> Iterator[QuickBooksSandbox]:
    document = read_document(EXAMPLE_MAPPINGS).document
    sandbox = quickbooks_sandbox(dataset, document, rate_limit_per_minute=None, batches_per_minute=None)
    with sandbox as running:
        yield running


@pytest.fixture
def env(sandbox_env: Path, qbo: QuickBooksSandbox, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__REALM_ID", qbo.realm_id)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__BASE_URL", qbo.server.root_url)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN", qbo.token)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__GRANULARITY", "entry")
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__RATE_LIMIT_PER_MINUTE", "1000000")
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__MAX_BATCHES_PER_MINUTE", "1000000")
    monkeypatch.setenv("HOURBRIDGE_DELIVERY__ASANA_GATE", "none")
    monkeypatch.setenv("HOURBRIDGE_DELIVERY__TIMESHEET_GATE", "none")
    monkeypatch.setenv("HOURBRIDGE_INBOX_DIR", str(sandbox_env / "inbox"))
    monkeypatch.setenv("HOURBRIDGE_INBOX_SETTLE_SECONDS", "0")
    (sandbox_env / "inbox").mkdir()
    return sandbox_env


def writes(qbo: QuickBooksSandbox) -> int:
    return qbo.call_count(BATCH) + qbo.call_count(TIME_ACTIVITY)


def priya_minutes(qbo: QuickBooksSandbox, month: str) -> dict[str, int]:
    """Minutes QuickBooks holds for the timesheet's time, by transaction date."""
    held: dict[str, int] = {}
    for activity in qbo.time_activities():
        if "Timesheet work" in activity.get("Description", "") and activity["TxnDate"].startswith(month):
            held[activity["TxnDate"]] = held.get(activity["TxnDate"], 0) + activity["Hours"] * 60 + activity["Minutes"]
    return held


def adjustments(qbo: QuickBooksSandbox) -> list[tuple[str, int, int]]:
    return [
        (a["TxnDate"], a["Hours"], a["Minutes"])
        for a in qbo.time_activities()
        if "Adjustment of 2026-10" in a.get("Description", "") and "Timesheet work" in a.get("Description", "")
    ]


def imported_seconds(env: Path) -> int:
    engine = create_engine(f"sqlite:///{env / 'state.db'}")
    with engine.connect() as conn:
        seconds = conn.execute(
            select(func.coalesce(func.sum(entries.c.duration_seconds), 0)).where(
                entries.c.source == "timesheet", entries.c.deleted_at.is_(None)
            )
        ).scalar_one()
    engine.dispose()
    return int(seconds)


def drop(env: Path, name: str, *rows: str) -> Path:
    path = env / "inbox" / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_inbox_to_ledger_to_quickbooks_rerun_sends_nothing_and_a_closed_month_gets_an_adjustment(
    env: Path, qbo: QuickBooksSandbox
) -> None:
    drop(
        env,
        "priya-week.csv",
        f"2026-10-20,{PRIYA},2,Timesheet work A,NWT-APP",
        f"2026-11-10,{PRIYA},1.5,Timesheet work B,GLX-ERP",
    )
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert (env / "inbox" / "processed" / "priya-week.csv").exists()
    assert imported_seconds(env) == 3.5 * 3600
    assert priya_minutes(qbo, "2026-10") == {"2026-10-20": 120}
    assert priya_minutes(qbo, "2026-11") == {"2026-11-10": 90}
    report = json.loads((env / "out" / "hours-2026-11.json").read_text(encoding="utf-8"))
    assert any(e.get("source") == "timesheet" and e["seconds"] == 5400 for e in report["entries"])

    before = writes(qbo)
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert writes(qbo) == before  # nothing new in the inbox: nothing sent

    code, output = run_cli("periods", "close", "2026-10", "--by", "finance")
    assert code == 0, output
    october = [a for a in qbo.time_activities() if a["TxnDate"].startswith("2026-10")]
    drop(
        env,
        "priya-week.csv",
        f"2026-10-20,{PRIYA},2.5,Timesheet work A,NWT-APP",  # 30 minutes more in a closed month
        f"2026-11-10,{PRIYA},1.5,Timesheet work B,GLX-ERP",
    )
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    # The closed month's records stay as they were; the 30 minutes arrive in the first open month.
    assert [a for a in qbo.time_activities() if a["TxnDate"].startswith("2026-10")] == october
    assert adjustments(qbo) == [("2026-11-01", 0, 30)]
    assert imported_seconds(env) == 4 * 3600

    # Asana read again, the imported time as its import recorded it: every row agrees to the second.
    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["sources_checked"] is True and result["imports_checked"] is True
    assert all(row["source_seconds"] == row["ledger_seconds"] for row in result["rows"]), result["rows"]
    assert sum(row["source_seconds"] for row in result["rows"] if row["code"] == "GLX-ERP") >= 5400


def test_import_command_exit_codes_dry_run_and_rejection(env: Path) -> None:
    good = env / "good.csv"
    good.write_text(HEADER + f"2026-11-10,{PRIYA},1.5,Timesheet work,GLX-ERP\n", encoding="utf-8")
    bad = env / "bad.csv"
    bad.write_text(HEADER + f"2026-11-10,{PRIYA},lots,Timesheet work,GLX-ERP\n", encoding="utf-8")

    code, output = run_cli("import", str(good), "--dry-run")
    assert code == 2 and "hourbridge db upgrade" in output  # no ledger yet: none is created by accident
    assert run_cli("db", "upgrade")[0] == 0
    code, output = run_cli("import", str(good), "--dry-run")
    assert code == 0, output
    assert "dry run: 1 version(s) would be written" in output
    assert imported_seconds(env) == 0

    code, output = run_cli("import", str(good), str(bad))
    assert code == 1
    assert "rejected: bad.csv" in output and "line 2, column 'hours' (C): 'lots' is not a number" in output
    assert imported_seconds(env) == 0  # the good file of the same command was not written either

    code, output = run_cli("import", str(good))
    assert code == 0, output
    assert imported_seconds(env) == 5400
    code, output = run_cli("import", str(good))
    assert code == 0 and "0 version(s) written" in output

    code, output = run_cli("import", str(good), "--timezone", "Nowhere/Land")
    assert code == 2 and "unknown time zone" in output
    code, output = run_cli("import", str(env / "missing.csv"))
    assert code == 2 and "no such file" in output


def test_reconcile_counts_imported_time_from_its_import_and_finds_a_ledger_row_changed_since(
    sandbox_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the imports: no PM tool to read again, no sink.
    for name in ("HOURBRIDGE_ASANA__TOKEN", "HOURBRIDGE_ASANA__BASE_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    week = sandbox_env / "priya-week.csv"
    week.write_text(
        HEADER + f"2026-11-10,{PRIYA},1.5,Timesheet work B,GLX-ERP\n2026-11-11,{PRIYA},2,Timesheet work C,GLX-ERP\n",
        encoding="utf-8",
    )
    assert run_cli("db", "upgrade")[0] == 0
    code, output = run_cli("import", str(week))
    assert code == 0, output

    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["ok"] is True and result["imports_checked"] is True and result["sources_checked"] is False
    [row] = result["rows"]
    assert row["code"] == "GLX-ERP" and row["source_seconds"] == row["ledger_seconds"] == 3.5 * 3600

    # Someone edits the ledger by hand: 30 minutes more on one row, another row tombstoned.
    engine = create_engine(f"sqlite:///{sandbox_env / 'state.db'}")
    with engine.begin() as conn:
        ids = conn.execute(select(entries.c.id).order_by(entries.c.work_date)).scalars().all()
        conn.execute(
            entries.update().where(entries.c.id == ids[0]).values(duration_seconds=entries.c.duration_seconds + 1800)
        )
        conn.execute(entries.update().where(entries.c.id == ids[1]).values(deleted_at=func.now()))
    engine.dispose()

    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    assert code == 1, output
    result = json.loads(output)
    found = sorted((d["where"], d["code"], d["expected_minutes"], d["actual_minutes"]) for d in result["differences"])
    assert found == [("ledger", "GLX-ERP", "120.00", "0.00"), ("ledger", "GLX-ERP", "90.00", "120.00")]
    [row] = result["rows"]
    assert row["source_seconds"] == 3.5 * 3600 and row["ledger_seconds"] == 2 * 3600
