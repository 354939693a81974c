"""The pure invoice matcher: every kind of finding, the tolerances at their edges, and how lines find their code."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from connectors.bills import BILL_REF_CLASS, BILL_REF_CUSTOMER, BILL_REF_TRACKING, BillLine, VendorBill
from sync.invoices.match import (
    AgreedRate,
    CodeRefs,
    ContractorBill,
    InvoiceCheck,
    Tolerance,
    check_invoices,
    resolve_code,
)

START, END = date(2026, 10, 1), date(2026, 10, 31)
CODES = (
    CodeRefs(
        "WEB",
        "Website relaunch",
        frozenset({(BILL_REF_CLASS, "Web"), (BILL_REF_CUSTOMER, "Northwind"), ("tracking", "CC-100")}),
    ),
    CodeRefs(
        "APP",
        "Mobile app",
        frozenset({(BILL_REF_CLASS, "Mobile"), (BILL_REF_CUSTOMER, "Northwind"), ("tracking", "CC-100")}),
    ),
    CodeRefs("ERP", "ERP integration", frozenset({(BILL_REF_CUSTOMER, "Globex"), ("tracking", "CC-200")})),
)
RATES = {"Zoë": [AgreedRate(Decimal("75.00"), "USD", date(2020, 1, 1))]}
HOUR = 3600


def time_line(code: str, hours: str, price: str = "75.00", description: str | None = None) -> BillLine:
    quantity = Decimal(hours)
    return BillLine(
        description if description is not None else f"{code} October",
        "time",
        quantity * Decimal(price),
        quantity,
        Decimal(price),
    )


def bill(
    *lines: BillLine, number: str = "B-1", day: date = END, deleted: bool = False, currency: str = "USD"
) -> VendorBill:
    return VendorBill(
        sink="quickbooks",
        bill_id=number,
        vendor="Zoë Consulting",
        vendor_id="50",
        number=number,
        bill_date=day,
        due_date=None,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        currency=currency,
        status="Open",
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
        deleted=deleted,
    )


def run(
    logged: dict[tuple[str, str], int],
    *bills: VendorBill,
    checked_on: date = date(2026, 11, 5),
    tolerance: Tolerance | None = None,
) -> InvoiceCheck:
    return check_invoices(
        period_start=START,
        period_end=END,
        checked_on=checked_on,
        logged=logged,
        bills=[ContractorBill("Zoë", b) for b in bills],
        rates=RATES,
        codes=CODES,
        tolerance=tolerance or Tolerance(),
    )


def kinds(check: InvoiceCheck) -> list[tuple[str, str | None]]:
    return sorted(((f.kind, f.code) for f in check.findings), key=lambda k: (k[0], k[1] or ""))


def test_a_bill_that_matches_the_ledger_has_no_findings() -> None:
    check = run(
        {("Zoë", "WEB"): 10 * HOUR, ("Zoë", "APP"): 5 * HOUR}, bill(time_line("WEB", "10"), time_line("APP", "5"))
    )
    assert check.ok and check.bills_checked == 1
    (zoe,) = check.contractors
    assert (zoe.verdict, zoe.billed_seconds, zoe.logged_seconds) == ("matches", 15 * HOUR, 15 * HOUR)
    assert zoe.bills[0].matches


def test_over_and_under_billing_per_code_and_for_the_bill() -> None:
    check = run(
        {("Zoë", "WEB"): 10 * HOUR, ("Zoë", "APP"): 5 * HOUR}, bill(time_line("WEB", "12"), time_line("APP", "5"))
    )
    assert kinds(check) == [("over_billed", None), ("over_billed", "WEB")]
    web = next(f for f in check.findings if f.code == "WEB")
    assert (web.billed_seconds, web.logged_seconds, web.difference_seconds) == (12 * HOUR, 10 * HOUR, 2 * HOUR)
    check = run({("Zoë", "WEB"): 10 * HOUR}, bill(time_line("WEB", "8")))
    assert kinds(check) == [("under_billed", None), ("under_billed", "WEB")]


def test_tolerance_is_the_larger_of_minutes_and_percent() -> None:
    logged = {("Zoë", "WEB"): 100 * HOUR}
    # 5 % of 100 h = 5 h per code, 2 % = 2 h for the bill: 1.5 h over is inside both.
    assert run(logged, bill(time_line("WEB", "101.5"))).ok
    # 2.5 h over: inside the code's 5 h, outside the bill's 2 h.
    assert kinds(run(logged, bill(time_line("WEB", "102.5")))) == [("over_billed", None)]
    small = {("Zoë", "WEB"): HOUR}
    # On 1 h the minutes win: 30 min per code is inside, 31 min is not.
    assert run(small, bill(time_line("WEB", "1.5"))).ok
    assert ("over_billed", "WEB") in kinds(run(small, bill(time_line("WEB", "1.52"))))


def test_rate_differs_and_an_amount_line_is_turned_into_hours_at_the_agreed_rate() -> None:
    logged = {("Zoë", "WEB"): 10 * HOUR}
    assert kinds(run(logged, bill(time_line("WEB", "10", price="80.00")))) == [("rate_differs", "WEB")]
    lump = BillLine("WEB October", "amount", Decimal("750.00"))
    check = run(logged, bill(lump))
    assert check.ok and check.contractors[0].billed_seconds == 10 * HOUR
    assert run(logged, bill(time_line("WEB", "10", price="75.50")), tolerance=Tolerance(rate_percent=Decimal(1))).ok
    # Billed in another currency than the agreed rate's.
    assert kinds(run(logged, bill(time_line("WEB", "10"), currency="EUR"))) == [("rate_differs", "WEB")]


def test_an_amount_line_without_an_agreed_rate_cannot_be_read() -> None:
    check = check_invoices(
        period_start=START,
        period_end=END,
        checked_on=date(2026, 11, 5),
        logged={("Liam", "WEB"): 10 * HOUR},
        bills=[ContractorBill("Liam", bill(BillLine("WEB October", "amount", Decimal("650.00"))))],
        rates={},
        codes=CODES,
        tolerance=Tolerance(),
    )
    assert ("no_rate", "WEB") in kinds(check)


def test_a_bill_without_logged_time() -> None:
    check = run({}, bill(time_line("WEB", "3")))
    assert kinds(check) == [("bill_without_time", None)]
    assert check.findings[0].bill == "quickbooks:B-1"


def test_logged_time_without_a_bill_is_a_finding_only_after_the_due_window() -> None:
    logged = {("Zoë", "WEB"): 10 * HOUR}
    assert run(logged, checked_on=date(2026, 11, 15)).ok  # Oct 31 + 15 days: still due
    assert run(logged, checked_on=date(2026, 11, 15)).contractors[0].verdict == "not billed yet"
    late = run(logged, checked_on=date(2026, 11, 16))
    assert kinds(late) == [("time_not_billed", None)]
    assert late.contractors[0].verdict == "not billed"


def test_the_same_hours_billed_twice_on_one_bill_or_two() -> None:
    logged = {("Zoë", "WEB"): 10 * HOUR}
    twice = run(logged, bill(time_line("WEB", "10"), time_line("WEB", "10")))
    assert ("billed_twice", "WEB") in kinds(twice)
    again = run(logged, bill(time_line("WEB", "10")), bill(time_line("WEB", "10"), number="B-2"))
    found = next(f for f in again.findings if f.kind == "billed_twice")
    assert found.bill == "quickbooks:B-2" and "bill B-1" in found.detail
    # Two weeks of equal hours are two lines, not one billed twice.
    weeks = run(
        {("Zoë", "WEB"): 20 * HOUR},
        bill(time_line("WEB", "10", description="WEB week 1"), time_line("WEB", "10", description="WEB week 2")),
    )
    assert weeks.ok


def test_a_line_that_names_no_code() -> None:
    check = run({("Zoë", "WEB"): 10 * HOUR}, bill(time_line("WEB", "10", description="Consulting")))
    assert kinds(check) == [("line_without_code", None), ("under_billed", "WEB")]


def test_deleted_bills_and_bills_outside_the_period_count_for_nothing() -> None:
    logged = {("Zoë", "WEB"): 10 * HOUR}
    check = run(logged, bill(time_line("WEB", "10")), bill(time_line("WEB", "10"), number="V", deleted=True))
    assert check.ok and check.bills_checked == 1
    check = run(logged, bill(time_line("WEB", "10"), day=date(2026, 11, 1)), checked_on=date(2026, 11, 5))
    assert check.ok and check.bills_checked == 0


def test_codes_come_from_the_description_first_then_narrowing_references() -> None:
    def line(description: str, **refs: str) -> BillLine:
        return BillLine(description, "amount", Decimal(1), refs=tuple(refs.items()))

    assert resolve_code(line("web — October"), CODES) == "WEB"
    assert resolve_code(line("Mobile app, October"), CODES) == "APP"
    assert resolve_code(line("Consulting", **{BILL_REF_CLASS: "Mobile"}), CODES) == "APP"
    # The customer names two codes, the class narrows them to one.
    assert resolve_code(line("Consulting", **{BILL_REF_CUSTOMER: "Northwind", BILL_REF_CLASS: "Web"}), CODES) == "WEB"
    assert resolve_code(line("Consulting", **{BILL_REF_CUSTOMER: "Northwind"}), CODES) is None
    assert resolve_code(line("Consulting", **{BILL_REF_TRACKING + "Cost center": "CC-200"}), CODES) == "ERP"
    assert resolve_code(line("WEB and APP"), CODES) is None  # two codes named: neither
    assert resolve_code(line("Consulting"), CODES) is None


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        run({("Zoë", "WEB"): -1})
    with pytest.raises(ValueError, match="before it starts"):
        check_invoices(
            period_start=END,
            period_end=START,
            checked_on=END,
            logged={},
            bills=[],
            rates={},
            codes=(),
            tolerance=Tolerance(),
        )
    with pytest.raises(TypeError, match="Decimal"):
        BillLine("x", "time", 1.0, Decimal(1))  # type: ignore[arg-type]
