"""httpx at the edge: the one client factory, one request under the retry policy, and HTTP status to error."""

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
    HourbridgeError,
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
    ``HourbridgeError`` itself.
    """

    def once() -> httpx.Response:
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

    return call_with_retry(once, policy=policy, limiter=limiter, stats=stats, sleep=sleep, what=f"{vendor} {method}")
