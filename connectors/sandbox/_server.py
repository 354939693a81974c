"""The emulators' loopback HTTP server: werkzeug's routing and threaded server under the sandbox middleware."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.routing.exceptions import RoutingException
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server

from connectors.sandbox._garbage import Garbage, GarbageKind
from connectors.sandbox._http import (
    PARAMS_KEY,
    ROUTE_KEY,
    DropConnection,
    ErrorFactory,
    Handler,
    Request,
    Response,
    json_response,
    request_of,
)
from connectors.sandbox._middleware import CallCounter, Clock, Faults, RateLimit, RateLimiter
from connectors.sandbox._recording import Recorder

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Middleware = Callable[["WSGIApplication"], "WSGIApplication"]
"""Wraps a WSGI application in one more layer (a vendor's credential check, quota or in-flight cap)."""


def _default_error(status: int, message: str) -> Response:
    return json_response({"error": {"status": status, "message": message}}, status)


class _OpenConnections:
    """Sockets a handler thread is serving, so ``stop()`` can end them instead of waiting on them."""

    def __init__(self) -> None:
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            self._sockets.add(conn)

    def discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(conn)

    def close_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for conn in sockets:
            with contextlib.suppress(OSError):  # the client may have hung up already
                conn.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler, silent, without Nagle, and closing the socket on a dropped answer."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True
    connections: ClassVar[_OpenConnections]

    def setup(self) -> None:
        super().setup()
        self.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.connections.discard(self.connection)

    def version_string(self) -> str:
        return "hourbridge-sandbox/1"

    def send_response(self, code: int, message: str | None = None) -> None:
        # werkzeug upper-cases reason phrases; keep the standard ones clients (and their errors) show.
        super().send_response(code)

    def connection_dropped(self, error: BaseException, environ: WSGIEnvironment | None = None) -> None:
        # Nothing was sent: close the socket, or the client would wait on a keep-alive connection.
        self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        return

    def log_message(self, format: str, *args: Any) -> None:
        return


class SandboxServer:
    """Routes requests on 127.0.0.1 to handlers, counting calls, limiting rates and injecting faults.

    Routes are werkzeug rules (``/items/<item_id>``) registered relative to ``base_path``;
    ``base_url`` includes it. A request passes: the traffic recorder (``_recording``, idle unless a
    recording is open) → ``wrap`` (if any, outside routing) → router (404/405) → call counter →
    injected faults → garbage → rate limit → the ``inner`` layers, outermost first (a vendor's own
    credential check and quota) → the handler (a crash answers 500).
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
        wrap: Middleware | None = None,
        inner: Sequence[Middleware] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._base_path = base_path.rstrip("/")
        self._error = error_factory or _default_error
        # Merged or missing slashes would otherwise redirect; the emulators answer 404 like before,
        # and a trailing slash is optional on every route.
        self._map = Map(strict_slashes=False, merge_slashes=False)
        self._urls = self._map.bind("127.0.0.1")
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        limiter = RateLimiter(rate_limit_per_minute, clock=clock or time.monotonic)
        handler_app: WSGIApplication = self._call_handler
        for layer in reversed(inner):
            handler_app = layer(handler_app)
        self._limits = RateLimit(handler_app, limiter, self._error, rate_limit_key)
        self._garbage = Garbage(self._limits)
        self._faults = Faults(self._garbage, self._error)
        self._counter = CallCounter(self._faults)
        routed: WSGIApplication = self._route_request if wrap is None else wrap(self._route_request)
        # Outermost, so a conformance check sees exactly what went over the wire (a no-op unless recording).
        self._app: WSGIApplication = Recorder(routed)
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._connections = _OpenConnections()

    # -- routing ---------------------------------------------------------------------------------

    def route(self, method: str, rule: str, handler: Handler, *, name: str | None = None) -> str:
        """Register ``handler`` for ``method`` and a werkzeug rule with ``<param>`` segments."""
        route_name = name or f"{method.upper()} {rule}"
        with self._lock:
            if route_name in self._handlers:
                raise ValueError(f"route name {route_name!r} is already registered")
            self._map.add(Rule(self._base_path + rule, endpoint=route_name, methods=[method.upper()]))
            self._handlers[route_name] = handler
        self._counter.add_route(route_name)
        return route_name

    @property
    def route_names(self) -> list[str]:
        with self._lock:
            return list(self._handlers)

    def _route_request(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = request_of(environ)
        try:
            rule, params = self._urls.match(request.path, request.method, return_rule=True)
        except MethodNotAllowed:
            answer = self._error(405, f"Method {request.method} is not allowed on {request.path}")
            return answer(environ, start_response)
        except (NotFound, RoutingException):  # RoutingException: a redirect no rule here asks for
            answer = self._error(404, f"No matching route for {request.method} {request.path}")
            return answer(environ, start_response)
        environ[ROUTE_KEY] = str(rule.endpoint)
        environ[PARAMS_KEY] = dict(params)
        return self._counter(environ, start_response)

    def _call_handler(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = request_of(environ)
        handler = self._handlers[request.route]
        # Read the body now: werkzeug answers on the same socket, and an unread body must not linger.
        request.get_data()
        try:
            answer = handler(request)
        except DropConnection:
            raise
        except Exception as exc:  # a crashing handler must still answer, like a real 500
            answer = self._error(500, f"{type(exc).__name__}: {exc}")
        return answer(environ, start_response)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, port: int | None = None) -> SandboxServer:
        """Listen on ``port`` (default: the one given at construction; 0 = any free port)."""
        if self._httpd is not None:
            raise RuntimeError("sandbox server is already running")
        if port is not None:
            self._port = port
        handler = type("_Handler", (_QuietHandler,), {"connections": self._connections})
        httpd = make_server(self._host, self._port, self._app, threaded=True, request_handler=handler)
        assert isinstance(httpd, ThreadedWSGIServer)
        # Non-daemon threads are tracked, so server_close() joins them: no handler outlives stop().
        httpd.daemon_threads = False
        httpd.block_on_close = True
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
        # A connection opened but not yet answered would otherwise keep its handler thread waiting.
        self._connections.close_all()
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
        if not self._counter.knows(route_name):
            known = ", ".join(self._counter.known())
            raise KeyError(f"unknown route {route_name!r} (known: {known})")
        self._faults.add(route_name, n, status, headers, body)

    def garble_next(self, route_name: str, n: int, kind: GarbageKind | str) -> None:
        """Spoil the next ``n`` answers of ``route_name``: cut short, plain text, or an HTML page with 200."""
        if not self._counter.knows(route_name):
            known = ", ".join(self._counter.known())
            raise KeyError(f"unknown route {route_name!r} (known: {known})")
        self._garbage.add(route_name, n, GarbageKind(kind))

    @property
    def garbled_count(self) -> int:
        """Answers spoiled by ``garble_next`` so far."""
        return self._garbage.spoiled

    def clear_faults(self) -> None:
        self._faults.clear()
        self._garbage.clear()

    def call_count(self, route_name: str | None = None) -> int:
        """Requests received on one route (or all routes), including rejected and faulted ones."""
        return self._counter.count(route_name)

    @property
    def rate_limited_count(self) -> int:
        return self._limits.limited

    def reset_counts(self) -> None:
        self._counter.reset()
        self._limits.reset_counts()
        self._faults.reset_counts()

    def set_rate_limit(self, per_minute: int | None) -> None:
        self._limits.limiter.set_limit(per_minute)


class HostedSandbox:
    """Lifecycle every emulator shares: start/stop, context manager, its URL, server and token.

    Subclasses create ``self._server`` (a ``SandboxServer``) and ``self._token`` in ``__init__``.
    """

    _server: SandboxServer
    _token: str

    def start(self, port: int | None = None) -> Self:
        """Serve on 127.0.0.1:``port`` (default: any free port)."""
        self._server.start(port)
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

    def garble_next(self, route_name: str, n: int, kind: GarbageKind | str) -> None:
        """Spoil the next ``n`` answers of a route (see ``GarbageKind``); the server's route names apply."""
        self._server.garble_next(route_name, n, kind)

    @property
    def token(self) -> str:
        return self._token
