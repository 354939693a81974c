"""`hourbridge import FILE…`: contractors' tracker exports and timesheets into the ledger.

Exit status: 0 imported (or, with --dry-run, checked); 1 when a file was rejected (every problem is
printed by line and column, and nothing of any file was written); 2 when an option or setting is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.markup import escape
from rich.table import Table

from sync.cli.shared import admin_errors, command_settings, err, out, say


@admin_errors
def import_files(
    files: Annotated[list[Path], typer.Argument(help="CSV or XLSX files (first sheet), read and checked whole.")],
    format: Annotated[
        str, typer.Option("--format", help="auto (from the header), clockify, toggl, harvest or timesheet.")
    ] = "auto",
    contractor: Annotated[
        str | None,
        typer.Option(help="Email of the contractor whose time the files hold (needed where they name no email)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Zone of the files' start/end times (default HOURBRIDGE_IMPORT_TIMEZONE).")
    ] = None,
    date_order: Annotated[
        str | None, typer.Option(help="mdy or dmy, when every date reads both ways (04/05/2024).")
    ] = None,
    decimal: Annotated[str | None, typer.Option(help="comma or dot, when every number reads both ways.")] = None,
    encoding: Annotated[
        str | None, typer.Option(help="Encoding of a CSV without a byte-order mark that is not UTF-8 (cp1252).")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="First date the files are complete for, YYYY-MM-DD (default: each file's first)."),
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Last date the files are complete for, with --from (default: each file's last).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count what would change; write nothing.")
    ] = False,
) -> None:
    """Import Clockify, Toggl Track or Harvest exports or hourbridge timesheets: each file replaces the
    (contractor, dates) slices it covers; re-importing the same file writes nothing."""
    from connectors.imports.config import Format
    from sync.reporting.model import format_hours
    from sync.run.imports import FilesRejected, import_options, run_import

    settings = command_settings()
    options = import_options(
        settings,
        contractor=contractor,
        timezone=timezone,
        date_order=date_order,
        decimal_mark=decimal,
        encoding=encoding,
        first=from_,
        last=to,
    )
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        from connectors.errors import ConfigError

        raise ConfigError(f"no such file: {', '.join(missing)}")
    try:
        result = run_import(settings, files, format=cast(Format, format), options=options, dry_run=dry_run)
    except FilesRejected as exc:
        for rejected in exc.rejected:
            err.print(f"[bold red]rejected:[/] {escape(rejected.file)} (nothing was written)", highlight=False)
            for problem in rejected.problems:
                err.print(f"  {escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    table = Table(title="Import (dry run: nothing written)" if dry_run else "Import")
    for column in ("file", "format", "rows", "hours", "dates", "created", "updated", "deleted", "unchanged"):
        table.add_column(column, justify="right" if column not in ("file", "format", "dates") else "left")
    for item in result.files:
        window = item.file.window
        counts = item.counts
        table.add_row(
            escape(item.file.path.name),
            item.file.source,
            str(len(item.file.entries)),
            format_hours(item.file.seconds),
            f"{window.start} .. {window.end}" if window else "",
            str(counts.created),
            str(counts.updated),
            str(counts.deleted),
            str(counts.unchanged),
        )
    out.print(table)
    for item in result.files:
        for reason, count in sorted(item.file.skipped.items()):
            say(f"{item.file.path.name}: {count} {reason} left out")
    if dry_run:
        say(f"dry run: {result.versions_written} version(s) would be written")
    else:
        say(f"run {result.run_id}: {result.versions_written} version(s) written; `hourbridge sync` delivers them")


def register(app: typer.Typer) -> None:
    """Add `import` to the `hourbridge` app."""
    app.command(name="import")(import_files)
