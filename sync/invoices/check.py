"""The invoice check stage: load a period's logged hours and the contractors' bills, run the matcher, store it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Engine

from connectors.base import Sink, sink_plugin
from connectors.bills import (
    BILL_REF_CLASS,
    BILL_REF_CUSTOMER,
    BILL_REF_DEPARTMENT,
    BillReader,
    VendorBill,
)
from connectors.errors import ConfigError
from mappings.schema import MappingDocument, normalize_name
from sync.invoices.match import (
    AgreedRate,
    CodeRefs,
    ContractorBill,
    InvoiceCheck,
    Tolerance,
    check_invoices,
)
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period
from sync.settings import InvoiceSettings
from sync.store import invoices as stored

log = structlog.get_logger("hourbridge.invoices")


@dataclass(frozen=True, slots=True)
class CheckRun:
    """One check as run and stored: the matcher's result, the stored id, and the bills left aside."""

    check_id: int
    period: Period
    check: InvoiceCheck
    other_bills: int  # bills from vendors who are no contractor of the mapping document (rent, software...)
    sinks: tuple[str, ...]  # the sinks whose bills were read


def tolerance_of(settings: InvoiceSettings) -> Tolerance:
    return Tolerance(
        code_minutes=settings.code_minutes,
        code_percent=settings.code_percent,
        bill_minutes=settings.bill_minutes,
        bill_percent=settings.bill_percent,
        rate_percent=settings.rate_percent,
        due_days=settings.due_days,
    )


def code_refs(document: MappingDocument) -> list[CodeRefs]:
    """Each code of the catalog with the accounting names that point to it on a bill line."""
    found: list[CodeRefs] = []
    for key, code in document.codes.items():
        refs: set[tuple[str, str]] = {(BILL_REF_CUSTOMER, code.client), ("tracking", str(code.cost_center))}
        if code.quickbooks is not None:
            qb = code.quickbooks
            for kind, value in ((BILL_REF_CLASS, qb.class_), (BILL_REF_DEPARTMENT, qb.department)):
                if value:
                    refs.add((kind, value))
            if qb.customer:
                refs.add((BILL_REF_CUSTOMER, qb.customer))
            if not (qb.class_ or qb.department):
                refs.add((BILL_REF_CLASS, str(code.cost_center)))
        else:
            refs.add((BILL_REF_CLASS, str(code.cost_center)))
        if code.xero is not None:
            refs.update(("tracking", option) for option in code.xero.tracking.values())
            if code.xero.contact:
                refs.add((BILL_REF_CUSTOMER, code.xero.contact))
        found.append(CodeRefs(str(key), code.name, frozenset(refs)))
    return found


def contractor_rates(document: MappingDocument) -> dict[str, list[AgreedRate]]:
    return {
        person.contractor: [AgreedRate(r.rate, r.currency, r.effective_from, r.effective_to) for r in person.rates]
        for person in document.people
        if person.rates
    }


def vendor_index(document: MappingDocument, sink: str, contractors: Iterable[str]) -> dict[str, str]:
    """Folded vendor name -> contractor, for one sink: its payee field of each person, else the contractor's name."""
    field = sink_plugin(sink).payee_field
    index: dict[str, str] = {}
    for name in contractors:
        index.setdefault(normalize_name(name), name)
    for person in document.people:
        index[normalize_name(person.contractor)] = person.contractor
        payee = getattr(person, field, None) if field else None
        if isinstance(payee, str) and payee:
            index[normalize_name(payee)] = person.contractor
    return index


def bill_readers(sinks: Mapping[str, Sink]) -> dict[str, BillReader]:
    """The sinks that read contractors' bills back (registered with ``bills=True``)."""
    readers: dict[str, BillReader] = {}
    for name, sink in sinks.items():
        try:
            declared = sink_plugin(name).bills
        except KeyError:
            declared = False
        if declared and isinstance(sink, BillReader):
            readers[name] = sink
    return readers


def run_check(
    engine: Engine,
    document: MappingDocument,
    sinks: Mapping[str, Sink],
    period: Period,
    *,
    settings: InvoiceSettings,
    now: datetime,
    contractor: str | None = None,
) -> CheckRun:
    """Read the period's bills from every sink that has them, check them against the ledger, store the result."""
    lines = read_report_lines(engine, period, drop_descriptions=True)
    logged: dict[tuple[str, str], int] = {}
    for line in lines:
        if line.code is not None:
            key = (line.contractor, line.code)
            logged[key] = logged.get(key, 0) + line.seconds
    known = {name for name, _ in logged} | {p.contractor for p in document.people}
    readers = bill_readers(sinks)
    if not readers:
        # Without bills every contractor would look unbilled: say what to configure instead.
        raise ConfigError(
            "no configured accounting sink reads contractors' bills: set HOURBRIDGE_QUICKBOOKS__REALM_ID "
            "or HOURBRIDGE_XERO__TENANT_ID (and connect it) to check invoices"
        )
    attributed: list[ContractorBill] = []
    other = 0
    for name, reader in readers.items():
        index = vendor_index(document, name, known)
        for bill in reader.bills(period.start, period.end):
            owner = index.get(normalize_name(bill.vendor))
            if owner is None:
                other += 1
                continue
            attributed.append(ContractorBill(owner, bill))
    if contractor is not None:
        wanted = normalize_name(contractor)
        logged = {k: v for k, v in logged.items() if normalize_name(k[0]) == wanted}
        attributed = [b for b in attributed if normalize_name(b.contractor) == wanted]
    check = check_invoices(
        period_start=period.start,
        period_end=period.end,
        checked_on=now.date(),
        logged=logged,
        bills=attributed,
        rates=contractor_rates(document),
        codes=code_refs(document),
        tolerance=tolerance_of(settings),
    )
    with engine.begin() as conn:
        check_id = stored.save_check(
            conn,
            period=period.label,
            checked_at=now,
            contractor=contractor.strip() if contractor else None,
            bills_checked=check.bills_checked,
            result=check_json(check, other_bills=other, sinks=tuple(readers)),
            findings=[finding_row(f) for f in check.findings],
        )
    log.info(
        "invoices.checked",
        period=period.label,
        bills=check.bills_checked,
        findings=len(check.findings),
        other_bills=other,
    )
    return CheckRun(check_id, period, check, other, tuple(readers))


def finding_row(finding: Any) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "contractor": finding.contractor,
        "code": finding.code,
        "bill": finding.bill,
        "billed_seconds": finding.billed_seconds,
        "logged_seconds": finding.logged_seconds,
        "detail": finding.detail,
    }


def _money(value: Decimal) -> str:
    return format(value, "f")


def check_json(check: InvoiceCheck, *, other_bills: int = 0, sinks: Sequence[str] = ()) -> dict[str, Any]:
    """The check as plain JSON values (stored with it, and the body of its JSON report)."""
    return {
        "period": {"start": check.period_start.isoformat(), "end": check.period_end.isoformat()},
        "checked_on": check.checked_on.isoformat(),
        "sinks": list(sinks),
        "other_bills": other_bills,
        "bills_checked": check.bills_checked,
        "ok": check.ok,
        "contractors": [
            {
                "contractor": c.contractor,
                "verdict": c.verdict,
                "billed_seconds": c.billed_seconds,
                "logged_seconds": c.logged_seconds,
                "difference_seconds": c.difference_seconds,
                "codes": [
                    {
                        "code": row.code,
                        "billed_seconds": row.billed_seconds,
                        "logged_seconds": row.logged_seconds,
                        "difference_seconds": row.difference_seconds,
                    }
                    for row in c.codes
                ],
                "bills": [
                    {
                        "bill": b.key,
                        "sink": b.sink,
                        "number": b.number,
                        "bill_date": b.bill_date.isoformat(),
                        "total": _money(b.total),
                        "currency": b.currency,
                        "billed_seconds": b.billed_seconds,
                        "logged_seconds": b.logged_seconds,
                        "matches": b.matches,
                        "findings": list(b.findings),
                    }
                    for b in c.bills
                ],
                "findings": [finding_row(f) for f in c.findings],
            }
            for c in check.contractors
        ],
    }


def read_bills(sinks: Mapping[str, Sink], period: Period) -> list[VendorBill]:
    """Every contractor bill of the period in every sink that has them (for tests and diagnostics)."""
    return [bill for reader in bill_readers(sinks).values() for bill in reader.bills(period.start, period.end)]
