"""Delivery commands of the CLI: `deliver`, `reconcile` and `periods close|reopen|list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import err, out

periods_app = typer.Typer(help="Close and reopen accounting months.", no_args_is_help=True)
MonthArgument = Annotated[str | None, typer.Argument(help="The month, YYYY-MM (or give it as --period).")]
PeriodOption = Annotated[str | None, typer.Option("--period", help="The month, YYYY-MM (instead of MONTH).")]


def _one_month(month: str | None, period: str | None) -> str:
    """The month named by the MONTH argument or by --period (the spelling every other command uses)."""
    from connectors.errors import ConfigError

    if month is not None and period is not None and month != period:
        raise ConfigError(f"give the month once: MONTH {month} and --period {period} disagree")
    chosen = month or period
    if chosen is None:
        raise ConfigError("which month? give it as MONTH or --period YYYY-MM")
    return chosen


def _who(by: str | None) -> str:
    from sync.admin.revisions import default_author

    return by or default_author()


def _minutes(seconds: int) -> str:
    from sync.reporting.model import format_minutes

    return format_minutes(seconds)


@_admin_errors
def deliver(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the ops the plan would send; send nothing.")] = False,
    month: Annotated[
        list[str] | None,
        typer.Option(
            "--period", "--month", help="Months to plan (YYYY-MM; repeatable; --month is the old name). Default: all."
        ),
    ] = None,
) -> None:
    """Bring every configured sink to the desired state of the ledger, without pulling the sources.

    Exits 1 when a sink failed or left a line refused or unanswered, as `sync` does, with one line per sink.
    """
    from sync.ops.admin import deliver_now
    from sync.store.db import make_engine, require_current

    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    done = deliver_now(settings, engine, month or (), dry_run=dry_run)
    if not done.sinks:
        out.print("no accounting sink is configured (HOURBRIDGE_QUICKBOOKS__… or HOURBRIDGE_XERO__…)")
        return
    for name, plan in done.plans.items():
        _print_plan(name, plan)
    print_deliveries(done.results)
    for name, message in done.errors.items():
        out.print(f"[red]{name}[/] {message}", highlight=False, soft_wrap=True)
    incomplete = done.incomplete()
    for line in incomplete:
        err.print(f"[bold red]deliver:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if incomplete:
        raise typer.Exit(1)


def _print_plan(name: str, plan: Any) -> None:
    table = Table(title=f"{name}: {len(plan.ops)} ops planned (dry run, nothing sent)")
    for column in ("op", "line", "work date", "person", "code", "minutes"):
        table.add_column(column)
    for op in plan.ops[:200]:
        line = op.line
        table.add_row(op.kind, line.line_key, str(line.work_date), line.person, line.code, str(line.minutes))
    out.print(table)


def print_deliveries(results: dict[str, Any]) -> None:
    if not results:
        return
    table = Table(title="Deliveries")
    for column in ("sink", "planned", "sent", "ok", "failed", "unknown", "found", "held", "credits", "skipped"):
        table.add_column(column)
    for name, r in results.items():
        held = ", ".join(f"{reason} {h.entries}" for reason, h in sorted(r.held.items()) if h.entries)
        table.add_row(
            name,
            str(r.planned),
            str(r.sent),
            str(r.ok),
            str(r.failed),
            str(r.unknown),
            str(r.found),
            held,
            str(len(r.credits)),
            r.skipped or "",
        )
    out.print(table)
    for name, r in results.items():
        for error in r.errors:
            out.print(f"[red]{name}[/] {error}", highlight=False, soft_wrap=True)
        for credit in r.credits:
            out.print(
                f"[yellow]credit needed[/] {name} {credit.period}: {credit.person} {credit.code} "
                f"{_minutes(-credit.seconds)} min less than the closed month holds; book a credit or reopen it",
                highlight=False,
            )


@_admin_errors
def reconcile(
    period: Annotated[str, typer.Option("--period", help="The month to reconcile, YYYY-MM.")],
    sources: Annotated[
        bool,
        typer.Option(help="Read the sources too (one pass over the month; imports: what their last import recorded)."),
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Minutes per code and person: sources = ledger = each sink; every difference listed line by line."""
    from sync.run.context import RunContext
    from sync.run.factory import build_sinks, build_sources
    from sync.run.mapping import adopt_mapping, load_mapping
    from sync.run.reconcile import reconcile_month
    from sync.store.db import make_engine, require_current

    settings = _settings()
    engine = make_engine(settings.database_url)
    active = load_mapping(settings, engine)
    require_current(engine)
    context = RunContext.create(settings, engine)
    tools = build_sources(settings) if sources else {}
    try:
        sinks = build_sinks(settings, engine)
        try:
            mapping = adopt_mapping(context, active)
            result = reconcile_month(context, period, mapping, sources=tools, sinks=sinks)
        finally:
            for sink in sinks.values():
                sink.close()
    finally:
        for tool in tools.values():
            tool.close()
    if json_output:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print_reconciliation(result)
    if not result.ok:
        raise typer.Exit(1)


def print_reconciliation(result: Any) -> None:
    status = "closed" if result.closed else "open"
    table = Table(title=f"Reconciliation {result.period} ({status}) — minutes")
    table.add_column("code")
    table.add_column("person")
    table.add_column("sources", justify="right")
    table.add_column("ledger", justify="right")
    for name in result.sinks:
        table.add_column(f"{name} due", justify="right")
        table.add_column(name, justify="right")
    for key in sorted(result.rows):
        row = result.rows[key]
        cells = [
            row.code,
            row.person,
            "" if row.source_seconds is None else _minutes(row.source_seconds),
            _minutes(row.ledger_seconds),
        ]
        for name in result.sinks:
            cells += [str(row.sink_expected.get(name, 0)), str(row.sink_holds.get(name, 0))]
        table.add_row(*cells)
    out.print(table)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if result.ok:
        out.print(f"[green]{result.period} reconciles[/]: sources = ledger = every sink (held time noted above)")
        return
    diff = Table(title=f"{len(result.differences)} differences")
    for column in ("where", "code", "person", "item", "expected", "actual", "what to do"):
        diff.add_column(column)
    for d in result.differences:
        diff.add_row(d.where, d.code, d.person, d.item, d.expected_minutes, d.actual_minutes, d.note)
    out.print(diff)


@periods_app.command("close")
@_admin_errors
def periods_close(
    month: MonthArgument = None,
    period: PeriodOption = None,
    by: Annotated[str | None, typer.Option(help="Who closes it (default: the current user).")] = None,
    reason: Annotated[str, typer.Option(help="A note kept in the history (required with --force).")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Close it even though it does not reconcile (needs --reason).")
    ] = False,
) -> None:
    """Lock a month once it reconciles: later changes to it are delivered as adjustments in the first open month.

    Refused (exit 1, the differences listed) while the ledger and the accounting sinks disagree, as the
    console refuses it; --force --reason "..." closes it anyway and keeps the reason in the history.
    """
    from sync.delivery import periods
    from sync.ops.admin import PeriodNotReconciled, close_reconciled
    from sync.store.db import make_engine, require_current

    month = periods.parse_month(_one_month(month, period))
    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    with engine.connect() as conn:
        already = month in periods.closed(conn).labels
    if already:
        out.print(f"{month} was already closed")
        return
    try:
        closed, result = close_reconciled(
            settings, engine, month, by=_who(by), reason=reason, now=datetime.now(UTC), force=force
        )
    except PeriodNotReconciled as exc:
        _print_differences(exc.reconciliation)
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        err.print(
            f'an admin who knows why may close it anyway: hourbridge periods close {month} --force --reason "..."',
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    if not closed:
        out.print(f"{month} was already closed")
    elif result.ok:
        out.print(f"{month} closed; later changes to it become adjustments in the first open month")
    else:
        out.print(
            f"[yellow]{month} closed over {len(result.differences)} differences[/] (--force; the reason is kept "
            "in the history); later changes to it become adjustments in the first open month",
            highlight=False,
        )


def _print_differences(result: Any, shown: int = 10) -> None:
    """The first ``shown`` differences of a month, one line each (`reconcile` lists them all)."""
    for d in result.differences[:shown]:
        text = (
            f"{d.code} {d.person} {d.item}: expected {d.expected_minutes} min, holds {d.actual_minutes} min; {d.note}"
        )
        out.print(f"[red]{escape(d.where)}[/] {escape(text)}", highlight=False, soft_wrap=True)
    if len(result.differences) > shown:
        out.print(f"… and {len(result.differences) - shown} more", highlight=False)


@periods_app.command("reopen")
@_admin_errors
def periods_reopen(
    month: MonthArgument = None,
    reason: Annotated[str, typer.Option(help="Why it is reopened (required, kept in the history).")] = "",
    by: Annotated[str | None, typer.Option(help="Who reopens it (default: the current user).")] = None,
    period: PeriodOption = None,
) -> None:
    """Reopen a closed month (needs --reason); its lines are then updated in place again."""
    from sync.delivery import periods
    from sync.store.db import make_engine, require_current

    month = _one_month(month, period)
    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    periods.reopen(engine, month, by=_who(by), reason=reason, now=datetime.now(UTC))
    out.print(f"{month} reopened ({reason.strip()})")


@periods_app.command("list")
@_admin_errors
def periods_list(json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Closed months and the history of closing and reopening."""
    from sync.delivery import periods
    from sync.store.db import make_engine, require_current

    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    with engine.connect() as conn:
        closed = sorted(periods.closed(conn).labels)
        events = periods.history(conn)
    if json_output:
        payload = {
            "closed": closed,
            "history": [
                {"month": e.label, "action": e.action, "at": e.at.isoformat(), "by": e.by, "reason": e.reason}
                for e in events
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    out.print("closed: " + (", ".join(closed) or "none"))
    table = Table(title="History")
    for column in ("month", "action", "at", "by", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(e.label, e.action, f"{e.at:%Y-%m-%d %H:%M}", e.by, e.reason)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(deliver)
    app.command()(reconcile)
    app.add_typer(periods_app, name="periods")
