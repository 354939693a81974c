"""AsanaSource: bulk time-tracking entries per workspace, completed with task details only where needed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import ClassVar

import structlog

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource
from connectors.asana.client import (
    EXTENDED_LIST_FIELDS,
    LIST_FIELDS,
    SETTING_TOKEN,
    SETTING_WORKSPACES,
    AsanaClient,
    Page,
)
from connectors.asana.config import AsanaConfig
from connectors.asana.normalize import listing_unchanged, normalize_entry
from connectors.asana.schema import AsanaTask, AsanaTimeEntry, AsanaUser
from connectors.base import KnownEntries
from connectors.errors import ConfigError, RequestBugError
from connectors.model import Scope, TimeEntry, Window

log = structlog.get_logger("hourbridge.asana")

# Asana: approval is per timesheet, a person's week from Monday; only APPROVED locks its entries.
FINAL_APPROVAL = "APPROVED"


@dataclasses.dataclass(slots=True)
class _Timesheets:
    """A workspace's timesheet statuses from ``since`` on, by (user gid, Monday); None: unreadable."""

    since: date
    status: dict[tuple[str, date], str] | None


class AsanaSource(ClientSource[AsanaClient]):
    """Pulls Asana's native time tracking for every configured workspace."""

    name: ClassVar[str] = "asana"
    # fetch() takes ``known``: what the ledger holds, so unchanged entries need no detail calls.
    uses_known_entries: ClassVar[bool] = True

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
        self._visible: dict[str, str] | None = None
        self._timesheets: dict[str, _Timesheets] = {}
        # Workspaces whose list refused the extended fields (list_fields = extended): spec fields from then on.
        self._spec_only: set[str] = set()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        # The workspace listing proves the token as well as users/me would, and scopes() needs it anyway.
        self._visible = self._list_workspaces()

    def _list_workspaces(self) -> dict[str, str]:
        visible: dict[str, str] = {}
        for page in self.client.workspaces():
            for item in page:
                visible[str(item["gid"])] = str(item.get("name") or "")
        return visible

    def scopes(self) -> Iterable[Scope]:
        visible = self._visible if self._visible is not None else self._list_workspaces()
        wanted = self.config.workspaces or sorted(visible)
        missing = [gid for gid in wanted if gid not in visible]
        if missing:
            raise ConfigError(
                f"the Asana token cannot see workspace(s) {', '.join(missing)}: fix {SETTING_WORKSPACES} "
                "or use a token of a member of those workspaces"
            )
        return [Scope("asana", gid, visible[gid]) for gid in wanted]

    def fetch(self, scope: Scope, window: Window, known: KnownEntries | None = None) -> Iterator[TimeEntry]:
        """Every entry of ``window``; ``known`` (the ledger's entries by gid) spares the detail calls of
        entries whose listing did not change since they were stored."""
        for part in window.split(self.config.window_days):
            seen: set[str] = set()
            for page in self._listing(scope, part):
                entries = [self.client.parse_entry(item) for item in page]
                # ``seen`` also drops the pages a restarted listing (refused offset) repeats.
                entries = [e for e in entries if e.gid not in seen and e.entered_on in part]
                seen.update(e.gid for e in entries)
                stored = known([e.gid for e in entries]) if known is not None and entries else {}
                yield from self._page_entries(scope, part, entries, stored)

    def _listing(self, scope: Scope, part: Window) -> Iterator[Page]:
        opts = {
            "workspace": scope.account,
            "entered_on_start_date": part.start.isoformat(),
            "entered_on_end_date": part.end.isoformat(),
            "limit": self.config.page_size,
            "opt_fields": LIST_FIELDS,
        }
        if self.config.list_fields == "spec" or scope.account in self._spec_only:
            yield from self.client.time_entries(opts)
            return
        pages = self.client.time_entries({**opts, "opt_fields": EXTENDED_LIST_FIELDS})
        try:
            first = next(pages)
        except StopIteration:
            return
        except RequestBugError as exc:
            if exc.status != 400:
                raise
            # This Asana enforces the list's opt_fields enum: ask for what the spec allows from now on.
            log.warning("asana.extended_list_fields_refused", workspace=scope.account, error=exc.message)
            with self._lock:
                self._spec_only.add(scope.account)
            yield from self.client.time_entries(opts)
            return
        yield first
        yield from pages

    def _page_entries(
        self, scope: Scope, part: Window, entries: list[AsanaTimeEntry], stored: Mapping[str, TimeEntry]
    ) -> Iterator[TimeEntry]:
        """Reuse what the ledger holds for entries whose listing is unchanged; complete and normalize the rest."""
        sheets = self._sheets_for(scope.account, part.start) if any(not e.has_full_fields for e in entries) else {}
        todo: list[AsanaTimeEntry] = []
        for entry in entries:
            old = stored.get(entry.gid)
            if old is None or self.config.detail == "always" or not listing_unchanged(entry, old):
                todo.append(entry)
                continue
            if entry.has_full_fields:
                yield old  # the list itself carried billable and approval, and they match
                continue
            status = _sheet_status(sheets, entry)
            if status is not None and status != old.approval_status:
                todo.append(entry)  # the timesheet moved on: read the entry again (billability too)
            elif sheets is None and self.config.detail == "auto" and old.approval_status != FINAL_APPROVAL:
                todo.append(entry)  # no timesheets to watch: entries not yet approved are read again
            else:
                yield old
        if not todo:
            return
        users = self._workspace_users(scope.account)
        for entry in self._complete(todo):
            task = self._task_for(entry)
            normalized = normalize_entry(entry, scope=scope, users=users, task=task)
            status = _sheet_status(sheets, entry) if not _listed_full(entry) else None
            if status is not None and status != normalized.approval_status:
                normalized = dataclasses.replace(normalized, approval_status=status, content_hash="")
            yield normalized

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
        detailed = self.client.time_entry(entry.gid)
        # Remember that the full fields came from the single GET, not the list (see _listed_full).
        return detailed.model_copy(update={"from_detail": True})

    def _sheets_for(self, workspace_gid: str, start: date) -> dict[tuple[str, date], str] | None:
        """Timesheet statuses of the workspace from the week of ``start`` on: one listing per workspace
        and run (windows come in date order, so later ones are covered); None when they cannot be read."""
        if not self.config.timesheets or self.config.detail in ("tasks", "never"):
            return None
        monday = start - timedelta(days=start.weekday())
        with self._lock:
            cached = self._timesheets.get(workspace_gid)
        if cached is not None and (cached.since <= monday or cached.status is None):
            return cached.status
        found: dict[tuple[str, date], str] = {}
        status: dict[tuple[str, date], str] | None = found
        try:
            for page in self.client.timesheets(workspace_gid, monday):
                for item in page:
                    user = item.get("user") or {}
                    if user.get("gid") and item.get("start_date") and item.get("approval_status"):
                        key = (str(user["gid"]), date.fromisoformat(str(item["start_date"])))
                        found[key] = str(item["approval_status"])
        except ConfigError as exc:
            # A plan or token without timesheet approvals (402/403): approval comes from the entries.
            log.warning("asana.timesheets_unavailable", workspace=workspace_gid, error=exc.message)
            status = None
        with self._lock:
            self._timesheets[workspace_gid] = _Timesheets(monday, status)
        return status

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


def _listed_full(entry: AsanaTimeEntry) -> bool:
    """The list itself carried billable and approval (not the single GET): it is the fresher source."""
    return entry.has_full_fields and not entry.from_detail


def _sheet_status(sheets: dict[tuple[str, date], str] | None, entry: AsanaTimeEntry) -> str | None:
    if not sheets or entry.created_by is None:
        return None
    monday = entry.entered_on - timedelta(days=entry.entered_on.weekday())
    return sheets.get((entry.created_by.gid, monday))
