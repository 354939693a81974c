"""The period report model: report lines, periods, tallies, the summary tree and its reconciled totals."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

__all__ = [
    "CodeSummary",
    "ContractorSummary",
    "CostCenterSummary",
    "Period",
    "Report",
    "ReportLine",
    "ReportTotals",
    "Tally",
    "UnmappedGroup",
    "build_report",
    "format_hours",
    "format_minutes",
    "joined_names",
    "redact",
    "round_half_up",
    "scrub_line",
    "text_key",
    "validate_lines",
]

_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_EMAIL_RE = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_EMAIL_MASK = "[email]"
_UNSPECIFIED_REASON = "unspecified"


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One live (non-deleted) ledger entry in the period, mapped or not."""

    source: str
    account: str
    external_id: str
    work_date: date
    seconds: int
    person_id: str
    person_name: str
    contractor: str
    code: str | None
    code_name: str | None
    client: str | None
    cost_center: str | None
    billable: bool
    rule_id: str | None
    unmapped_reason: str | None
    unmapped_detail: str | None
    task: str
    container: str
    description: str
    version: int

    @property
    def mapped(self) -> bool:
        return self.code is not None

    @property
    def sort_key(self) -> tuple[date, str, str, str]:
        return (self.work_date, self.source, self.account, self.external_id)


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of work dates; the label names the report files."""

    start: date
    end: date
    label: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period end {self.end.isoformat()} is before its start {self.start.isoformat()}")
        expected = _period_label(self.start, self.end)
        if self.label != expected:
            raise ValueError(
                f"period label {self.label!r} does not match {self.start.isoformat()}..{self.end.isoformat()}"
                f" (expected {expected!r}); build periods with Period.month() or Period.between()"
            )

    @classmethod
    def month(cls, text: str) -> Period:
        """The calendar month named by ``YYYY-MM`` (e.g. ``2026-10``)."""
        match = _MONTH_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
            raise ValueError(f"expected a month as YYYY-MM (e.g. 2026-10), got {text!r}")
        year, month = int(match.group(1)), int(match.group(2))
        return cls.between(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))

    @classmethod
    def between(cls, start: date, end: date) -> Period:
        """The inclusive range ``start..end``; a whole calendar month gets the month's label."""
        return cls(start=start, end=end, label=_period_label(start, end))

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def _period_label(start: date, end: date) -> str:
    last_day = calendar.monthrange(start.year, start.month)[1]
    if start.day == 1 and (end.year, end.month, end.day) == (start.year, start.month, last_day):
        return f"{start.year:04d}-{start.month:02d}"
    return f"{start.isoformat()}_{end.isoformat()}"


@dataclass(frozen=True, slots=True)
class Tally:
    """Entry count and exact seconds of one summary node, split by billability."""

    entries: int = 0
    seconds: int = 0
    billable_seconds: int = 0
    nonbillable_seconds: int = 0

    @classmethod
    def of(cls, lines: Iterable[ReportLine]) -> Tally:
        entries = seconds = billable = 0
        for line in lines:
            entries += 1
            seconds += line.seconds
            if line.billable:
                billable += line.seconds
        return cls(entries, seconds, billable, seconds - billable)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.entries + other.entries,
            self.seconds + other.seconds,
            self.billable_seconds + other.billable_seconds,
            self.nonbillable_seconds + other.nonbillable_seconds,
        )

    @property
    def minutes(self) -> Decimal:
        return round_half_up(self.seconds, 60)

    @property
    def hours(self) -> Decimal:
        return round_half_up(self.seconds, 3600)

    @property
    def billable_hours(self) -> Decimal:
        return round_half_up(self.billable_seconds, 3600)

    @property
    def nonbillable_hours(self) -> Decimal:
        return round_half_up(self.nonbillable_seconds, 3600)


@dataclass(frozen=True, slots=True)
class ReportTotals:
    """The grand totals; all reconciliation is in integer seconds."""

    entries: int
    seconds: int
    billable_seconds: int
    nonbillable_seconds: int
    mapped_seconds: int
    unmapped_seconds: int
    unmapped_entries: int

    @property
    def mapped_entries(self) -> int:
        return self.entries - self.unmapped_entries

    @property
    def reconciles(self) -> bool:
        return (
            self.seconds == self.mapped_seconds + self.unmapped_seconds
            and self.seconds == self.billable_seconds + self.nonbillable_seconds
        )


@dataclass(frozen=True, slots=True)
class ContractorSummary:
    contractor: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class CodeSummary:
    code: str
    code_name: str
    client: str
    tally: Tally
    contractors: tuple[ContractorSummary, ...]


@dataclass(frozen=True, slots=True)
class CostCenterSummary:
    cost_center: str
    client: str
    tally: Tally
    codes: tuple[CodeSummary, ...]


@dataclass(frozen=True, slots=True)
class UnmappedGroup:
    reason: str
    detail: str
    tally: Tally
    lines: tuple[ReportLine, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """The whole period report in memory: summary tree, unmapped section and sorted detail."""

    period: Period
    totals: ReportTotals
    mapped: Tally
    unmapped_total: Tally
    total: Tally
    cost_centers: tuple[CostCenterSummary, ...]
    unmapped: tuple[UnmappedGroup, ...]
    lines: tuple[ReportLine, ...]


# --------------------------------------------------------------------------- numbers


def round_half_up(seconds: int, unit: int) -> Decimal:
    """``seconds / unit`` to 2 dp, half away from zero, computed exactly in integers."""
    hundredths, rest = divmod(abs(seconds) * 100, unit)
    if rest * 2 >= unit:
        hundredths += 1
    sign = "-" if seconds < 0 and hundredths else ""
    return Decimal(f"{sign}{hundredths // 100}.{hundredths % 100:02d}")


def format_hours(seconds: int) -> str:
    """Exact decimal hours with 2 dp, ROUND_HALF_UP: 5400 -> "1.50", 90 -> "0.03"."""
    return str(round_half_up(seconds, 3600))


def format_minutes(seconds: int) -> str:
    """Exact decimal minutes with 2 dp, ROUND_HALF_UP: 90 -> "1.50", 1 -> "0.02"."""
    return str(round_half_up(seconds, 60))


# --------------------------------------------------------------------------- model


def text_key(value: str) -> tuple[str, str]:
    return (value.casefold(), value)


def joined_names(values: Iterable[str | None]) -> str:
    """The distinct non-empty values, sorted case-insensitively and joined with ``"; "``."""
    return "; ".join(sorted({v for v in values if v}, key=text_key))


def redact(text: str) -> str:
    """``text`` with every email address masked."""
    return _EMAIL_RE.sub(_EMAIL_MASK, text)


def _redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


def scrub_line(line: ReportLine) -> ReportLine:
    """Keep only what billing needs: email addresses never reach a report."""
    return replace(
        line,
        person_name=redact(line.person_name),
        contractor=redact(line.contractor),
        code_name=_redact_optional(line.code_name),
        client=_redact_optional(line.client),
        unmapped_detail=_redact_optional(line.unmapped_detail),
        task=redact(line.task),
        container=redact(line.container),
        description=redact(line.description),
    )


def validate_lines(period: Period, lines: Sequence[ReportLine]) -> None:
    """Reject lines outside ``period``, negative durations and duplicates (they would break the totals)."""
    seen: set[tuple[str, str, str]] = set()
    for line in lines:
        ident = f"{line.source}/{line.account}/{line.external_id}"
        if line.work_date not in period:
            raise ValueError(f"entry {ident} is dated {line.work_date.isoformat()}, outside period {period.label}")
        if line.seconds < 0:
            raise ValueError(f"entry {ident} has a negative duration ({line.seconds} s)")
        key = (line.source, line.account, line.external_id)
        if key in seen:
            raise ValueError(f"entry {ident} appears more than once; it would be counted twice")
        seen.add(key)


_CodeTree = dict[str, dict[str, dict[str, list[ReportLine]]]]  # cost center -> code -> contractor -> lines


def _code_summary(code: str, by_contractor: dict[str, list[ReportLine]]) -> CodeSummary:
    contractors = tuple(
        ContractorSummary(name, Tally.of(by_contractor[name])) for name in sorted(by_contractor, key=text_key)
    )
    code_lines = [line for rows in by_contractor.values() for line in rows]
    return CodeSummary(
        code=code,
        code_name=joined_names(line.code_name for line in code_lines),
        client=joined_names(line.client for line in code_lines),
        tally=sum((c.tally for c in contractors), Tally()),
        contractors=contractors,
    )


def _cost_center_summaries(tree: _CodeTree) -> tuple[CostCenterSummary, ...]:
    cost_centers: list[CostCenterSummary] = []
    for cost_center in sorted(tree, key=text_key):
        codes = tree[cost_center]
        code_summaries = tuple(_code_summary(code, codes[code]) for code in sorted(codes, key=text_key))
        cost_centers.append(
            CostCenterSummary(
                cost_center=cost_center,
                client=joined_names(
                    line.client for by_contractor in codes.values() for rows in by_contractor.values() for line in rows
                ),
                tally=sum((c.tally for c in code_summaries), Tally()),
                codes=code_summaries,
            )
        )
    return tuple(cost_centers)


def build_report(period: Period, lines: Iterable[ReportLine]) -> Report:
    """Group the period's entries into cost center -> code -> contractor, plus the unmapped section."""
    ordered = tuple(sorted((scrub_line(line) for line in lines), key=lambda line: line.sort_key))
    validate_lines(period, ordered)

    tree: _CodeTree = {}
    groups: dict[tuple[str, str], list[ReportLine]] = {}
    for line in ordered:
        if line.code is None:
            reason = line.unmapped_reason or _UNSPECIFIED_REASON
            groups.setdefault((reason, line.unmapped_detail or ""), []).append(line)
        else:
            codes = tree.setdefault(line.cost_center or "", {})
            codes.setdefault(line.code, {}).setdefault(line.contractor, []).append(line)

    cost_centers = _cost_center_summaries(tree)
    unmapped = tuple(
        UnmappedGroup(reason, detail, Tally.of(groups[(reason, detail)]), tuple(groups[(reason, detail)]))
        for reason, detail in sorted(groups, key=lambda k: (text_key(k[0]), text_key(k[1])))
    )

    mapped = sum((c.tally for c in cost_centers), Tally())
    unmapped_total = sum((g.tally for g in unmapped), Tally())
    total = Tally.of(ordered)
    totals = ReportTotals(
        entries=total.entries,
        seconds=total.seconds,
        billable_seconds=total.billable_seconds,
        nonbillable_seconds=total.nonbillable_seconds,
        mapped_seconds=mapped.seconds,
        unmapped_seconds=unmapped_total.seconds,
        unmapped_entries=unmapped_total.entries,
    )
    if mapped + unmapped_total != total or not totals.reconciles:
        raise RuntimeError(f"report for {period.label} does not reconcile: {totals}")
    return Report(
        period=period,
        totals=totals,
        mapped=mapped,
        unmapped_total=unmapped_total,
        total=total,
        cost_centers=cost_centers,
        unmapped=unmapped,
        lines=ordered,
    )
