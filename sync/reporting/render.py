"""Render a period report as bytes in each file format (CSV, XLSX, JSON), reproducibly."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from connectors._files import csv_text
from sync.reporting.model import Period, Report, ReportLine, Shown, Tally, format_hours, format_minutes
from sync.reporting.tables import Cell, Table, entries_table, summary_table, unmapped_table

__all__ = ["FORMATS", "UTF8_BOM", "normalise_formats", "render_csv", "render_report", "render_workbook"]

FORMATS: tuple[str, ...] = ("csv", "xlsx", "json")

_XLSX_MAX_TEXT = 32_767  # Excel's hard limit for one cell
_ZIP_EPOCH = date(1980, 1, 1)  # earliest date a zip entry can carry

# --------------------------------------------------------------------------- CSV


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return csv_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


UTF8_BOM = "\ufeff".encode()


def render_csv(table: Table, *, bom: bool = True) -> bytes:
    """One table as CSV, formulas neutralised: UTF-8, RFC 4180 ``\\r\\n`` line endings.

    With ``bom`` the bytes start with the UTF-8 byte order mark: without it Excel reads the file
    in the machine's legacy code page and "Zoë" becomes "ZoÃ«". Python reads it with ``utf-8-sig``.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(table.headers)
    writer.writerows([_csv_cell(value) for value in row] for row in table.rows)
    return (UTF8_BOM if bom else b"") + buffer.getvalue().encode("utf-8")


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
        ("Summary", summary_table(report)),
        ("Entries", entries_table(report)),
        ("Unmapped", unmapped_table(report)),
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


def _tally_json(tally: Tally, shown: Shown) -> dict[str, Any]:
    # Seconds exact; hours and minutes as displayed, rounded so that they add up (see Shown).
    return {
        "entries": tally.entries,
        "seconds": tally.seconds,
        "minutes": str(shown.minutes),
        "hours": str(shown.hours),
        "billable_seconds": tally.billable_seconds,
        "billable_hours": str(shown.billable_hours),
        "nonbillable_seconds": tally.nonbillable_seconds,
        "nonbillable_hours": str(shown.nonbillable_hours),
        "unmapped_seconds": tally.unmapped_seconds,
        "unmapped_hours": str(shown.unmapped_hours),
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
            **_tally_json(report.total, report.shown_total),
            "mapped_entries": totals.mapped_entries,
            "mapped_seconds": totals.mapped_seconds,
            "mapped_hours": str(report.shown_mapped.hours),
            "unmapped_entries": totals.unmapped_entries,
            "checks": {
                "total_equals_mapped_plus_unmapped": (
                    totals.seconds == totals.mapped_seconds + totals.unmapped_seconds
                ),
                "mapped_equals_billable_plus_nonbillable": (
                    totals.mapped_seconds == totals.billable_seconds + totals.nonbillable_seconds
                ),
            },
        },
        "summary": [
            {
                "cost_center": cc.cost_center,
                "client": cc.client,
                "totals": _tally_json(cc.tally, cc.shown),
                "codes": [
                    {
                        "code": code.code,
                        "code_name": code.code_name,
                        "client": code.client,
                        "totals": _tally_json(code.tally, code.shown),
                        "contractors": [
                            {"contractor": person.contractor, "totals": _tally_json(person.tally, person.shown)}
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
                "totals": _tally_json(group.tally, group.shown),
                "entries": [_line_json(line) for line in group.lines],
            }
            for group in report.unmapped
        ],
        "entries": [_line_json(line) for line in report.lines],
    }


def _render_json(report: Report) -> bytes:
    text = json.dumps(_report_json(report), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- formats


def render_report(report: Report, fmt: str, *, csv_bom: bool = True) -> list[tuple[str, bytes]]:
    label = report.period.label
    if fmt == "csv":
        return [
            (f"hours-{label}.csv", render_csv(summary_table(report), bom=csv_bom)),
            (f"entries-{label}.csv", render_csv(entries_table(report), bom=csv_bom)),
            (f"unmapped-{label}.csv", render_csv(unmapped_table(report), bom=csv_bom)),
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
