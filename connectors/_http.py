"""httpx at the edge: the one client factory, one request under the retry policy, HTTP status and garbage to error."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from connectors._ratelimit import RateLimiter
from connectors._redact import redact
from connectors._retry import CallStats, RetryPolicy, Sleep, call_with_retry
from connectors.errors import (
    Action,
    ConfigError,
    GarbledAnswer,
    HourbridgeError,
    OutcomeUnknown,
    PayloadError,
    RequestBugError,
    TransientError,
    classify_status,
    parse_retry_after,
)


def error_from_status(
    status: int,
    *,
    vendor: str,
    setting: str,
    detail: str = "",
    headers: Mapping[str, str] | None = None,
) -> HourbridgeError:
    """Turn a failed HTTP status into the right error, with a message that says what to fix."""
    classification = classify_status(status)
    detail = redact(detail)[:300]
    suffix = f": {detail}" if detail else ""
    if classification.action is Action.TRANSIENT:
        retry_after = parse_retry_after((headers or {}).get("retry-after") or (headers or {}).get("Retry-After"))
        return TransientError(f"{vendor} answered HTTP {status}{suffix}", retry_after=retry_after, status=status)
    if classification.action is Action.CONFIG:
        if status == 402:
            return ConfigError(
                f"{vendor} refused with HTTP 402: the workspace's plan does not include time tracking. "
                f"Upgrade the plan or remove this workspace from {setting}{suffix}",
                status=status,
            )
        if status == 404:
            return ConfigError(f"{vendor} answered HTTP 404: check the ids in {setting}{suffix}", status=status)
        return ConfigError(
            f"{vendor} refused the credential (HTTP {status}): set a valid token with the needed "
            f"permissions in {setting}{suffix}",
            status=status,
        )
    if classification.action is Action.BUG:
        return RequestBugError(f"{vendor} rejected the request (HTTP {status}){suffix}", status=status)
    return PayloadError(f"{vendor} answered unexpectedly (HTTP {status}){suffix}", status=status)


_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")


def describe_garbage(response: httpx.Response) -> str:
    """What an unreadable answer looked like, for the admin message and the log (never the body itself)."""
    content_type = response.headers.get("content-type", "").lower()
    head = response.content[:256].lstrip().lower()
    if "html" in content_type or head.startswith(_HTML_STARTS):
        return "an HTML page instead of JSON (a proxy, gateway or maintenance page)"
    if not head:
        return "an empty body instead of JSON"
    if head[:1] in (b"{", b"["):
        return "a truncated or malformed JSON body"
    return "a body that is not JSON"


def garbled(response: httpx.Response, *, vendor: str, write: bool = False) -> HourbridgeError:
    """The error for an answer that could not be read: retried like a 5xx, or ``OutcomeUnknown`` for a write.

    The one place that decides what garbage means. A read is worth repeating: the body a proxy cut
    short or replaced with its own page says nothing about the data behind it. A write may have
    landed before the answer was spoiled, so it is looked up before it is sent again, exactly as
    after a 5xx.
    """
    what = describe_garbage(response)
    status = response.status_code
    if write:
        return OutcomeUnknown(
            f"{vendor} answered HTTP {status} with {what} to a write that may have landed; "
            "it is looked up before being sent again"
        )
    return GarbledAnswer(f"{vendor} answered HTTP {status} with {what}", status=status)


def decode_json(response: httpx.Response, *, vendor: str, write: bool = False) -> Any:
    """The JSON body of a successful answer; garbage raises what ``garbled`` decides."""
    content_type = response.headers.get("content-type", "").lower()
    # An HTML page that happens to parse (a bare "null" or a number) is still not the vendor's answer.
    if "html" in content_type:
        raise garbled(response, vendor=vendor, write=write)
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise garbled(response, vendor=vendor, write=write) from None


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The one way connectors build an httpx client: timeouts, pooled connections, our user agent."""
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": "hourbridge/0.1", **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        transport=transport,
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    vendor: str,
    setting: str,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    stats: CallStats | None = None,
    sleep: Sleep = time.sleep,
    check: Callable[[httpx.Response], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request with the retry policy and the limiter; raise a classified error on failure.

    ``check`` is the hook for vendors that put errors inside a 200 (monday): it raises the right
    ``HourbridgeError`` itself. The body is not read here: ``send_json`` is the call that does.
    """

    def once() -> httpx.Response:
        return _request_once(client, method, url, vendor=vendor, setting=setting, check=check, **kwargs)

    return call_with_retry(once, policy=policy, limiter=limiter, stats=stats, sleep=sleep, what=f"{vendor} {method}")


def send_json(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    vendor: str,
    setting: str,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    stats: CallStats | None = None,
    sleep: Sleep = time.sleep,
    check: Callable[[Any], None] | None = None,
    **kwargs: Any,
) -> Any:
    """Like ``send``, and the decoded JSON body: a body that cannot be read is retried like a 5xx.

    Decoding happens inside the retry loop, so one garbled answer costs one more request, not the
    window. ``check`` sees the decoded body (monday reads its errors from it) and raises.
    """

    def once() -> Any:
        response = _request_once(client, method, url, vendor=vendor, setting=setting, check=None, **kwargs)
        payload = decode_json(response, vendor=vendor)
        if check is not None:
            check(payload)
        return payload

    return call_with_retry(once, policy=policy, limiter=limiter, stats=stats, sleep=sleep, what=f"{vendor} {method}")


def _request_once(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    vendor: str,
    setting: str,
    check: Callable[[httpx.Response], None] | None,
    **kwargs: Any,
) -> httpx.Response:
    """One attempt: transport failures are transient, a failed status is classified."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{vendor} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise TransientError(f"{vendor} could not be reached: {redact(str(exc))}") from None
    if response.status_code >= 400:
        raise error_from_status(
            response.status_code,
            vendor=vendor,
            setting=setting,
            detail=response.text,
            headers=response.headers,
        )
    if check is not None:
        check(response)
    return response
