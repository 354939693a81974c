"""One retry policy, one rate limiter per credential, one httpx client factory, and secret redaction."""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import structlog
import tenacity

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

T = TypeVar("T")
log = structlog.get_logger("hourbridge.http")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


# --------------------------------------------------------------------------- secrets


_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)((?:access|refresh)_token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
    re.compile(r"(?i)(client_secret['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
)


def register_secret(value: str | None) -> None:
    """Remember a credential so that ``redact`` scrubs it from any text (logs, errors, reports)."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret and anything that looks like a credential with ``***``."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}***", text)
    return text


def credential_key(token: str) -> str:
    """A stable, non-reversible name for a credential (limiters are shared per credential)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """A token bucket shared by every thread that uses one credential, capped by a sliding minute.

    Vendors evaluate their limits more often than once a minute, so the bucket holds a few seconds'
    worth of burst, not a full minute. A bucket alone would still let ``rate x 60 + burst`` calls
    through in some 60 s span, which a vendor's sliding window answers with 429s on long runs, so
    every grant is also logged and no more than ``per_minute`` are granted in any 60 s.
    ``pause_for`` is how a 429's Retry-After reaches every thread at once instead of each of them
    discovering it with a request of its own.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst_seconds: float = 2.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.per_minute = max(1, int(per_minute))
        self.capacity = max(1.0, self.rate * burst_seconds)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._paused_until = 0.0
        self._granted: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                while self._granted and self._granted[0] <= now - 60.0:
                    self._granted.popleft()
                wait = max(0.0, self._paused_until - now)
                if wait == 0.0 and len(self._granted) >= self.per_minute:
                    wait = max(0.001, self._granted[0] + 60.0 - now)
                if wait == 0.0:
                    # A small tolerance: float refills can land a hair under one token forever.
                    if self._tokens >= 1.0 - 1e-9:
                        self._tokens = max(0.0, self._tokens - 1.0)
                        self._granted.append(now)
                        return
                    wait = max((1.0 - self._tokens) / self.rate, 0.001)
                self.waited += wait
            self._sleep(wait)

    def pause_for(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (a vendor's Retry-After) and drain the burst."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0.0
            self._last = max(self._last, self._paused_until)

    def observe_remaining(self, remaining: int, reset_in: float) -> None:
        """Slow down proactively from a vendor's remaining-quota headers (ClickUp, Xero)."""
        with self._lock:
            if remaining <= 0 and reset_in > 0:
                now = self._clock()
                self._paused_until = max(self._paused_until, now + reset_in)
                self._tokens = 0.0
            elif reset_in > 0:
                self._tokens = min(self._tokens, float(remaining))


_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(vendor: str, token: str, per_minute: float) -> RateLimiter:
    """The process-wide limiter of one credential (so every thread and window shares it)."""
    key = (vendor, credential_key(token))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None or limiter.rate != per_minute / 60.0:
            limiter = RateLimiter(per_minute)
            _LIMITERS[key] = limiter
        return limiter


# --------------------------------------------------------------------------- retrying


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; a vendor's Retry-After always wins."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_retry_after: float = 300.0


@dataclass(slots=True)
class CallStats:
    """Counters one connector keeps (calls made, retries, 429s)."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, calls: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self.lock:
            self.calls += calls
            self.retries += retries
            self.throttled += throttled

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"api_calls": self.calls, "retries": self.retries, "throttled": self.throttled}


def backoff_seconds(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the given (1-based) attempt."""
    ceiling = min(policy.cap_seconds, policy.base_seconds * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    stats: CallStats | None = None,
    sleep: Sleep = time.sleep,
    what: str = "request",
) -> T:
    """Run ``fn`` under the limiter; retry ``TransientError`` per ``policy``; re-raise anything else."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = min(exc.retry_after, policy.max_retry_after)
            if limiter is not None:
                limiter.pause_for(delay)
                return 0.0  # the limiter does the waiting, for every thread of this credential
            return delay
        return backoff_seconds(policy, state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if stats is not None:
            stats.add(retries=1)
        log.warning(
            "http.retry",
            what=what,
            attempt=state.attempt_number,
            error=redact(str(exc)) if exc else None,
            wait=round(state.upcoming_sleep, 3),
        )

    def attempt() -> T:
        if limiter is not None:
            limiter.acquire()
        if stats is not None:
            stats.add(calls=1)
        try:
            return fn()
        except TransientError as exc:
            if exc.status == 429 and stats is not None:
                stats.add(throttled=1)
            raise

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)


# --------------------------------------------------------------------------- httpx


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
                f"Upgrade the plan or remove this workspace from {setting}{suffix}"
            )
        if status == 404:
            return ConfigError(f"{vendor} answered HTTP 404: check the ids in {setting}{suffix}")
        return ConfigError(
            f"{vendor} refused the credential (HTTP {status}): set a valid token with the needed "
            f"permissions in {setting}{suffix}"
        )
    if classification.action is Action.BUG:
        return RequestBugError(f"{vendor} rejected the request (HTTP {status}){suffix}")
    return PayloadError(f"{vendor} answered unexpectedly (HTTP {status}){suffix}")


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
