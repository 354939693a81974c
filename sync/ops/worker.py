"""Scale-out on PostgreSQL: procrastinate jobs that each run one stage: ingest a scope, remap, report, deliver.

Jobs, all on the ``hourbridge`` queue:

- ``hourbridge.pull_scope(source, account)``: the ingest stage for one scope, under a run record.
  ``lock`` and ``queueing_lock`` are both ``pull:<source>:<account>``: at most one such job waits in
  the queue and at most one runs, whichever worker holds it, so an account is never synced twice at
  once (the ingest's per-window transactions and the ledger's unique key do the rest).
- ``hourbridge.remap()``: deferred by every pull when it ends (at most one waiting), so the last
  pull of a round is always followed by mapping what other revisions mapped; it then defers the
  reports and one delivery per configured sink, which both need its results.
- ``hourbridge.report()``: rewrites the files of the open months (at most one runs, one waits).
  ``hourbridge.map_and_report()``, the job that did both before, is still accepted: it defers a remap.
- ``hourbridge.deliver(sink)``: brings one accounting sink to the ledger's desired state (lock and
  queueing lock ``deliver:<sink>``: one delivery per sink runs at a time, one more may wait).
- ``hourbridge.schedule_pulls`` (periodic, ``HOURBRIDGE_SCHEDULE``): discovers the scopes through
  the sources and defers one pull per scope. procrastinate records each firing once, so any number
  of workers defer one round, not one round each.
- ``hourbridge.retry_stalled_jobs`` (periodic, and once at worker start): jobs left "doing" by a
  worker whose heartbeat stopped (killed, node lost) go back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import procrastinate.exceptions
import procrastinate.jobs
import structlog
from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued, JobAborted
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from connectors.base import Source
from connectors.errors import Action, ConfigError, HourbridgeError
from sync.ops.metrics import RunMetrics
from sync.reporting.model import Period
from sync.settings import Settings

if TYPE_CHECKING:
    from sync.run.deliver import SinkDelivery

log = structlog.get_logger("hourbridge.worker")

QUEUE = "hourbridge"
PULL_TASK = "hourbridge.pull_scope"
REMAP_TASK = "hourbridge.remap"
REPORT_TASK = "hourbridge.report"
# Queued by earlier versions (mapping and reports in one job); accepted so an upgrade loses no round.
LEGACY_MAP_AND_REPORT_TASK = "hourbridge.map_and_report"
DELIVER_TASK = "hourbridge.deliver"
SCHEDULE_TASK = "hourbridge.schedule_pulls"
STALLED_TASK = "hourbridge.retry_stalled_jobs"
CLEANUP_TASK = "hourbridge.delete_old_jobs"
INBOX_TASK = "hourbridge.import_inbox"
INBOX_LOCK = "inbox"
REMAP_LOCK = "remap"
REPORT_LOCK = "report"
# Finished jobs are kept this long for `procrastinate`/SQL inspection, then deleted daily.
KEEP_FINISHED_JOBS_HOURS = 72

SourceFactory = Callable[[Settings], dict[str, Source]]


def pull_lock(source: str, account: str) -> str:
    return f"pull:{source}:{account}"


def deliver_lock(sink: str) -> str:
    return f"deliver:{sink}"


class PullIncomplete(HourbridgeError):
    """A pull job's run recorded errors worth retrying (rate limits, 5xx, network, shutdown)."""

    action = Action.TRANSIENT


class DeliveryIncomplete(HourbridgeError):
    """A delivery left writes whose outcome is unknown, or could not reach the sink: worth retrying."""

    action = Action.TRANSIENT


class DeliveryRefused(HourbridgeError):
    """A sink refused lines: the same job again would be refused again, so it fails for an admin to see.

    The next delivery job (after the next pull, or `hourbridge deliver`) plans the lines again.
    """

    action = Action.CONFIG


def queue_conninfo(database_url: str) -> str:
    """The libpq URL procrastinate connects with; anything but PostgreSQL is an admin error."""
    try:
        url = make_url(database_url)
    except Exception:  # any parse failure is the same admin mistake
        raise ConfigError(f"HOURBRIDGE_DATABASE_URL is not a valid database URL: {database_url!r}") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"`hourbridge worker` needs PostgreSQL, but HOURBRIDGE_DATABASE_URL is {url.get_backend_name()}: "
            "set HOURBRIDGE_DATABASE_URL=postgresql+psycopg://user@host/db, or run `hourbridge schedule` "
            "(one machine, SQLite) instead"
        )
    # procrastinate speaks libpq directly; the SQLAlchemy driver suffix (+psycopg) means nothing to it.
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def load_source_factory(spec: str) -> SourceFactory:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"HOURBRIDGE_SOURCE_FACTORY={spec!r} cannot be loaded ({exc}); use module:function") from None
    if not callable(factory):
        raise ConfigError(f"HOURBRIDGE_SOURCE_FACTORY={spec!r} is not a function")
    return factory  # type: ignore[no-any-return]


def make_sources(settings: Settings) -> dict[str, Source]:
    """The configured tools, or what ``HOURBRIDGE_SOURCE_FACTORY`` returns."""
    if settings.source_factory:
        return load_source_factory(settings.source_factory)(settings)
    from sync.run.factory import build_sources

    return build_sources(settings)


def deliver_open_months(settings: Settings, engine: Engine, sink: str) -> SinkDelivery:
    """The deliver stage for ``sink`` over the open months (the mapping is validated and adopted first)."""
    from sync.run.context import RunContext, RunError, finish_run, open_months, recorded_run, run_status
    from sync.run.deliver import SinkDelivery, deliver
    from sync.run.factory import build_sinks
    from sync.run.mapping import adopt_mapping, load_mapping
    from sync.run.pipeline import log_finished

    active = load_mapping(settings, engine)
    context = RunContext.create(settings, engine)
    months = [p.label for p in open_months(settings, context.as_of.date())]
    try:
        built = build_sinks(settings, engine)
    except HourbridgeError as exc:
        return SinkDelivery(sink, None, (RunError.of("sink", None, exc),))
    try:
        if sink not in built:
            return SinkDelivery(sink, None)
        # A run record of its own: the job's log lines carry its run id, and `status` shows its outcome.
        with recorded_run(context, "worker-deliver") as run:
            delivered = deliver(run, sink, built[sink], months, adopt_mapping(run, active).catalogs(engine))
            results = {sink: delivered.result} if delivered.result is not None else {}
            status = run_status(delivered.errors, [])
            counts = {"deliveries": {name: result.as_dict() for name, result in results.items()}}
            finish_run(run, status=status, counts=counts, errors=delivered.errors)
            log_finished(status, list(delivered.errors), 0, results)
            return delivered
    finally:
        for each in built.values():
            each.close()


def stalled_cron(stalled_seconds: int) -> str:
    """How often to look for stalled jobs: twice per stall period, at most once a minute past 2 min."""
    every = max(1, stalled_seconds // 2)
    if every >= 60:
        return "* * * * *"
    return f"* * * * * */{every}"  # croniter's sixth field is seconds


class WorkerApp:
    """The procrastinate app, its tasks, and what they share (settings, engine, metrics)."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        metrics: RunMetrics | None = None,
        periodic: bool = True,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self.metrics = metrics or RunMetrics()
        self.app = App(connector=PsycopgConnector(conninfo=queue_conninfo(settings.database_url)))
        # Jobs whose last attempt in this process raised, by job id (a retry that succeeds removes
        # its job): `worker --once` exits 1 when any is left.
        self._failed: dict[int, str] = {}
        self._failures_lock = threading.Lock()
        self._register(periodic)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from sync.store.db import make_engine

            self._engine = make_engine(self.settings.database_url, file_mode=self.settings.file_permissions)
        return self._engine

    # ------------------------------------------------------------------ tasks

    def _register(self, periodic: bool) -> None:
        settings = self.settings
        retry = RetryStrategy(
            max_attempts=settings.worker_retry_attempts,
            wait=settings.worker_retry_seconds,
            linear_wait=settings.worker_retry_seconds,
            # Config errors need an admin, not a retry; everything transient (vendor, database, a
            # shutdown in the middle of a scope) is tried again from the committed cursor.
            retry_exceptions={PullIncomplete, DeliveryIncomplete, JobAborted, DBAPIError},
        )
        app = self.app

        @app.task(name=PULL_TASK, queue=QUEUE, pass_context=True, retry=retry)
        def pull_scope(context: JobContext, source: str, account: str) -> None:
            with self._job(context):
                self.pull_scope(source, account, should_stop=context.should_abort)

        @app.task(name=INBOX_TASK, queue=QUEUE, pass_context=True, retry=retry)
        def import_inbox(context: JobContext) -> None:
            with self._job(context):
                self.import_inbox()

        @app.task(name=REMAP_TASK, queue=QUEUE, pass_context=True, retry=retry)
        def remap(context: JobContext) -> None:
            with self._job(context):
                self.remap()

        @app.task(name=REPORT_TASK, queue=QUEUE, pass_context=True, retry=retry)
        def report(context: JobContext) -> None:
            with self._job(context):
                self.report()

        @app.task(name=LEGACY_MAP_AND_REPORT_TASK, queue=QUEUE, retry=retry)
        def map_and_report() -> None:
            self._defer_remap()

        @app.task(name=DELIVER_TASK, queue=QUEUE, pass_context=True, retry=retry)
        def deliver(context: JobContext, sink: str) -> None:
            with self._job(context):
                self.deliver(sink)

        async def schedule_pulls(timestamp: int) -> None:
            deferred = await self.enqueue_pulls()
            log.info("worker.round_deferred", at=timestamp, jobs=len(deferred))

        async def retry_stalled_jobs(timestamp: int) -> None:
            await self.retry_stalled_jobs()

        async def delete_old_jobs(timestamp: int) -> None:
            await app.job_manager.delete_old_jobs(nb_hours=KEEP_FINISHED_JOBS_HOURS, queue=QUEUE)

        if not periodic:
            return
        # A periodic task's queueing lock keeps a slow round from piling up behind itself.
        app.periodic(cron=settings.schedule, periodic_id="pulls")(
            app.task(name=SCHEDULE_TASK, queue=QUEUE, queueing_lock=SCHEDULE_TASK)(schedule_pulls)
        )
        app.periodic(cron=stalled_cron(settings.worker_stalled_seconds), periodic_id="stalled")(
            app.task(name=STALLED_TASK, queue=QUEUE, queueing_lock=STALLED_TASK)(retry_stalled_jobs)
        )
        app.periodic(cron="17 3 * * *", periodic_id="cleanup")(
            app.task(name=CLEANUP_TASK, queue=QUEUE, queueing_lock=CLEANUP_TASK)(delete_old_jobs)
        )

    @contextlib.contextmanager
    def _job(self, context: JobContext) -> Iterator[None]:
        """Every log line of a job carries its job id and task (and its run id, once a run starts);
        a failure is logged at error level and counted for `worker --once`'s exit status."""
        job = context.job
        structlog.contextvars.bind_contextvars(job_id=job.id, task=job.task_name)
        try:
            yield
            with self._failures_lock:
                self._failed.pop(job.id or 0, None)
        except JobAborted:
            log.warning("worker.job_stopped", reason="worker shutting down; the job resumes from its cursor")
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, HourbridgeError) else f"{type(exc).__name__}: {exc}"
            log.error("worker.job_failed", error=message, exc_info=not isinstance(exc, HourbridgeError))
            with self._failures_lock:
                self._failed[job.id or 0] = f"{job.task_name} (job {job.id}): {message}"
            raise
        finally:
            structlog.contextvars.unbind_contextvars("job_id", "task")

    @property
    def failures(self) -> list[str]:
        """What failed in this process and was not retried successfully since, one line per job."""
        with self._failures_lock:
            return list(self._failed.values())

    def pull_scope(self, source: str, account: str, *, should_stop: Callable[[], bool] = lambda: False) -> None:
        """The ingest stage for one scope under a run record; raises so procrastinate retries when the
        scope was not fully pulled."""
        from sync.run.pipeline import ingest_only
        from sync.store import ledger

        started = time.monotonic()
        # The window in progress finishes and commits; no new one starts once the job must stop.
        # Mapping what other revisions mapped, reports and delivery are jobs of their own (the
        # remap job defers the other two).
        sources = make_sources(self.settings)
        try:
            result = ingest_only(
                self.settings,
                sources,
                engine=self.engine,
                only=[(source, account)],
                should_stop=should_stop,
                command="worker",
            )
        finally:
            for each in sources.values():
                each.close()
        with self.engine.connect() as conn:
            totals = ledger.ledger_totals(conn)
        self.metrics.record_run(
            result, command="worker", seconds=time.monotonic() - started, finished=datetime.now(UTC), totals=totals
        )
        # Whatever happened, the windows that committed deserve mapping and reports.
        self._defer_remap()
        if should_stop():
            raise JobAborted(f"worker stopping; {source}:{account} resumes from its cursor")
        if result.errors:
            summary = "; ".join(error.message for error in result.errors)
            if any(error.action is Action.CONFIG for error in result.errors):
                raise ConfigError(f"{source}:{account}: {summary}")
            raise PullIncomplete(f"{source}:{account}: {summary}")

    def import_inbox(self) -> None:
        """The inbox's files into the ledger under a run record; then remap, report and deliver as after a pull.

        A rejected file is moved aside with its errors file and recorded in the run; it is not retried.
        """
        from sync.run.pipeline import inbox_only

        started = time.monotonic()
        result = inbox_only(self.settings, engine=self.engine, command="worker")
        self.metrics.record_run(
            result, command="worker", seconds=time.monotonic() - started, finished=datetime.now(UTC), totals=None
        )
        if result.scopes:
            self._defer_remap()

    def _defer_remap(self) -> None:
        # AlreadyEnqueued: one waiting remap already covers this pull.
        with contextlib.suppress(AlreadyEnqueued):
            self.app.configure_task(REMAP_TASK, lock=REMAP_LOCK, queueing_lock=REMAP_LOCK, queue=QUEUE).defer()

    def _open_months(self, today: date) -> list[Period]:
        from sync.run.context import open_months

        return open_months(self.settings, today)

    def remap(self) -> None:
        """The remap stage with the adopted document; then defer the reports and every sink's delivery."""
        from sync.run.context import RunContext
        from sync.run.mapping import adopt_mapping, load_mapping
        from sync.run.remap import remap

        active = load_mapping(self.settings, self.engine)
        context = RunContext.create(self.settings, self.engine)
        mapped = remap(context, adopt_mapping(context, active).bound).mapped
        log.info("worker.remapped", mapped=mapped)
        # AlreadyEnqueued: a waiting report or delivery will see these changes too.
        with contextlib.suppress(AlreadyEnqueued):
            self.app.configure_task(REPORT_TASK, lock=REPORT_LOCK, queueing_lock=REPORT_LOCK, queue=QUEUE).defer()
        for sink in self.settings.enabled_sinks():
            with contextlib.suppress(AlreadyEnqueued):
                lock = deliver_lock(sink)
                self.app.configure_task(DELIVER_TASK, lock=lock, queueing_lock=lock, queue=QUEUE).defer(sink=sink)

    def report(self) -> None:
        """The report stage: rewrite the open months' files where their content changed."""
        from sync.run.context import RunContext
        from sync.run.report import report

        context = RunContext.create(self.settings, self.engine)
        written = report(context, self._open_months(context.as_of.date())).files
        log.info("worker.reported", periods=[w.period.label for w in written])

    def deliver(self, sink: str) -> None:
        """The deliver stage for one sink over the open months; retried while outcomes stay open.

        Refused lines fail the job once the invoice check has run (DeliveryRefused, not retried).
        """
        from sync.run.deliver import incomplete_summary

        delivered = deliver_open_months(self.settings, self.engine, sink)
        result = delivered.result
        if result is None:  # the sink could not even be built or reached
            summary = "; ".join(error.message for error in delivered.errors) or "not configured"
            if any(error.action is Action.CONFIG for error in delivered.errors):
                raise ConfigError(f"{sink}: {summary}")
            raise DeliveryIncomplete(f"{sink}: {summary}")
        log.info("worker.delivered", sink=sink, **{k: v for k, v in result.as_dict().items() if k != "held"})
        if result.unknown or result.skipped:
            raise DeliveryIncomplete(f"{sink}: {result.unknown} writes without an answer yet; retrying resolves them")
        self.check_invoices()
        if result.failed:
            # Not retried (a refusal repeats), but failed: `worker --once` exits 1 and names the sink.
            raise DeliveryRefused(incomplete_summary(result) or f"{sink}: {result.failed} lines failed")

    def check_invoices(self) -> int:
        """The invoice check of every open month, after a delivery; the number of findings.

        A check that cannot read the bills is logged, never a failure of the delivery it follows.
        """
        from sync.invoices.stage import check_period
        from sync.run.factory import build_sinks

        now = datetime.now(UTC)
        findings = 0
        try:
            sinks = build_sinks(self.settings, self.engine)
        except HourbridgeError as exc:
            log.error("worker.invoices_failed", error=exc.message)
            return 0
        try:
            for period in self._open_months(now.date()):
                try:
                    checked = check_period(self.settings, self.engine, sinks, period, now=now)
                except HourbridgeError as exc:
                    log.error("worker.invoices_failed", period=period.label, error=exc.message)
                    continue
                check = checked.run.check
                self.metrics.record_invoice_check(period.label, check.bills_checked, (f.kind for f in check.findings))
                findings += len(check.findings)
                if check.findings:
                    # A warning: bills outside tolerance are for finance to look at, and alerts fire on it.
                    log.warning(
                        "worker.invoice_findings",
                        period=period.label,
                        findings=[f"{f.kind}: {f.contractor}: {f.detail}" for f in check.findings],
                    )
        finally:
            for each in sinks.values():
                each.close()
        return findings

    # ------------------------------------------------------------------ queue operations

    async def enqueue_pulls(self) -> list[str]:
        """Defer one pull job per (source, account) the sources see; returns the locks deferred."""
        scopes = await asyncio.to_thread(discover_scopes, self.settings)
        deferred: list[str] = []
        if self.settings.inbox_dir is not None:
            try:
                await self.app.configure_task(
                    INBOX_TASK, lock=INBOX_LOCK, queueing_lock=INBOX_LOCK, queue=QUEUE
                ).defer_async()
                deferred.append(INBOX_LOCK)
            except AlreadyEnqueued:
                log.info("worker.already_queued", lock=INBOX_LOCK)
        for name, account in scopes:
            lock = pull_lock(name, account)
            try:
                await self.app.configure_task(PULL_TASK, lock=lock, queueing_lock=lock, queue=QUEUE).defer_async(
                    source=name, account=account
                )
            except AlreadyEnqueued:
                log.info("worker.already_queued", lock=lock)
                continue
            deferred.append(lock)
        return deferred

    async def retry_stalled_jobs(self) -> int:
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.settings.worker_stalled_seconds)
        count = 0
        for job in stalled:
            try:
                await manager.retry_job(job)
            except procrastinate.exceptions.UniqueViolation:
                # The same work (same queueing lock) was queued again while this job hung; that job
                # will do it, so this one ends as aborted instead of blocking the stalled-job sweep.
                await manager.finish_job(job, status=procrastinate.jobs.Status.ABORTED, delete_job=False)
                log.warning("worker.stalled_job_superseded", job_id=job.id, task=job.task_name, lock=job.lock)
                continue
            log.warning("worker.stalled_job_retried", job_id=job.id, task=job.task_name, lock=job.lock)
            count += 1
        return count

    async def apply_schema(self) -> bool:
        """Create procrastinate's tables unless they exist; True when it did."""
        if queue_schema_present(self.engine):
            return False
        await self.app.schema_manager.apply_schema_async()
        return True

    def run(self, *, once: bool = False, concurrency: int = 1) -> None:
        """Work until SIGTERM/SIGINT (graceful: running jobs finish their window), or drain and exit."""
        stalled = self.settings.worker_stalled_seconds

        async def main() -> None:
            async with self.app.open_async():
                retried = await self.retry_stalled_jobs()
                log.info("worker.starting", once=once, concurrency=concurrency, stalled_retried=retried)
                await self.app.run_worker_async(
                    queues=[QUEUE],
                    wait=not once,
                    concurrency=concurrency,
                    name=f"hourbridge@{socket.gethostname()}:{os.getpid()}",
                    shutdown_graceful_timeout=self.settings.worker_shutdown_seconds,
                    update_heartbeat_interval=max(0.5, stalled / 4),
                    stalled_worker_timeout=stalled,
                )

        asyncio.run(main())


def discover_scopes(settings: Settings) -> list[tuple[str, str]]:
    """(source name, account) of every scope each source sees; a failing source is logged and skipped."""
    found: list[tuple[str, str]] = []
    sources = make_sources(settings)
    try:
        for name, source in sources.items():
            try:
                source.check()
                found.extend((name, scope.account) for scope in source.scopes())
            except HourbridgeError as exc:
                # Health turns red when the source's last success ages; the next round tries again.
                log.error("worker.scopes_failed", source=name, error=exc.message)
    finally:
        for source in sources.values():
            source.close()
    return found


def queue_schema_present(engine: Engine) -> bool:
    return inspect(engine).has_table("procrastinate_jobs")
