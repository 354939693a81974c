"""Records every request an emulator receives and the answer it gives, for conformance checks against the specs.

The hook sits outermost on every ``SandboxServer`` and costs nothing while no recording is active:
it then hands the request straight on. Inside ``recording()`` it keeps the request as sent (method,
path, raw query string, headers, body) and the answer as given (status, headers, body), without
changing either: the body is read through the environ's shared request, which every layer below
reads anyway, and the answer's bytes are passed on as they came.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.sandbox._http import ROUTE_KEY, request_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Exchange", "Recorder", "Traffic", "recording"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as the emulator received it and the answer as it gave it (``status`` 0: dropped)."""

    host: str
    route: str
    method: str
    path: str
    query: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes

    def request_header(self, name: str) -> str | None:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _header(self.response_headers, name)

    @property
    def label(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status}"


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


class Traffic:
    """The exchanges recorded while one ``recording()`` was open, in the order their answers completed."""

    def __init__(self) -> None:
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def __len__(self) -> int:
        with self._lock:
            return len(self._exchanges)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)


_active: list[Traffic] = []
_active_lock = threading.Lock()


@contextmanager
def recording() -> Iterator[Traffic]:
    """Record the traffic of every sandbox server in this process (running or started later) until exit."""
    traffic = Traffic()
    with _active_lock:
        _active.append(traffic)
    try:
        yield traffic
    finally:
        with _active_lock:
            _active.remove(traffic)


def _listeners() -> list[Traffic]:
    with _active_lock:
        return list(_active)


class Recorder:
    """WSGI middleware: passes every request on unchanged and, while recording, keeps a copy of both sides."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        listeners = _listeners()
        if not listeners:
            return self._app(environ, start_response)
        # The shared request caches the body, so the layers below read the same bytes again.
        request_body = request_of(environ).get_data()
        answered: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered["status"] = int(status.split(" ", 1)[0])
            answered["headers"] = tuple(headers)
            return start_response(status, headers, exc_info)

        try:
            answer = self._app(environ, capture)
        except ConnectionError:  # a dropped answer (DropConnection): the client saw nothing
            self._keep(listeners, environ, request_body, 0, (), b"")
            raise
        try:
            chunks = list(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:  # WSGI: whoever consumes an answer closes it
                close()
        self._keep(listeners, environ, request_body, answered.get("status", 0), answered.get("headers", ()), chunks)
        return chunks

    @staticmethod
    def _keep(
        listeners: list[Traffic],
        environ: WSGIEnvironment,
        request_body: bytes,
        status: int,
        headers: tuple[tuple[str, str], ...],
        chunks: list[bytes] | bytes,
    ) -> None:
        request_headers = tuple(
            (key[5:].replace("_", "-").title(), str(value)) for key, value in environ.items() if key.startswith("HTTP_")
        )
        if environ.get("CONTENT_TYPE"):
            request_headers += (("Content-Type", str(environ["CONTENT_TYPE"])),)
        exchange = Exchange(
            host=str(environ.get("HTTP_HOST", "")),
            route=str(environ.get(ROUTE_KEY, "")),
            method=str(environ.get("REQUEST_METHOD", "")),
            path=request_of(environ).path,
            query=str(environ.get("QUERY_STRING", "")),
            request_headers=request_headers,
            request_body=request_body,
            status=status,
            response_headers=headers,
            response_body=chunks if isinstance(chunks, bytes) else b"".join(chunks),
        )
        for traffic in listeners:
            traffic.add(exchange)
