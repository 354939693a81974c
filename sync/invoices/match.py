"""The invoice check itself, as a pure function: contractors' bills against their logged hours, per code and period.

No I/O, no clock, no logging: everything arrives as values (the ledger's hours, the bills, the agreed
rates, the codes' accounting references, the tolerances and the day the check is made), so the same
inputs always give the same findings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from connectors.bills import (
    BILL_REF_CLASS,
    BILL_REF_CUSTOMER,
    BILL_REF_DEPARTMENT,
    BILL_REF_TRACKING,
    BillLine,
    VendorBill,
)

FindingKind = Literal[
    "over_billed",  # more hours billed than logged, beyond the tolerance (per code, or the bill's total)
    "under_billed",  # fewer hours billed than logged, likewise
    "rate_differs",  # a line's unit price (or currency) is not the agreed rate
    "bill_without_time",  # a bill from a contractor with no logged time in the period
    "time_not_billed",  # logged time and no bill once the due window has passed
    "billed_twice",  # the same hours on two lines (of one bill or two)
    "line_without_code",  # a line whose references and description name no project code
    "no_rate",  # an amount-only line, and no agreed rate (in the bill's currency) to turn it into hours
]
FINDING_KINDS: tuple[str, ...] = (
    "over_billed",
    "under_billed",
    "rate_differs",
    "bill_without_time",
    "time_not_billed",
    "billed_twice",
    "line_without_code",
    "no_rate",
)
Verdict = Literal["matches", "outside tolerance", "not billed yet", "not billed"]

_HOUR = Decimal(3600)
_HUNDRED = Decimal(100)
_WORD = re.compile(r"[\w-]+", re.UNICODE)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip().casefold()


def hours_to_seconds(hours: Decimal) -> int:
    """Whole seconds of a number of hours, half-up."""
    return int((hours * _HOUR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far billed hours may be from logged hours, and a unit price from the agreed rate.

    A difference is inside when it is at most ``minutes`` or at most ``percent`` of the logged
    hours, whichever allows more.
    """

    code_minutes: int = 30
    code_percent: Decimal = Decimal(5)
    bill_minutes: int = 60
    bill_percent: Decimal = Decimal(2)
    rate_percent: Decimal = Decimal(0)
    due_days: int = 15

    @staticmethod
    def allowance(logged_seconds: int, minutes: int, percent: Decimal) -> Decimal:
        return max(Decimal(minutes * 60), Decimal(logged_seconds) * percent / _HUNDRED)

    def code_allows(self, logged_seconds: int, billed_seconds: int) -> bool:
        return abs(billed_seconds - logged_seconds) <= self.allowance(
            logged_seconds, self.code_minutes, self.code_percent
        )

    def bill_allows(self, logged_seconds: int, billed_seconds: int) -> bool:
        return abs(billed_seconds - logged_seconds) <= self.allowance(
            logged_seconds, self.bill_minutes, self.bill_percent
        )

    def rate_allows(self, agreed: Decimal, billed: Decimal) -> bool:
        return abs(billed - agreed) <= agreed * self.rate_percent / _HUNDRED


@dataclass(frozen=True, slots=True)
class AgreedRate:
    """A contractor's agreed hourly rate for a span of work dates (``until`` inclusive, None: open-ended)."""

    rate: Decimal
    currency: str
    since: date
    until: date | None = None

    def covers(self, day: date) -> bool:
        return self.since <= day and (self.until is None or day <= self.until)


@dataclass(frozen=True, slots=True)
class CodeRefs:
    """A project code and the accounting references that name it on a bill line (``(kind, name)`` pairs).

    Kinds are the ``BILL_REF_*`` keys of ``connectors.bills`` (``tracking`` for any tracking option).
    """

    code: str
    name: str = ""
    refs: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class ContractorBill:
    """A bill attributed to one contractor (the stage matched its vendor to the mapping document's people)."""

    contractor: str
    bill: VendorBill


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing outside tolerance. ``bill`` is the bill's key where the finding is about one bill."""

    kind: FindingKind
    contractor: str
    code: str | None
    bill: str | None
    billed_seconds: int
    logged_seconds: int
    detail: str

    @property
    def difference_seconds(self) -> int:
        return self.billed_seconds - self.logged_seconds


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """A contractor's billed and logged hours under one code in the period."""

    code: str
    billed_seconds: int
    logged_seconds: int

    @property
    def difference_seconds(self) -> int:
        return self.billed_seconds - self.logged_seconds


@dataclass(frozen=True, slots=True)
class BillCheck:
    """One bill and whether it matches the contractor's logged hours (``findings``: the kinds touching it)."""

    key: str
    sink: str
    number: str
    bill_date: date
    total: Decimal
    currency: str
    billed_seconds: int
    logged_seconds: int  # the contractor's logged hours under the codes this bill names
    findings: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class ContractorCheck:
    """One contractor in one period: billed against logged, per code and per bill, with the findings."""

    contractor: str
    billed_seconds: int
    logged_seconds: int
    codes: tuple[CodeCheck, ...]
    bills: tuple[BillCheck, ...]
    findings: tuple[Finding, ...]
    verdict: Verdict

    @property
    def difference_seconds(self) -> int:
        return self.billed_seconds - self.logged_seconds


@dataclass(frozen=True, slots=True)
class InvoiceCheck:
    """The check of one period: every contractor with logged time or a bill, and every finding."""

    period_start: date
    period_end: date
    checked_on: date
    contractors: tuple[ContractorCheck, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for c in self.contractors for f in c.findings)

    @property
    def bills_checked(self) -> int:
        return sum(len(c.bills) for c in self.contractors)

    @property
    def ok(self) -> bool:
        return not self.findings


# --------------------------------------------------------------------------- the check


@dataclass(slots=True)
class _Line:
    bill: VendorBill
    line: BillLine
    code: str | None
    seconds: int | None  # None: no way to turn the line into hours
    findings: list[Finding] = field(default_factory=list)


def resolve_code(line: BillLine, codes: Sequence[CodeRefs]) -> str | None:
    """The project code a bill line is for, or None when it names none (or more than one).

    A code written in the description wins (``NWT-WEB`` as a word, or the code's full name); else the
    line's class, department, customer and tracking options narrow the codes down, each reference
    that names some code keeping only those; exactly one code left is the answer.
    """
    words = {_fold(w) for w in _WORD.findall(line.description)}
    text = _fold(line.description)
    named = {c.code for c in codes if _fold(c.code) in words or (c.name and _fold(c.name) in text)}
    if len(named) == 1:
        return next(iter(named))
    if len(named) > 1:
        return None
    given: list[tuple[str, str]] = []
    for key, value in line.refs:
        if key in (BILL_REF_CLASS, BILL_REF_DEPARTMENT, BILL_REF_CUSTOMER):
            given.append((key, _fold(value)))
        elif key.startswith(BILL_REF_TRACKING):
            given.append(("tracking", _fold(value)))
    candidates = list(codes)
    narrowed = False
    for ref in given:
        keep = [c for c in candidates if ref in {(k, _fold(v)) for k, v in c.refs}]
        if keep:
            candidates, narrowed = keep, True
    if narrowed and len(candidates) == 1:
        return candidates[0].code
    return None


def _rate_on(rates: Sequence[AgreedRate], day: date) -> AgreedRate | None:
    return next((r for r in rates if r.covers(day)), None)


def _hours(seconds: int) -> str:
    return f"{Decimal(seconds) / _HOUR:.2f} h"


def check_invoices(
    *,
    period_start: date,
    period_end: date,
    checked_on: date,
    logged: Mapping[tuple[str, str], int],
    bills: Iterable[ContractorBill],
    rates: Mapping[str, Sequence[AgreedRate]],
    codes: Sequence[CodeRefs],
    tolerance: Tolerance,
) -> InvoiceCheck:
    """Every contractor's bills for the period against their logged hours.

    ``logged`` maps (contractor, code) to the seconds the ledger holds for the period; ``bills`` are
    the contractors' bills read from accounting (those dated outside the period, and deleted or
    voided ones, count for nothing); ``rates`` the contractors' agreed rates. The result lists
    every contractor with logged time or a bill, in name order.
    """
    if period_end < period_start:
        raise ValueError("the period ends before it starts")
    by_contractor: dict[str, list[VendorBill]] = {}
    for item in bills:
        bill = item.bill
        if bill.deleted or not period_start <= bill.bill_date <= period_end:
            continue
        by_contractor.setdefault(item.contractor, []).append(bill)
    logged_by: dict[str, dict[str, int]] = {}
    for (contractor, code), seconds in logged.items():
        if seconds < 0:
            raise ValueError(f"logged seconds of {contractor} under {code} are negative")
        if seconds:
            logged_by.setdefault(contractor, {})[code] = logged_by.get(contractor, {}).get(code, 0) + seconds
    names = sorted(set(by_contractor) | set(logged_by), key=lambda n: (_fold(n), n))
    due = period_end + timedelta(days=tolerance.due_days)
    return InvoiceCheck(
        period_start,
        period_end,
        checked_on,
        tuple(
            _check_contractor(
                name,
                sorted(by_contractor.get(name, []), key=lambda b: (b.bill_date, b.sink, b.number, b.bill_id)),
                logged_by.get(name, {}),
                tuple(rates.get(name, ())),
                codes,
                tolerance,
                period_end,
                overdue=checked_on > due,
            )
            for name in names
        ),
    )


def _check_contractor(
    contractor: str,
    bills: Sequence[VendorBill],
    logged: Mapping[str, int],
    rates: Sequence[AgreedRate],
    codes: Sequence[CodeRefs],
    tolerance: Tolerance,
    period_end: date,
    *,
    overdue: bool,
) -> ContractorCheck:
    logged_total = sum(logged.values())
    code_rows = tuple(CodeCheck(code, 0, seconds) for code, seconds in sorted(logged.items()))
    if not bills:
        findings: tuple[Finding, ...] = ()
        verdict: Verdict = "not billed yet"
        if overdue:
            verdict = "not billed"
            detail = f"{_hours(logged_total)} logged and no bill {tolerance.due_days} days after the period ended"
            findings = (Finding("time_not_billed", contractor, None, None, 0, logged_total, detail),)
        return ContractorCheck(contractor, 0, logged_total, code_rows, (), findings, verdict)

    lines = [
        _read_line(contractor, bill, line, rates, codes, tolerance, period_end) for bill in bills for line in bill.lines
    ]
    findings_list: list[Finding] = [f for item in lines for f in item.findings]
    findings_list.extend(_duplicates(contractor, lines))

    billed_by_code: dict[str, int] = {}
    for item in lines:
        if item.code is not None and item.seconds is not None:
            billed_by_code[item.code] = billed_by_code.get(item.code, 0) + item.seconds
    billed_total = sum(item.seconds for item in lines if item.seconds is not None)
    all_codes = sorted(set(billed_by_code) | set(logged))
    code_rows = tuple(CodeCheck(code, billed_by_code.get(code, 0), logged.get(code, 0)) for code in all_codes)

    if logged_total == 0:
        for bill in bills:
            seconds = sum(i.seconds or 0 for i in lines if i.bill is bill)
            detail = f"bill {bill.number} ({_hours(seconds)}) and no time logged in the period"
            findings_list.append(Finding("bill_without_time", contractor, None, bill.key, seconds, 0, detail))
    else:
        for row in code_rows:
            if not tolerance.code_allows(row.logged_seconds, row.billed_seconds):
                kind: FindingKind = "over_billed" if row.difference_seconds > 0 else "under_billed"
                detail = (
                    f"{row.code}: {_hours(row.billed_seconds)} billed, {_hours(row.logged_seconds)} logged "
                    f"({_signed(row.difference_seconds)})"
                )
                findings_list.append(
                    Finding(kind, contractor, row.code, None, row.billed_seconds, row.logged_seconds, detail)
                )
        if not tolerance.bill_allows(logged_total, billed_total):
            kind = "over_billed" if billed_total > logged_total else "under_billed"
            detail = (
                f"all bills: {_hours(billed_total)} billed, {_hours(logged_total)} logged "
                f"({_signed(billed_total - logged_total)})"
            )
            findings_list.append(Finding(kind, contractor, None, None, billed_total, logged_total, detail))

    findings = tuple(findings_list)
    bill_rows = tuple(_bill_check(bill, lines, findings, logged) for bill in bills)
    verdict = "outside tolerance" if findings else "matches"
    return ContractorCheck(contractor, billed_total, logged_total, code_rows, bill_rows, findings, verdict)


def _signed(seconds: int) -> str:
    return ("+" if seconds > 0 else "-" if seconds < 0 else "±") + _hours(abs(seconds))


def _read_line(
    contractor: str,
    bill: VendorBill,
    line: BillLine,
    rates: Sequence[AgreedRate],
    codes: Sequence[CodeRefs],
    tolerance: Tolerance,
    period_end: date,
) -> _Line:
    code = resolve_code(line, codes)
    # The rate of the period's last day: bills are checked per period, and a rate changes between them.
    agreed = _rate_on(rates, min(bill.bill_date, period_end))
    label = f"bill {bill.number}, line '{line.description[:60]}'" if line.description else f"bill {bill.number}"
    item = _Line(bill, line, code, None)
    if line.kind == "time":
        assert line.quantity is not None
        item.seconds = hours_to_seconds(line.quantity)
        if agreed is not None and line.unit_price is not None:
            if agreed.currency != bill.currency:
                detail = f"{label}: billed in {bill.currency}, the agreed rate is in {agreed.currency}"
                item.findings.append(Finding("rate_differs", contractor, code, bill.key, item.seconds, 0, detail))
            elif not tolerance.rate_allows(agreed.rate, line.unit_price):
                detail = f"{label}: {line.unit_price:.2f} {bill.currency}/h billed, {agreed.rate:.2f} agreed"
                item.findings.append(Finding("rate_differs", contractor, code, bill.key, item.seconds, 0, detail))
    elif agreed is None or agreed.currency != bill.currency or agreed.rate <= 0:
        detail = f"{label}: {line.amount} {bill.currency} with no quantity and no agreed rate in {bill.currency}"
        item.findings.append(Finding("no_rate", contractor, code, bill.key, 0, 0, detail))
    else:
        item.seconds = hours_to_seconds(line.amount / agreed.rate)
    if code is None:
        detail = f"{label}: names no project code (class, tracking, customer or description)"
        item.findings.append(Finding("line_without_code", contractor, None, bill.key, item.seconds or 0, 0, detail))
    return item


def _duplicates(contractor: str, lines: Sequence[_Line]) -> list[Finding]:
    """The same hours on two lines: same code, same hours, same amount, same description."""
    seen: dict[tuple[str, int, Decimal, str], _Line] = {}
    found: list[Finding] = []
    for item in lines:
        if item.code is None or not item.seconds:
            continue
        key = (item.code, item.seconds, item.line.amount, _fold(item.line.description))
        first = seen.get(key)
        if first is None:
            seen[key] = item
            continue
        where = "the same bill" if first.bill is item.bill else f"bill {first.bill.number}"
        detail = f"bill {item.bill.number}: {_hours(item.seconds)} under {item.code} are already on {where}"
        found.append(Finding("billed_twice", contractor, item.code, item.bill.key, item.seconds, 0, detail))
    return found


def _bill_check(
    bill: VendorBill, lines: Sequence[_Line], findings: Sequence[Finding], logged: Mapping[str, int]
) -> BillCheck:
    mine = [item for item in lines if item.bill is bill]
    codes = {item.code for item in mine if item.code is not None}
    touching = sorted(
        {f.kind for f in findings if f.bill == bill.key or (f.bill is None and (f.code is None or f.code in codes))}
    )
    return BillCheck(
        key=bill.key,
        sink=bill.sink,
        number=bill.number,
        bill_date=bill.bill_date,
        total=bill.total,
        currency=bill.currency,
        billed_seconds=sum(item.seconds or 0 for item in mine),
        logged_seconds=sum(logged.get(code, 0) for code in codes),
        findings=tuple(touching),
    )
