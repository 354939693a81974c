"""ClickUpSource: every member's time entries per Workspace, in parallel date chunks under one limiter."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import structlog

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource, Once
from connectors.clickup.client import SETTING_TEAM_IDS, SETTING_TOKEN, ClickUpClient, Clock
from connectors.clickup.config import ClickUpConfig
from connectors.clickup.normalize import normalize_entry, to_ms, work_date
from connectors.clickup.schema import (
    ROLE_ADMIN,
    ROLE_NAMES,
    ROLE_OWNER,
    ClickUpTask,
    ClickUpTeam,
    ClickUpTimeEntry,
    ClickUpUser,
)
from connectors.errors import ConfigError
from connectors.model import Scope, TimeEntry, Window

log = structlog.get_logger("hourbridge.clickup")

# Lists named in one task listing, and user ids in one time_entries call: both travel in the URL.
LISTS_PER_QUERY = 100
ASSIGNEES_PER_QUERY = 200


class ClickUpSource(ClientSource[ClickUpClient]):
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
        self.client = ClickUpClient(config, token, limiter=limiter, sleep=sleep, transport=transport, clock=clock)
        self._lock = threading.Lock()
        self._me = Once(self.client.authorized_user)
        self._teams: dict[str, ClickUpTeam] | None = None
        self._tasks: dict[str, ClickUpTask | None] = {}
        self._indexed_lists: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------- workspaces and people

    def _authorized_user(self) -> ClickUpUser:
        return self._me.get()

    def _visible_teams(self) -> dict[str, ClickUpTeam]:
        """Every Workspace the token sees, with its members (one call, cached for the run)."""
        with self._lock:
            if self._teams is not None:
                return self._teams
        teams = {team.id: team for team in self.client.teams()}
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
            entries.extend(self.client.time_entries(team_id, params))
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
        found = self.client.list_tasks(team_id, list_ids)
        with self._lock:
            self._tasks.update(found)
            self._indexed_lists.update((team_id, list_id) for list_id in list_ids)

    def _single_task(self, task_id: str) -> None:
        task = self.client.task(task_id)
        if task is None:
            # Deleted since the time was logged: the entry keeps its task reference, without fields.
            log.warning("clickup.task_missing", task=task_id)
        with self._lock:
            self._tasks[task_id] = task
