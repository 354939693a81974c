"""End to end: the demo's tools and sinks, contractors' bills seeded in both emulators, `hourbridge invoices check`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import generate_dataset
from connectors.sandbox.monday import MondaySandbox
from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox
from sync.admin.revisions import read_document
from sync.ops.demo import (
    COST_CENTER,
    EXAMPLE_MAPPINGS,
    demo_settings,
    quickbooks_sandbox,
    split_projects,
    sync_and_reconcile,
    xero_sandbox,
)
from sync.ops.demo_bills import SeededBill, seed_bills
from sync.reporting.model import Period
from sync.store.db import make_engine

from .conftest import run_cli

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PERIOD = "2026-10"


@dataclass
class Seeded:
    folder: Path
    qbo: QuickBooksSandbox
    xero: XeroSandbox
    bills: list[SeededBill]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("invoices")
    dataset = generate_dataset(7, anchor=AS_OF.date() - timedelta(days=1), entries=160)
    document = read_document(EXAMPLE_MAPPINGS).document
    asana_projects, clickup_projects, monday_projects = split_projects(dataset)
    with ExitStack() as stack:
        asana = stack.enter_context(AsanaSandbox(dataset, projects=asana_projects))
        clickup = stack.enter_context(ClickUpSandbox(dataset, projects=clickup_projects))
        monday = stack.enter_context(MondaySandbox(dataset, projects=monday_projects))
        qbo = stack.enter_context(quickbooks_sandbox(dataset, document))
        xero = stack.enter_context(xero_sandbox(dataset, document))
        settings = demo_settings(
            dataset,
            folder / "ledger.db",
            folder / "out",
            asana=asana,
            clickup=clickup,
            monday=monday,
            qbo=qbo,
            xero=xero,
        )
        engine = make_engine(settings.database_url)
        _, reconciliations = sync_and_reconcile(settings, engine, AS_OF, None)
        assert all(r.ok for r in reconciliations)
        bills = seed_bills(engine, document, Period.month(PERIOD), qbo, xero)
        engine.dispose()
        yield Seeded(folder, qbo, xero, bills)


@pytest.fixture
def env(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    values = {
        "SECRETS_DIR": str(seeded.folder / "no-secrets"),
        "DATABASE_URL": f"sqlite:///{seeded.folder / 'ledger.db'}",
        "OUTPUT_DIR": str(seeded.folder / "out"),
        "MAPPINGS_FILE": str(EXAMPLE_MAPPINGS),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "QUICKBOOKS__REALM_ID": seeded.qbo.realm_id,
        "QUICKBOOKS__BASE_URL": seeded.qbo.server.root_url,
        "QUICKBOOKS__ACCESS_TOKEN": seeded.qbo.token,
        "XERO__TENANT_ID": seeded.xero.tenant_id,
        "XERO__MODE": "bills",
        "XERO__ACCOUNTING_BASE_URL": seeded.xero.accounting_url,
        "XERO__PROJECTS_BASE_URL": seeded.xero.projects_url,
        "XERO__ACCESS_TOKEN": seeded.xero.token,
        "XERO__TRACKING_CATEGORIES": json.dumps([COST_CENTER]),
    }
    for name, value in values.items():
        monkeypatch.setenv(f"HOURBRIDGE_{name}", value)
    return seeded


def findings_of(payload: dict[str, object]) -> set[tuple[str, str, str | None]]:
    return {
        (f["kind"], f["contractor"], f["code"])
        for c in payload["contractors"]  # type: ignore[attr-defined]
        for f in c["findings"]
    }


def test_invoices_check_finds_exactly_the_bills_that_are_off(env: Seeded) -> None:
    code, output = run_cli("invoices", "check", "--period", PERIOD, "--json")
    assert code == 1, output
    payload = json.loads(output)
    assert payload["sinks"] == ["quickbooks", "xero"]
    # The draft bills the Xero sink wrote carry our marker: they are not contractors' bills.
    assert payload["bills_checked"] == len(env.bills)
    assert findings_of(payload) == EXPECTED
    verdicts = {c["contractor"]: c["verdict"] for c in payload["contractors"]}
    off = {bill.contractor for bill in env.bills if bill.off is not None}
    for bill in env.bills:
        assert verdicts[bill.contractor] == ("outside tolerance" if bill.off else "matches")
        if bill.off is not None:
            assert any(kind == bill.off and who == bill.contractor for kind, who, _ in EXPECTED)
    unbilled = set(verdicts) - {bill.contractor for bill in env.bills}
    assert {verdicts[name] for name in unbilled} == {"not billed"}
    assert len(off) == 4


def test_the_table_the_report_files_and_the_statements_say_the_same(env: Seeded) -> None:
    code, output = run_cli("invoices", "check", "--period", PERIOD)
    assert code == 1
    assert "matches" in output and "rate_differs: José Álvarez: bill INV-2026-10-02" in output
    out = env.folder / "out"
    report = json.loads((out / f"invoice-check-{PERIOD}.json").read_text(encoding="utf-8"))
    assert findings_of(report) == EXPECTED
    for suffix in (".csv", ".xlsx", "-findings.csv"):
        assert (out / f"invoice-check-{PERIOD}{suffix}").stat().st_size > 0
    findings_csv = (out / f"invoice-check-{PERIOD}-findings.csv").read_text(encoding="utf-8")
    assert len(findings_csv.strip().splitlines()) == len(EXPECTED) + 1
    statements = out / "statements" / PERIOD
    seen = 0
    for bill in env.bills:
        matching = [
            json.loads(path.read_text(encoding="utf-8"))
            for path in statements.glob("*.json")
            if json.loads(path.read_text(encoding="utf-8"))["statement"]["contractor"] == bill.contractor
        ]
        (statement,) = matching
        (line,) = statement["bills"]
        assert (line["number"], line["sink"]) == (bill.number, bill.sink)
        assert line["matches"] is (bill.off is None)
        assert line["verdict"].startswith("matches" if bill.off is None else "outside tolerance")
        seen += 1
    assert seen == len(env.bills)
    code, status = run_cli("status", "--json")
    assert code == 0
    (check,) = json.loads(status)["invoices"]
    assert check["period"] == PERIOD and check["bills_checked"] == len(env.bills)
    assert check["findings"] == len(EXPECTED)


def test_one_contractor_only(env: Seeded) -> None:
    matching = next(bill for bill in env.bills if bill.off is None)
    code, output = run_cli(
        "invoices", "check", "--period", PERIOD, "--contractor", matching.contractor.upper(), "--json"
    )
    assert code == 0, output
    (row,) = json.loads(output)["contractors"]
    assert row["verdict"] == "matches" and row["findings"] == []


# What the demo's seeding puts off (sync/ops/demo_bills.py), for this data set: (kind, contractor, code).
EXPECTED: set[tuple[str, str, str | None]] = {
    # 2nd billed contractor: 5.00 per hour above the agreed rate on their first code.
    ("rate_differs", "José Álvarez", "CTS-DATA"),
    # 3rd: 3.00 hours more than logged on their first code, so the bill's total is over too.
    ("over_billed", "Kwame Mensah", "CTS-SEC"),
    ("over_billed", "Kwame Mensah", None),
    # 4th: their first code's line twice.
    ("billed_twice", "Liam O'Connor", "NWT-APP"),
    ("over_billed", "Liam O'Connor", "NWT-APP"),
    ("over_billed", "Liam O'Connor", None),
    # 5th: their first code's line names no code, so that code looks unbilled.
    ("line_without_code", "Mei Tanaka", None),
    ("under_billed", "Mei Tanaka", "LDC-SHOP"),
    # The last contractor sends no bill, and October's due window has passed.
    ("time_not_billed", "Åsa Lindqvist", None),
}
