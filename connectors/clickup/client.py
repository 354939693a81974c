"""ClickUpClient: v2 REST calls under the shared session, paced by the quota headers; page-numbered task lists."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from connectors._http import make_client
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.clickup.config import ENV_PREFIX, ClickUpConfig
from connectors.clickup.schema import (
    ClickUpAuthorizedUser,
    ClickUpTask,
    ClickUpTasksPage,
    ClickUpTeam,
    ClickUpTeams,
    ClickUpTimeEntries,
    ClickUpTimeEntry,
    ClickUpUser,
)
from connectors.errors import ConfigError

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_TEAM_IDS = f"{ENV_PREFIX}TEAM_IDS"
VENDOR = "ClickUp"

# ClickUp: GET /v2/team/{team_id}/task answers 100 tasks per page, pages counted from 0.
TASK_PAGE_SIZE = 100
MAX_TASK_PAGES = 10_000
# ClickUp limits per minute, so a reset further away than this means a skewed clock, not a real wait.
MAX_RESET_SECONDS = 120.0

Clock = Callable[[], float]


class _RateLimitHeaders(httpx.BaseTransport):
    """Hands every answer to ``observe`` before ``send`` sees it, so 429s are read too."""

    def __init__(self, inner: httpx.BaseTransport, observe: Callable[[httpx.Response], None]) -> None:
        self._inner = inner
        self._observe = observe

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        self._observe(response)
        return response

    def close(self) -> None:
        self._inner.close()


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _id_of(item: Any) -> str:
    return repr(item.get("id")) if isinstance(item, dict) else "?"


class ClickUpClient:
    """The ClickUp calls a source makes; thread-safe, one session per credential's limiter."""

    def __init__(
        self,
        config: ClickUpConfig,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.time,
    ) -> None:
        """``clock`` is the wall clock (Unix seconds) that ``X-RateLimit-Reset`` is read against."""
        self._clock = clock
        self._lock = threading.Lock()
        self._callers = 0  # threads inside get: each may hold a token or a request on the wire
        connections = max(4, config.concurrency * 2)
        inner = transport or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        )
        # ClickUp: the token goes in Authorization as is, without a "Bearer" scheme.
        http = make_client(
            config.base_url.rstrip("/"),
            headers={"Authorization": token},
            timeout=config.timeout_seconds,
            transport=_RateLimitHeaders(inner, self._observe_quota),
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("clickup", token, config.effective_rate_limit),
            http=http,
            sleep=sleep,
        )

    def close(self) -> None:
        self.session.close()

    # ----------------------------------------------------------------- plumbing

    def _observe_quota(self, response: httpx.Response) -> None:
        """Let the remaining quota pace every thread, and turn a bare 429 into a timed wait."""
        reset = _header_number(response.headers, "X-RateLimit-Reset")
        if reset is None:
            return
        if reset > 1e11:
            reset /= 1000.0  # documented as Unix seconds; tolerate milliseconds
        reset_in = min(MAX_RESET_SECONDS, reset - self._clock())
        remaining = _header_number(response.headers, "X-RateLimit-Remaining")
        if remaining is None and response.status_code == 429:
            remaining = 0.0
        if remaining is not None:
            # Other callers may already hold a token or be on the wire: they will spend quota this
            # answer does not show yet, so count them as spent.
            with self._lock:
                others = self._callers - 1
            self.session.limiter.observe_remaining(max(0, int(remaining) - others), reset_in)
        if response.status_code == 429 and "Retry-After" not in response.headers:
            # ClickUp: a 429 need not carry Retry-After; X-RateLimit-Reset (Unix seconds) says when
            # the quota refills. Handing it on as Retry-After keeps the one retry policy in charge:
            # it pauses the shared limiter, so every thread waits once instead of each retrying.
            response.headers["Retry-After"] = str(max(1, math.ceil(reset_in)))

    def get(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str], *, setting: str) -> Any:
        with self._lock:
            self._callers += 1
        try:
            # A truncated or non-JSON answer (an HTML page from a gateway, say) is retried like a 5xx.
            return self.session.send_json("GET", path, setting=setting, params=params)
        finally:
            with self._lock:
                self._callers -= 1

    # ----------------------------------------------------------------- calls

    def authorized_user(self) -> ClickUpUser:
        payload = self.get("/v2/user", {}, setting=SETTING_TOKEN)
        return self.session.parse(ClickUpAuthorizedUser, payload, "authorized user").user

    def teams(self) -> list[ClickUpTeam]:
        payload = self.get("/v2/team", {}, setting=SETTING_TOKEN)
        return self.session.parse(ClickUpTeams, payload, "workspace list").teams

    def time_entries(self, team_id: str, params: Mapping[str, str]) -> list[ClickUpTimeEntry]:
        """One range of time entries: this endpoint does not page; the whole range comes back in one answer."""
        try:
            payload = self.get(f"/v2/team/{team_id}/time_entries", params, setting=SETTING_TOKEN)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc.message}. Reading every member's time needs the token of a Workspace owner or admin.",
                status=exc.status,
            ) from None
        data = self.session.parse(ClickUpTimeEntries, payload, "time entry list").data
        return [self.session.parse(ClickUpTimeEntry, item, f"time entry {_id_of(item)}") for item in data]

    def list_tasks(self, team_id: str, list_ids: list[str]) -> dict[str, ClickUpTask]:
        """Every task (closed ones and subtasks too) of the given lists, page by page from page 0."""
        base: list[tuple[str, str]] = [("include_closed", "true"), ("subtasks", "true")]
        base += [("list_ids[]", list_id) for list_id in list_ids]
        found: dict[str, ClickUpTask] = {}
        paging = PageNumbers(VENDOR, f"the tasks of Workspace {team_id}", first=0, max_pages=MAX_TASK_PAGES)
        while not paging.done:
            payload = self.get(
                f"/v2/team/{team_id}/task", [("page", str(paging.number)), *base], setting=SETTING_TEAM_IDS
            )
            listing = self.session.parse(ClickUpTasksPage, payload, "task list")
            tasks = [self.session.parse(ClickUpTask, item, f"task {_id_of(item)}") for item in listing.tasks]
            found.update((task.id, task) for task in tasks)
            # ClickUp: newer answers carry ``last_page``; older ones end with a short page.
            last = listing.last_page if listing.last_page is not None else len(tasks) < TASK_PAGE_SIZE
            # A page that starts with the task the page before started with is the same page again.
            paging.advance(last=last or not tasks, signature=tasks[0].id if tasks else None)
        return found

    def task(self, task_id: str) -> ClickUpTask | None:
        """One task; None when ClickUp no longer has it (deleted since the time was logged)."""
        try:
            payload = self.get(f"/v2/task/{task_id}", {}, setting=SETTING_TEAM_IDS)
        except ConfigError as exc:
            if exc.status != 404:
                raise
            return None
        return self.session.parse(ClickUpTask, payload, f"task {task_id}")
