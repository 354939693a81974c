"""The request and response an emulator's handler sees: werkzeug's wrappers plus a few vendor-neutral helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request as _WerkzeugRequest
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "JSON_CONTENT_TYPE",
    "DropConnection",
    "ErrorFactory",
    "Handler",
    "Refused",
    "Request",
    "Response",
    "json_object",
    "json_response",
    "refuse_unknown",
    "request_of",
    "with_headers",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Keys the router leaves in the WSGI environ for the layers below it.
ROUTE_KEY = "hourbridge.sandbox.route"
PARAMS_KEY = "hourbridge.sandbox.params"
_REQUEST_KEY = "hourbridge.sandbox.request"


class Request(_WerkzeugRequest):
    """werkzeug's request, plus the matched route's name and path parameters and the bearer token."""

    @property
    def route(self) -> str:
        """The name of the route the router matched (what ``fail_next`` and ``call_count`` take)."""
        return str(self.environ.get(ROUTE_KEY, ""))

    @property
    def params(self) -> dict[str, str]:
        """The route's path parameters, percent-decoded."""
        params: dict[str, str] = self.environ.get(PARAMS_KEY, {})
        return params

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter, or ``None`` when absent."""
        return self.args.get(name)

    def json_body(self) -> Any:
        """The body parsed as JSON whatever its Content-Type (vendors differ), or ``None`` when empty.

        Raises ``ValueError`` on a body that is not JSON, as ``json.loads`` does.
        """
        data = self.get_data()
        return json.loads(data.decode("utf-8")) if data else None

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


def request_of(environ: WSGIEnvironment) -> Request:
    """The one ``Request`` of this environ: every layer shares it, so the body is read once."""
    request = environ.get(_REQUEST_KEY)
    if not isinstance(request, Request):
        request = Request(environ)
        environ[_REQUEST_KEY] = request
    return request


class DropConnection(ConnectionAbortedError):
    """Raised by a handler to close the connection without an answer (a write that landed unseen).

    werkzeug's server treats a ``ConnectionError`` from the application as a dropped connection, and
    the sandbox's request handler then closes the socket, so the client sees no response at all.
    """


class Refused(Exception):
    """A request the emulated vendor refuses; the emulator answers it with its vendor's error for ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refuse_unknown(names: Iterable[str], allowed: Iterable[str], what: str, *, status: int = 400) -> None:
    """``Refused`` naming the ``what``s (parameters, fields) among ``names`` the vendor does not take."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise Refused(status, f"Unknown {what}(s): {', '.join(unknown)}")


def json_object(request: Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The body as a JSON object of ``allowed`` fields only, else ``Refused`` with 400 saying what is wrong."""
    try:
        body = request.json_body()
    except ValueError:
        raise Refused(400, "The body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "The body must be a JSON object")
    refuse_unknown(body, allowed, "field")
    return body


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE)


def with_headers(response: Response, extra: Mapping[str, str]) -> Response:
    """A copy of ``response`` with the ``extra`` headers it does not already carry.

    A copy, not an edit: emulators keep answers to replay (idempotency keys), and a replay must not
    inherit headers a middleware added the first time round.
    """
    headers = Headers(response.headers)
    for name, value in extra.items():
        if name not in headers:
            headers.add(name, value)
    return Response(response.get_data(), status=response.status, headers=headers)


Handler = Callable[[Request], Response]
ErrorFactory = Callable[[int, str], Response]
"""Builds a vendor-shaped error body for a status and a message (404s, faults, 429s, crashes)."""
