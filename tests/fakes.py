"""Test doubles shared by the suites: a clock that only moves when something sleeps on it."""

from __future__ import annotations

import threading


class FakeClock:
    """Seconds (monotonic or Unix, from ``start``) that move only when ``sleep`` or ``advance`` is called.

    Tests never sleep for real: the code under test gets ``clock`` and ``clock.sleep`` injected, and
    the test reads back how long it would have waited.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
