"""ClickUpSource: every member's time entries per Workspace, in parallel date chunks under one limiter."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from connectors._config import require_token
from connectors._http import (
    CallStats,
    RateLimiter,
    RetryPolicy,
    Sleep,
    limiter_for,
    make_client,
    send,
)
from connectors.clickup.config import ENV_PREFIX, ClickUpConfig
from connectors.clickup.normalize import normalize_entry, to_ms, work_date
from connectors.clickup.schema import (
    ROLE_ADMIN,
    ROLE_NAMES,
    ROLE_OWNER,
    ClickUpAuthorizedUser,
    ClickUpTask,
    ClickUpTasksPage,
    ClickUpTeam,
    ClickUpTeams,
    ClickUpTimeEntries,
    ClickUpTimeEntry,
    ClickUpUser,
)
from connectors.errors import ConfigError, PayloadError
from connectors.model import Scope, TimeEntry, Window

log = structlog.get_logger("hourbridge.clickup")

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_TEAM_IDS = f"{ENV_PREFIX}TEAM_IDS"
VENDOR = "ClickUp"

# ClickUp: GET /v2/team/{team_id}/task answers 100 tasks per page, pages counted from 0.
TASK_PAGE_SIZE = 100
MAX_TASK_PAGES = 10_000
# Lists named in one task listing, and user ids in one time_entries call: both travel in the URL.
LISTS_PER_QUERY = 100
ASSIGNEES_PER_QUERY = 200
# ClickUp limits per minute, so a reset further away than this means a skewed clock, not a real wait.
MAX_RESET_SECONDS = 120.0

Clock = Callable[[], float]
M = TypeVar("M", bound=BaseModel)


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


class ClickUpSource:
    """Pulls ClickUp's native time tracking for every configured Workspace (team)."""

    name: ClassVar[str] = "clickup"

    def __init__(
        self,
        config: ClickUpConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.time,
    ) -> None:
        """``clock`` is the wall clock (Unix seconds) that ``X-RateLimit-Reset`` is read against."""
        token = require_token(
            config.token, vendor="ClickUp", setting=SETTING_TOKEN, what="the API token of a Workspace owner or admin"
        )
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self._sleep = sleep
        self._clock = clock
        self._policy = RetryPolicy(max_attempts=config.max_attempts)
        self._limiter = limiter or limiter_for("clickup", token, config.effective_rate_limit)
        self._stats = CallStats()
        self._lock = threading.Lock()
        connections = max(4, config.concurrency * 2)
        inner = transport or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        )
        # ClickUp: the token goes in Authorization as is, without a "Bearer" scheme.
        self._client = make_client(
            config.base_url.rstrip("/"),
            headers={"Authorization": token},
            timeout=config.timeout_seconds,
            transport=_RateLimitHeaders(inner, self._observe_quota),
        )
        self._callers = 0  # threads inside _get: each may hold a token or a request on the wire
        self._me: ClickUpUser | None = None
        self._teams: dict[str, ClickUpTeam] | None = None
        self._tasks: dict[str, ClickUpTask | None] = {}
        self._indexed_lists: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------- plumbing

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ClickUpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return self._stats.as_dict()

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
            self._limiter.observe_remaining(max(0, int(remaining) - others), reset_in)
        if response.status_code == 429 and "Retry-After" not in response.headers:
            # ClickUp: a 429 need not carry Retry-After; X-RateLimit-Reset (Unix seconds) says when
            # the quota refills. Handing it on as Retry-After keeps the one retry policy in charge:
            # it pauses the shared limiter, so every thread waits once instead of each retrying.
            response.headers["Retry-After"] = str(max(1, math.ceil(reset_in)))

    def _get(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str], *, setting: str) -> Any:
        with self._lock:
            self._callers += 1
        try:
            response = self._send(path, params, setting)
        finally:
            with self._lock:
                self._callers -= 1
        try:
            return response.json()
        except ValueError:
            raise PayloadError(f"ClickUp answered {path} with something that is not JSON") from None

    def _send(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str], setting: str) -> httpx.Response:
        return send(
            self._client,
            "GET",
            path,
            vendor=VENDOR,
            setting=setting,
            policy=self._policy,
            limiter=self._limiter,
            stats=self._stats,
            sleep=self._sleep,
            params=params,
        )

    @staticmethod
    def _parse(model: type[M], payload: Any, what: str) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PayloadError(f"ClickUp {what} could not be read: {where}: {first['msg']}") from None

    # ----------------------------------------------------------------- workspaces and people

    def _authorized_user(self) -> ClickUpUser:
        with self._lock:
            if self._me is not None:
                return self._me
        payload = self._get("/v2/user", {}, setting=SETTING_TOKEN)
        me = self._parse(ClickUpAuthorizedUser, payload, "authorized user").user
        with self._lock:
            self._me = me
        return me

    def _visible_teams(self) -> dict[str, ClickUpTeam]:
        """Every Workspace the token sees, with its members (one call, cached for the run)."""
        with self._lock:
            if self._teams is not None:
                return self._teams
        payload = self._get("/v2/team", {}, setting=SETTING_TOKEN)
        teams = {team.id: team for team in self._parse(ClickUpTeams, payload, "workspace list").teams}
        with self._lock:
            self._teams = teams
        return teams

    def _selected_teams(self) -> list[ClickUpTeam]:
        visible = self._visible_teams()
        wanted = self.config.team_ids or sorted(visible)
        missing = [team_id for team_id in wanted if team_id not in visible]
        if missing:
            raise ConfigError(
                f"the ClickUp token cannot see Workspace(s) {', '.join(missing)}: fix {SETTING_TEAM_IDS} "
                "or use a token of a member of those Workspaces"
            )
        return [visible[team_id] for team_id in wanted]

    def _team(self, team_id: str) -> ClickUpTeam:
        team = self._visible_teams().get(team_id)
        if team is None:
            raise ConfigError(f"the ClickUp token cannot see Workspace {team_id}: fix {SETTING_TEAM_IDS}")
        return team

    def _require_admin(self, team: ClickUpTeam) -> None:
        """Fail early when the token would silently get only its own entries."""
        me = self._authorized_user()
        role = next((m.effective_role for m in team.members if m.user.id == me.id), None)
        if role is None or role in (ROLE_OWNER, ROLE_ADMIN):
            # No role in the answer: ClickUp itself refuses (401) if the token may not read others.
            return
        raise ConfigError(
            f"the ClickUp token belongs to a {ROLE_NAMES.get(role, f'role {role}')} of Workspace "
            f"{team.name or team.id!r} ({team.id}), and ClickUp shows such tokens only their own time. "
            f"An admin token is needed to read every member's time: set {SETTING_TOKEN} to the API token "
            "of a Workspace owner or admin."
        )

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self._authorized_user()  # the cheapest call that proves the token works
        for team in self._selected_teams():
            self._require_admin(team)

    def scopes(self) -> Iterable[Scope]:
        return [
            Scope("clickup", team.id, team.name or "", timezone=self.config.timezone) for team in self._selected_teams()
        ]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        team = self._team(scope.account)
        self._require_admin(team)
        members = {str(m.user.id): m.user for m in team.members}
        # ClickUp: without ``assignee`` only the token owner's entries come back; an admin must name
        # every member to get everyone's.
        ids = sorted(members, key=lambda user_id: (len(user_id), user_id))
        batches = [",".join(ids[i : i + ASSIGNEES_PER_QUERY]) for i in range(0, len(ids), ASSIGNEES_PER_QUERY)]
        parts = window.split(self.config.window_days)
        seen: set[str] = set()
        for part, entries in self._chunks(team.id, parts, batches):
            kept: list[ClickUpTimeEntry] = []
            for entry in entries:
                if entry.running:
                    continue  # ClickUp: a negative duration means the timer is still running; skip until it stops.
                # ClickUp filters by instant, not by day: keep the entry in the one chunk holding its
                # work date, so entries that overlap a chunk edge are yielded once.
                if work_date(entry.start, self._zone) not in part or entry.id in seen:
                    continue
                seen.add(entry.id)
                kept.append(entry)
            tasks = self._tasks_for(team.id, kept) if self.config.custom_fields else {}
            for entry in kept:
                task = tasks.get(entry.task.id) if entry.task is not None else None
                yield normalize_entry(entry, scope=scope, zone=self._zone, members=members, task=task)

    # ----------------------------------------------------------------- time entries

    def _chunks(
        self, team_id: str, parts: list[Window], batches: list[str]
    ) -> Iterator[tuple[Window, list[ClickUpTimeEntry]]]:
        """Each chunk's entries in date order, with at most ``concurrency`` chunks fetched ahead."""
        if not batches:
            return
        workers = min(self.config.concurrency, len(parts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clickup") as pool:
            upcoming = iter(parts)
            pending: deque[tuple[Window, Future[list[ClickUpTimeEntry]]]] = deque()

            def submit_next() -> None:
                part = next(upcoming, None)
                if part is not None:
                    pending.append((part, pool.submit(self._chunk, team_id, part, batches)))

            for _ in range(workers):
                submit_next()
            try:
                while pending:
                    part, future = pending.popleft()
                    entries = future.result()
                    submit_next()
                    yield part, entries
            finally:
                for _, future in pending:
                    future.cancel()

    def _chunk(self, team_id: str, part: Window, batches: list[str]) -> list[ClickUpTimeEntry]:
        # ClickUp's start/end are instants: the chunk's local days become [first midnight, next midnight).
        start = datetime.combine(part.start, clock_time(0), tzinfo=self._zone)
        end = datetime.combine(part.end + timedelta(days=1), clock_time(0), tzinfo=self._zone)
        entries: list[ClickUpTimeEntry] = []
        for assignees in batches:
            params = {
                "start_date": str(to_ms(start)),
                "end_date": str(to_ms(end)),
                "assignee": assignees,
                "include_location_names": "true",
                "include_task_tags": "true",
                "include_approval_details": "true",
            }
            try:
                payload = self._get(f"/v2/team/{team_id}/time_entries", params, setting=SETTING_TOKEN)
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc.message}. Reading every member's time needs the token of a Workspace owner or admin."
                ) from None
            # ClickUp: this endpoint does not page; the whole range comes back in one answer.
            data = self._parse(ClickUpTimeEntries, payload, "time entry list").data
            entries.extend(self._parse(ClickUpTimeEntry, item, f"time entry {_id_of(item)}") for item in data)
        log.debug("clickup.chunk", team=team_id, start=part.start.isoformat(), end=part.end.isoformat(), n=len(entries))
        return entries

    # ----------------------------------------------------------------- tasks and custom fields

    def _tasks_for(self, team_id: str, entries: list[ClickUpTimeEntry]) -> dict[str, ClickUpTask | None]:
        """Tasks (with custom fields) of the entries: the lists they live in are listed once per run."""
        lists = {
            e.task_location.list_id
            for e in entries
            if e.task is not None and e.task_location is not None and e.task_location.list_id
        }
        with self._lock:
            new_lists = sorted(lists - {list_id for team, list_id in self._indexed_lists if team == team_id})
        for i in range(0, len(new_lists), LISTS_PER_QUERY):
            self._index_lists(team_id, new_lists[i : i + LISTS_PER_QUERY])
        wanted = {e.task.id for e in entries if e.task is not None}
        with self._lock:
            missing = sorted(wanted - self._tasks.keys())
        for task_id in missing:
            # Outside the listed lists (moved since, or no location on the entry): one GET, cached.
            self._single_task(task_id)
        with self._lock:
            return {task_id: self._tasks.get(task_id) for task_id in wanted}

    def _index_lists(self, team_id: str, list_ids: list[str]) -> None:
        base: list[tuple[str, str]] = [("include_closed", "true"), ("subtasks", "true")]
        base += [("list_ids[]", list_id) for list_id in list_ids]
        found: dict[str, ClickUpTask] = {}
        previous_first: str | None = None
        for page in range(MAX_TASK_PAGES):
            payload = self._get(f"/v2/team/{team_id}/task", [("page", str(page)), *base], setting=SETTING_TEAM_IDS)
            listing = self._parse(ClickUpTasksPage, payload, "task list")
            tasks = [self._parse(ClickUpTask, item, f"task {_id_of(item)}") for item in listing.tasks]
            if tasks and tasks[0].id == previous_first:
                raise PayloadError(f"ClickUp returned the same task page twice (page {page}); stopped to avoid a loop")
            previous_first = tasks[0].id if tasks else None
            found.update((task.id, task) for task in tasks)
            # ClickUp: newer answers carry ``last_page``; older ones end with a short page.
            last = listing.last_page if listing.last_page is not None else len(tasks) < TASK_PAGE_SIZE
            if last or not tasks:
                break
        else:
            raise PayloadError(f"ClickUp task paging did not end after {MAX_TASK_PAGES} pages")
        with self._lock:
            self._tasks.update(found)
            self._indexed_lists.update((team_id, list_id) for list_id in list_ids)

    def _single_task(self, task_id: str) -> None:
        task: ClickUpTask | None = None
        try:
            payload = self._get(f"/v2/task/{task_id}", {}, setting=SETTING_TEAM_IDS)
        except ConfigError as exc:
            if "HTTP 404" not in exc.message:
                raise
            # Deleted since the time was logged: the entry keeps its task reference, without fields.
            log.warning("clickup.task_missing", task=task_id)
        else:
            task = self._parse(ClickUpTask, payload, f"task {task_id}")
        with self._lock:
            self._tasks[task_id] = task


def _id_of(item: Any) -> str:
    return repr(item.get("id")) if isinstance(item, dict) else "?"
