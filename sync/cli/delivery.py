"""Delivery commands of the CLI: `deliver`, `reconcile` and `periods close|reopen|list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import out

periods_app = typer.Typer(help="Close and reopen accounting months.", no_args_is_help=True)


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
        list[str] | None, typer.Option("--month", help="Months to plan (YYYY-MM; repeatable). Default: every month.")
    ] = None,
) -> None:
    """Bring every configured sink to the desired state of the ledger, without pulling the PM tools."""
    from sqlalchemy import func, select

    from sync.delivery.outbox import DeliveryResult
    from sync.delivery.periods import month_label, parse_month
    from sync.delivery.plan import touched_months
    from sync.run.context import RunContext
    from sync.run.deliver import deliver as deliver_stage
    from sync.run.deliver import deliverer
    from sync.run.factory import build_sinks
    from sync.run.mapping import adopt_mapping, load_mapping
    from sync.store.db import make_engine, require_current
    from sync.store.tables import entries

    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    _require_synced(engine)
    # An invalid mapping document stops the command before anything is planned or sent.
    active = load_mapping(settings, engine)
    context = RunContext.create(settings, engine)
    if month:
        months = {parse_month(m) for m in month}
    else:
        with engine.connect() as conn:
            first, last = conn.execute(select(func.min(entries.c.work_date), func.max(entries.c.work_date))).one()
        months = set(touched_months(first, last)) if first is not None else {month_label(context.as_of.date())}
    sinks = build_sinks(settings, engine)
    results: dict[str, DeliveryResult] = {}
    try:
        if not sinks:
            out.print("no accounting sink is configured (HOURBRIDGE_QUICKBOOKS__… or HOURBRIDGE_XERO__…)")
            return
        catalogs = adopt_mapping(context, active).catalogs(engine)
        for name, sink in sinks.items():
            if dry_run:
                _print_plan(name, deliverer(context, name, sink, catalogs).plan(months, context.as_of))
                continue
            delivered = deliver_stage(context, name, sink, months, catalogs)
            if delivered.result is not None:
                results[name] = delivered.result
    finally:
        for sink in sinks.values():
            sink.close()
    print_deliveries(results)


def _require_synced(engine: Any) -> None:
    """Refuse to deliver from a ledger that never synced: most likely HOURBRIDGE_DATABASE_URL is mistyped."""
    from connectors.errors import ConfigError
    from sync.store.runs import never_synced

    with engine.connect() as conn:
        if never_synced(conn):
            url = engine.url.render_as_string(hide_password=True)
            raise ConfigError(
                f"the ledger at {url} has never synced: check HOURBRIDGE_DATABASE_URL, or run `hourbridge sync` "
                "first (deliver sends what the ledger holds, and a new ledger holds nothing)"
            )


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
    sources: Annotated[bool, typer.Option(help="Read the PM tools too (one pass over the month).")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Minutes per code and person: PM tools = ledger = each sink; every difference listed line by line."""
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
    table.add_column("PM tools", justify="right")
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
        out.print(f"[green]{result.period} reconciles[/]: PM tools = ledger = every sink (held time noted above)")
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
    month: Annotated[str, typer.Argument(help="The month, YYYY-MM.")],
    by: Annotated[str | None, typer.Option(help="Who closes it (default: the current user).")] = None,
    reason: Annotated[str, typer.Option(help="Optional note kept in the history.")] = "",
) -> None:
    """Lock a month: later changes to it are delivered as adjustments in the first open month."""
    from sync.delivery import periods
    from sync.store.db import make_engine, require_current

    settings = _settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    if periods.close(engine, month, by=_who(by), reason=reason, now=datetime.now(UTC)):
        out.print(f"{month} closed; later changes to it become adjustments in the first open month")
    else:
        out.print(f"{month} was already closed")


@periods_app.command("reopen")
@_admin_errors
def periods_reopen(
    month: Annotated[str, typer.Argument(help="The month, YYYY-MM.")],
    reason: Annotated[str, typer.Option(help="Why it is reopened (required, kept in the history).")] = "",
    by: Annotated[str | None, typer.Option(help="Who reopens it (default: the current user).")] = None,
) -> None:
    """Reopen a closed month (needs --reason); its lines are then updated in place again."""
    from sync.delivery import periods
    from sync.store.db import make_engine, require_current

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
