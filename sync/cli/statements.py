"""The `statement` command of the CLI: each contractor's own hours in one period, for checking invoices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectors.errors import HourbridgeError
from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import parse_period


@_admin_errors
def statement(
    period: Annotated[str | None, typer.Option(help="Month, YYYY-MM (default: the current month).")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First work date (YYYY-MM-DD), with --to.")] = None,
    to: Annotated[str | None, typer.Option(help="Last work date (YYYY-MM-DD), with --from.")] = None,
    contractor: Annotated[
        str | None,
        typer.Option(help="Only this contractor (letter case and accents ignored); default: everyone with hours."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder (default: output_dir); files go to statements/<period>/.")
    ] = None,
) -> None:
    """Write each contractor's statement of one period: their own hours by code and day, nothing else."""
    from sync.cli.shared import out
    from sync.reporting.lines import read_report_lines
    from sync.reporting.model import format_hours
    from sync.reporting.statement_files import write_statement_files
    from sync.reporting.statements import build_statements, find_statements, statement_bills
    from sync.store import invoices
    from sync.store.db import make_engine, require_current

    settings = _settings()
    chosen = parse_period(period, from_, to)
    engine = make_engine(settings.database_url)
    require_current(engine)
    # Code names come from the revisions that mapped the entries: no mapping document is loaded.
    lines = read_report_lines(engine, chosen, drop_descriptions=settings.drop_descriptions)
    with engine.connect() as conn:
        bills = statement_bills(check.result for check in invoices.checks_of(conn, chosen.label))
    statements = build_statements(chosen, lines, descriptions=not settings.drop_descriptions, bills=bills)
    if contractor is not None:
        statements = find_statements(statements, contractor)
        if not statements:
            # Say nothing about who does have hours: the command may be run on a contractor's behalf.
            raise HourbridgeError(f"no hours for {contractor.strip()} in {chosen.label}")
    # Everyone's statements: files of contractors without hours any more are removed. One contractor's:
    # only theirs is written, the others stay as they are.
    written = write_statement_files(
        chosen,
        statements,
        out_dir or settings.output_dir,
        settings.report_formats,
        prune=contractor is None,
        file_mode=settings.file_permissions,
        csv_bom=settings.csv_bom,
    )

    table = Table(title=f"Statements {chosen.label}")
    table.add_column("contractor")
    for column in ("entries", "hours", "not yet coded"):
        table.add_column(column, justify="right")
    for item in statements:
        table.add_row(
            escape(item.contractor),
            str(item.total.entries),
            format_hours(item.total.seconds),
            format_hours(item.not_yet_coded.seconds),
        )
    out.print(table)
    out.print(
        f"{escape(str(written.folder))}: {len(written.files)} file(s), {len(written.changed)} changed",
        highlight=False,
        soft_wrap=True,
    )
    for path in written.removed:
        out.print(f"  removed {escape(str(path))}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `statement` to the `hourbridge` app."""
    app.command()(statement)
