"""Property: a bill built from the ledger always matches; a perturbation is found exactly when it leaves a tolerance."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.bills import BillLine, VendorBill
from sync.invoices.match import AgreedRate, CodeRefs, ContractorBill, InvoiceCheck, Tolerance, check_invoices

START, END = date(2026, 10, 1), date(2026, 10, 31)
CODES = tuple(CodeRefs(code) for code in ("AAA", "BBB", "CCC", "DDD"))
RATE = Decimal("80.00")
TOLERANCE = Tolerance(code_minutes=30, code_percent=Decimal(5), bill_minutes=60, bill_percent=Decimal(2))

# Logged time per code, in whole minutes (what sinks and reports deliver), up to 200 h.
ledgers = st.dictionaries(st.sampled_from([c.code for c in CODES]), st.integers(1, 200 * 60), min_size=1)


def _bill(minutes_by_code: dict[str, int], *, as_amounts: bool) -> VendorBill:
    lines = []
    for code, minutes in sorted(minutes_by_code.items()):
        hours = Decimal(minutes) / Decimal(60)
        if as_amounts:
            lines.append(BillLine(f"{code} October", "amount", (hours * RATE).quantize(Decimal("0.01"))))
        else:
            quantity = hours.quantize(Decimal("0.0001"))
            lines.append(BillLine(f"{code} October", "time", quantity * RATE, quantity, RATE))
    return VendorBill(
        "xero", "b1", "Zoë", "c1", "B-1", END, None, tuple(lines), sum((line.amount for line in lines), Decimal(0)),
        "USD", "AUTHORISED", datetime(2026, 11, 2, tzinfo=UTC),
    )  # fmt: skip


def _check(logged_minutes: dict[str, int], billed_minutes: dict[str, int], *, as_amounts: bool = False) -> InvoiceCheck:
    return check_invoices(
        period_start=START,
        period_end=END,
        checked_on=date(2026, 11, 3),
        logged={("Zoë", code): minutes * 60 for code, minutes in logged_minutes.items()},
        bills=[ContractorBill("Zoë", _bill(billed_minutes, as_amounts=as_amounts))],
        rates={"Zoë": [AgreedRate(RATE, "USD", date(2020, 1, 1))]},
        codes=CODES,
        tolerance=TOLERANCE,
    )


@settings(max_examples=200, deadline=None)
@given(ledgers, st.booleans())
def test_a_bill_built_from_the_ledger_always_matches(logged: dict[str, int], as_amounts: bool) -> None:
    check = _check(logged, logged, as_amounts=as_amounts)
    assert check.ok, [f.detail for f in check.findings]
    assert check.contractors[0].verdict == "matches"


@settings(max_examples=300, deadline=None)
@given(ledgers, st.data())
def test_a_perturbation_is_found_exactly_when_it_leaves_a_tolerance(
    logged: dict[str, int], data: st.DataObject
) -> None:
    code = data.draw(st.sampled_from(sorted(logged)))
    # Minutes added to (or taken from) one code's billed hours; never below zero.
    delta = data.draw(st.integers(-logged[code], 100 * 60).filter(lambda d: d != 0))
    billed = dict(logged)
    billed[code] += delta
    check = _check(logged, billed)
    code_seconds, total_seconds = logged[code] * 60, sum(logged.values()) * 60
    outside_code = not TOLERANCE.code_allows(code_seconds, code_seconds + delta * 60)
    outside_bill = not TOLERANCE.bill_allows(total_seconds, total_seconds + delta * 60)
    found = {(f.kind, f.code) for f in check.findings}
    direction = "over_billed" if delta > 0 else "under_billed"
    assert ((direction, code) in found) == outside_code
    assert ((direction, None) in found) == outside_bill
    assert found <= {(direction, code), (direction, None)}


@settings(max_examples=100, deadline=None)
@given(ledgers, st.data())
def test_a_line_billed_twice_is_always_found(logged: dict[str, int], data: st.DataObject) -> None:
    code = data.draw(st.sampled_from(sorted(logged)))
    bill = _bill(logged, as_amounts=False)
    again = next(line for line in bill.lines if line.description.startswith(code))
    doubled = dataclasses.replace(bill, lines=(*bill.lines, again))
    check = check_invoices(
        period_start=START,
        period_end=END,
        checked_on=date(2026, 11, 3),
        logged={("Zoë", c): minutes * 60 for c, minutes in logged.items()},
        bills=[ContractorBill("Zoë", doubled)],
        rates={"Zoë": [AgreedRate(RATE, "USD", date(2020, 1, 1))]},
        codes=CODES,
        tolerance=TOLERANCE,
    )
    assert ("billed_twice", code) in {(f.kind, f.code) for f in check.findings}
