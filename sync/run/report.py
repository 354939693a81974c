"""The report stage: rewrite the files (reports and contractor statements) of the open months among those given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sync.delivery import periods
from sync.reporting.files import FileDelivery, FileSink
from sync.reporting.lines import report_lines
from sync.reporting.model import Period
from sync.reporting.statements import statement_bills
from sync.run.context import RunContext
from sync.store import invoices


@dataclass(frozen=True, slots=True)
class ReportResult:
    """The files of each open month written (or found unchanged) by the stage."""

    files: tuple[FileDelivery, ...]


def report(context: RunContext, months: Sequence[Period]) -> ReportResult:
    """The files of each open month in ``months``, rewritten only where their content changed.

    A closed month's files stay as they were when it closed; later changes to it show as
    adjustments in the first open month.
    """
    settings = context.settings
    sink = FileSink.from_settings(settings)
    written: list[FileDelivery] = []
    with context.engine.connect() as conn:
        closed = periods.closed(conn)
        for period in months:
            if closed.is_closed(period.label):
                continue
            lines = report_lines(conn, period, drop_descriptions=settings.drop_descriptions)
            # Each contractor's statement carries their bills as the period's latest invoice check saw them.
            bills = statement_bills(check.result for check in invoices.checks_of(conn, period.label))
            written.append(
                sink.write_period(
                    period, lines, formats=settings.report_formats, statements=settings.statements, bills=bills
                )
            )
    return ReportResult(tuple(written))
