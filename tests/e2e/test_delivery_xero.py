"""End to end through a run: time delivered to the Xero emulator as project time entries and as draft bills."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors.sandbox.xero import WRITES, XeroSandbox
from sync.delivery import periods
from sync.run.context import RunContext
from sync.run.factory import build_sinks
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.pipeline import run_sync
from sync.run.reconcile import reconcile_month
from sync.settings import DeliverySettings, Settings, XeroSettings
from sync.store.db import make_engine, upgrade
from tests.fakes import ListSource

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DOCUMENT = """\
version: 1
codes:
  WEB:
    name: Website
    client: Northwind
    cost_center: CC-1
    billable: true
    rates: [{rate: "95.00", currency: USD, effective_from: 2020-01-01}]
    xero: {account: "200", project: Website build, task: Development}
people:
  - contractor: Zoë Müller
    email: zoe@example.com
    xero_contact: Zoë Müller Ltd
rules:
  - {id: web, priority: 1, code: WEB, match: {project: Website}}
"""


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    with XeroSandbox(
        projects={"Website build": ["Development"]},
        users=["Zoë Müller Ltd", "Liam O'Connor"],
        contacts=["Zoë Müller Ltd", "Liam O'Connor"],
        accounts=["200"],
        tracking={"Cost center": ["CC-1"]},
        rate_limit_per_minute=None,
    ) as running:
        yield running


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(built)
    yield built
    built.dispose()


def run(tmp: Path, engine: Engine, source: ListSource, xero: XeroSandbox, mode: str) -> Any:
    (tmp / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    settings = Settings(
        database_url="sqlite://",
        mappings_file=tmp / "rules.yaml",
        output_dir=tmp / "out",
        start_date=date(2026, 10, 1),
        lookback_days=60,
        xero=XeroSettings(
            tenant_id=xero.tenant_id,
            mode=mode,  # type: ignore[arg-type]
            projects_base_url=xero.projects_url,
            accounting_base_url=xero.accounting_url,
            access_token=SecretStr(xero.token),
            tracking_categories=["Cost center"],
            rate_limit_per_minute=10_000,
        ),
        delivery=DeliverySettings(asana_gate="none"),
    )
    sinks = build_sinks(settings, engine)
    try:
        sources = {"asana": source}
        result = run_sync(
            settings, sources=sources, sinks=sinks, engine=engine, as_of=AS_OF, clock=lambda: AS_OF, write_reports=False
        )
        context = RunContext.create(settings, engine, as_of=AS_OF, clock=lambda: AS_OF)
        mapping = adopt_mapping(context, load_mapping(settings, engine))
        reconciled = [
            reconcile_month(context, month, mapping, sources=sources, sinks=sinks) for month in ("2026-10", "2026-11")
        ]
    finally:
        for sink in sinks.values():
            sink.close()
    return result.deliveries["xero"], reconciled


def writes(xero: XeroSandbox) -> int:
    return sum(xero.call_count(route) for route in WRITES)


def test_project_time_entries_follow_the_pm_tool(tmp_path: Path, engine: Engine, xero: XeroSandbox) -> None:
    source = ListSource()
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 45, date(2026, 11, 3))
    source.put("e3", 20, date(2026, 11, 4), person="u2")
    result, reconciled = run(tmp_path, engine, source, xero, "projects")
    assert (result.ok, result.failed) == (2, 0), result.errors
    entries = sorted((e["duration"], e["dateUtc"][:10]) for e in xero.time_entries())
    assert entries == [(20, "2026-11-04"), (75, "2026-11-03")]
    assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
    before = writes(xero)
    result, _ = run(tmp_path, engine, source, xero, "projects")
    assert result.sent == 0 and writes(xero) == before
    source.put("e3", 50, date(2026, 11, 4), person="u2")
    del source.entries["e2"]
    result, reconciled = run(tmp_path, engine, source, xero, "projects")
    assert result.ok == 2
    assert sorted(e["duration"] for e in xero.time_entries()) == [30, 50]
    assert all(r.ok for r in reconciled)


def test_draft_bills_per_contractor_and_month_with_adjustments(
    tmp_path: Path, engine: Engine, xero: XeroSandbox
) -> None:
    source = ListSource()
    source.put("e1", 90, date(2026, 10, 20))
    source.put("e2", 30, date(2026, 11, 3))
    source.put("e3", 60, date(2026, 11, 4))
    result, reconciled = run(tmp_path, engine, source, xero, "bills")
    assert result.failed == 0, result.errors
    bills = xero.invoices()
    assert sorted(b["InvoiceNumber"][:11] for b in bills) == ["HB-20261031", "HB-20261130"]  # one per month
    assert {b["Contact"]["Name"] for b in bills} == {"Zoë Müller Ltd"}
    assert [Decimal(str(item["Quantity"])) for b in bills for item in b["LineItems"]] == [Decimal("1.5")] * 2
    assert all(b["Type"] == "ACCPAY" and b["Status"] == "DRAFT" for b in bills)
    assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
    periods.close(engine, "2026-10", by="finance", reason="", now=AS_OF)
    source.put("e1", 120, date(2026, 10, 20))
    result, reconciled = run(tmp_path, engine, source, xero, "bills")
    assert result.failed == 0, result.errors
    october = [b for b in xero.invoices() if b["InvoiceNumber"].startswith("HB-20261031")]
    assert [Decimal(str(i["Quantity"])) for b in october for i in b["LineItems"]] == [Decimal("1.5")]
    november_items = [i for b in xero.invoices() if "20261130" in b["InvoiceNumber"] for i in b["LineItems"]]
    assert any("Adjustment of 2026-10" in i["Description"] for i in november_items)
    assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
