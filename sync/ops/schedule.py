"""`hourbridge schedule`: one machine's foreground loop that runs a sync on a cron schedule."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

import structlog
from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import ConfigError, HourbridgeError
from sync.ops.metrics import RunMetrics
from sync.settings import Settings

log = structlog.get_logger("hourbridge.schedule")

RunOnce = Callable[[], str]
"""One sync; returns the run's status (ok | partial | failed)."""


def next_fire(cron: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that the cron expression (UTC) names."""
    from croniter import croniter

    fire: datetime = croniter(cron, after.astimezone(UTC)).get_next(datetime)
    return fire.astimezone(UTC)


@dataclass(slots=True)
class ScheduleOutcome:
    runs: int = 0
    statuses: list[str] = field(default_factory=list)
    stopped_by: str | None = None


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between runs, never inside one."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))


@contextmanager
def stop_on_signals(flag: StopFlag, announce: Callable[[str, bool], None] | None = None) -> Iterator[None]:
    """First SIGTERM/SIGINT: finish the current run, then stop. A second one interrupts the run:
    the window being written is rolled back (the ingest commits per window) and redone next time.

    ``announce(name, again)`` is called on each signal, ``again`` True for the second one (the `sync`
    command prints a line for each).
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        again = flag.is_set()
        if not again:
            # Set before anything else: a second signal may run this handler again from inside it.
            flag.set(name)
            log.info("stopping", signal=name)
        if announce is not None:
            announce(name, again)
        if again:
            raise KeyboardInterrupt(name)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_code(signal_name: str) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + signal.Signals[signal_name].value


def run_schedule(
    cron: str,
    run_once: RunOnce,
    *,
    stop: StopFlag,
    max_runs: int | None = None,
    run_at_start: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] | None = None,
) -> ScheduleOutcome:
    """Run ``run_once`` at every firing of ``cron`` until stopped (or after ``max_runs``).

    A run that is late (the previous one overran) starts at once, and firings missed meanwhile
    collapse into that one run: every run re-scans from the cursors, so nothing is lost.
    A ConfigError on the first run stops the loop (the admin must fix it now); later ones are logged
    and retried at the next firing, since an admin may be mid-edit of the mapping document.
    """
    wait = sleep or stop.wait
    outcome = ScheduleOutcome()
    due = clock() if run_at_start else next_fire(cron, clock())
    announced: datetime | None = None
    while not stop.is_set() and (max_runs is None or outcome.runs < max_runs):
        delay = (due - clock()).total_seconds()
        if delay > 0:
            if announced != due:
                log.info("schedule.waiting", next_run=due.isoformat(timespec="seconds"), seconds=round(delay))
                announced = due
            wait(delay)
            continue  # re-check the stop flag and the clock after every wake-up
        try:
            status = run_once()
        except ConfigError:
            if outcome.runs == 0:
                raise
            status = "failed"
            log.exception("schedule.run_failed")
        except (HourbridgeError, SQLAlchemyError):
            # A database or vendor outage: the next firing retries from the committed cursors.
            status = "failed"
            log.exception("schedule.run_failed")
        outcome.runs += 1
        outcome.statuses.append(status)
        due = next_fire(cron, clock())
    outcome.stopped_by = stop.reason
    return outcome


def sync_once(settings: Settings, metrics: RunMetrics | None = None) -> str:
    """One full run, as `hourbridge sync` does it (reports included), counted in the metrics."""
    from sync.run.pipeline import run_sync
    from sync.store import ledger
    from sync.store.db import make_engine

    started = time.monotonic()
    engine = make_engine(settings.database_url, file_mode=settings.file_permissions)
    try:
        result = run_sync(settings, engine=engine, command="schedule")
        if metrics is not None:
            with engine.connect() as conn:
                totals = ledger.ledger_totals(conn)
            metrics.record_run(
                result,
                command="schedule",
                seconds=time.monotonic() - started,
                finished=datetime.now(UTC),
                totals=totals,
            )
    finally:
        engine.dispose()
    return result.status
