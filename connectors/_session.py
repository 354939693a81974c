"""ApiSession: one vendor connection (httpx client, retry policy, the credential's limiter, call stats, close)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from connectors._http import send, send_json
from connectors._ratelimit import RateLimiter
from connectors._retry import CallStats, RetryPolicy, Sleep, call_with_retry
from connectors.errors import ConfigError, GarbledAnswer, PayloadError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ApiSession:
    """What every vendor client shares: requests go out under one retry policy and one limiter, and are counted.

    ``http`` is absent when a vendor's SDK sends the requests (Asana): the SDK's calls still run
    through ``call``, so the same policy, limiter and counters apply. ``on_close`` releases what
    the SDK holds. ``sleep`` is the wait between retries; the limiter waits on its own time source.
    """

    def __init__(
        self,
        *,
        vendor: str,
        setting: str,
        policy: RetryPolicy,
        limiter: RateLimiter,
        http: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.setting = setting
        self.policy = policy
        self.limiter = limiter
        self.stats = CallStats()
        self.sleep = sleep
        self._http = http
        self._on_close = on_close

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError(f"the {self.vendor} session sends through an SDK, not httpx")
        return self._http

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run one request function under the limiter; retry ``TransientError`` per the policy.

        Through an SDK, an answer the SDK could not decode comes back as its raw bytes (the Asana SDK
        hands back ``response.data`` when ``json.loads`` fails): that is a garbled answer, retried
        like a 5xx, whichever SDK call made it.
        """
        if self._http is not None:
            return call_with_retry(
                fn, policy=self.policy, limiter=self.limiter, stats=self.stats, sleep=self.sleep, what=what
            )

        def decoded() -> T:
            result = fn()
            if isinstance(result, bytes):
                raise GarbledAnswer(f"{self.vendor} answered {what} with a body that is not JSON (truncated or a page)")
            return result

        return call_with_retry(
            decoded, policy=self.policy, limiter=self.limiter, stats=self.stats, sleep=self.sleep, what=what
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        setting: str | None = None,
        check: Callable[[httpx.Response], None] | None = None,
        forbidden: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; a failed status becomes the classified error naming ``setting`` (default: the token's).

        ``forbidden`` is what to check when the answer is 403 or 404, added to that error's message.
        """
        with _advised(forbidden):
            return send(self.http, method, url, check=check, **self._policy(setting), **kwargs)

    def send_json(
        self,
        method: str,
        url: str,
        *,
        setting: str | None = None,
        check: Callable[[Any], None] | None = None,
        forbidden: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request and its decoded JSON body; an unreadable body is retried like a 5xx.

        ``forbidden`` is what to check when the answer is 403 or 404, as in ``send``.
        """
        with _advised(forbidden):
            return send_json(self.http, method, url, check=check, **self._policy(setting), **kwargs)

    def parse(self, model: type[M], payload: Any, what: str) -> M:
        """A wire model from a decoded answer; ``PayloadError`` naming the first field that did not fit."""
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PayloadError(f"{self.vendor} {what} could not be read: {where}: {first['msg']}") from None

    def _policy(self, setting: str | None) -> dict[str, Any]:
        """What every request of this session shares: vendor, setting to name, retry policy, limiter, stats."""
        return {
            "vendor": self.vendor,
            "setting": setting or self.setting,
            "policy": self.policy,
            "limiter": self.limiter,
            "stats": self.stats,
            "sleep": self.sleep,
        }

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> ApiSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _advised(forbidden: str | None) -> Iterator[None]:
    """A 403 or 404 refusal re-raised with what to check (which setting) added to its message."""
    try:
        yield
    except ConfigError as exc:
        if forbidden is None or exc.status not in (403, 404):
            raise
        raise ConfigError(f"{exc.message}. {forbidden}", status=exc.status) from None
