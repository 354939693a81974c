"""Build the reconciled period report and write it as CSV, XLSX and JSON, byte for byte reproducibly."""

from __future__ import annotations

import calendar
import contextlib
import csv
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

__all__ = [
    "FORMATS",
    "Cell",
    "CodeSummary",
    "ContractorSummary",
    "CostCenterSummary",
    "Period",
    "Report",
    "ReportLine",
    "ReportTotals",
    "Table",
    "Tally",
    "UnmappedGroup",
    "WrittenReport",
    "build_report",
    "format_hours",
    "format_minutes",
    "joined_names",
    "normalise_formats",
    "redact",
    "render_csv",
    "render_workbook",
    "scrub_line",
    "validate_lines",
    "write_files",
    "write_report",
]

FORMATS: tuple[str, ...] = ("csv", "xlsx", "json")

_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_EMAIL_RE = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_EMAIL_MASK = "[email]"
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_UNSPECIFIED_REASON = "unspecified"
_XLSX_MAX_TEXT = 32_767  # Excel's hard limit for one cell
_ZIP_EPOCH = date(1980, 1, 1)  # earliest date a zip entry can carry


# --------------------------------------------------------------------------- values


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
        return _round_half_up(self.seconds, 60)

    @property
    def hours(self) -> Decimal:
        return _round_half_up(self.seconds, 3600)

    @property
    def billable_hours(self) -> Decimal:
        return _round_half_up(self.billable_seconds, 3600)

    @property
    def nonbillable_hours(self) -> Decimal:
        return _round_half_up(self.nonbillable_seconds, 3600)


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


@dataclass(frozen=True, slots=True)
class WrittenReport:
    period: Period
    files: tuple[Path, ...]
    totals: ReportTotals
    changed: tuple[Path, ...] = ()  # the files this write created or replaced; the rest already held these bytes


# --------------------------------------------------------------------------- numbers


def _round_half_up(seconds: int, unit: int) -> Decimal:
    """``seconds / unit`` to 2 dp, half away from zero, computed exactly in integers."""
    hundredths, rest = divmod(abs(seconds) * 100, unit)
    if rest * 2 >= unit:
        hundredths += 1
    sign = "-" if seconds < 0 and hundredths else ""
    return Decimal(f"{sign}{hundredths // 100}.{hundredths % 100:02d}")


def format_hours(seconds: int) -> str:
    """Exact decimal hours with 2 dp, ROUND_HALF_UP: 5400 -> "1.50", 90 -> "0.03"."""
    return str(_round_half_up(seconds, 3600))


def format_minutes(seconds: int) -> str:
    """Exact decimal minutes with 2 dp, ROUND_HALF_UP: 90 -> "1.50", 1 -> "0.02"."""
    return str(_round_half_up(seconds, 60))


# --------------------------------------------------------------------------- model


def _text_key(value: str) -> tuple[str, str]:
    return (value.casefold(), value)


def joined_names(values: Iterable[str | None]) -> str:
    """The distinct non-empty values, sorted case-insensitively and joined with ``"; "``."""
    return "; ".join(sorted({v for v in values if v}, key=_text_key))


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


def build_report(period: Period, lines: Iterable[ReportLine]) -> Report:
    """Group the period's entries into cost center -> code -> contractor, plus the unmapped section."""
    ordered = tuple(sorted((scrub_line(line) for line in lines), key=lambda line: line.sort_key))
    validate_lines(period, ordered)

    tree: dict[str, dict[str, dict[str, list[ReportLine]]]] = {}
    groups: dict[tuple[str, str], list[ReportLine]] = {}
    for line in ordered:
        if line.code is None:
            reason = line.unmapped_reason or _UNSPECIFIED_REASON
            groups.setdefault((reason, line.unmapped_detail or ""), []).append(line)
        else:
            codes = tree.setdefault(line.cost_center or "", {})
            codes.setdefault(line.code, {}).setdefault(line.contractor, []).append(line)

    cost_centers: list[CostCenterSummary] = []
    for cost_center in sorted(tree, key=_text_key):
        code_summaries: list[CodeSummary] = []
        for code in sorted(tree[cost_center], key=_text_key):
            by_contractor = tree[cost_center][code]
            contractors = tuple(
                ContractorSummary(name, Tally.of(by_contractor[name])) for name in sorted(by_contractor, key=_text_key)
            )
            code_lines = [line for rows in by_contractor.values() for line in rows]
            code_summaries.append(
                CodeSummary(
                    code=code,
                    code_name=joined_names(line.code_name for line in code_lines),
                    client=joined_names(line.client for line in code_lines),
                    tally=sum((c.tally for c in contractors), Tally()),
                    contractors=contractors,
                )
            )
        cost_centers.append(
            CostCenterSummary(
                cost_center=cost_center,
                client=joined_names(
                    line.client
                    for by_contractor in tree[cost_center].values()
                    for rows in by_contractor.values()
                    for line in rows
                ),
                tally=sum((c.tally for c in code_summaries), Tally()),
                codes=tuple(code_summaries),
            )
        )

    unmapped = tuple(
        UnmappedGroup(reason, detail, Tally.of(groups[(reason, detail)]), tuple(groups[(reason, detail)]))
        for reason, detail in sorted(groups, key=lambda k: (_text_key(k[0]), _text_key(k[1])))
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
        cost_centers=tuple(cost_centers),
        unmapped=unmapped,
        lines=ordered,
    )


# --------------------------------------------------------------------------- tables

Cell: TypeAlias = str | int | bool | Decimal | date | None


@dataclass(frozen=True, slots=True)
class Table:
    """One rectangular table shared by the CSV and XLSX writers."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    emphasis: tuple[bool, ...]  # per row: a subtotal or total, shown bold in XLSX


SUMMARY_HEADERS: tuple[str, ...] = (
    "level",
    "cost_center",
    "client",
    "code",
    "code_name",
    "contractor",
    "entries",
    "seconds",
    "minutes",
    "hours",
    "billable_hours",
    "nonbillable_hours",
    "billable_seconds",
    "nonbillable_seconds",
    "unmapped_reason",
    "unmapped_detail",
)

ENTRY_HEADERS: tuple[str, ...] = (
    "work_date",
    "source",
    "account",
    "external_id",
    "person_id",
    "person_name",
    "contractor",
    "cost_center",
    "client",
    "code",
    "code_name",
    "billable",
    "seconds",
    "minutes",
    "hours",
    "rule_id",
    "unmapped_reason",
    "unmapped_detail",
    "task",
    "container",
    "description",
    "version",
)

UNMAPPED_HEADERS: tuple[str, ...] = (
    "unmapped_reason",
    "unmapped_detail",
    "work_date",
    "source",
    "account",
    "external_id",
    "person_id",
    "person_name",
    "contractor",
    "billable",
    "seconds",
    "minutes",
    "hours",
    "task",
    "container",
    "description",
    "version",
)


def _summary_row(
    level: str,
    tally: Tally,
    *,
    cost_center: str = "",
    client: str = "",
    code: str = "",
    code_name: str = "",
    contractor: str = "",
    reason: str = "",
    detail: str = "",
) -> tuple[Cell, ...]:
    return (
        level,
        cost_center,
        client,
        code,
        code_name,
        contractor,
        tally.entries,
        tally.seconds,
        tally.minutes,
        tally.hours,
        tally.billable_hours,
        tally.nonbillable_hours,
        tally.billable_seconds,
        tally.nonbillable_seconds,
        reason,
        detail,
    )


def _summary_table(report: Report) -> Table:
    rows: list[tuple[Cell, ...]] = []
    emphasis: list[bool] = []

    def add(row: tuple[Cell, ...], strong: bool) -> None:
        rows.append(row)
        emphasis.append(strong)

    for cc in report.cost_centers:
        for code in cc.codes:
            where = {"cost_center": cc.cost_center, "client": code.client, "code": code.code}
            for person in code.contractors:
                add(
                    _summary_row(
                        "contractor",
                        person.tally,
                        code_name=code.code_name,
                        contractor=person.contractor,
                        **where,
                    ),
                    False,
                )
            add(_summary_row("code", code.tally, code_name=code.code_name, **where), True)
        add(_summary_row("cost_center", cc.tally, cost_center=cc.cost_center, client=cc.client), True)
    add(_summary_row("mapped_total", report.mapped), True)
    for group in report.unmapped:
        add(_summary_row("unmapped", group.tally, reason=group.reason, detail=group.detail), False)
    add(_summary_row("unmapped_total", report.unmapped_total), True)
    add(_summary_row("total", report.total), True)
    return Table(SUMMARY_HEADERS, tuple(rows), tuple(emphasis))


def _entry_row(line: ReportLine) -> tuple[Cell, ...]:
    return (
        line.work_date,
        line.source,
        line.account,
        line.external_id,
        line.person_id,
        line.person_name,
        line.contractor,
        line.cost_center,
        line.client,
        line.code,
        line.code_name,
        line.billable,
        line.seconds,
        _round_half_up(line.seconds, 60),
        _round_half_up(line.seconds, 3600),
        line.rule_id,
        line.unmapped_reason,
        line.unmapped_detail,
        line.task,
        line.container,
        line.description,
        line.version,
    )


def _entries_table(report: Report) -> Table:
    rows = tuple(_entry_row(line) for line in report.lines)
    return Table(ENTRY_HEADERS, rows, (False,) * len(rows))


def _unmapped_table(report: Report) -> Table:
    rows = tuple(
        (
            group.reason,
            group.detail,
            line.work_date,
            line.source,
            line.account,
            line.external_id,
            line.person_id,
            line.person_name,
            line.contractor,
            line.billable,
            line.seconds,
            _round_half_up(line.seconds, 60),
            _round_half_up(line.seconds, 3600),
            line.task,
            line.container,
            line.description,
            line.version,
        )
        for group in report.unmapped
        for line in group.lines
    )
    return Table(UNMAPPED_HEADERS, rows, (False,) * len(rows))


# --------------------------------------------------------------------------- CSV


def _csv_text(value: str) -> str:
    """Neutralise spreadsheet formulas: names come from PM tools, which anyone can edit."""
    return "'" + value if value.startswith(_FORMULA_TRIGGERS) else value


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _csv_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def render_csv(table: Table) -> bytes:
    """One table as CSV, formulas neutralised: UTF-8 without BOM, RFC 4180 ``\\r\\n`` line endings."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(table.headers)
    writer.writerows([_csv_cell(value) for value in row] for row in table.rows)
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- XLSX


def _xlsx_text(value: str) -> str:
    cleaned: str = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    return cleaned[:_XLSX_MAX_TEXT]


def _display_width(value: Cell) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, date):
        return 10
    text = str(value)
    return max((len(part) for part in text.splitlines()), default=0)


def _fill_sheet(sheet: Any, table: Table) -> None:
    bold = Font(bold=True)
    sheet.append(list(table.headers))
    for cell in sheet[1]:
        cell.font = bold
    for row_index, (row, strong) in enumerate(zip(table.rows, table.emphasis, strict=True), start=2):
        for col_index, value in enumerate(row, start=1):
            cell = sheet.cell(row=row_index, column=col_index)
            if isinstance(value, str):
                cell.value = _xlsx_text(value)
                cell.data_type = "s"  # always a literal string, never a formula
            else:
                cell.value = value
                if isinstance(value, Decimal):
                    cell.number_format = "0.00"
                elif isinstance(value, date):
                    cell.number_format = "yyyy-mm-dd"
                elif isinstance(value, int) and not isinstance(value, bool):
                    cell.number_format = "0"
            if strong:
                cell.font = bold
    sheet.freeze_panes = "A2"
    last_column = get_column_letter(len(table.headers))
    sheet.auto_filter.ref = f"A1:{last_column}{len(table.rows) + 1}"
    for col_index, header in enumerate(table.headers, start=1):
        widest = max([len(header)] + [_display_width(row[col_index - 1]) for row in table.rows])
        sheet.column_dimensions[get_column_letter(col_index)].width = min(max(widest + 2, 8), 60)


def _pinned_moment(period: Period) -> datetime:
    day = max(period.end, _ZIP_EPOCH)
    return datetime(day.year, day.month, day.day)


def _render_xlsx(report: Report) -> bytes:
    sheets = [
        ("Summary", _summary_table(report)),
        ("Entries", _entries_table(report)),
        ("Unmapped", _unmapped_table(report)),
    ]
    return render_workbook(sheets, title=f"Hours {report.period.label}", period=report.period)


def render_workbook(sheets: Sequence[tuple[str, Table]], *, title: str, period: Period) -> bytes:
    """An XLSX workbook of one sheet per table, its timestamps pinned to the period's end (reproducible bytes)."""
    workbook = Workbook()
    first = workbook.active
    for index, (name, table) in enumerate(sheets):
        sheet = first if index == 0 else workbook.create_sheet(name)
        sheet.title = name
        _fill_sheet(sheet, table)

    pinned = _pinned_moment(period)
    workbook.properties.creator = "hourbridge"
    workbook.properties.title = title
    workbook.properties.created = pinned
    workbook.properties.modified = pinned

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(workbook, archive).write_data()
    return _normalise_zip(raw.getvalue(), pinned)


def _normalise_zip(data: bytes, pinned: datetime) -> bytes:
    """Rewrite a zip with fixed entry metadata so equal content gives equal bytes on any machine.

    Entries are stored uncompressed: deflate output depends on the zlib build, stored bytes do not.
    """
    stamp = (pinned.year, pinned.month, pinned.day, 0, 0, 0)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for original in source.infolist():
            info = zipfile.ZipInfo(original.filename, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            target.writestr(info, source.read(original))
    return out.getvalue()


# --------------------------------------------------------------------------- JSON


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "entries": tally.entries,
        "seconds": tally.seconds,
        "minutes": str(tally.minutes),
        "hours": str(tally.hours),
        "billable_seconds": tally.billable_seconds,
        "billable_hours": str(tally.billable_hours),
        "nonbillable_seconds": tally.nonbillable_seconds,
        "nonbillable_hours": str(tally.nonbillable_hours),
    }


def _line_json(line: ReportLine) -> dict[str, Any]:
    return {
        "source": line.source,
        "account": line.account,
        "external_id": line.external_id,
        "work_date": line.work_date.isoformat(),
        "seconds": line.seconds,
        "minutes": format_minutes(line.seconds),
        "hours": format_hours(line.seconds),
        "person_id": line.person_id,
        "person_name": line.person_name,
        "contractor": line.contractor,
        "code": line.code,
        "code_name": line.code_name,
        "client": line.client,
        "cost_center": line.cost_center,
        "billable": line.billable,
        "rule_id": line.rule_id,
        "unmapped_reason": line.unmapped_reason,
        "unmapped_detail": line.unmapped_detail,
        "task": line.task,
        "container": line.container,
        "description": line.description,
        "version": line.version,
    }


def _report_json(report: Report) -> dict[str, Any]:
    totals = report.totals
    return {
        "period": {
            "start": report.period.start.isoformat(),
            "end": report.period.end.isoformat(),
            "label": report.period.label,
        },
        "totals": {
            **_tally_json(report.total),
            "mapped_entries": totals.mapped_entries,
            "mapped_seconds": totals.mapped_seconds,
            "mapped_hours": format_hours(totals.mapped_seconds),
            "unmapped_entries": totals.unmapped_entries,
            "unmapped_seconds": totals.unmapped_seconds,
            "unmapped_hours": format_hours(totals.unmapped_seconds),
            "checks": {
                "total_equals_mapped_plus_unmapped": (
                    totals.seconds == totals.mapped_seconds + totals.unmapped_seconds
                ),
                "total_equals_billable_plus_nonbillable": (
                    totals.seconds == totals.billable_seconds + totals.nonbillable_seconds
                ),
            },
        },
        "summary": [
            {
                "cost_center": cc.cost_center,
                "client": cc.client,
                "totals": _tally_json(cc.tally),
                "codes": [
                    {
                        "code": code.code,
                        "code_name": code.code_name,
                        "client": code.client,
                        "totals": _tally_json(code.tally),
                        "contractors": [
                            {"contractor": person.contractor, "totals": _tally_json(person.tally)}
                            for person in code.contractors
                        ],
                    }
                    for code in cc.codes
                ],
            }
            for cc in report.cost_centers
        ],
        "unmapped": [
            {
                "reason": group.reason,
                "detail": group.detail,
                "totals": _tally_json(group.tally),
                "entries": [_line_json(line) for line in group.lines],
            }
            for group in report.unmapped
        ],
        "entries": [_line_json(line) for line in report.lines],
    }


def _render_json(report: Report) -> bytes:
    text = json.dumps(_report_json(report), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- files


def _render(report: Report, fmt: str) -> list[tuple[str, bytes]]:
    label = report.period.label
    if fmt == "csv":
        return [
            (f"hours-{label}.csv", render_csv(_summary_table(report))),
            (f"entries-{label}.csv", render_csv(_entries_table(report))),
            (f"unmapped-{label}.csv", render_csv(_unmapped_table(report))),
        ]
    if fmt == "xlsx":
        return [(f"hours-{label}.xlsx", _render_xlsx(report))]
    return [(f"hours-{label}.json", _render_json(report))]


def normalise_formats(formats: Sequence[str]) -> list[str]:
    """The requested formats, lower-cased, de-duplicated, in order; ValueError for an unknown or empty choice."""
    if isinstance(formats, str):
        formats = [formats]
    chosen: list[str] = []
    for fmt in formats:
        name = fmt.strip().lower()
        if name not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; expected some of {', '.join(FORMATS)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValueError(f"no report format requested; expected some of {', '.join(FORMATS)}")
    return chosen


def _stage(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a fresh temporary file beside its destination and flush it to disk."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file whose content is exactly ``data``."""
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _sync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_report(report: Report, folder: Path, formats: Sequence[str] = FORMATS) -> WrittenReport:
    """Write the report files into ``folder``; every file appears complete or not at all.

    All files are rendered and staged as temporary files first, then moved into place with
    ``os.replace``; on failure the temporaries are removed and existing files stay as they were.
    A file that already holds exactly the new bytes is left alone (same inode, same mtime).
    New files are readable by their owner only: they carry billing data.
    """
    folder = Path(folder)
    chosen = normalise_formats(formats)
    outputs = [item for fmt in chosen for item in _render(report, fmt)]
    changed = write_files(folder, outputs)
    return WrittenReport(
        period=report.period,
        files=tuple(folder / name for name, _ in outputs),
        totals=report.totals,
        changed=changed,
    )


def write_files(folder: Path, outputs: Sequence[tuple[str, bytes]]) -> tuple[Path, ...]:
    """Put every ``(name, bytes)`` into ``folder`` atomically; return the paths that were (re)written.

    Everything is staged as temporary files first, then moved into place with ``os.replace``; on
    failure the temporaries are removed and existing files stay as they were. A file that already
    holds exactly its new bytes is left alone (same inode, same mtime).
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    changed: list[Path] = []
    try:
        for name, data in outputs:
            if not _holds(folder / name, data):
                staged.append((_stage(folder, name, data), folder / name))
        while staged:
            temp, target = staged[0]
            os.replace(temp, target)
            staged.pop(0)
            changed.append(target)
    finally:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                temp.unlink()
    _sync_folder(folder)
    return tuple(changed)
