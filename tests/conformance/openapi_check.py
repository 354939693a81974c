"""Validates recorded exchanges against an OpenAPI document with openapi-core, as if sent to the vendor's host."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connectors.sandbox._recording import Exchange


@dataclass(frozen=True, slots=True)
class WireRequest:
    """openapi-core's request protocol over a recorded request, addressed to the vendor's real host."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass(frozen=True, slots=True)
class WireResponse:
    """openapi-core's response protocol over a recorded answer."""

    data: bytes
    status_code: int
    content_type: str
    headers: Headers


def wire_request(exchange: Exchange, host: str) -> WireRequest:
    # keep_blank_values: `opt_fields=` is a value the API judges, not an absent parameter.
    query = ImmutableMultiDict(parse_qsl(exchange.query, keep_blank_values=True))
    return WireRequest(
        host_url=host,
        path=exchange.path,
        method=exchange.method.lower(),
        body=exchange.request_body or None,
        content_type=exchange.request_header("Content-Type") or "application/octet-stream",
        parameters=RequestParameters(query=query, header=Headers(list(exchange.request_headers)), cookie={}),
    )


def wire_response(exchange: Exchange) -> WireResponse:
    return WireResponse(
        data=exchange.response_body,
        status_code=exchange.status,
        content_type=exchange.response_header("Content-Type") or "application/octet-stream",
        headers=Headers(list(exchange.response_headers)),
    )


def _schema_errors(error: BaseException) -> list[str]:
    found: list[str] = []
    for nested in getattr(error, "schema_errors", None) or ():
        # For oneOf/anyOf, the branch errors say what is actually wrong.
        leaves = [leaf for branch in getattr(nested, "context", None) or () for leaf in [branch]] or [nested]
        for leaf in leaves[:6]:
            path = "/".join(str(p) for p in getattr(leaf, "absolute_path", ()))
            found.append(f"  at {path or '(root)'}: {str(getattr(leaf, 'message', leaf))[:300]}")
    return found


def _describe(error: BaseException) -> str:
    # openapi-core raises one error and chains the schema errors under it: show those, not the whole value.
    parts = [f"{type(error).__name__}: {str(error)[:200]}"]
    cause: BaseException | None = error
    while cause is not None:
        if cause is not error:
            parts.append(f"  caused by {type(cause).__name__}: {str(cause)[:200]}")
        parts.extend(_schema_errors(cause))
        cause = cause.__cause__
    return "\n".join(parts)


@contextmanager
def _quiet_security() -> Iterator[None]:
    # Warnings about the documents, not about the traffic: openapi-core checks apiKey and http schemes
    # but warns on oauth2 (Xero's; the bearer header is the connectors' unit tests' business), and
    # warns on `allowEmptyValue`, which Asana's document uses and OpenAPI 3.0 still allows.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported scheme type", category=UserWarning)
        warnings.filterwarnings("ignore", message="Use of allowEmptyValue", category=DeprecationWarning)
        yield


def request_problems(api: OpenAPI, exchange: Exchange, host: str) -> list[str]:
    """What the document says is wrong with the request as sent (empty: it conforms)."""
    try:
        with _quiet_security():
            api.validate_request(wire_request(exchange, host))
    except PathNotFound as error:
        return [f"{exchange.label}: not an operation of the spec ({error})"]
    except Exception as error:  # openapi-core raises one of many validation errors; all are findings
        return [f"{exchange.label}: request: {_describe(error)}"]
    return []


def response_problems(api: OpenAPI, exchange: Exchange, host: str) -> list[str]:
    """What the document says is wrong with the answer as given (empty: it conforms)."""
    try:
        with _quiet_security():
            api.validate_response(wire_request(exchange, host), wire_response(exchange))
    except Exception as error:  # as above: every validation error is a finding
        return [f"{exchange.label}: answer: {_describe(error)}"]
    return []
