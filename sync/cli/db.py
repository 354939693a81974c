"""The `db copy` command: move the whole ledger into another, empty database and verify it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sync.cli.shared import admin_errors, command_settings, err, out, say


def register(db_app: typer.Typer) -> None:
    db_app.command("copy")(copy)


@admin_errors
def copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="URL of the empty database to copy the ledger into (sqlite:///path or postgresql+psycopg://…).",
        ),
    ],
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows read and written per batch.")] = 1000,
) -> None:
    """Copy every table of the ledger (HOURBRIDGE_DATABASE_URL) into an empty database, then verify it.

    The target is migrated first when it is new; a target that already holds rows is refused.
    Stop every sync, worker and schedule before copying, and point HOURBRIDGE_DATABASE_URL at the
    copy afterwards.
    """
    from sync.cli.progress import progress_bars
    from sync.store.copy import copy_ledger, row_counts
    from sync.store.db import make_engine, require_current

    settings = command_settings()
    source = make_engine(settings.database_url)
    target = make_engine(to, file_mode=settings.file_permissions)
    try:
        require_current(source)
        with progress_bars(err, unit="rows", totals=row_counts(source)) as bars:
            results = copy_ledger(source, target, batch=batch, progress=bars)
    finally:
        source.dispose()
        target.dispose()
    table = Table(title="Ledger copy")
    for column in ("table", "source rows", "target rows", "content"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.table, str(result.source_rows), str(result.target_rows), "same" if result.same_content else "DIFFERS"
        )
    out.print(table)
    total = sum(r.target_rows for r in results)
    if not all(r.ok for r in results):
        bad = ", ".join(r.table for r in results if not r.ok)
        say(f"error: the copy does not match the ledger in {bad}; do not switch to it")
        raise typer.Exit(1)
    say(f"copied {total} rows in {len(results)} tables; every table verified (row counts and content)")
