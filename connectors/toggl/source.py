"""TogglSource: a workspace's time through the Reports API (everyone), or the token owner's own through API v9."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import structlog

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource, Once
from connectors.errors import ConfigError, PayloadError
from connectors.model import Coverage, Scope, Slice, TimeEntry, Window
from connectors.toggl.client import ME_MAX_ENTRIES, SETTING_TOKEN, SETTING_WORKSPACE_IDS, Clock, TogglClient
from connectors.toggl.config import ENV_PREFIX, TogglConfig
from connectors.toggl.normalize import normalize_own_entry, normalize_report_entry
from connectors.toggl.schema import TogglMe, TogglNamed, TogglTimeEntry

log = structlog.get_logger("hourbridge.toggl")

Lookup = dict[int, TogglNamed]


class TogglSource(ClientSource[TogglClient]):
    """Pulls Toggl Track time per workspace.

    ``feed=workspace``: the Reports API v3 detailed search, every member's entries, paged by the
    ``X-Next-*`` headers; a deleted entry is simply no longer listed, so the window is re-read whole
    and covered whole. ``feed=me``: ``/api/v9/me/time_entries`` by start date, the token owner's own
    entries only, covering that one person's days (never anyone else's).
    """

    name: ClassVar[str] = "toggl"
    # Chunks of a month: every chunk costs at least one call of an hourly quota (30 on the Free plan),
    # and pages of 50 rows keep memory flat whatever the chunk's size.
    max_window_days: ClassVar[int] = 31

    def __init__(
        self,
        config: TogglConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        token = require_token(config.token, vendor="Toggl Track", setting=SETTING_TOKEN, what="a Toggl Track API token")
        if config.feed == "workspace" and not config.workspace_ids:
            raise ConfigError(
                f"Toggl Track's workspace feed needs workspace ids: set {SETTING_WORKSPACE_IDS} "
                f"(e.g. '[\"1234567\"]'), or set {ENV_PREFIX}FEED=me to read only the token owner's time."
            )
        if config.plan == "enterprise" and config.hourly_quota is None:
            log.info("toggl.no_quota", reason="enterprise plan without HOURBRIDGE_TOGGL__HOURLY_QUOTA")
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self.client = TogglClient(config, token, limiter=limiter, sleep=sleep, transport=transport, clock=clock)
        self._lock = threading.Lock()
        self._me = Once(self.client.me)
        self._lookups: dict[tuple[str, str], Lookup] = {}
        self._admin_checked: set[str] = set()

    # ----------------------------------------------------------------- cached look-ups

    def me(self) -> TogglMe:
        return self._me.get()

    def _lookup(self, workspace_id: str, kind: str) -> Lookup:
        """Projects, clients or tags of a workspace: one call each per run."""
        with self._lock:
            found = self._lookups.get((workspace_id, kind))
        if found is None:
            found = self.client.named(workspace_id, kind)
            with self._lock:
                self._lookups[(workspace_id, kind)] = found
        return found

    def _members(self, workspace_id: str) -> Lookup:
        """The workspace's users, for their e-mails (the Reports API names people only by id and name)."""
        try:
            return self._lookup(workspace_id, "users")
        except ConfigError as exc:
            if exc.status not in (403, 404):
                raise
            # Unconfirmed who may list a workspace's users: without the list, people keep id and name.
            log.warning("toggl.users_unlisted", workspace=workspace_id, status=exc.status)
            with self._lock:
                self._lookups[(workspace_id, "users")] = {}
            return {}

    def _require_admin(self, workspace_id: str) -> None:
        """The Reports API shows a member only what the workspace lets them see: refuse rather than under-read."""
        with self._lock:
            if workspace_id in self._admin_checked:
                return
        workspace = self.client.workspace(workspace_id)
        if workspace.admin is False:
            raise ConfigError(
                f"the Toggl Track token is not an admin of workspace {workspace.name or workspace_id!r} "
                f"({workspace_id}), so a report would hold only the time it may see. Set {SETTING_TOKEN} to a "
                f"workspace admin's token, or {ENV_PREFIX}FEED=me to read only the token owner's own time."
            )
        with self._lock:
            self._admin_checked.add(workspace_id)

    def _workspace_ids(self) -> list[str]:
        if self.config.workspace_ids:
            return list(self.config.workspace_ids)
        default = self.me().default_workspace_id
        if default is None:
            raise ConfigError(f"the Toggl Track token has no default workspace: set {SETTING_WORKSPACE_IDS}")
        return [str(default)]

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        if self.config.feed == "me":
            self.me()
            return
        for workspace_id in self._workspace_ids():
            self._require_admin(workspace_id)

    def scopes(self) -> Iterable[Scope]:
        return [
            Scope("toggl", workspace_id, f"Toggl Track workspace {workspace_id}", timezone=self.config.timezone)
            for workspace_id in self._workspace_ids()
        ]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        if self.config.feed == "me":
            yield from self._fetch_own(scope, window)
        else:
            yield from self._fetch_workspace(scope, window)

    def covered(self, scope: Scope, window: Window) -> Coverage:
        if self.config.feed == "workspace":
            return Coverage.complete_window()
        return Coverage.snapshot([Slice(str(self.me().id), window.start, window.end)])

    # ----------------------------------------------------------------- the two feeds

    def _fetch_workspace(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        workspace_id = scope.account
        self._require_admin(workspace_id)
        projects = self._lookup(workspace_id, "projects")
        clients = self._lookup(workspace_id, "clients")
        tags = self._lookup(workspace_id, "tags")
        users = self._members(workspace_id)
        # Toggl reads report dates in the requesting user's own time zone (unconfirmed) and wants
        # end_date after start_date: ask a day wider on each side and keep the window's days here.
        body = {
            "start_date": (window.start - timedelta(days=1)).isoformat(),
            "end_date": (window.end + timedelta(days=1)).isoformat(),
            "page_size": self.config.page_size,
            "enrich_response": True,
        }
        seen: set[int] = set()
        for row in self.client.report_rows(workspace_id, body):
            for item in row.time_entries:
                if item.stop is None or (item.seconds is not None and item.seconds < 0):
                    continue  # Toggl: a running timer has no stop (and a negative duration) yet.
                if item.id in seen:
                    continue
                seen.add(item.id)
                entry = normalize_report_entry(
                    row,
                    item,
                    scope=scope,
                    zone=self._zone,
                    projects=projects,
                    clients=clients,
                    tags=tags,
                    tasks={},
                    users=users,
                )
                if entry.work_date in window:
                    yield entry

    def _fetch_own(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        me = self.me()
        projects = self._lookup(scope.account, "projects")
        clients = self._lookup(scope.account, "clients")
        for entry in self._own_entries(window):
            if entry.workspace_id != int(scope.account) or entry.user_id != me.id:
                continue
            if entry.server_deleted_at is not None:
                continue  # Toggl: deleted; gone from the slice, so the ledger tombstones it.
            if entry.stop is None or entry.duration < 0:
                continue  # Toggl: a running timer's duration is negative until it stops.
            normalized = normalize_own_entry(
                entry, scope=scope, zone=self._zone, me=me, projects=projects, clients=clients, tasks={}
            )
            if normalized.work_date in window:
                yield normalized

    def _own_entries(self, window: Window) -> list[TogglTimeEntry]:
        """Every own entry started around ``window``, splitting ranges that reach Toggl's 1,000-entry answer."""
        # A day wider on each side: Toggl reads plain dates in the user's profile zone (unconfirmed).
        start = (window.start - timedelta(days=1)).isoformat()
        end = (window.end + timedelta(days=2)).isoformat()
        entries = self.client.my_time_entries(start, end)
        if len(entries) < ME_MAX_ENTRIES:
            return entries
        if window.days == 1:
            raise PayloadError(
                f"Toggl Track answered {ME_MAX_ENTRIES} entries for {window.start}; cannot read the rest"
            )
        half = window.start + timedelta(days=window.days // 2 - 1)
        found = {e.id: e for e in self._own_entries(Window(window.start, half))}
        found.update((e.id, e) for e in self._own_entries(Window(half + timedelta(days=1), window.end)))
        return list(found.values())
