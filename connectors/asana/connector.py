"""AsanaSource: bulk time-tracking entries through the official SDK, with one retry policy and a limiter."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import asana
import structlog
import urllib3
from asana.rest import ApiException
from pydantic import ValidationError

from connectors._config import require_token
from connectors._http import (
    CallStats,
    RateLimiter,
    RetryPolicy,
    Sleep,
    call_with_retry,
    error_from_status,
    limiter_for,
    redact,
)
from connectors.asana.config import ENV_PREFIX, AsanaConfig
from connectors.asana.normalize import normalize_entry
from connectors.asana.schema import AsanaTask, AsanaTimeEntry, AsanaUser
from connectors.errors import ConfigError, PayloadError, TransientError
from connectors.model import Scope, TimeEntry, Window

log = structlog.get_logger("hourbridge.asana")

# Everything we would like per entry. The spec's list enum stops at entered_on; the rest is asked
# for anyway and looked up per entry only when it does not come back.
LIST_FIELDS = (
    "duration_minutes,entered_on,attributable_to,attributable_to.name,created_by,created_by.name,"
    "categories,categories.name,task,task.name,billable_status,approval_status,description,created_at"
)
# The single-entry endpoint is asked for the same fields; its enum names all of them.
DETAIL_FIELDS = LIST_FIELDS
TASK_FIELDS = "name,custom_fields,custom_fields.name,custom_fields.display_value,tags,tags.name,actual_time_minutes"
USER_FIELDS = "name,email"
MAX_PAGES = 100_000

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_WORKSPACES = f"{ENV_PREFIX}WORKSPACES"


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
        self._sleep = sleep
        self._policy = RetryPolicy(max_attempts=config.max_attempts)
        self._limiter = limiter or limiter_for("asana", token, config.effective_rate_limit)
        self._stats = CallStats()
        configuration = asana.Configuration()
        configuration.host = config.base_url.rstrip("/")
        configuration.access_token = token
        # The SDK retries 429/5xx itself through urllib3; switched off so that the policy in
        # connectors._http owns all waiting (Retry-After honoured once, shared by every thread).
        configuration.retry_strategy = urllib3.Retry(
            total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False
        )
        configuration.connection_pool_maxsize = max(4, config.concurrency * 2)
        self._client = asana.ApiClient(configuration)
        self._entries = asana.TimeTrackingEntriesApi(self._client)
        self._users_api = asana.UsersApi(self._client)
        self._workspaces_api = asana.WorkspacesApi(self._client)
        self._tasks_api = asana.TasksApi(self._client)
        self._timeout = (min(10.0, config.timeout_seconds), config.timeout_seconds)
        self._users: dict[str, dict[str, AsanaUser]] = {}
        self._project_tasks: dict[str, dict[str, AsanaTask]] = {}
        self._tasks: dict[str, AsanaTask | None] = {}
        self._entry_task: dict[str, str] = {}
        self._indexed_projects: set[str] = set()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- plumbing

    def close(self) -> None:
        pool = getattr(self._client, "pool", None)
        if pool is not None:
            pool.close()
            pool.join()
            del self._client.pool
        self._client.rest_client.pool_manager.clear()

    def __enter__(self) -> AsanaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return self._stats.as_dict()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        def once() -> Any:
            try:
                return fn()
            except ApiException as exc:
                headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
                body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
                setting = SETTING_WORKSPACES if exc.status in (402, 404) else SETTING_TOKEN
                raise error_from_status(
                    int(exc.status or 0), vendor="Asana", setting=setting, detail=body, headers=headers
                ) from None
            except urllib3.exceptions.HTTPError as exc:
                raise TransientError(f"Asana could not be reached: {redact(str(exc))}") from None

        return call_with_retry(
            once, policy=self._policy, limiter=self._limiter, stats=self._stats, sleep=self._sleep, what=what
        )

    def _pages(self, what: str, request: Callable[[dict[str, Any]], Any], opts: dict[str, Any]) -> Iterator[list[Any]]:
        """Follow ``next_page.offset`` until it is null; stop with an error if an offset repeats."""
        seen: set[str] = set()
        offset: str | None = None
        for _ in range(MAX_PAGES):
            page_opts = dict(opts)
            if offset is not None:
                page_opts["offset"] = offset
            payload = self._call(what, functools.partial(request, page_opts))
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise PayloadError(f"Asana answered {what} without a data list")
            yield payload["data"]
            next_page = payload.get("next_page")
            if not next_page:
                return
            offset = next_page.get("offset") if isinstance(next_page, dict) else None
            if not offset:
                return
            if offset in seen:
                raise PayloadError(f"Asana returned the same page offset twice for {what}; stopped to avoid a loop")
            seen.add(offset)
        raise PayloadError(f"Asana paging for {what} did not end after {MAX_PAGES} pages")

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self._call("users/me", lambda: self._users_api.get_user("me", {"opt_fields": "name"}, full_payload=True))

    def scopes(self) -> Iterable[Scope]:
        visible: dict[str, str] = {}
        for page in self._pages(
            "workspaces",
            lambda o: self._workspaces_api.get_workspaces(o, full_payload=True, _request_timeout=self._timeout),
            {"limit": 100, "opt_fields": "name"},
        ):
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
            for page in self._pages(
                "time_tracking_entries",
                lambda o: self._entries.get_time_tracking_entries(o, full_payload=True, _request_timeout=self._timeout),
                opts,
            ):
                entries = [self._parse_entry(item) for item in page]
                entries = [e for e in entries if e.gid not in seen and e.entered_on in part]
                seen.update(e.gid for e in entries)
                for entry in self._complete(entries):
                    task = self._task_for(entry)
                    yield normalize_entry(entry, scope=scope, users=users, task=task)

    # ----------------------------------------------------------------- details

    @staticmethod
    def _parse_entry(item: Any) -> AsanaTimeEntry:
        try:
            return AsanaTimeEntry.model_validate(item)
        except ValidationError as exc:
            gid = item.get("gid") if isinstance(item, dict) else None
            raise PayloadError(f"Asana time entry {gid!r} could not be read: {exc.errors()[0]['msg']}") from None

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
        payload = self._call(
            "time_tracking_entry",
            lambda: self._entries.get_time_tracking_entry(
                entry.gid, {"opt_fields": DETAIL_FIELDS}, full_payload=True, _request_timeout=self._timeout
            ),
        )
        return self._parse_entry(payload.get("data") if isinstance(payload, dict) else None)

    def _index_project_entries(self, project_gid: str) -> None:
        """Learn entry → task from per-task listings, for tasks of the project that have time logged."""
        with self._lock:
            if project_gid in self._indexed_projects:
                return
            self._indexed_projects.add(project_gid)
        for task in self._tasks_of_project(project_gid).values():
            if not task.actual_time_minutes:
                continue  # Asana: actual_time_minutes is the sum of the task's entries; 0 means none
            for page in self._pages(
                "task time_tracking_entries",
                functools.partial(self._task_entries_page, task.gid),
                {"limit": 100, "opt_fields": "entered_on"},
            ):
                with self._lock:
                    for item in page:
                        self._entry_task[str(item["gid"])] = task.gid

    def _task_entries_page(self, task_gid: str, opts: dict[str, Any]) -> Any:
        return self._entries.get_time_tracking_entries_for_task(
            task_gid, opts, full_payload=True, _request_timeout=self._timeout
        )

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
        payload = self._call(
            "task",
            lambda: self._tasks_api.get_task(
                gid, {"opt_fields": TASK_FIELDS}, full_payload=True, _request_timeout=self._timeout
            ),
        )
        data = payload.get("data") if isinstance(payload, dict) else None
        task = AsanaTask.model_validate(data) if isinstance(data, dict) else None
        with self._lock:
            self._tasks[gid] = task
        return task

    def _tasks_of_project(self, project_gid: str) -> dict[str, AsanaTask]:
        """Every task of a project with its custom fields: one call per 100 tasks, cached per run."""
        with self._lock:
            cached = self._project_tasks.get(project_gid)
        if cached is not None:
            return cached
        tasks: dict[str, AsanaTask] = {}
        for page in self._pages(
            "tasks",
            lambda o: self._tasks_api.get_tasks(o, full_payload=True, _request_timeout=self._timeout),
            {"project": project_gid, "limit": 100, "opt_fields": TASK_FIELDS},
        ):
            for item in page:
                task = AsanaTask.model_validate(item)
                tasks[task.gid] = task
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
        users: dict[str, AsanaUser] = {}
        for page in self._pages(
            "workspace users",
            lambda o: self._users_api.get_users_for_workspace(
                workspace_gid, o, full_payload=True, _request_timeout=self._timeout
            ),
            {"limit": 100, "opt_fields": USER_FIELDS},
        ):
            for item in page:
                user = AsanaUser.model_validate(item)
                users[user.gid] = user
        with self._lock:
            self._users[workspace_gid] = users
        return users
