"""The per-credential rate limiter, paced by one injectable time source (its clock and its sleep together)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from connectors._redact import credential_key


class TimeSource(Protocol):
    """Monotonic seconds and a way to wait for them to pass.

    The limiter reads and waits on the same source, so a test's fake time moves exactly as far as
    the limiter waits (no busy loop against a real clock with a no-op sleep).
    """

    def __call__(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemTime:
    """The process's monotonic clock and ``time.sleep``."""

    def __call__(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_TIME = SystemTime()


class RateLimiter:
    """A token bucket shared by every thread that uses one credential, capped by a sliding minute.

    Vendors evaluate their limits more often than once a minute, so the bucket holds a few seconds'
    worth of burst, not a full minute. A bucket alone would still let ``rate x 60 + burst`` calls
    through in some 60 s span, which a vendor's sliding window answers with 429s on long runs, so
    every grant is also logged and no more than ``per_minute`` are granted in any 60 s.
    ``pause_for`` is how a 429's Retry-After reaches every thread at once instead of each of them
    discovering it with a request of its own.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_seconds: float = 2.0,
        window_seconds: float = 60.0,
        clock: TimeSource = SYSTEM_TIME,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if window_seconds < 60.0:
            raise ValueError("window_seconds must be at least the vendor's minute")
        self.rate = per_minute / 60.0
        self.per_minute = max(1, int(per_minute))
        self.capacity = max(1.0, self.rate * burst_seconds)
        # How long a grant counts against ``per_minute``. A vendor's window starts when the request
        # arrives, a little after the grant; a few seconds more than the minute keeps that delay from
        # letting one grant too many through at the window's edge.
        self.window = window_seconds
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._paused_until = 0.0
        self._granted: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)

    def acquire(self, permits: int = 1) -> None:
        """Wait until ``permits`` calls may go, then take them all at once (one request counted as many).

        The permits are granted together, at the moment the request can be sent, so the vendor sees
        them arrive when the limiter logged them. More permits than the burst holds leave the bucket
        in debt, which later callers wait out: the average rate is kept.
        """
        if permits < 1:
            return
        if permits > self.per_minute:
            raise ValueError(f"{permits} permits exceed the limit of {self.per_minute} a minute")
        needed = min(float(permits), self.capacity)
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                while self._granted and self._granted[0] <= now - self.window:
                    self._granted.popleft()
                wait = max(0.0, self._paused_until - now)
                excess = len(self._granted) + permits - self.per_minute
                if wait == 0.0 and excess > 0:
                    # Until enough of the oldest grants have left the window.
                    wait = max(0.001, self._granted[excess - 1] + self.window - now)
                if wait == 0.0:
                    # A small tolerance: float refills can land a hair under one token forever.
                    if self._tokens >= needed - 1e-9:
                        self._tokens -= permits
                        if self._tokens < 0.0 and permits == 1:
                            self._tokens = 0.0
                        self._granted.extend([now] * permits)
                        return
                    wait = max((needed - self._tokens) / self.rate, 0.001)
                self.waited += wait
            self._clock.sleep(wait)

    def pause_for(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a vendor's Retry-After) and drain the burst."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0.0
            self._last = max(self._last, self._paused_until)

    def observe_remaining(self, remaining: int, reset_in: float) -> None:
        """Slow down proactively from a vendor's remaining-quota headers (ClickUp, Xero)."""
        with self._lock:
            if remaining <= 0 and reset_in > 0:
                now = self._clock()
                until = now + reset_in
                while self._granted and self._granted[0] <= now - self.window:
                    self._granted.popleft()
                if len(self._granted) >= self.per_minute:
                    # Our own grants fill the vendor's window, so room opens when the oldest of them
                    # leaves it, not a whole ``reset_in`` later (Xero names no reset time: waiting the
                    # full minute each time the window filled cost a paced delivery a third of its time).
                    until = min(until, self._granted[0] + self.window)
                self._paused_until = max(self._paused_until, until)
                self._tokens = 0.0
            elif reset_in > 0:
                self._tokens = min(self._tokens, float(remaining))


_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(
    vendor: str, token: str, per_minute: float, *, burst_seconds: float = 2.0, window_seconds: float = 60.0
) -> RateLimiter:
    """The process-wide limiter of one credential (so every thread and window shares it)."""
    key = (vendor, credential_key(token))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        capacity = max(1.0, per_minute / 60.0 * burst_seconds)
        if (
            limiter is None
            or limiter.rate != per_minute / 60.0
            or limiter.window != window_seconds
            or limiter.capacity != capacity
        ):
            limiter = RateLimiter(per_minute, burst_seconds=burst_seconds, window_seconds=window_seconds)
            _LIMITERS[key] = limiter
        return limiter
