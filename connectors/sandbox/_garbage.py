"""WSGI middleware that spoils answers the way proxies and overloaded backends do: cut short, not JSON, HTML with 200.

Self-contained on purpose: it knows no vendor and no other layer; the server puts it between its
injected faults and its rate limit, and ``SandboxServer.garble_next`` queues what it does.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.sandbox._http import Response, request_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server is temporarily unavailable.</p></body></html>\n"
)
NOT_JSON = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"


class GarbageKind(enum.Enum):
    """What a spoiled answer looks like."""

    TRUNCATED = "truncated"  # the real answer (the handler ran), its body cut in half, framing intact
    NOT_JSON = "not_json"  # a 200 with plain text, the handler never reached
    HTML = "html"  # a 200 with a gateway's HTML page, the handler never reached


@dataclass(slots=True)
class _Queued:
    remaining: int
    kind: GarbageKind


class Garbage:
    """Spoils the next ``n`` answers of a route with one ``GarbageKind``; everything else passes untouched."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._queues: dict[str, deque[_Queued]] = {}
        self._spoiled = 0
        self._lock = threading.Lock()

    def add(self, route_name: str, n: int, kind: GarbageKind) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._queues.setdefault(route_name, deque()).append(_Queued(n, kind))

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    @property
    def spoiled(self) -> int:
        """Answers spoiled so far."""
        with self._lock:
            return self._spoiled

    def _take(self, route_name: str) -> GarbageKind | None:
        with self._lock:
            queue = self._queues.get(route_name)
            if not queue:
                return None
            queued = queue[0]
            queued.remaining -= 1
            if queued.remaining <= 0:
                queue.popleft()
            self._spoiled += 1
            return queued.kind

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        kind = self._take(request_of(environ).route)
        if kind is None:
            return self._app(environ, start_response)
        if kind is GarbageKind.HTML:
            return Response(HTML_PAGE, status=200, content_type="text/html; charset=utf-8")(environ, start_response)
        if kind is GarbageKind.NOT_JSON:
            return Response(NOT_JSON, status=200, content_type="text/plain")(environ, start_response)
        return self._truncated(environ, start_response)

    def _truncated(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        body = b"".join(self._app(environ, capture))
        # Half the body with a Content-Length that matches it: the HTTP framing is whole, so only
        # reading the JSON shows that something is missing (a proxy that cut the answer short).
        cut = body[: max(1, len(body) // 2)] if body else b"{"
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(cut)))])
        return [cut]
