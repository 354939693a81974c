"""ClockifyClient: API v1 and Reports API calls under the shared session; report requests kept to an hourly budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from connectors._budget import HourlyBudget
from connectors._http import make_client
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.clockify.config import ENV_PREFIX, REQUESTS_PER_MINUTE, ClockifyConfig
from connectors.clockify.schema import (
    ClockifyReport,
    ClockifyReportEntry,
    ClockifyTimeEntry,
    ClockifyUser,
    ClockifyWorkspace,
)
from connectors.errors import PayloadError, parse_retry_after

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_WORKSPACE_IDS = f"{ENV_PREFIX}WORKSPACE_IDS"
SETTING_PLAN = f"{ENV_PREFIX}PLAN"
VENDOR = "Clockify"
# A 429 from the reports host that asks for more than a minute is the hourly report quota, not the
# per-second limit: the run stops and resumes later instead of holding every thread that long.
QUOTA_RETRY_AFTER = 60.0

WORKSPACE_ADVICE = (
    f"Check {SETTING_WORKSPACE_IDS}: the key's user must be an owner or admin of each workspace named there "
    f"(or set {ENV_PREFIX}FEED=me to read only the key owner's own time)"
)

Clock = Callable[[], float]


def _what(item: Any, kind: str, key: str = "id") -> str:
    return f"{kind} {item.get(key)!r}" if isinstance(item, dict) else kind


class _ReportQuota(httpx.BaseTransport):
    """A long 429 on a report is the spent hourly quota: raised as such, not retried for minutes."""

    def __init__(self, inner: httpx.BaseTransport, reports_host: str, budget: HourlyBudget) -> None:
        self._inner = inner
        self._host = reports_host
        self._budget = budget

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if response.status_code == 429 and request.url.host == self._host:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > QUOTA_RETRY_AFTER:
                response.close()
                self._budget.observe(0, wait)
                raise self._budget.spent(wait)
        return response

    def close(self) -> None:
        self._inner.close()


class ClockifyClient:
    """The Clockify calls a source makes; one session per key's limiter."""

    def __init__(
        self,
        config: ClockifyConfig,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._api = config.base_url.rstrip("/")
        self._reports = config.reports_url.rstrip("/")
        self.page_size = config.page_size
        self.report_budget = HourlyBudget(
            config.report_quota,
            vendor=VENDOR,
            what="report requests",
            advice=f"set {SETTING_PLAN}=paid once the workspace is on a paid plan",
            clock=clock,
        )
        http = make_client(
            "",
            headers={"X-Api-Key": token},
            timeout=config.timeout_seconds,
            transport=_ReportQuota(
                transport or httpx.HTTPTransport(), httpx.URL(self._reports).host, self.report_budget
            ),
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("clockify", token, REQUESTS_PER_MINUTE),
            http=http,
            sleep=sleep,
        )

    def close(self) -> None:
        self.session.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        forbidden = None if url.endswith("/v1/user") else WORKSPACE_ADVICE
        return self.session.send_json(method, url, forbidden=forbidden, **kwargs)

    # ----------------------------------------------------------------- calls

    def user(self) -> ClockifyUser:
        return self.session.parse(ClockifyUser, self._send("GET", f"{self._api}/v1/user"), "user")

    def workspaces(self) -> list[ClockifyWorkspace]:
        payload = self._send("GET", f"{self._api}/v1/workspaces")
        if not isinstance(payload, list):
            raise PayloadError("Clockify's workspace list is not a list")
        return [self.session.parse(ClockifyWorkspace, item, _what(item, "workspace")) for item in payload]

    def report_entries(self, workspace_id: str, start: str, end: str) -> Iterator[ClockifyReportEntry]:
        """Every entry of the detailed report for ``start..end`` (ISO instants), page by page from 1."""
        paging = PageNumbers(VENDOR, f"the detailed report of workspace {workspace_id}")
        url = f"{self._reports}/v1/workspaces/{workspace_id}/reports/detailed"
        while not paging.done:
            self.report_budget.take()
            body = {
                "dateRangeStart": start,
                "dateRangeEnd": end,
                "exportType": "JSON",
                "detailedFilter": {"page": paging.number, "pageSize": self.page_size, "sortColumn": "ID"},
            }
            report = self.session.parse(ClockifyReport, self._send("POST", url, json=body), "detailed report")
            entries = [
                self.session.parse(ClockifyReportEntry, item, _what(item, "time entry", "_id"))
                for item in report.timeentries
            ]
            yield from entries
            paging.advance(last=len(entries) < self.page_size, signature=entries[0].id if entries else None)

    def user_entries(self, workspace_id: str, user_id: str, start: str, end: str) -> Iterator[ClockifyTimeEntry]:
        """The user's entries started in ``start..end`` (ISO instants), hydrated with names, page by page."""
        paging = PageNumbers(VENDOR, f"the time entries of user {user_id}")
        url = f"{self._api}/v1/workspaces/{workspace_id}/user/{user_id}/time-entries"
        while not paging.done:
            params = {
                "start": start,
                "end": end,
                "hydrated": "true",
                "page": str(paging.number),
                "page-size": str(self.page_size),
            }
            payload = self._send("GET", url, params=params)
            if not isinstance(payload, list):
                raise PayloadError(f"Clockify's time entries of user {user_id} are not a list")
            entries = [self.session.parse(ClockifyTimeEntry, item, _what(item, "time entry")) for item in payload]
            yield from entries
            paging.advance(last=len(entries) < self.page_size, signature=entries[0].id if entries else None)
