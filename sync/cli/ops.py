"""Operations commands of the CLI: `worker`, `enqueue`, `schedule`, `health` and `db queue-upgrade`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import command_settings as _settings
from sync.cli.shared import say as _echo
from sync.settings import Settings


def _metrics(settings: Settings) -> Any:
    from sync.ops.metrics import RunMetrics

    metrics = RunMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    return metrics


# --------------------------------------------------------------------------- commands


@_admin_errors
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Work until the queue is empty, then exit (CronJob, tests).")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Jobs run at once in this process.")] = 1,
) -> None:
    """Run procrastinate workers on PostgreSQL: pulls per (source, account), mapping, reports, schedule."""
    from sync.ops.worker import WorkerApp, queue_conninfo, queue_schema_present
    from sync.store.db import make_engine, require_current

    settings = _settings()
    queue_conninfo(settings.database_url)  # a ConfigError naming the setting before anything connects
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        if not queue_schema_present(engine):
            from connectors.errors import ConfigError

            raise ConfigError("the job queue's tables are missing: run `hourbridge db queue-upgrade` first")
        worker_app = WorkerApp(settings, engine=engine, metrics=_metrics(settings), periodic=not once)
        worker_app.run(once=once, concurrency=concurrency)
    finally:
        engine.dispose()
    if once and worker_app.failures:
        # Like `sync`: a cron job or CI step running `worker --once` must see that work failed. A
        # long-running worker stops on SIGTERM with 0: its failed jobs are retried by any worker.
        _echo(f"worker: {len(worker_app.failures)} job(s) failed")
        for failure in worker_app.failures:
            _echo(f"  {failure}")
        raise typer.Exit(1)


@_admin_errors
def enqueue() -> None:
    """Defer one pull job per (source, account) now, as the worker's schedule does; then exit."""
    from sync.ops.worker import WorkerApp

    settings = _settings()
    worker_app = WorkerApp(settings, periodic=False)

    async def defer() -> list[str]:
        async with worker_app.app.open_async():
            return await worker_app.enqueue_pulls()

    deferred = asyncio.run(defer())
    worker_app.engine.dispose()
    _echo(f"deferred {len(deferred)} pull job(s)" + "".join(f"\n  {lock}" for lock in deferred))


@_admin_errors
def schedule(
    max_runs: Annotated[int | None, typer.Option(min=1, help="Stop after this many runs (tests).")] = None,
    run_at_start: Annotated[bool, typer.Option(help="Run once at start, then on the schedule.")] = True,
) -> None:
    """Sync on HOURBRIDGE_SCHEDULE (cron, UTC) in the foreground: one machine, SQLite or PostgreSQL."""
    from sync.ops.schedule import StopFlag, run_schedule, stop_on_signals, sync_once

    settings = _settings()
    metrics = _metrics(settings)
    stop = StopFlag()
    with stop_on_signals(stop):
        outcome = run_schedule(
            settings.schedule,
            lambda: sync_once(settings, metrics),
            stop=stop,
            max_runs=max_runs,
            run_at_start=run_at_start,
        )
    _echo(f"schedule stopped after {outcome.runs} run(s)" + (f" ({outcome.stopped_by})" if outcome.stopped_by else ""))
    if outcome.statuses and outcome.statuses[-1] != "ok":
        raise typer.Exit(1)


@_admin_errors
def health(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    database_only: Annotated[
        bool, typer.Option("--database-only", help="Only check that the store is reachable and migrated (probes).")
    ] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Also require the worker's job queue tables.")] = False,
) -> None:
    """Exit 0 when the store is reachable and migrated and every source succeeded recently; 1 with the reason."""
    from sync.ops.health import check_health
    from sync.settings import load_settings
    from sync.store.db import make_engine

    settings = load_settings()  # no logging set-up: probes want one line, not a log stream
    engine = make_engine(settings.database_url)
    try:
        report = check_health(settings, engine, database_only=database_only, require_queue=queue)
    finally:
        engine.dispose()
    if json_output:
        sys.stdout.write(json.dumps(report.as_dict(), sort_keys=True, indent=2) + "\n")
    elif report.ok:
        _echo("healthy")
    else:
        for reason in report.reasons:
            _echo(f"unhealthy: {reason}")
    if not report.ok:
        raise typer.Exit(1)


@_admin_errors
def db_queue_upgrade() -> None:
    """Create procrastinate's job-queue tables on PostgreSQL (idempotent; run after `db upgrade`)."""
    from sync.ops.worker import WorkerApp

    settings = _settings()
    worker_app = WorkerApp(settings, periodic=False)

    async def apply() -> bool:
        async with worker_app.app.open_async():
            return await worker_app.apply_schema()

    created = asyncio.run(apply())
    worker_app.engine.dispose()
    _echo("job queue tables created" if created else "job queue tables already present")


def register(app: typer.Typer) -> None:
    """Add the operations commands to the `hourbridge` app (and `queue-upgrade` to its `db` group)."""
    app.command()(worker)
    app.command()(enqueue)
    app.command()(schedule)
    app.command()(health)
    db = next((group.typer_instance for group in app.registered_groups if group.name == "db"), None)
    if db is None:
        db = typer.Typer(help="Manage the state store.", no_args_is_help=True)
        app.add_typer(db, name="db")
    db.command("queue-upgrade")(db_queue_upgrade)
