"""The period report model: report lines, periods, tallies, the summary tree and its reconciled totals."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

__all__ = [
    "NOTHING_SHOWN",
    "CodeSummary",
    "ContractorSummary",
    "CostCenterSummary",
    "Period",
    "Report",
    "ReportLine",
    "ReportTotals",
    "Shown",
    "Tally",
    "UnmappedGroup",
    "allocate",
    "build_report",
    "format_hours",
    "format_minutes",
    "hours_that_add_up",
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
    """Entry count and exact seconds of one summary node: billable, non-billable and unmapped.

    Unmapped time has no code, so it is neither billable nor non-billable yet: it is counted on its
    own, and ``billable + nonbillable + unmapped = seconds`` always.
    """

    entries: int = 0
    seconds: int = 0
    billable_seconds: int = 0
    nonbillable_seconds: int = 0
    unmapped_seconds: int = 0

    @classmethod
    def of(cls, lines: Iterable[ReportLine]) -> Tally:
        entries = seconds = billable = unmapped = 0
        for line in lines:
            entries += 1
            seconds += line.seconds
            if not line.mapped:
                unmapped += line.seconds
            elif line.billable:
                billable += line.seconds
        return cls(entries, seconds, billable, seconds - billable - unmapped, unmapped)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.entries + other.entries,
            self.seconds + other.seconds,
            self.billable_seconds + other.billable_seconds,
            self.nonbillable_seconds + other.nonbillable_seconds,
            self.unmapped_seconds + other.unmapped_seconds,
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
class Shown:
    """The figures a report displays for one node, in hundredths, rounded so that they add up.

    Each column (billable, non-billable and unmapped hours; minutes) is rounded once at the top,
    then split over the children by largest remainder, level by level: the rows under a node
    always sum to the node's row, and ``billable + nonbillable + unmapped = hours`` on every row.
    Each figure is its exact value rounded down or up to the next hundredth.
    """

    billable: int = 0
    nonbillable: int = 0
    unmapped: int = 0
    minute_hundredths: int = 0

    @property
    def hours(self) -> Decimal:
        return _decimal(self.billable + self.nonbillable + self.unmapped)

    @property
    def billable_hours(self) -> Decimal:
        return _decimal(self.billable)

    @property
    def nonbillable_hours(self) -> Decimal:
        return _decimal(self.nonbillable)

    @property
    def unmapped_hours(self) -> Decimal:
        return _decimal(self.unmapped)

    @property
    def minutes(self) -> Decimal:
        return _decimal(self.minute_hundredths)

    @classmethod
    def top(cls, tally: Tally) -> Shown:
        """The root's figures: its hours and minutes rounded half up, the hours split over the columns."""
        hours = _hundredths(tally.seconds, 3600)
        billable, nonbillable, unmapped = allocate(
            hours, [tally.billable_seconds, tally.nonbillable_seconds, tally.unmapped_seconds], 3600
        )
        return cls(billable, nonbillable, unmapped, _hundredths(tally.seconds, 60))

    def split(self, parts: Sequence[Tally]) -> list[Shown]:
        """This node's figures shared over its children (their tallies must add up to this node's)."""
        billable = allocate(self.billable, [t.billable_seconds for t in parts], 3600)
        nonbillable = allocate(self.nonbillable, [t.nonbillable_seconds for t in parts], 3600)
        unmapped = allocate(self.unmapped, [t.unmapped_seconds for t in parts], 3600)
        minutes = allocate(self.minute_hundredths, [t.seconds for t in parts], 60)
        return [Shown(*column) for column in zip(billable, nonbillable, unmapped, minutes, strict=True)]


NOTHING_SHOWN = Shown()  # the default of a summary node until its report shares the figures down


def _decimal(hundredths: int) -> Decimal:
    return Decimal(hundredths).scaleb(-2)


def _hundredths(seconds: int, unit: int) -> int:
    """``seconds / unit`` in hundredths, rounded half up (what ``round_half_up`` shows)."""
    hundredths, rest = divmod(seconds * 100, unit)
    return hundredths + (1 if rest * 2 >= unit else 0)


def allocate(total: int, parts: Sequence[int], unit: int) -> list[int]:
    """Share ``total`` hundredths of ``unit`` over ``parts`` (exact seconds) by largest remainder.

    Every share is its part's exact value rounded down, and the hundredths still missing go one
    each to the largest remainders (ties: the earlier part), so the shares add up to ``total``.
    ``total`` must be within one hundredth of the parts' exact sum, as a rounded parent is.
    """
    floors: list[int] = []
    rests: list[int] = []
    for seconds in parts:
        share, rest = divmod(seconds * 100, unit)
        floors.append(share)
        rests.append(rest)
    missing = total - sum(floors)
    if not 0 <= missing <= sum(1 for rest in rests if rest):
        raise ValueError(f"{total} hundredths cannot be shared over {list(parts)} s by rounding")
    for index in sorted(range(len(parts)), key=lambda i: (-rests[i], i))[:missing]:
        floors[index] += 1
    return floors


def hours_that_add_up(parts: Sequence[int]) -> tuple[str, list[str]]:
    """The hours of the parts' sum and of each part (seconds), rounded so the parts add up to the sum."""
    total = sum(parts)
    shares = allocate(_hundredths(total, 3600), parts, 3600)
    return str(_decimal(_hundredths(total, 3600))), [str(_decimal(share)) for share in shares]


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
        # Billable and non-billable split the mapped time; unmapped time is neither.
        return (
            self.seconds == self.mapped_seconds + self.unmapped_seconds
            and self.mapped_seconds == self.billable_seconds + self.nonbillable_seconds
        )


@dataclass(frozen=True, slots=True)
class ContractorSummary:
    contractor: str
    tally: Tally
    shown: Shown = Shown()


@dataclass(frozen=True, slots=True)
class CodeSummary:
    code: str
    code_name: str
    client: str
    tally: Tally
    contractors: tuple[ContractorSummary, ...]
    shown: Shown = Shown()


@dataclass(frozen=True, slots=True)
class CostCenterSummary:
    cost_center: str
    client: str
    tally: Tally
    codes: tuple[CodeSummary, ...]
    shown: Shown = Shown()


@dataclass(frozen=True, slots=True)
class UnmappedGroup:
    reason: str
    detail: str
    tally: Tally
    lines: tuple[ReportLine, ...]
    shown: Shown = Shown()


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
    shown_mapped: Shown = Shown()
    shown_unmapped: Shown = Shown()
    shown_total: Shown = Shown()


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
    shown_total = Shown.top(total)
    shown_mapped, shown_unmapped = shown_total.split([mapped, unmapped_total])
    return Report(
        period=period,
        totals=totals,
        mapped=mapped,
        unmapped_total=unmapped_total,
        total=total,
        cost_centers=_shown_cost_centers(shown_mapped, cost_centers),
        unmapped=tuple(
            replace(group, shown=shown)
            for group, shown in zip(unmapped, shown_unmapped.split([g.tally for g in unmapped]), strict=True)
        ),
        lines=ordered,
        shown_mapped=shown_mapped,
        shown_unmapped=shown_unmapped,
        shown_total=shown_total,
    )


def _shown_cost_centers(
    shown_mapped: Shown, cost_centers: tuple[CostCenterSummary, ...]
) -> tuple[CostCenterSummary, ...]:
    """The summary tree with its displayed figures, shared down from the mapped total level by level."""
    result: list[CostCenterSummary] = []
    for cc, cc_shown in zip(cost_centers, shown_mapped.split([c.tally for c in cost_centers]), strict=True):
        codes: list[CodeSummary] = []
        for code, code_shown in zip(cc.codes, cc_shown.split([c.tally for c in cc.codes]), strict=True):
            people = code_shown.split([p.tally for p in code.contractors])
            contractors = tuple(replace(p, shown=shown) for p, shown in zip(code.contractors, people, strict=True))
            codes.append(replace(code, contractors=contractors, shown=code_shown))
        result.append(replace(cc, codes=tuple(codes), shown=cc_shown))
    return tuple(result)
