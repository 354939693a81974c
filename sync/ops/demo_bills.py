"""The demo's contractors' bills: built from the ledger, most matching, a few off by known amounts.

Each billed contractor sends one bill for the period, to QuickBooks when the mapping document names
their QuickBooks vendor, to Xero when it names their Xero contact, else alternately. The last
contractor (in name order) sends none. Four bills are off on purpose, each in one known way:

- the 2nd billed contractor charges 5.00 more per hour than agreed on their first code (``rate_differs``);
- the 3rd bills 3.00 hours more than logged on their first code (``over_billed``);
- the 4th bills their first code's line twice (``billed_twice``, and so ``over_billed``);
- the 5th writes their first code's line without any reference to it (``line_without_code``).

The 1st billed contractor also has a voided Xero bill, which counts for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Engine

from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox
from mappings.schema import MappingDocument, normalize_name
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period

COST_CENTER = "Cost center"
RATE_MARKUP = Decimal("5.00")
EXTRA_HOURS = Decimal("3.00")


@dataclass(frozen=True, slots=True)
class SeededBill:
    """One bill the demo put into an emulator, and how it was meant to be off (None: it matches)."""

    contractor: str
    sink: str
    number: str
    off: str | None


def _hours(seconds: int) -> Decimal:
    return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def seed_bills(
    engine: Engine, document: MappingDocument, period: Period, qbo: QuickBooksSandbox, xero: XeroSandbox
) -> list[SeededBill]:
    """Put the period's contractor bills into the emulators; what was seeded, in order."""
    logged: dict[str, dict[str, int]] = {}
    for line in read_report_lines(engine, period, drop_descriptions=True):
        if line.code is not None:
            codes = logged.setdefault(line.contractor, {})
            codes[line.code] = codes.get(line.code, 0) + line.seconds
    people = {normalize_name(p.contractor): p for p in document.people}
    contractors = sorted(logged, key=normalize_name)
    seeded: list[SeededBill] = []
    for index, contractor in enumerate(contractors[:-1]):
        person = people.get(normalize_name(contractor))
        rate = person.rate_on(period.end) if person is not None else None
        price = rate.rate if rate is not None else Decimal("60.00")
        lines: list[dict[str, Any]] = [
            {"code": code, "hours": _hours(seconds), "price": price, "refs": True}
            for code, seconds in sorted(logged[contractor].items())
        ]
        off: str | None = None
        if index == 1:
            lines[0]["price"] = price + RATE_MARKUP
            off = "rate_differs"
        elif index == 2:
            lines[0]["hours"] += EXTRA_HOURS
            off = "over_billed"
        elif index == 3:
            lines.append(dict(lines[0]))
            off = "billed_twice"
        elif index == 4:
            lines[0]["refs"] = False
            off = "line_without_code"
        number = f"INV-{period.label}-{index + 1:02d}"
        if person is not None and person.quickbooks_vendor and not person.xero_contact:
            in_quickbooks = True
        elif person is not None and person.xero_contact and not person.quickbooks_vendor:
            in_quickbooks = False
        else:
            in_quickbooks = index % 2 == 0
        if in_quickbooks:
            vendor = (person.quickbooks_vendor if person is not None else None) or contractor
            qbo.add_bill(
                vendor,
                period.end,
                [_quickbooks_line(document, line, period) for line in lines],
                doc_number=number,
                due_date=period.end + timedelta(days=15),
            )
            seeded.append(SeededBill(contractor, "quickbooks", number, off))
        else:
            contact = (person.xero_contact if person is not None else None) or contractor
            xero.add_bill(contact, period.end, [_xero_line(document, line, period) for line in lines], number=number)
            seeded.append(SeededBill(contractor, "xero", number, off))
        if index == 0:
            contact = (person.xero_contact if person is not None else None) or contractor
            voided = xero.add_bill(
                contact, period.end, [_xero_line(document, line, period) for line in lines], number=f"{number}-V"
            )
            xero.void_bill(voided)
    return seeded


def _description(document: MappingDocument, line: Mapping[str, Any], period: Period) -> str:
    if not line["refs"]:
        return f"Consulting services {period.label}"
    return f"{line['code']} {document.codes[line['code']].name} {period.label}"


def _quickbooks_line(document: MappingDocument, line: Mapping[str, Any], period: Period) -> dict[str, Any]:
    code = document.codes[line["code"]]
    refs = code.quickbooks
    spec: dict[str, Any] = {
        "description": _description(document, line, period),
        "item": refs.item if refs is not None and refs.item else None,
        "qty": line["hours"],
        "unit_price": line["price"],
    }
    if line["refs"]:
        spec["customer"] = (refs.customer if refs is not None else None) or code.client
        spec["class_"] = (refs.class_ if refs is not None else None) or (
            None if refs is not None and refs.department else str(code.cost_center)
        )
    return spec


def _xero_line(document: MappingDocument, line: Mapping[str, Any], period: Period) -> dict[str, Any]:
    code = document.codes[line["code"]]
    spec: dict[str, Any] = {
        "description": _description(document, line, period),
        "quantity": line["hours"],
        "unit_amount": line["price"],
        "account": (code.xero.account if code.xero is not None else None) or "200",
    }
    if line["refs"]:
        spec["tracking"] = {COST_CENTER: str(code.cost_center)}
    return spec
