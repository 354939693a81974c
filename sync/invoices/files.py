"""The ``invoice-check-<period>`` report: CSV, XLSX and JSON beside the period reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sync.invoices.check import check_json
from sync.invoices.match import InvoiceCheck
from sync.reporting.model import Period, round_half_up
from sync.reporting.output import write_files
from sync.reporting.render import FORMATS, normalise_formats, render_csv, render_workbook
from sync.reporting.tables import Cell, Table

CONTRACTOR_HEADERS: tuple[str, ...] = (
    "row",
    "contractor",
    "code",
    "bill",
    "sink",
    "number",
    "bill_date",
    "billed_hours",
    "logged_hours",
    "difference_hours",
    "verdict",
)
FINDING_HEADERS: tuple[str, ...] = (
    "kind",
    "contractor",
    "code",
    "bill",
    "billed_hours",
    "logged_hours",
    "difference_hours",
    "detail",
)


def report_name(period: Period) -> str:
    return f"invoice-check-{period.label}"


def _hours(seconds: int) -> Cell:
    return round_half_up(seconds, 3600)


def contractor_table(check: InvoiceCheck) -> Table:
    """A row per contractor (billed, logged, difference, verdict), then their codes and bills."""
    rows: list[tuple[Cell, ...]] = []
    emphasis: list[bool] = []
    for c in check.contractors:
        rows.append(
            (
                "contractor",
                c.contractor,
                None,
                None,
                None,
                None,
                None,
                _hours(c.billed_seconds),
                _hours(c.logged_seconds),
                _hours(c.difference_seconds),
                c.verdict,
            )
        )
        emphasis.append(True)
        for code in c.codes:
            verdict = "outside tolerance" if any(f.code == code.code and f.bill is None for f in c.findings) else ""
            rows.append(
                (
                    "code",
                    c.contractor,
                    code.code,
                    None,
                    None,
                    None,
                    None,
                    _hours(code.billed_seconds),
                    _hours(code.logged_seconds),
                    _hours(code.difference_seconds),
                    verdict or ("matches" if c.bills else ""),
                )
            )
            emphasis.append(False)
        for bill in c.bills:
            rows.append(
                (
                    "bill",
                    c.contractor,
                    None,
                    bill.key,
                    bill.sink,
                    bill.number,
                    bill.bill_date,
                    _hours(bill.billed_seconds),
                    _hours(bill.logged_seconds),
                    _hours(bill.billed_seconds - bill.logged_seconds),
                    "matches" if bill.matches else "outside tolerance: " + ", ".join(bill.findings),
                )
            )
            emphasis.append(False)
    return Table(CONTRACTOR_HEADERS, tuple(rows), tuple(emphasis))


def findings_table(check: InvoiceCheck) -> Table:
    rows = tuple(
        (
            f.kind,
            f.contractor,
            f.code,
            f.bill,
            _hours(f.billed_seconds),
            _hours(f.logged_seconds),
            _hours(f.difference_seconds),
            f.detail,
        )
        for f in check.findings
    )
    return Table(FINDING_HEADERS, rows, tuple(False for _ in rows))


def render_check(check: InvoiceCheck, period: Period, fmt: str, extra: dict[str, Any]) -> list[tuple[str, bytes]]:
    name = report_name(period)
    if fmt == "csv":
        # The CSV is the contractors' table; the findings get a file of their own.
        return [
            (f"{name}.csv", render_csv(contractor_table(check))),
            (f"{name}-findings.csv", render_csv(findings_table(check))),
        ]
    if fmt == "xlsx":
        sheets = [("Contractors", contractor_table(check)), ("Findings", findings_table(check))]
        return [(f"{name}.xlsx", render_workbook(sheets, title=f"Invoice check {period.label}", period=period))]
    body = {"report": name, "period_label": period.label, **check_json(check, **extra)}
    return [(f"{name}.json", (json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))]


def write_check(
    check: InvoiceCheck,
    period: Period,
    folder: Path,
    formats: Sequence[str] = FORMATS,
    *,
    other_bills: int = 0,
    sinks: Sequence[str] = (),
) -> list[Path]:
    """Write the check's report files into ``folder`` (atomically; unchanged files are left alone)."""
    outputs = [
        item
        for fmt in normalise_formats(formats)
        for item in render_check(check, period, fmt, {"other_bills": other_bills, "sinks": sinks})
    ]
    write_files(Path(folder), outputs)
    return [Path(folder) / name for name, _ in outputs]
