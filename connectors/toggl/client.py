"""TogglClient: API v9 and Reports API v3 calls under the shared session, the hourly quota kept as a budget."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from connectors._budget import HourlyBudget
from connectors._http import decode_json, make_client
from connectors._paging import TokenPaging
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._redact import register_secret
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.errors import PayloadError
from connectors.toggl.config import ENV_PREFIX, ME_HOURLY_QUOTA, REQUESTS_PER_MINUTE, TogglConfig
from connectors.toggl.schema import TogglMe, TogglNamed, TogglReportRow, TogglTimeEntry, TogglWorkspace

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_WORKSPACE_IDS = f"{ENV_PREFIX}WORKSPACE_IDS"
SETTING_PLAN = f"{ENV_PREFIX}PLAN"
VENDOR = "Toggl Track"
# Toggl: "Time Entries specifically do have a limit of 1000" per answer
# (https://github.com/toggl/toggl_api_docs/issues/416).
ME_MAX_ENTRIES = 1000

# Toggl: the quota headers; unconfirmed names (Toggl says "the response header will show the amount
# of requests left", https://support.toggl.com/en/articles/11623558-faqs-about-api-limits).
QUOTA_REMAINING = "X-Toggl-Quota-Remaining"
QUOTA_RESETS_IN = "X-Toggl-Quota-Resets-In"
# Reports API v3 pages by the next row's id, number and timestamp, named in these answer headers and
# sent back as first_id / first_row_number / first_timestamp
# (https://developers.track.toggl.com/docs/reports/detailed_reports: "Supports pagination via X-Next-ID
# and X-Next-Row-Number headers"; X-Next-Timestamp is unconfirmed and passed on when present).
NEXT_HEADERS = (
    ("X-Next-ID", "first_id"),
    ("X-Next-Row-Number", "first_row_number"),
    ("X-Next-Timestamp", "first_timestamp"),
)

# Toggl: a workspace the token's user is not in, or may not report on, is forbidden.
WORKSPACE_ADVICE = (
    f"Check {SETTING_WORKSPACE_IDS}: the token's user must be an admin of each workspace named there "
    f"(or set {ENV_PREFIX}FEED=me to read only the token owner's own time)"
)

Clock = Callable[[], float]


def _number(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def _readable(response: httpx.Response) -> None:
    decode_json(response, vendor=VENDOR)


class _QuotaHeaders(httpx.BaseTransport):
    """Reads the quota headers of every answer; a 402 with them is the spent quota, not a plan problem."""

    def __init__(self, inner: httpx.BaseTransport, budget_of: Callable[[httpx.Request], HourlyBudget]) -> None:
        self._inner = inner
        self._budget_of = budget_of

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        remaining = _number(response.headers, QUOTA_REMAINING)
        resets_in = _number(response.headers, QUOTA_RESETS_IN)
        budget = self._budget_of(request)
        budget.observe(remaining, resets_in)
        if response.status_code == 402 and (remaining is not None or resets_in is not None):
            response.close()
            # Toggl: "When you reach your limit, the server responds with an HTTP 402 status code"
            # (https://support.toggl.com/en/articles/11484112-api-webhook-limits).
            raise budget.spent(resets_in)
        return response

    def close(self) -> None:
        self._inner.close()


class TogglClient:
    """The Toggl Track calls a source makes; thread-safe, one session per token's limiter."""

    def __init__(
        self,
        config: TogglConfig,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        advice = f"a larger plan in {SETTING_PLAN} raises the quota"
        self.workspace_budget = HourlyBudget(
            config.workspace_quota, vendor=VENDOR, what="workspace requests", advice=advice, clock=clock
        )
        self.me_budget = HourlyBudget(
            ME_HOURLY_QUOTA,
            vendor=VENDOR,
            what="the token owner's own data (/me, 30 an hour on every plan)",
            advice="the quota of /me calls is the same on every plan",
            clock=clock,
        )
        # Toggl: HTTP Basic with the API token as user name and the word "api_token" as password.
        basic = base64.b64encode(f"{token}:api_token".encode()).decode("ascii")
        register_secret(basic)  # the header's encoded form is as secret as the token itself
        http = make_client(
            config.base_url.rstrip("/"),
            headers={"Authorization": f"Basic {basic}"},
            timeout=config.timeout_seconds,
            transport=_QuotaHeaders(transport or httpx.HTTPTransport(), self._budget_of),
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("toggl", token, REQUESTS_PER_MINUTE),
            http=http,
            sleep=sleep,
        )

    def close(self) -> None:
        self.session.close()

    def _budget_of(self, request: httpx.Request) -> HourlyBudget:
        return self.me_budget if request.url.path.startswith("/api/v9/me") else self.workspace_budget

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        mine = path.startswith("/api/v9/me")
        (self.me_budget if mine else self.workspace_budget).take()
        # Decoded inside the retry loop too, so a garbled body is retried like a 5xx.
        return self.session.send(method, path, check=_readable, forbidden=None if mine else WORKSPACE_ADVICE, **kwargs)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return decode_json(self._send("GET", path, params=params or {}), vendor=VENDOR)

    # ----------------------------------------------------------------- calls

    def me(self) -> TogglMe:
        return self.session.parse(TogglMe, self._get("/api/v9/me"), "profile")

    def workspace(self, workspace_id: str) -> TogglWorkspace:
        return self.session.parse(
            TogglWorkspace, self._get(f"/api/v9/workspaces/{workspace_id}"), f"workspace {workspace_id}"
        )

    def named(self, workspace_id: str, kind: str) -> dict[int, TogglNamed]:
        """A workspace's projects, clients, tags or users by id (one call each, cached by the source).

        ``/api/v9/workspaces/{id}/users`` is unconfirmed in v9; the source reads it and does without on 403/404.
        """
        payload = self._get(f"/api/v9/workspaces/{workspace_id}/{kind}")
        if payload is None:
            return {}  # Toggl answers null for an empty list
        if not isinstance(payload, list):
            raise PayloadError(f"Toggl Track {kind} of workspace {workspace_id} are not a list")
        items = [
            self.session.parse(TogglNamed, item, f"{kind[:-1]} {item.get('id')!r}" if isinstance(item, dict) else kind)
            for item in payload
        ]
        return {item.id: item for item in items}

    def report_rows(self, workspace_id: str, body: Mapping[str, Any]) -> Iterator[TogglReportRow]:
        """Every row of a detailed-report search, page by page as the X-Next-* headers name them."""
        paging = TokenPaging(VENDOR, f"the detailed report of workspace {workspace_id}", kind="X-Next-ID")
        cursor: dict[str, int] = {}
        while not paging.done:
            response = self._send(
                "POST",
                f"/reports/api/v3/workspace/{workspace_id}/search/time_entries",
                json={**body, **cursor},
            )
            payload = decode_json(response, vendor=VENDOR)
            if payload is None:
                payload = []
            if not isinstance(payload, list):
                raise PayloadError(f"Toggl Track's detailed report of workspace {workspace_id} is not a list of rows")
            for item in payload:
                yield self.session.parse(TogglReportRow, item, "detailed report row")
            cursor = {}
            for header, field in NEXT_HEADERS:
                value = response.headers.get(header)
                if value:
                    try:
                        cursor[field] = int(value)
                    except ValueError:
                        raise PayloadError(f"Toggl Track sent {header}: {value!r}, not a number") from None
            token = ",".join(f"{k}={v}" for k, v in sorted(cursor.items())) if "first_id" in cursor else None
            paging.advance(token)

    def my_time_entries(self, start: str, end: str) -> list[TogglTimeEntry]:
        """The token owner's entries started in ``[start, end)`` (RFC 3339), with project and client names.

        Toggl answers at most ``ME_MAX_ENTRIES`` here; the source splits a range that reaches it.
        """
        payload = self._get("/api/v9/me/time_entries", {"start_date": start, "end_date": end, "meta": "true"})
        if payload is None:
            return []
        if not isinstance(payload, list):
            raise PayloadError("Toggl Track's time entries are not a list")
        return [
            self.session.parse(
                TogglTimeEntry, item, f"time entry {item.get('id')!r}" if isinstance(item, dict) else "time entry"
            )
            for item in payload
        ]
