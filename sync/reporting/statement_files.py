"""Render contractor statements as CSV, XLSX and JSON and write them into a period's statements folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sync.reporting.model import Period, Shown, Tally, format_hours, format_minutes, round_half_up
from sync.reporting.output import write_files
from sync.reporting.render import FORMATS, normalise_formats, render_csv, render_workbook
from sync.reporting.statements import NOT_YET_CODED, Statement, StatementEntry
from sync.reporting.tables import Cell, Table
from sync.settings import DEFAULT_FILE_PERMISSIONS

__all__ = [
    "STATEMENTS_FOLDER",
    "WrittenStatements",
    "render_statement",
    "statement_folder",
    "write_statement_files",
    "write_statements",
]

STATEMENTS_FOLDER = "statements"

# Only names this module can produce are ever removed from a statements folder.
_STATEMENT_FILE_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\.(?:" + "|".join(FORMATS) + ")")


@dataclass(frozen=True, slots=True)
class WrittenStatements:
    period: Period
    folder: Path  # <output folder>/statements/<period label>
    files: tuple[Path, ...]  # every file of the statements written
    changed: tuple[Path, ...]  # those created or replaced; the rest already held these bytes
    removed: tuple[Path, ...]  # statements of contractors who no longer have entries in the period


# --------------------------------------------------------------------------- tables

SUMMARY_HEADERS: tuple[str, ...] = (
    "section",
    "work_date",
    "code",
    "code_name",
    "client",
    "entries",
    "seconds",
    "minutes",
    "hours",
)


def _entry_headers(statement: Statement, *, coded_columns: bool) -> tuple[str, ...]:
    code = ("code", "code_name", "client") if coded_columns else ()
    description = ("description",) if statement.descriptions else ()
    return (
        "work_date",
        "source",
        "task",
        "container",
        *code,
        "not_coded_reason",
        *description,
        "seconds",
        "minutes",
        "hours",
    )


BILL_HEADERS: tuple[str, ...] = ("bill_sink", "bill_number", "bill_date", "billed_hours", "logged_hours", "verdict")


def _csv_headers(statement: Statement) -> tuple[str, ...]:
    description = ("description",) if statement.descriptions else ()
    # Bill columns only when the period's invoice check saw bills of theirs: statements without stay as they were.
    bills = BILL_HEADERS if statement.bills else ()
    return (
        "section",
        "contractor",
        "period",
        "work_date",
        "code",
        "code_name",
        "client",
        "source",
        "task",
        "container",
        "not_coded_reason",
        *description,
        "entries",
        "seconds",
        "minutes",
        "hours",
        *bills,
    )


Row = tuple[dict[str, Cell], bool]  # named cells, and whether the row is a (sub)total


def _tally_cells(tally: Tally, shown: Shown) -> dict[str, Cell]:
    # Seconds exact; minutes and hours as displayed, rounded so that the rows add up (see Shown).
    return {"entries": tally.entries, "seconds": tally.seconds, "minutes": shown.minutes, "hours": shown.hours}


def _summary_rows(statement: Statement) -> list[Row]:
    rows: list[Row] = [
        (
            {
                "section": "day",
                "work_date": day.work_date,
                "code": day.code,
                "code_name": day.code_name,
                "client": day.client,
                **_tally_cells(day.tally, day.shown),
            },
            False,
        )
        for day in statement.days
    ]
    rows.extend(
        (
            {
                "section": "code",
                "code": code.code,
                "code_name": code.code_name,
                "client": code.client,
                **_tally_cells(code.tally, code.shown),
            },
            True,
        )
        for code in statement.codes
    )
    rows.append(
        (
            {
                "section": "not_yet_coded",
                "code_name": NOT_YET_CODED,
                **_tally_cells(statement.not_yet_coded, statement.shown_not_yet_coded),
            },
            True,
        )
    )
    rows.append(({"section": "total", **_tally_cells(statement.total, statement.shown_total)}, True))
    return rows


def _entry_rows(entries: Iterable[StatementEntry], section: str) -> list[Row]:
    return [
        (
            {
                "section": section,
                "work_date": entry.work_date,
                "source": entry.source,
                "task": entry.task,
                "container": entry.container,
                "code": entry.code,
                "code_name": entry.code_name,
                "client": entry.client,
                "not_coded_reason": entry.not_coded_reason,
                "description": entry.description,
                "entries": 1,
                "seconds": entry.seconds,
                "minutes": Decimal(format_minutes(entry.seconds)),
                "hours": Decimal(format_hours(entry.seconds)),
            },
            False,
        )
        for entry in entries
    ]


def _table(headers: tuple[str, ...], rows: Sequence[Row]) -> Table:
    return Table(
        headers,
        tuple(tuple(cells.get(header) for header in headers) for cells, _ in rows),
        tuple(strong for _, strong in rows),
    )


def _bill_rows(statement: Statement) -> list[Row]:
    return [
        (
            {
                "section": "bill",
                "bill_sink": bill.sink,
                "bill_number": bill.number,
                "bill_date": bill.bill_date,
                "billed_hours": round_half_up(bill.billed_seconds, 3600),
                "logged_hours": round_half_up(bill.logged_seconds, 3600),
                "verdict": bill.verdict,
            },
            False,
        )
        for bill in statement.bills
    ]


def _header_table(statement: Statement) -> Table:
    rows: tuple[tuple[Cell, ...], ...] = (
        ("contractor", statement.contractor),
        ("period", statement.period.label),
        ("from", statement.period.start),
        ("to", statement.period.end),
        ("report", statement.report_name),
        ("entries", statement.total.entries),
        ("hours", statement.shown_total.hours),
        ("minutes", statement.shown_total.minutes),
        ("not_yet_coded_hours", statement.shown_not_yet_coded.hours),
    )
    return Table(("field", "value"), rows, (False,) * len(rows))


def _csv_table(statement: Statement) -> Table:
    rows = [
        *_summary_rows(statement),
        *_entry_rows(statement.entries, "entry"),
        *_entry_rows(statement.uncoded_entries, "not_yet_coded_entry"),
        *_bill_rows(statement),
    ]
    header = {"contractor": statement.contractor, "period": statement.period.label}
    return _table(_csv_headers(statement), [({**header, **cells}, strong) for cells, strong in rows])


def _render_xlsx(statement: Statement) -> bytes:
    sheets = [
        ("Statement", _header_table(statement)),
        ("Summary", _table(SUMMARY_HEADERS, _summary_rows(statement))),
        ("Entries", _table(_entry_headers(statement, coded_columns=True), _entry_rows(statement.entries, "entry"))),
        (
            "Not yet coded",
            _table(
                _entry_headers(statement, coded_columns=False),
                _entry_rows(statement.uncoded_entries, "not_yet_coded_entry"),
            ),
        ),
    ]
    if statement.bills:
        sheets.append(("Bills", _table(("section", *BILL_HEADERS), _bill_rows(statement))))
    title = f"Statement {statement.contractor} {statement.period.label}"
    return render_workbook(sheets, title=title, period=statement.period)


# --------------------------------------------------------------------------- JSON


def _tally_json(tally: Tally, shown: Shown) -> dict[str, Any]:
    return {
        "entries": tally.entries,
        "seconds": tally.seconds,
        "minutes": str(shown.minutes),
        "hours": str(shown.hours),
    }


def _entry_json(entry: StatementEntry, descriptions: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "work_date": entry.work_date.isoformat(),
        "source": entry.source,
        "task": entry.task,
        "container": entry.container,
        "code": entry.code,
        "code_name": entry.code_name,
        "client": entry.client,
        "not_coded_reason": entry.not_coded_reason,
        "seconds": entry.seconds,
        "minutes": format_minutes(entry.seconds),
        "hours": format_hours(entry.seconds),
    }
    if descriptions:
        payload["description"] = entry.description
    return payload


def _statement_json(statement: Statement) -> dict[str, Any]:
    period = statement.period
    return {
        "statement": {
            "contractor": statement.contractor,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat(), "label": period.label},
            "report": statement.report_name,
        },
        "totals": {
            **_tally_json(statement.total, statement.shown_total),
            "coded": _tally_json(statement.coded, statement.shown_coded),
            "not_yet_coded": _tally_json(statement.not_yet_coded, statement.shown_not_yet_coded),
            "checks": {
                "total_equals_coded_plus_not_yet_coded": (
                    statement.total.seconds == statement.coded.seconds + statement.not_yet_coded.seconds
                ),
            },
        },
        "days": [
            {
                "work_date": day.work_date.isoformat(),
                "code": day.code,
                "code_name": day.code_name,
                "client": day.client,
                **_tally_json(day.tally, day.shown),
            }
            for day in statement.days
        ],
        "codes": [
            {
                "code": code.code,
                "code_name": code.code_name,
                "client": code.client,
                **_tally_json(code.tally, code.shown),
            }
            for code in statement.codes
        ],
        "not_yet_coded": {
            "totals": _tally_json(statement.not_yet_coded, statement.shown_not_yet_coded),
            "entries": [_entry_json(entry, statement.descriptions) for entry in statement.uncoded_entries],
        },
        "entries": [_entry_json(entry, statement.descriptions) for entry in statement.entries],
    }


def _bills_json(statement: Statement) -> list[dict[str, Any]]:
    return [
        {
            "sink": bill.sink,
            "number": bill.number,
            "bill_date": bill.bill_date.isoformat(),
            "billed_seconds": bill.billed_seconds,
            "logged_seconds": bill.logged_seconds,
            "matches": bill.matches,
            "findings": list(bill.findings),
            "verdict": bill.verdict,
        }
        for bill in statement.bills
    ]


def _render_json(statement: Statement) -> bytes:
    payload = _statement_json(statement)
    if statement.bills:
        payload["bills"] = _bills_json(statement)
    text = json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- files


def render_statement(statement: Statement, fmt: str, *, csv_bom: bool = True) -> bytes:
    """One statement as the bytes of its ``csv``, ``xlsx`` or ``json`` file (what the files hold, for a download)."""
    return _render(statement, fmt, csv_bom=csv_bom)


def _render(statement: Statement, fmt: str, *, csv_bom: bool) -> bytes:
    if fmt == "csv":
        return render_csv(_csv_table(statement), bom=csv_bom)
    if fmt == "xlsx":
        return _render_xlsx(statement)
    return _render_json(statement)


def statement_folder(folder: Path, period: Period) -> Path:
    """Where the statements of ``period`` live under an output folder."""
    return Path(folder) / STATEMENTS_FOLDER / period.label


def _remove_stale(target: Path, keep: set[str]) -> tuple[Path, ...]:
    if not target.is_dir():
        return ()
    removed: list[Path] = []
    for path in sorted(target.iterdir()):
        if _STATEMENT_FILE_RE.fullmatch(path.name) and path.stem not in keep and not path.is_dir():
            path.unlink(missing_ok=True)
            removed.append(path)
    return tuple(removed)


def write_statement_files(
    period: Period,
    statements: Sequence[Statement],
    folder: Path,
    formats: Sequence[str] = FORMATS,
    *,
    prune: bool = True,
    file_mode: int = DEFAULT_FILE_PERMISSIONS,
    csv_bom: bool = True,
) -> WrittenStatements:
    """Write ``<folder>/statements/<period label>/<slug>.<ext>`` for every statement, atomically.

    With ``prune`` (``statements`` is then every statement of the period), statement files of
    contractors who no longer have entries in the period are removed; other files are never touched.
    An unchanged statement keeps its file as it was (same inode, same mtime). Every file gets
    exactly ``file_mode``; CSV files start with a UTF-8 BOM unless ``csv_bom`` is off.
    """
    chosen = normalise_formats(formats)
    slugs = [statement.slug for statement in statements]
    if len(set(slugs)) != len(slugs):
        raise ValueError("statements share a file name; pass statements built together by build_statements")
    for statement in statements:
        if statement.period != period:
            raise ValueError(f"statement of {statement.contractor} is for {statement.period.label}, not {period.label}")
    target = statement_folder(folder, period)
    outputs = [(f"{s.slug}.{fmt}", _render(s, fmt, csv_bom=csv_bom)) for s in statements for fmt in chosen]
    changed = write_files(target, outputs, mode=file_mode) if outputs else ()
    removed = _remove_stale(target, set(slugs)) if prune else ()
    return WrittenStatements(
        period=period,
        folder=target,
        files=tuple(target / name for name, _ in outputs),
        changed=changed,
        removed=removed,
    )


def write_statements(
    statements: Sequence[Statement], folder: Path, formats: Sequence[str] = FORMATS, *, prune: bool = True
) -> list[Path]:
    """Write every statement of one period under ``folder``; return their files (see write_statement_files)."""
    if not statements:
        return []
    return list(write_statement_files(statements[0].period, statements, folder, formats, prune=prune).files)
