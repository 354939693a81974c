"""HourlyBudget: a vendor's hourly call quota kept as a sliding hour, refusing the call that would overrun it."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from connectors.errors import DailyLimitError

HOUR = 3600.0

Clock = Callable[[], float]


class HourlyBudget:
    """An hourly quota as a sliding hour of calls: a call that would overrun it is not sent.

    Waiting up to an hour inside a run helps nobody, so ``take`` raises ``DailyLimitError`` (not
    retried per request; the job runs again after ``retry_after``). ``observe`` corrects the count
    with a vendor's own remaining-quota headers, which include what other programs spent. ``limit``
    None means no quota is known: only ``observe`` can then block. ``advice`` ends the message (what
    raises the quota).
    """

    def __init__(
        self, limit: int | None, *, vendor: str, what: str, advice: str, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self.vendor = vendor
        self.what = what
        self.advice = advice
        self._clock = clock
        self._calls: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def spent(self, wait: float | None) -> DailyLimitError:
        """The error for a spent quota that frees up in ``wait`` seconds (None: unknown)."""
        when = f"in {int(wait) + 1} s" if wait is not None else "when it resets"
        return DailyLimitError(
            f"{self.vendor}'s hourly quota for {self.what} is spent; the sync continues {when} ({self.advice})",
            retry_after=wait,
        )

    def take(self) -> None:
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] <= now - HOUR:
                self._calls.popleft()
            wait = self._blocked_until - now
            if wait <= 0 and self.limit is not None and len(self._calls) >= self.limit:
                wait = self._calls[0] + HOUR - now
            if wait > 0:
                raise self.spent(wait)
            self._calls.append(now)

    def observe(self, remaining: float | None, resets_in: float | None) -> None:
        """A vendor said ``remaining`` calls are left until ``resets_in`` seconds from now."""
        if remaining is None or resets_in is None or remaining > 0:
            return
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + resets_in)
