"""WSGI middleware the emulators stack around their handlers: call counts, injected faults, rate limits, in-flight caps.

Each layer answers for itself (a fault, a 429) or passes the request on; none of them knows a vendor,
the vendor's shape of an error comes in as an ``ErrorFactory``. They sit below the router, which
puts the matched route's name into the environ, so faults and counts are per route.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.sandbox._http import ErrorFactory, Request, Response, request_of, with_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Clock = Callable[[], float]
"""Monotonic seconds; injected so tests can move time without sleeping."""

WINDOW_SECONDS = 60.0


class RateLimiter:
    """A per-key sliding-window limiter: at most ``limit`` requests in any 60 s.

    Rejected requests count too (Asana documents this, and it is the stricter behaviour, so a client
    that ignores ``Retry-After`` is punished the same way the real service punishes it).
    """

    def __init__(
        self,
        limit: int | None,
        *,
        clock: Clock = time.monotonic,
        window: float = WINDOW_SECONDS,
        count_rejected: bool = True,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate limit must be at least 1 request per window, or None")
        self._limit = limit
        self._clock = clock
        self._window = window
        self._count_rejected = count_rejected
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def limit(self) -> int | None:
        return self._limit

    def set_limit(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate limit must be at least 1 request per window, or None")
        with self._lock:
            self._limit = limit
            self._hits.clear()

    def check(self, key: str) -> int | None:
        """Record a request; ``None`` when allowed, else whole seconds until one would be."""
        with self._lock:
            if self._limit is None:
                return None
            now = self._clock()
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) < self._limit:
                hits.append(now)
                return None
            # The window frees up once the oldest hit that keeps us at the limit has aged out.
            frees_at = hits[len(hits) - self._limit] + self._window
            if self._count_rejected:
                hits.append(now)
            return max(1, math.ceil(frees_at - now))


class CallCounter:
    """Counts requests per route, whatever happens to them below (faults and 429s included)."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def add_route(self, name: str) -> None:
        with self._lock:
            self._calls.setdefault(name, 0)

    def knows(self, name: str) -> bool:
        with self._lock:
            return name in self._calls

    def known(self) -> list[str]:
        with self._lock:
            return sorted(self._calls)

    def count(self, route_name: str | None = None) -> int:
        with self._lock:
            if route_name is None:
                return sum(self._calls.values())
            if route_name not in self._calls:
                raise KeyError(f"unknown route {route_name!r}")
            return self._calls[route_name]

    def reset(self) -> None:
        with self._lock:
            self._calls = dict.fromkeys(self._calls, 0)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = request_of(environ).route
        with self._lock:
            self._calls[route] = self._calls.get(route, 0) + 1
        return self._app(environ, start_response)


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    headers: dict[str, str]
    body: bytes | None


class Faults:
    """Answers the next ``n`` requests to a route with an injected status (and headers, or a raw body)."""

    def __init__(self, app: WSGIApplication, error: ErrorFactory) -> None:
        self._app = app
        self._error = error
        self._queues: dict[str, deque[_Fault]] = {}
        self._injected = 0
        self._lock = threading.Lock()

    def add(self, route_name: str, n: int, status: int, headers: Mapping[str, str] | None, body: bytes | None) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._queues.setdefault(route_name, deque()).append(_Fault(n, status, dict(headers or {}), body))

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self._injected = 0

    def _take(self, route_name: str) -> _Fault | None:
        with self._lock:
            queue = self._queues.get(route_name)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            self._injected += 1
            return fault

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = request_of(environ)
        fault = self._take(request.route)
        if fault is None:
            return self._app(environ, start_response)
        answer = (
            Response(fault.body, status=fault.status)
            if fault.body is not None
            else self._error(fault.status, f"Injected fault on {request.route}")
        )
        return with_headers(answer, fault.headers)(environ, start_response)


class RateLimit:
    """Answers 429 with ``Retry-After`` once a key (by default the bearer token) is over its limit."""

    def __init__(
        self,
        app: WSGIApplication,
        limiter: RateLimiter,
        error: ErrorFactory,
        key: Callable[[Request], str] | None = None,
    ) -> None:
        self._app = app
        self.limiter = limiter
        self._error = error
        self._key = key or (lambda request: request.bearer_token or "")
        self._limited = 0
        self._lock = threading.Lock()

    @property
    def limited(self) -> int:
        """Requests answered 429 since the last reset."""
        with self._lock:
            return self._limited

    def reset_counts(self) -> None:
        with self._lock:
            self._limited = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        retry_after = self.limiter.check(self._key(request_of(environ)))
        if retry_after is None:
            return self._app(environ, start_response)
        with self._lock:
            self._limited += 1
        refused = with_headers(self._error(429, "Rate limit exceeded"), {"Retry-After": str(retry_after)})
        return refused(environ, start_response)


class InFlightLimit:
    """Refuses a request while ``limit`` others with the same key are still being answered.

    ``refuse`` builds the vendor's answer for a key (Xero: a 429 naming the ``concurrent`` problem).
    """

    def __init__(
        self,
        app: WSGIApplication,
        limit: int,
        key: Callable[[Request], str],
        refuse: Callable[[str], Response],
    ) -> None:
        self._app = app
        self._limit = limit
        self._key = key
        self._refuse = refuse
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        key = self._key(request_of(environ))
        with self._lock:
            busy = self._in_flight.get(key, 0) >= self._limit
            if not busy:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if busy:
            return self._refuse(key)(environ, start_response)
        try:
            # Answers are whole byte strings, so the request is done once the app returns; a lazy
            # iterable would need the count released on close() instead.
            return self._app(environ, start_response)
        finally:
            with self._lock:
                self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)


class Guard:
    """Answers for the handler when ``check`` returns an answer (a refused credential, say)."""

    def __init__(self, app: WSGIApplication, check: Callable[[Request], Response | None]) -> None:
        self._app = app
        self._check = check

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refused = self._check(request_of(environ))
        if refused is not None:
            return refused(environ, start_response)
        return self._app(environ, start_response)


class AnnouncedQuota:
    """A quota that tells the client what is left: its headers go on every answer it lets through.

    ``take`` spends one request and says whether it was allowed, with the headers announcing the
    quota; ``refuse`` builds the vendor's 429 from those headers (ClickUp: ``X-RateLimit-*``).
    """

    def __init__(
        self,
        app: WSGIApplication,
        take: Callable[[Request], tuple[bool, dict[str, str]]],
        refuse: Callable[[dict[str, str]], Response],
    ) -> None:
        self._app = app
        self._take = take
        self._refuse = refuse
        self._limited = 0
        self._lock = threading.Lock()

    @property
    def limited(self) -> int:
        """Requests answered with ``refuse`` so far."""
        with self._lock:
            return self._limited

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        allowed, announced = self._take(request_of(environ))
        if not allowed:
            with self._lock:
                self._limited += 1
            return self._refuse(announced)(environ, start_response)

        def announce(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in announced.items() if name.lower() not in present]
            return start_response(status, headers + extra, exc_info)

        return self._app(environ, announce)
