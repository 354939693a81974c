"""A small threaded loopback HTTP server that vendor emulators build on: routing, JSON, rate limits, faults."""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

Clock = Callable[[], float]
"""Monotonic seconds; injected so tests can move time without sleeping."""

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded HTTP request as a handler sees it."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter, or ``None`` when absent."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns; the server adds Content-Length."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json; charset=utf-8"

    def with_headers(self, extra: Mapping[str, str]) -> Response:
        known = {name.lower() for name, _ in self.headers}
        added = tuple((k, v) for k, v in extra.items() if k.lower() not in known)
        return Response(self.status, self.body, self.headers + added, self.content_type)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, tuple((headers or {}).items()))


def _default_error(status: int, message: str) -> Response:
    return json_response({"error": {"status": status, "message": message}}, status)


Handler = Callable[[Request], Response]
ErrorFactory = Callable[[int, str], Response]
"""Builds a vendor-shaped error body for a status and a message (404s, faults, 429s, crashes)."""


@dataclass(slots=True)
class _Route:
    name: str
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    headers: dict[str, str]
    body: bytes | None


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


class _QuietServer(ThreadingHTTPServer):
    # Non-daemon threads are tracked, so server_close() joins them: no handler outlives stop().
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: SandboxServer) -> None:
        self.owner = owner
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal in retry tests; stay quiet like the handler.
        return


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True
    server_version = "hourbridge-sandbox/1"
    sys_version = ""
    server: _QuietServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.owner.dispatch(self.command, self.path, headers, body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
    do_HEAD = _serve


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    cursor = 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[cursor : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        cursor = match.end()
    parts.append(re.escape(pattern[cursor:]))
    return re.compile("^" + "".join(parts) + "/?$")


@dataclass(slots=True)
class _Counters:
    calls: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    faults: int = 0


class SandboxServer:
    """Routes requests on 127.0.0.1 to handlers, counting calls, limiting rates and injecting faults.

    Routes are registered relative to ``base_path``; ``base_url`` includes it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = "",
        clock: Clock | None = None,
        rate_limit_per_minute: int | None = None,
        rate_limit_key: Callable[[Request], str] | None = None,
        error_factory: ErrorFactory | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._base_path = base_path.rstrip("/")
        self._clock: Clock = clock or time.monotonic
        self._limiter = RateLimiter(rate_limit_per_minute, clock=self._clock)
        self._rate_limit_key = rate_limit_key or (lambda request: request.bearer_token or "")
        self._error = error_factory or _default_error
        self._routes: list[_Route] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- routing ---------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler, *, name: str | None = None) -> str:
        """Register ``handler`` for ``method`` and a path pattern with ``{param}`` segments."""
        route_name = name or f"{method.upper()} {pattern}"
        with self._lock:
            if any(r.name == route_name for r in self._routes):
                raise ValueError(f"route name {route_name!r} is already registered")
            self._routes.append(_Route(route_name, method.upper(), pattern, _compile(pattern), handler))
            self._counters.calls.setdefault(route_name, 0)
        return route_name

    @property
    def route_names(self) -> list[str]:
        with self._lock:
            return [r.name for r in self._routes]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("sandbox server is already running")
        httpd = _QuietServer((self._host, self._port), self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._thread = None
        httpd.shutdown()
        # Keep-alive connections would otherwise keep their handler threads (and sockets) alive.
        with httpd.connections_lock:
            connections = list(httpd.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # the client may have hung up already
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("sandbox server is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self._base_path

    @property
    def base_path(self) -> str:
        return self._base_path

    # -- controls --------------------------------------------------------------------------------

    def fail_next(
        self,
        route_name: str,
        n: int,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
    ) -> None:
        """Answer the next ``n`` requests to ``route_name`` with ``status`` (and headers) instead."""
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            if route_name not in self._counters.calls:
                known = ", ".join(sorted(self._counters.calls))
                raise KeyError(f"unknown route {route_name!r} (known: {known})")
            self._faults.setdefault(route_name, deque()).append(_Fault(n, status, dict(headers or {}), body))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def call_count(self, route_name: str | None = None) -> int:
        """Requests received on one route (or all routes), including rejected and faulted ones."""
        with self._lock:
            if route_name is None:
                return sum(self._counters.calls.values())
            if route_name not in self._counters.calls:
                raise KeyError(f"unknown route {route_name!r}")
            return self._counters.calls[route_name]

    @property
    def rate_limited_count(self) -> int:
        with self._lock:
            return self._counters.rate_limited

    def reset_counts(self) -> None:
        with self._lock:
            self._counters.calls = dict.fromkeys(self._counters.calls, 0)
            self._counters.rate_limited = 0
            self._counters.faults = 0

    def set_rate_limit(self, per_minute: int | None) -> None:
        self._limiter.set_limit(per_minute)

    # -- dispatch --------------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], bool]:
        """The matching route and its params, and whether some route had the path but not the method."""
        if self._base_path:
            if path != self._base_path and not path.startswith(self._base_path + "/"):
                return None, {}, False
            path = path[len(self._base_path) :] or "/"
        path_matched = False
        for route in self._routes:
            found = route.regex.match(path)
            if found is None:
                continue
            if route.method != method and not (method == "HEAD" and route.method == "GET"):
                path_matched = True
                continue
            return route, {k: unquote(v) for k, v in found.groupdict().items()}, False
        return None, {}, path_matched

    def _take_fault(self, route_name: str) -> _Fault | None:
        queue = self._faults.get(route_name)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        self._counters.faults += 1
        return fault

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Route one request; usable directly, without sockets, by in-process callers."""
        parts = urlsplit(target)
        with self._lock:
            route, params, wrong_method = self._match(method, parts.path)
        if route is None:
            if wrong_method:
                return self._error(405, f"Method {method} is not allowed on {parts.path}")
            return self._error(404, f"No matching route for {method} {parts.path}")
        request = Request(
            method=method,
            path=parts.path,
            route=route.name,
            params=params,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        with self._lock:
            self._counters.calls[route.name] += 1
            fault = self._take_fault(route.name)
        if fault is not None:
            response = (
                Response(fault.status, fault.body)
                if fault.body is not None
                else self._error(fault.status, f"Injected fault on {route.name}")
            )
            return response.with_headers(fault.headers)
        retry_after = self._limiter.check(self._rate_limit_key(request))
        if retry_after is not None:
            with self._lock:
                self._counters.rate_limited += 1
            return self._error(429, "Rate limit exceeded").with_headers({"Retry-After": str(retry_after)})
        try:
            return route.handler(request)
        except Exception as exc:  # a crashing handler must still answer, like a real 500
            return self._error(500, f"{type(exc).__name__}: {exc}")


class HostedSandbox:
    """Lifecycle every emulator shares: start/stop, context manager, its URL, server and token.

    Subclasses create ``self._server`` (a ``SandboxServer``) and ``self._token`` in ``__init__``.
    """

    _server: SandboxServer
    _token: str

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port><base path>``: what a connector uses instead of the vendor's host."""
        return self._server.base_url

    @property
    def server(self) -> SandboxServer:
        return self._server

    @property
    def token(self) -> str:
        return self._token
