"""The one per-request retry policy: bounded full-jitter backoff, a vendor's Retry-After always wins."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
import tenacity

from connectors._ratelimit import RateLimiter
from connectors._redact import redact
from connectors.errors import TransientError

T = TypeVar("T")
log = structlog.get_logger("hourbridge.http")

Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; a vendor's Retry-After always wins."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_retry_after: float = 300.0


@dataclass(slots=True)
class CallStats:
    """Counters one connector keeps (calls made, retries, 429s)."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, calls: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self.lock:
            self.calls += calls
            self.retries += retries
            self.throttled += throttled

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"api_calls": self.calls, "retries": self.retries, "throttled": self.throttled}


def backoff_seconds(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the given (1-based) attempt."""
    ceiling = min(policy.cap_seconds, policy.base_seconds * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    stats: CallStats | None = None,
    sleep: Sleep = time.sleep,
    what: str = "request",
) -> T:
    """Run ``fn`` under the limiter; retry ``TransientError`` per ``policy``; re-raise anything else."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = min(exc.retry_after, policy.max_retry_after)
            if limiter is not None:
                limiter.pause_for(delay)
                return 0.0  # the limiter does the waiting, for every thread of this credential
            return delay
        return backoff_seconds(policy, state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if stats is not None:
            stats.add(retries=1)
        log.warning(
            "http.retry",
            what=what,
            attempt=state.attempt_number,
            error=redact(str(exc)) if exc else None,
            wait=round(state.upcoming_sleep, 3),
        )

    def attempt() -> T:
        if limiter is not None:
            limiter.acquire()
        if stats is not None:
            stats.add(calls=1)
        try:
            return fn()
        except TransientError as exc:
            if exc.status == 429 and stats is not None:
                stats.add(throttled=1)
            raise

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)
