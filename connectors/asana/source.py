"""AsanaSource: bulk time-tracking entries per workspace, completed with task details only where needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors.asana.client import LIST_FIELDS, SETTING_TOKEN, SETTING_WORKSPACES, AsanaClient
from connectors.asana.config import AsanaConfig
from connectors.asana.normalize import normalize_entry
from connectors.asana.schema import AsanaTask, AsanaTimeEntry, AsanaUser
from connectors.errors import ConfigError
from connectors.model import Scope, TimeEntry, Window


class AsanaSource:
    """Pulls Asana's native time tracking for every configured workspace."""

    name: ClassVar[str] = "asana"

    def __init__(
        self,
        config: AsanaConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        token = require_token(config.token, vendor="Asana", setting=SETTING_TOKEN, what="a personal access token")
        self.config = config
        self.client = AsanaClient(config, token, limiter=limiter, sleep=sleep)
        self._users: dict[str, dict[str, AsanaUser]] = {}
        self._project_tasks: dict[str, dict[str, AsanaTask]] = {}
        self._tasks: dict[str, AsanaTask | None] = {}
        self._entry_task: dict[str, str] = {}
        self._indexed_projects: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> AsanaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return self.client.session.stats.as_dict()

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self.client.me()

    def scopes(self) -> Iterable[Scope]:
        visible: dict[str, str] = {}
        for page in self.client.workspaces():
            for item in page:
                visible[str(item["gid"])] = str(item.get("name") or "")
        wanted = self.config.workspaces or sorted(visible)
        missing = [gid for gid in wanted if gid not in visible]
        if missing:
            raise ConfigError(
                f"the Asana token cannot see workspace(s) {', '.join(missing)}: fix {SETTING_WORKSPACES} "
                "or use a token of a member of those workspaces"
            )
        return [Scope("asana", gid, visible[gid]) for gid in wanted]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        users = self._workspace_users(scope.account)
        for part in window.split(self.config.window_days):
            seen: set[str] = set()
            opts = {
                "workspace": scope.account,
                "entered_on_start_date": part.start.isoformat(),
                "entered_on_end_date": part.end.isoformat(),
                "limit": self.config.page_size,
                "opt_fields": LIST_FIELDS,
            }
            for page in self.client.time_entries(opts):
                entries = [self.client.parse_entry(item) for item in page]
                entries = [e for e in entries if e.gid not in seen and e.entered_on in part]
                seen.update(e.gid for e in entries)
                for entry in self._complete(entries):
                    task = self._task_for(entry)
                    yield normalize_entry(entry, scope=scope, users=users, task=task)

    # ----------------------------------------------------------------- details

    def _complete(self, entries: list[AsanaTimeEntry]) -> list[AsanaTimeEntry]:
        """Fill in the full-object fields when the list endpoint left them out."""
        mode = self.config.detail
        lacking = [e for e in entries if not e.has_full_fields]
        if not lacking or mode == "never":
            return entries
        if mode == "tasks":
            for entry in lacking:
                if not entry.has_task_field and entry.attributable_to is not None:
                    self._index_project_entries(entry.attributable_to.gid)
            return entries
        # auto: one GET per entry carries task, billable, approval and description at once,
        # so the task costs nothing extra; run them in parallel under the shared limiter.
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            detailed = dict(zip((e.gid for e in lacking), pool.map(self._entry_detail, lacking), strict=True))
        return [detailed.get(e.gid, e) for e in entries]

    def _entry_detail(self, entry: AsanaTimeEntry) -> AsanaTimeEntry:
        return self.client.time_entry(entry.gid)

    def _index_project_entries(self, project_gid: str) -> None:
        """Learn entry → task from per-task listings, for tasks of the project that have time logged."""
        with self._lock:
            if project_gid in self._indexed_projects:
                return
            self._indexed_projects.add(project_gid)
        for task in self._tasks_of_project(project_gid).values():
            if not task.actual_time_minutes:
                continue  # Asana: actual_time_minutes is the sum of the task's entries; 0 means none
            for page in self.client.task_time_entries(task.gid):
                with self._lock:
                    for item in page:
                        self._entry_task[str(item["gid"])] = task.gid

    def _task_for(self, entry: AsanaTimeEntry) -> AsanaTask | None:
        task_gid = entry.task.gid if entry.task else self._entry_task.get(entry.gid)
        if task_gid is None:
            return None
        if self.config.custom_fields and entry.attributable_to is not None:
            task = self._tasks_of_project(entry.attributable_to.gid).get(task_gid)
            if task is not None:
                return task
        if entry.task is None:
            # Recovered through a per-task listing: the project listing holds its name.
            return self._single_task(task_gid)
        if not self.config.custom_fields:
            return None
        return self._single_task(task_gid)

    def _single_task(self, gid: str) -> AsanaTask | None:
        """A task outside its entry's project listing (a subtask, say): one GET, cached per run."""
        with self._lock:
            if gid in self._tasks:
                return self._tasks[gid]
        task = self.client.task(gid)
        with self._lock:
            self._tasks[gid] = task
        return task

    def _tasks_of_project(self, project_gid: str) -> dict[str, AsanaTask]:
        """Every task of a project with its custom fields: one call per 100 tasks, cached per run."""
        with self._lock:
            cached = self._project_tasks.get(project_gid)
        if cached is not None:
            return cached
        tasks = {task.gid: task for task in self.client.project_tasks(project_gid)}
        with self._lock:
            self._project_tasks[project_gid] = tasks
            for gid, task in tasks.items():
                self._tasks.setdefault(gid, task)
        return tasks

    def _workspace_users(self, workspace_gid: str) -> dict[str, AsanaUser]:
        """Names and emails of the workspace's users (emails let one contractor match across tools)."""
        with self._lock:
            cached = self._users.get(workspace_gid)
        if cached is not None:
            return cached
        users = {user.gid: user for user in self.client.workspace_users(workspace_gid)}
        with self._lock:
            self._users[workspace_gid] = users
        return users
