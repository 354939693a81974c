"""The period report as rectangular tables (summary, entries, unmapped), shared by the CSV and XLSX writers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypeAlias

from sync.reporting.model import Report, ReportLine, Shown, Tally, round_half_up

__all__ = [
    "ENTRY_HEADERS",
    "SUMMARY_HEADERS",
    "UNMAPPED_HEADERS",
    "Cell",
    "Table",
    "entries_table",
    "summary_table",
    "unmapped_table",
]


Cell: TypeAlias = str | int | bool | Decimal | date | None


@dataclass(frozen=True, slots=True)
class Table:
    """One rectangular table shared by the CSV and XLSX writers."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    emphasis: tuple[bool, ...]  # per row: a subtotal or total, shown bold in XLSX


SUMMARY_HEADERS: tuple[str, ...] = (
    "period",
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
    "unmapped_hours",
    "billable_seconds",
    "nonbillable_seconds",
    "unmapped_seconds",
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
    period: str,
    level: str,
    tally: Tally,
    shown: Shown,
    *,
    cost_center: str = "",
    client: str = "",
    code: str = "",
    code_name: str = "",
    contractor: str = "",
    reason: str = "",
    detail: str = "",
) -> tuple[Cell, ...]:
    # Hours and minutes as rounded to add up (see Shown); seconds exact.
    return (
        period,
        level,
        cost_center,
        client,
        code,
        code_name,
        contractor,
        tally.entries,
        tally.seconds,
        shown.minutes,
        shown.hours,
        shown.billable_hours,
        shown.nonbillable_hours,
        shown.unmapped_hours,
        tally.billable_seconds,
        tally.nonbillable_seconds,
        tally.unmapped_seconds,
        reason,
        detail,
    )


def summary_table(report: Report) -> Table:
    """The summary tree, one row per contractor, code, cost center and unmapped reason, and the totals.

    Every row names its period (finance tools import many months into one sheet). Unmapped time
    has its own rows and its own column: it is never counted as non-billable.
    """
    rows: list[tuple[Cell, ...]] = []
    emphasis: list[bool] = []
    period = report.period.label

    def add(row: tuple[Cell, ...], strong: bool) -> None:
        rows.append(row)
        emphasis.append(strong)

    for cc in report.cost_centers:
        for code in cc.codes:
            where = {"cost_center": cc.cost_center, "client": code.client, "code": code.code}
            for person in code.contractors:
                add(
                    _summary_row(
                        period,
                        "contractor",
                        person.tally,
                        person.shown,
                        code_name=code.code_name,
                        contractor=person.contractor,
                        **where,
                    ),
                    False,
                )
            add(_summary_row(period, "code", code.tally, code.shown, code_name=code.code_name, **where), True)
        add(
            _summary_row(period, "cost_center", cc.tally, cc.shown, cost_center=cc.cost_center, client=cc.client),
            True,
        )
    add(_summary_row(period, "mapped_total", report.mapped, report.shown_mapped), True)
    for group in report.unmapped:
        add(
            _summary_row(period, "unmapped", group.tally, group.shown, reason=group.reason, detail=group.detail),
            False,
        )
    add(_summary_row(period, "unmapped_total", report.unmapped_total, report.shown_unmapped), True)
    add(_summary_row(period, "total", report.total, report.shown_total), True)
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
        round_half_up(line.seconds, 60),
        round_half_up(line.seconds, 3600),
        line.rule_id,
        line.unmapped_reason,
        line.unmapped_detail,
        line.task,
        line.container,
        line.description,
        line.version,
    )


def entries_table(report: Report) -> Table:
    rows = tuple(_entry_row(line) for line in report.lines)
    return Table(ENTRY_HEADERS, rows, (False,) * len(rows))


def unmapped_table(report: Report) -> Table:
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
            round_half_up(line.seconds, 60),
            round_half_up(line.seconds, 3600),
            line.task,
            line.container,
            line.description,
            line.version,
        )
        for group in report.unmapped
        for line in group.lines
    )
    return Table(UNMAPPED_HEADERS, rows, (False,) * len(rows))
