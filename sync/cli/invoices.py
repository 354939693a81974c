"""The `invoices` commands of the CLI: check contractors' bills in accounting against the hours they logged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import parse_period

invoices_app = typer.Typer(
    help="Check contractors' bills (QuickBooks Bills, Xero ACCPAY) against the hours they logged.",
    no_args_is_help=True,
)


@invoices_app.command("check")
@_admin_errors
def check(
    period: Annotated[str | None, typer.Option(help="Month, YYYY-MM (default: the current month).")] = None,
    contractor: Annotated[
        str | None, typer.Option(help="Only this contractor (any letter case); default: everyone.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare each contractor's bills with their logged hours per code; exit 1 when anything is outside tolerance."""
    from sync.cli.shared import out, say
    from sync.invoices.check import check_json
    from sync.invoices.stage import check_period
    from sync.reporting.model import format_hours
    from sync.run.factory import build_sinks
    from sync.store.db import make_engine, require_current

    settings = _settings()
    chosen = parse_period(period, None, None)
    engine = make_engine(settings.database_url)
    require_current(engine)
    sinks = build_sinks(settings, engine)
    try:
        done = check_period(settings, engine, sinks, chosen, now=datetime.now(UTC), contractor=contractor)
    finally:
        for sink in sinks.values():
            sink.close()
    result = done.run.check
    if json_output:
        payload = {
            "period_label": chosen.label,
            **check_json(result, other_bills=done.run.other_bills, sinks=done.run.sinks),
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        table = Table(title=f"Invoice check {chosen.label}")
        table.add_column("contractor")
        for column in ("bills", "billed h", "logged h", "difference h"):
            table.add_column(column, justify="right")
        table.add_column("verdict")
        for row in result.contractors:
            difference = row.difference_seconds
            table.add_row(
                escape(row.contractor),
                str(len(row.bills)),
                format_hours(row.billed_seconds),
                format_hours(row.logged_seconds),
                ("+" if difference > 0 else "-" if difference < 0 else "") + format_hours(abs(difference)),
                row.verdict,
            )
        out.print(table)
        for finding in result.findings:
            say(f"  {finding.kind}: {finding.contractor}: {finding.detail}")
        sinks_read = ", ".join(done.run.sinks) or "none (no configured sink reads bills)"
        say(
            f"{result.bills_checked} bill(s) checked from {sinks_read}; {len(result.findings)} finding(s); "
            f"{done.run.other_bills} bill(s) from vendors who are no contractor left aside"
        )
        for path in done.files[:1]:
            say(f"report: {path.parent}")
    if result.findings:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `invoices` to the `hourbridge` app."""
    app.add_typer(invoices_app, name="invoices")
