"""The invoice check stage: which sinks' bills are read, whose bills they are, what is stored and written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.bills import BillLine, VendorBill
from connectors.errors import ConfigError
from mappings.schema import MappingDocument
from sync.invoices.check import run_check
from sync.invoices.files import write_check
from sync.reporting.model import Period
from sync.settings import InvoiceSettings
from sync.store import invoices
from sync.store.db import make_engine, upgrade

OCTOBER = Period.month("2026-10")
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DOCUMENT = {
    "version": 1,
    "codes": {"WEB": {"name": "Website", "client": "Northwind", "cost_center": "CC-1", "billable": True}},
    "people": [
        {
            "contractor": "Zoë Müller",
            "email": "zoe@example.com",
            "quickbooks_vendor": "Zoë Müller Consulting",
            "rates": [{"rate": "75.00", "currency": "USD", "effective_from": "2026-01-01"}],
        }
    ],
}


class BillsOnly:
    """A sink that only reads bills (the stage asks nothing else of it)."""

    def __init__(self, bills: list[VendorBill]) -> None:
        self._bills = bills
        self.asked: list[tuple[date, date]] = []

    def bills(self, start: date, end: date) -> Iterator[VendorBill]:
        self.asked.append((start, end))
        return iter(self._bills)


def vendor_bill(vendor: str, number: str) -> VendorBill:
    line = BillLine("WEB October", "time", Decimal("750.00"), Decimal(10), Decimal("75.00"))
    return VendorBill(
        "quickbooks", number, vendor, "56", number, date(2026, 10, 31), None, (line,), Decimal("750.00"), "USD",
        "Open", NOW,
    )  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    return engine


def test_bills_of_contractors_are_checked_and_the_rest_left_aside(engine: Engine, tmp_path: Path) -> None:
    document = MappingDocument.model_validate(DOCUMENT)
    reader = BillsOnly([vendor_bill("zoë müller consulting", "Z-1"), vendor_bill("Office Rentals Ltd", "R-1")])
    sinks: dict[str, Any] = {"quickbooks": reader}
    run = run_check(engine, document, sinks, OCTOBER, settings=InvoiceSettings(), now=NOW)
    assert reader.asked == [(date(2026, 10, 1), date(2026, 10, 31))]
    assert (run.other_bills, run.sinks, run.check.bills_checked) == (1, ("quickbooks",), 1)
    # No time logged in October: the bill is one without time.
    assert [(f.kind, f.contractor, f.bill) for f in run.check.findings] == [
        ("bill_without_time", "Zoë Müller", "quickbooks:Z-1")
    ]
    with engine.connect() as conn:
        (stored,) = invoices.checks_of(conn, "2026-10")
        assert (stored.bills_checked, stored.findings, stored.contractor) == (1, 1, None)
        assert invoices.findings_by_kind(conn, [stored.id]) == {"bill_without_time": 1}
        assert stored.result["contractors"][0]["bills"][0]["number"] == "Z-1"
        (summary,) = invoices.invoice_summary(conn)
        assert summary["period"] == "2026-10" and summary["by_kind"] == {"bill_without_time": 1}
    files = write_check(run.check, OCTOBER, tmp_path / "out", other_bills=run.other_bills, sinks=run.sinks)
    assert sorted(p.name for p in files) == [
        "invoice-check-2026-10-findings.csv",
        "invoice-check-2026-10.csv",
        "invoice-check-2026-10.json",
        "invoice-check-2026-10.xlsx",
    ]
    body = json.loads((tmp_path / "out" / "invoice-check-2026-10.json").read_text(encoding="utf-8"))
    assert body["report"] == "invoice-check-2026-10" and body["other_bills"] == 1 and body["ok"] is False


def test_without_a_sink_that_reads_bills_the_check_says_what_to_configure(engine: Engine) -> None:
    document = MappingDocument.model_validate(DOCUMENT)
    with pytest.raises(ConfigError, match="HOURBRIDGE_QUICKBOOKS__REALM_ID"):
        run_check(engine, document, {}, OCTOBER, settings=InvoiceSettings(), now=NOW)
    # A sink registered without bills=True is not asked, even when it happens to have the method.
    with pytest.raises(ConfigError):
        run_check(engine, document, {"files": BillsOnly([])}, OCTOBER, settings=InvoiceSettings(), now=NOW)  # type: ignore[dict-item]


def test_rates_of_a_contractor_must_not_overlap() -> None:
    person = {**DOCUMENT["people"][0]}  # type: ignore[index]
    person["rates"] = [
        {"rate": "70.00", "currency": "USD", "effective_from": "2025-01-01"},
        {"rate": "75.00", "currency": "USD", "effective_from": "2026-01-01"},
    ]
    with pytest.raises(ValueError, match="overlap"):
        MappingDocument.model_validate({**DOCUMENT, "people": [person]})
    person["rates"][0]["effective_to"] = "2025-12-31"
    document = MappingDocument.model_validate({**DOCUMENT, "people": [person]})
    rate = document.people[0].rate_on(date(2026, 10, 31))
    assert rate is not None and rate.rate == Decimal("75.00")


def test_a_closed_months_statements_stay_as_they_were(engine: Engine, tmp_path: Path) -> None:
    import yaml

    from sync.delivery import periods
    from sync.invoices.stage import check_period
    from sync.settings import Settings

    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(DOCUMENT, allow_unicode=True), encoding="utf-8")
    settings = Settings(
        database_url=str(engine.url), mappings_file=tmp_path / "rules.yaml", output_dir=tmp_path / "out"
    )
    folder = tmp_path / "out" / "statements" / "2026-10"
    folder.mkdir(parents=True)
    kept = folder / "zoe-muller.json"
    kept.write_text("{}\n", encoding="utf-8")
    sinks: dict[str, Any] = {"quickbooks": BillsOnly([vendor_bill("Zoë Müller Consulting", "Z-1")])}
    periods.close(engine, "2026-10", by="finance", reason="month end", now=NOW)
    done = check_period(settings, engine, sinks, OCTOBER, now=NOW)
    assert kept.read_text(encoding="utf-8") == "{}\n"
    assert all(path.name.startswith("invoice-check-2026-10") for path in done.files)
    # Open again, the month's statements are rewritten from the ledger (no hours: no statements).
    periods.reopen(engine, "2026-10", by="finance", reason="late bill", now=NOW)
    check_period(settings, engine, sinks, OCTOBER, now=NOW)
    assert not kept.exists()
