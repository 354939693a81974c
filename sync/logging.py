"""structlog set-up: JSON lines when not on a terminal, console otherwise, secrets always scrubbed."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from connectors._redact import redact

_SECRET_KEYS = {"token", "access_token", "refresh_token", "authorization", "password", "secret", "client_secret"}


def scrub_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: drop values under secret-looking keys and redact known secrets from every string."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
        elif isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


_RUNS: set[int] = set()
_RUNS_LOCK = threading.Lock()


@contextmanager
def run_in_progress(run_id: int) -> Iterator[None]:
    """Mark ``run_id`` as running in this process, for log lines of threads that do not inherit it."""
    with _RUNS_LOCK:
        _RUNS.add(run_id)
    try:
        yield
    finally:
        with _RUNS_LOCK:
            _RUNS.discard(run_id)


def add_run_id(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: a line without a run id gets the process's one run in progress, if there is one.

    The run id is bound with structlog's contextvars; threads a connector starts itself (thread
    pools for details and pages) do not inherit them. With one run in the process (`sync`,
    `schedule`, a worker with concurrency 1) that run is the only one the line can belong to; with
    several at once it is left out rather than guessed.
    """
    if "run_id" not in event_dict:
        with _RUNS_LOCK:
            only = next(iter(_RUNS)) if len(_RUNS) == 1 else None
        if only is not None:
            event_dict["run_id"] = only
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the moment of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    out: Any = stream or _CurrentStderr()
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_run_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks are rendered first so that the scrubbing sees (and redacts) their text too.
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
