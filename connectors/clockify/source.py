"""ClockifySource: a workspace's time through the detailed report (everyone), or the key owner's own entries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource, Once
from connectors.clockify.client import SETTING_TOKEN, SETTING_WORKSPACE_IDS, Clock, ClockifyClient
from connectors.clockify.config import MAX_REPORT_DAYS, ClockifyConfig
from connectors.clockify.normalize import normalize_report_entry, normalize_user_entry
from connectors.clockify.schema import ClockifyUser, ClockifyWorkspace
from connectors.errors import ConfigError
from connectors.model import Coverage, Scope, Slice, TimeEntry, Window

# Asked a day wider on each side (Clockify may read the range in the user's profile zone), a chunk
# still spans at most the 31 days a Free-plan report allows.
REPORT_CHUNK_DAYS = MAX_REPORT_DAYS - 2


def _start_of(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


def _end_of(day: date) -> str:
    return f"{day.isoformat()}T23:59:59.999Z"


class ClockifySource(ClientSource[ClockifyClient]):
    """Pulls Clockify time per workspace.

    ``feed=workspace``: the detailed report, every member's entries, page by page; a deleted entry
    is no longer listed, so each window is re-read whole and covered whole. ``feed=me``: the key
    owner's own entries (``/v1/workspaces/{w}/user/{u}/time-entries``), covering that person's days only.
    """

    name: ClassVar[str] = "clockify"
    # One report read per run chunk: on the Free plan every report request counts against 30 an hour.
    max_window_days: ClassVar[int] = REPORT_CHUNK_DAYS

    def __init__(
        self,
        config: ClockifyConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        token = require_token(config.token, vendor="Clockify", setting=SETTING_TOKEN, what="a Clockify API key")
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self.client = ClockifyClient(config, token, limiter=limiter, sleep=sleep, transport=transport, clock=clock)
        self._lock = threading.Lock()
        self._user = Once(self.client.user)
        self._workspaces: list[ClockifyWorkspace] | None = None

    def user(self) -> ClockifyUser:
        return self._user.get()

    def _selected(self) -> list[ClockifyWorkspace]:
        with self._lock:
            if self._workspaces is not None:
                return self._workspaces
        visible = {w.id: w for w in self.client.workspaces()}
        wanted = self.config.workspace_ids or sorted(visible)
        missing = [w for w in wanted if w not in visible]
        if missing:
            raise ConfigError(
                f"the Clockify key cannot see workspace(s) {', '.join(missing)}: fix {SETTING_WORKSPACE_IDS} "
                "or use the key of a member of those workspaces"
            )
        selected = [visible[w] for w in wanted]
        with self._lock:
            self._workspaces = selected
        return selected

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self.user()
        self._selected()

    def scopes(self) -> Iterable[Scope]:
        return [Scope("clockify", w.id, w.name, timezone=self.config.timezone) for w in self._selected()]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        seen: set[str] = set()
        if self.config.feed == "me":
            user = self.user()
            start, end = _start_of(window.start - timedelta(days=1)), _end_of(window.end + timedelta(days=1))
            for item in self.client.user_entries(scope.account, user.id, start, end):
                if item.time_interval.end is None or item.id in seen or item.user_id != user.id:
                    continue  # Clockify: a running timer has no end yet.
                seen.add(item.id)
                entry = normalize_user_entry(item, scope=scope, zone=self._zone, user=user)
                if entry.work_date in window:
                    yield entry
            return
        for part in window.split(REPORT_CHUNK_DAYS):
            start, end = _start_of(part.start - timedelta(days=1)), _end_of(part.end + timedelta(days=1))
            for report_item in self.client.report_entries(scope.account, start, end):
                if report_item.time_interval.end is None or report_item.id in seen:
                    continue  # Clockify: a running timer has no end yet.
                entry = normalize_report_entry(report_item, scope=scope, zone=self._zone)
                if entry.work_date in part:
                    seen.add(report_item.id)
                    yield entry

    def covered(self, scope: Scope, window: Window) -> Coverage:
        if self.config.feed == "workspace":
            return Coverage.complete_window()
        return Coverage.snapshot([Slice(self.user().id, window.start, window.end)])
