"""The `hourbridge` command line (Typer; Rich progress on long work, JSON logs when not on a terminal)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from connectors.errors import ConfigError
from sync.cli.connect import register as register_connect_commands
from sync.cli.console import register as register_console_command
from sync.cli.db import register as register_db_commands
from sync.cli.delivery import print_deliveries, print_reconciliation
from sync.cli.delivery import register as register_delivery_commands
from sync.cli.imports import register as register_import_commands
from sync.cli.invoices import register as register_invoice_commands
from sync.cli.mappings import register as register_mapping_commands
from sync.cli.ops import register as register_ops_commands
from sync.cli.progress import progress_bars
from sync.cli.sandbox import register as register_sandbox_command
from sync.cli.shared import (
    admin_errors,
    command_settings,
    err,
    installed_version,
    out,
    parse_period,
    print_files,
    say,
    secrets_dir,
    warn_unknown_variables,
)
from sync.cli.statements import register as register_statement_commands
from sync.logging import configure_logging
from sync.settings import describe_settings, load_settings

app = typer.Typer(
    name="hourbridge",
    help="Pull native time tracking from PM tools, map it to project codes, and report it to accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
mappings_app = typer.Typer(help="Check the mapping document.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the state store.", no_args_is_help=True)
app.add_typer(mappings_app, name="mappings")
app.add_typer(db_app, name="db")

_settings = command_settings


def _print_version(value: bool) -> None:
    if value:
        say(f"hourbridge {installed_version()}")
        raise typer.Exit()


@app.callback()
def _every_command(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the installed version and exit."),
    ] = False,
) -> None:
    """Pull native time tracking from PM tools, map it to project codes, and report it to accounting."""
    # Before any command: a mistyped variable (HOURBRIDGE_LOOKBAK_DAYS) is otherwise silently ignored.
    warn_unknown_variables()


def _parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of must be an ISO date or date-time, got {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _progress(enabled: bool) -> Any:
    """Progress bars on stderr when it is a terminal; nothing (logs only) in cron, systemd or CI."""
    return progress_bars(err, enabled)


# --------------------------------------------------------------------------- commands


@app.command()
@admin_errors
def sync(
    as_of: Annotated[str | None, typer.Option(help="Freeze 'now' for this run (ISO date or date-time).")] = None,
    reports: Annotated[bool, typer.Option(help="Write the reports of the months the run touched.")] = True,
    deliver: Annotated[bool, typer.Option(help="Deliver to the configured accounting sinks.")] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List every file written, not a count per folder.")
    ] = False,
) -> None:
    """Pull every configured source, update the ledger, map, deliver to accounting, and write the reports.

    SIGINT/SIGTERM: the window in progress finishes and commits, the run is recorded as interrupted
    and the command exits 130/143; a second signal abandons that window (rolled back, redone next run).
    """
    from sync.ops.schedule import StopFlag, exit_code, stop_on_signals
    from sync.run.context import RunInterrupted
    from sync.run.pipeline import run_sync

    settings = _settings()
    stop = StopFlag()
    try:
        with stop_on_signals(stop, announce=_announce_stop), _progress(True) as progress:
            result = run_sync(
                settings,
                as_of=_parse_as_of(as_of),
                progress=progress,
                write_reports=reports,
                deliver_to_sinks=deliver,
                should_stop=stop.is_set,
            )
    except KeyboardInterrupt as exc:
        name = stop.reason or str(exc) or "SIGINT"
        run = f"run {exc.run_id}" if isinstance(exc, RunInterrupted) else "the run"
        err.print(
            f"[bold yellow]interrupted[/] by {name}: {run} stopped in the middle of a window, which was rolled "
            "back; the next `hourbridge sync` redoes it from the cursors",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(exit_code(name)) from None
    if stop.reason is not None:
        err.print(
            f"[bold yellow]interrupted[/] by {stop.reason}: run {result.run_id} is recorded as interrupted after "
            "its current window; what it committed is kept and the next `hourbridge sync` resumes from the cursors",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(exit_code(stop.reason))
    if result.created_ledger is not None:
        err.print(
            f"[yellow]new ledger[/] created at {result.created_ledger} (HOURBRIDGE_DATABASE_URL)",
            highlight=False,
            soft_wrap=True,
        )
    _print_run(result, verbose=verbose)
    _print_run_hours(settings, result)
    if result.status != "ok":
        raise typer.Exit(1)


def _announce_stop(signal_name: str, again: bool) -> None:
    if again:
        message = f"abandoning the current window ({signal_name} again): it is rolled back"
    else:
        message = (
            f"stopping ({signal_name}): the current window finishes, then the run ends; {signal_name} again abandons it"
        )
    err.print(message, highlight=False, soft_wrap=True)


@app.command()
@admin_errors
def report(
    period: Annotated[str | None, typer.Option(help="Month to report, YYYY-MM (default: the current month).")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First work date (YYYY-MM-DD), with --to.")] = None,
    to: Annotated[str | None, typer.Option(help="Last work date (YYYY-MM-DD), with --from.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the files (default: output_dir).")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List every file written, not a count per folder.")
    ] = False,
) -> None:
    """Write the CSV / XLSX / JSON report of one period from the ledger."""
    from sync.reporting.lines import read_report_lines
    from sync.reporting.model import build_report, hours_that_add_up
    from sync.reporting.output import write_report
    from sync.run.preflight import require_writable_folder
    from sync.store.db import make_engine, require_current

    settings = _settings()
    chosen = parse_period(period, from_, to)
    require_writable_folder(out_dir or settings.output_dir, "--out" if out_dir else "HOURBRIDGE_OUTPUT_DIR")
    engine = make_engine(settings.database_url)
    require_current(engine)
    # Code names come from the revisions that mapped the entries: no mapping document is loaded.
    lines = read_report_lines(engine, chosen, drop_descriptions=settings.drop_descriptions)
    written = write_report(
        build_report(chosen, lines),
        out_dir or settings.output_dir,
        settings.report_formats,
        file_mode=settings.file_permissions,
        csv_bom=settings.csv_bom,
    )
    totals = written.totals
    hours, (mapped, unmapped) = hours_that_add_up([totals.mapped_seconds, totals.unmapped_seconds])
    out.print(
        f"[bold]{chosen.label}[/]: {totals.entries} entries, {hours} h: {mapped} h mapped, {unmapped} h unmapped "
        f"in {totals.unmapped_entries} entries"
    )
    print_files(written.files, verbose=verbose)


@mappings_app.command("check")
@admin_errors
def mappings_check(
    file: Annotated[Path | None, typer.Argument(help="Mapping document (default: HOURBRIDGE_MAPPINGS_FILE).")] = None,
) -> None:
    """Validate a mapping document; errors and warnings name the YAML line."""
    from mappings.check import check_document
    from mappings.loader import load_document

    path = file or load_settings().mappings_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    document = load_document(text, filename=str(path))
    findings = check_document(document)
    errors = [f for f in findings if f.level == "error"]
    for finding in findings:
        where = f"{path} line {finding.line}" if finding.line else str(path)
        colour = "red" if finding.level == "error" else "yellow"
        out.print(f"[{colour}]{finding.level}[/] {where}: {finding.message}", highlight=False, soft_wrap=True)
    summary = f"{len(document.codes)} codes, {len(document.people)} people, {len(document.rules)} rules"
    if errors:
        out.print(f"[red]{path}: {len(errors)} error(s)[/] ({summary})")
        raise typer.Exit(2)
    out.print(f"[green]{path}: valid[/] ({summary}; {len(findings)} warning(s))")


@db_app.command("upgrade")
@admin_errors
def db_upgrade() -> None:
    """Create or migrate the state store to the newest schema."""
    from sync.store.db import current_revision, make_engine, sqlite_file, store_revision, upgrade

    settings = _settings()
    engine = make_engine(settings.database_url, file_mode=settings.file_permissions)
    path = sqlite_file(engine)
    created = path is not None and not path.exists()
    try:
        before = store_revision(engine, create=True)  # unreachable, unknown database, too new: exit 2
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    out.print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    if created:
        out.print(f"new ledger created at {path}", highlight=False, soft_wrap=True)


@app.command()
@admin_errors
def status(json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Last runs, cursors, entries and unmapped hours, deliveries and closed months."""
    from sync.delivery import periods
    from sync.store import ledger
    from sync.store.db import make_engine, require_current
    from sync.store.invoices import invoice_summary
    from sync.store.outbox import outbox_summary
    from sync.store.runs import recent_runs

    settings = load_settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    with engine.connect() as conn:
        runs = recent_runs(conn, 5, now=datetime.now(UTC), after=settings.run_abandoned_after)
        cursors = ledger.all_cursors(conn)
        totals = ledger.ledger_totals(conn)
        deliveries = outbox_summary(conn)
        closed = sorted(periods.closed(conn).labels)
        checks = invoice_summary(conn)
    if json_output:
        payload = {"runs": runs, "cursors": cursors, "ledger": totals, "deliveries": deliveries, "closed": closed}
        payload["invoices"] = checks
        sys.stdout.write(json.dumps(payload, default=str, sort_keys=True, indent=2) + "\n")
        return
    table = Table(title="Last runs")
    for column in ("run", "status", "as of", "started", "finished", "errors"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            str(run["id"]),
            run["status"],
            str(run["as_of"])[:19],
            str(run["started_at"])[:19],
            str(run["finished_at"] or "")[:19],
            str(len(run["errors"] or [])),
        )
    out.print(table)
    for cursor in cursors:
        out.print(f"{cursor['source']}:{cursor['account']} scanned through {cursor['scanned_through']}")
    out.print(
        f"ledger: {totals['entries']} live entries, {_hours(totals['seconds'])} h; "
        f"unmapped: {totals['unmapped_entries']} entries, {_hours(totals['unmapped_seconds'])} h"
    )
    for sink, info in sorted(deliveries.items()):
        states = ", ".join(f"{state} {count}" for state, count in sorted(info["ops"].items()))
        out.print(f"{sink}: {info['lines']} lines held; ops: {states}", highlight=False)
        for failure in info["failures"]:
            out.print(f"  [red]failed[/] {failure['op']} {failure['line']}: {failure['error']}", highlight=False)
    out.print("closed months: " + (", ".join(closed) or "none"))
    for check in checks:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(check["by_kind"].items()))
        say(
            f"invoice check {check['period']} ({str(check['checked_at'])[:19]}): {check['bills_checked']} bills "
            f"checked, {check['findings']} findings" + (f" ({kinds})" if kinds else "")
        )


@app.command()
@admin_errors
def config(
    effective: Annotated[
        bool,
        typer.Option("--effective", help="Values in effect (secrets masked); sources and sinks on."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output (with --effective).")] = False,
) -> None:
    """Every setting with its environment variable and default; --effective shows the values in effect."""
    from sync.settings_env import setting_fields

    if effective:
        _print_effective(json_output)
        return
    required = {f.env for f in setting_fields() if f.field.is_required()}
    table = Table(title="Settings (environment variables; secrets may also come from files)")
    table.add_column("variable")
    table.add_column("default")
    table.add_column("meaning")
    for env, default, description in describe_settings():
        table.add_row(env, "[bold]required[/]" if env in required else default, description)
    out.print(table)


def _print_effective(json_output: bool) -> None:
    import os

    from sync.settings_env import effective_settings

    values, on_off = effective_settings(load_settings(), os.environ, secrets_dir())
    if json_output:
        payload = {"settings": {v.env: {"value": v.value, "origin": v.origin} for v in values}, **on_off}
        sys.stdout.write(json.dumps(payload, sort_keys=True, indent=2) + "\n")
        return
    table = Table(title="Settings in effect (secrets masked)")
    for column in ("variable", "value", "from"):
        table.add_column(column)
    for value in values:
        table.add_row(value.env, value.value, value.origin)
    out.print(table)
    for label, names in on_off.items():
        out.print(f"{label}: {', '.join(names) or 'none'}", highlight=False)


@app.command()
@admin_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the database and reports.")] = Path("out"),
    as_of: Annotated[str | None, typer.Option(help="Freeze 'now' (ISO date); the data set ends on this day.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sandbox data set.")] = 7,
    entries: Annotated[int | None, typer.Option(help="Number of sandbox entries (default: the seed's own).")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List every file written, not a count per folder.")
    ] = False,
) -> None:
    """Run the whole job end to end against local sandbox APIs: sync, map, deliver, report, reconcile."""
    from sync.ops.demo import run_demo

    configure_logging("console" if err.is_terminal else "json", "WARNING")
    with _progress(True) as progress:
        summary = run_demo(out_dir, as_of=_parse_as_of(as_of), seed=seed, entries=entries, progress=progress)
    table = Table(title="hourbridge demo")
    table.add_column("check")
    table.add_column("value", justify="right")
    for label, value in summary.rows():
        table.add_row(label, value)
    out.print(table)
    say("Reports and contractor statements:")
    print_files(summary.files, verbose=verbose)
    if summary.invoice_check is not None:
        # The demo's bills are off on purpose in a few known ways: show what the check found.
        for finding in summary.invoice_check.run.check.findings:
            say(f"invoice check: {finding.kind}: {finding.contractor}: {finding.detail}")
    for reconciliation in summary.reconciliations:
        if not reconciliation.ok:
            print_reconciliation(reconciliation)
    if not summary.reconciled:
        err.print("[bold red]the demo does not reconcile: see the differences above[/]")
        raise typer.Exit(1)
    out.print(
        "[green]reconciled to the minute[/]: sandbox minutes = ledger minutes = report minutes, and every "
        "month's QuickBooks and Xero records = the lines they should hold (`hourbridge reconcile`)"
    )
    for line in summary.explore():
        say(line)


def _hours(seconds: int) -> str:
    from sync.reporting.model import format_hours

    return format_hours(seconds)


def _print_run(result: Any, *, verbose: bool = False) -> None:
    table = Table(title=f"Run {result.run_id} ({result.status}), as of {result.as_of:%Y-%m-%d %H:%M} UTC")
    for column in ("scope", "window", "seen", "new", "changed", "deleted", "unchanged", "error"):
        table.add_column(column)
    for scope in result.scopes:
        window = f"{scope.window.start}..{scope.window.end}" if scope.window else ""
        c = scope.counts
        table.add_row(
            f"{scope.source}:{scope.name or scope.account}",
            window,
            str(c.seen),
            str(c.created),
            str(c.updated + c.restored),
            str(c.deleted),
            str(c.unchanged),
            scope.error or "",
        )
    out.print(table)
    for error in result.errors:
        err.print(f"[red]error[/] {error.source or ''} {error.message}", highlight=False, soft_wrap=True)
    print_deliveries(result.deliveries)
    if result.reports:
        say("reports: " + ", ".join(written.period.label for written in result.reports))
        print_files((path for written in result.reports for path in written.files), verbose=verbose)


def _print_run_hours(settings: Any, result: Any) -> None:
    """Mapped and unmapped hours of the work dates the run scanned (the whole ledger when it scanned none)."""
    from sync.reporting.model import hours_that_add_up
    from sync.store.db import make_engine
    from sync.store.ledger import ledger_totals

    windows = [scope.window for scope in result.scopes if scope.window is not None]
    start = min((w.start for w in windows), default=None)
    end = max((w.end for w in windows), default=None)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            totals = ledger_totals(conn, start, end)
    finally:
        engine.dispose()
    scope = f"work dates {start}..{end}" if start is not None else "the whole ledger"
    hours, (mapped, unmapped) = hours_that_add_up(
        [totals["seconds"] - totals["unmapped_seconds"], totals["unmapped_seconds"]]
    )
    say(
        f"hours in {scope}: {hours} h in {totals['entries']} entries; "
        f"{mapped} h mapped, {unmapped} h unmapped in "
        f"{totals['unmapped_entries']} entries"
        + (" (`hourbridge unmapped` lists them)" if totals["unmapped_entries"] else "")
    )


register_ops_commands(app)
register_mapping_commands(app, mappings_app)
register_delivery_commands(app)
register_connect_commands(app)
register_statement_commands(app)
register_invoice_commands(app)
register_import_commands(app)
register_console_command(app)
register_db_commands(db_app)
register_sandbox_command(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
