"""The invoice check as one step for the CLI, the worker and the demo: check, store, write the report and statements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from connectors.base import Sink
from sync.admin.revisions import choose_mapping
from sync.delivery import periods
from sync.invoices.check import CheckRun, run_check
from sync.invoices.files import write_check
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period
from sync.reporting.statement_files import write_statement_files
from sync.reporting.statements import build_statements, statement_bills
from sync.settings import Settings
from sync.store import invoices


@dataclass(frozen=True, slots=True)
class CheckedPeriod:
    """A check run and stored, with the files it wrote (its report, and the statements it refreshed)."""

    run: CheckRun
    files: tuple[Path, ...]


def check_period(
    settings: Settings,
    engine: Engine,
    sinks: Mapping[str, Sink],
    period: Period,
    *,
    now: datetime,
    contractor: str | None = None,
    folder: Path | None = None,
) -> CheckedPeriod:
    """Check ``period``'s bills, store the result, write ``invoice-check-<period>`` and refresh the statements.

    The mapping document is the one a run would use (the settings' file, else the stored revision).
    Statements are rewritten only when ``settings.statements`` is on and the month is open (a closed
    month's files stay as they were when it closed): each gets a line per bill.
    """
    document = choose_mapping(settings, engine).document
    run = run_check(engine, document, sinks, period, settings=settings.invoices, now=now, contractor=contractor)
    target = folder or settings.output_dir
    files = write_check(
        run.check, period, target, settings.report_formats, other_bills=run.other_bills, sinks=run.sinks
    )
    with engine.connect() as conn:
        closed = periods.closed(conn).is_closed(period.label)
    if settings.statements and not closed:
        lines = read_report_lines(engine, period, drop_descriptions=settings.drop_descriptions)
        with engine.connect() as conn:
            bills = statement_bills(check.result for check in invoices.checks_of(conn, period.label))
        built = build_statements(period, lines, descriptions=not settings.drop_descriptions, bills=bills)
        if contractor is not None:
            wanted = contractor.strip().casefold()
            built = [s for s in built if s.contractor.casefold() == wanted]
        written = write_statement_files(period, built, target, settings.report_formats, prune=contractor is None)
        files.extend(written.files)
    return CheckedPeriod(run, tuple(files))
