"""One run's frozen context (id, as-of, clock, engine, settings, hooks), its typed errors and its record in `runs`."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors._redact import redact
from connectors.errors import Action, HourbridgeError
from connectors.model import Window
from sync.logging import run_in_progress
from sync.reporting.model import Period
from sync.settings import Settings
from sync.store.runs import abandon_stale_runs, record_heartbeat, start_run
from sync.store.runs import finish_run as record_finish

log = structlog.get_logger("hourbridge.run")

Progress = Callable[[str, int], None]
"""Called with (label, entries just ingested) as pages arrive, for progress bars."""

# Days per transaction of a scope's window. Smaller chunks keep memory flat on large accounts (the
# set of ids seen and the tombstone check are per chunk); a source that cannot filter by date says
# so with ``max_window_days`` and gets the whole window at once instead of re-reading it per chunk.
CHUNK_DAYS = 14


def never() -> bool:
    """The default stop hook: a run that is never asked to stop."""
    return False


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every stage of one run shares; stages get it as a value and never reach back into a caller.

    ``run_id`` is None for work that keeps no run record (a worker's mapping or delivery job, the
    `deliver` command).
    """

    settings: Settings
    engine: Engine
    as_of: datetime
    run_id: int | None = None
    clock: Callable[[], datetime] = utc_now
    progress: Progress | None = None
    # Checked between windows: a worker asked to stop finishes the window it is in, then returns.
    should_stop: Callable[[], bool] = never

    @classmethod
    def create(
        cls,
        settings: Settings,
        engine: Engine,
        *,
        as_of: datetime | None = None,
        clock: Callable[[], datetime] = utc_now,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = never,
    ) -> RunContext:
        """A context whose ``as_of`` is frozen now (or at ``as_of``), in UTC."""
        frozen = (as_of or clock()).astimezone(UTC)
        return cls(settings, engine, frozen, None, clock, progress, should_stop)

    def heartbeat(self) -> None:
        """Record that the run is alive (after each committed window or delivery chunk)."""
        if self.run_id is None:
            return
        with self.engine.begin() as conn:
            record_heartbeat(conn, self.run_id, self.clock())


ErrorKind = Literal["run", "source", "scope", "sink"]


@dataclass(frozen=True, slots=True)
class RunError:
    """One failure a run records: what failed, where, what to do about it, and the admin-readable text.

    ``kind`` is ``run`` (the run as a whole), ``source`` (a source could not be checked or listed),
    ``scope`` (a window of one scope) or ``sink`` (a delivery; ``subject`` None when no sink could be
    built). ``message`` is redacted; the traceback, if any, went to the log.
    """

    kind: ErrorKind
    subject: str | None
    window: Window | None
    action: Action
    message: str
    account: str | None = None
    # Deliveries that ended with refused or unanswered writes say how many.
    failed: int | None = None
    unknown: int | None = None

    @classmethod
    def of(
        cls,
        kind: ErrorKind,
        subject: str | None,
        exc: HourbridgeError,
        *,
        window: Window | None = None,
        account: str | None = None,
    ) -> RunError:
        return cls(kind, subject, window, exc.action, redact(exc.message), account)

    @property
    def source(self) -> str | None:
        """The source this error belongs to (None for sinks and the run as a whole)."""
        return self.subject if self.kind in ("source", "scope") else None

    def as_dict(self) -> dict[str, Any]:
        """The shape stored in ``runs.errors`` and read by `status` and `health`."""
        if self.kind == "sink":
            stored: dict[str, Any] = {"sink": self.subject, "error": self.message, "action": self.action.value}
            if self.failed is not None:
                stored |= {"failed": self.failed, "unknown": self.unknown}
            return stored
        stored = {"source": self.source, "account": self.account}
        if self.window is not None:
            stored["window"] = [self.window.start.isoformat(), self.window.end.isoformat()]
        return stored | {"error": self.message, "action": self.action.value}


class RunInterrupted(KeyboardInterrupt):
    """A run stopped in the middle of a window (a second SIGINT/SIGTERM): that window was rolled back.

    Raised from ``recorded_run`` once the run is recorded as ``interrupted``; carries its id.
    """

    def __init__(self, run_id: int, signal_name: str) -> None:
        super().__init__(signal_name)
        self.run_id = run_id
        self.signal_name = signal_name


class Heartbeat:
    """Records that a run is alive every ``interval`` seconds from a thread of its own.

    Windows and delivery chunks beat too, but one window of a large account can take longer than the
    abandonment delay; this beat is what tells a slow run from a killed one. ``wait`` is the stop
    event's wait (tests inject one that returns at once).
    """

    def __init__(self, beat: Callable[[], None], interval: float, wait: Callable[[float], bool] | None = None) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Beat until stopped (the thread's body; callable directly in tests)."""
        while not self._wait(self._interval) and not self._stop.is_set():
            try:
                self._beat()
            except SQLAlchemyError as exc:  # a busy or briefly unreachable store: the next beat retries
                log.info("run.heartbeat_missed", error=str(exc).splitlines()[0])

    def __enter__(self) -> Heartbeat:
        # The thread logs with the run's context (its run id) like the code that started it.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self.run,), name="hourbridge-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def recorded_run(context: RunContext, command: str) -> Iterator[RunContext]:
    """Start a run record (abandoning stale ones first) and yield the context carrying its id.

    The run id is bound to the logging context while the run lasts, and a heartbeat thread beats for
    it; the caller finishes the record with ``finish_run``. A KeyboardInterrupt (a second signal)
    finishes it here as ``interrupted`` and comes out as ``RunInterrupted``.
    """
    settings = context.settings
    with context.engine.begin() as conn:
        abandon_stale_runs(conn, context.clock(), settings.run_abandoned_after)
        run_id = start_run(conn, command=command, as_of=context.as_of, now=context.clock())
    structlog.contextvars.bind_contextvars(run_id=run_id)
    run = RunContext(
        settings, context.engine, context.as_of, run_id, context.clock, context.progress, context.should_stop
    )
    try:
        with run_in_progress(run_id), Heartbeat(run.heartbeat, settings.run_heartbeat_seconds):
            yield run
    except KeyboardInterrupt as exc:
        _record_interrupted(run, str(exc) or "SIGINT")
        raise RunInterrupted(run_id, str(exc) or "SIGINT") from None
    finally:
        structlog.contextvars.unbind_contextvars("run_id")


def _record_interrupted(run: RunContext, signal_name: str) -> None:
    assert run.run_id is not None
    message = f"interrupted by {signal_name} in the middle of a window, which was rolled back; the next run redoes it"
    with run.engine.begin() as conn:
        record_finish(
            conn,
            run.run_id,
            status="interrupted",
            counts={},
            errors=[{"source": None, "error": message, "action": Action.TRANSIENT.value}],
            now=run.clock(),
        )
    log.warning("run.finished", status="interrupted", signal=signal_name, messages=[message])


def finish_run(context: RunContext, *, status: str, counts: dict[str, Any], errors: tuple[RunError, ...]) -> None:
    """Close the run record with its status, counts and errors."""
    assert context.run_id is not None, "only a recorded run can be finished"
    with context.engine.begin() as conn:
        record_finish(
            conn,
            context.run_id,
            status=status,
            counts=counts,
            errors=[error.as_dict() for error in errors],
            now=context.clock(),
        )


def run_status(errors: tuple[RunError, ...], scope_failed: list[bool]) -> str:
    """ok without errors; partial when some scope got through; failed otherwise."""
    if not errors:
        return "ok"
    return "partial" if any(not failed for failed in scope_failed) else "failed"


def plan_window(scanned_through: date | None, today: date, settings: Settings) -> Window:
    """``[cursor - lookback, today]``; on the first run from ``start_date`` (default today - lookback)."""
    if scanned_through is None:
        start = settings.start_date or today - timedelta(days=settings.lookback_days)
    else:
        start = min(scanned_through, today) - timedelta(days=settings.lookback_days)
        if settings.start_date is not None:
            start = max(start, settings.start_date)
    return Window(min(start, today), today)


def months_between(start: date, end: date) -> list[Period]:
    periods: list[Period] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        periods.append(Period.month(f"{year:04d}-{month:02d}"))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


def open_months(settings: Settings, today: date) -> list[Period]:
    """The months a worker's mapping, reporting and delivery jobs cover: the look-back up to today."""
    start = today - timedelta(days=settings.lookback_days)
    if settings.start_date is not None:
        start = min(max(start, settings.start_date), today)
    return months_between(start, today)
