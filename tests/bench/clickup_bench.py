"""ClickUp's part of the benchmark: its sandbox, its call lower bound, and the per-task baseline fetch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar

from connectors._http import make_client, send
from connectors._ratelimit import RateLimiter
from connectors._retry import CallStats, RetryPolicy
from connectors.clickup.client import TASK_PAGE_SIZE
from connectors.clickup.config import PLAN_RATE_LIMITS, ClickUpConfig
from connectors.clickup.normalize import from_ms, to_ms
from connectors.clickup.schema import ClickUpTask
from connectors.model import Container, Person, TaskRef, TimeEntry, Window, normalize_custom_fields
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset
from sync.run.context import CHUNK_DAYS
from tests.bench.adapters import BaselineFigures, CallBound

PLAN = "business_plus"
# How the sandbox reports a data-set approval status; a draft week has no approval object.
APPROVALS = {"SUBMITTED": "pending", "APPROVED": "approved", "REJECTED": "rejected"}
# The names the sandbox gives its one Workspace and space (the entries carry them as location names).
TEAM_NAME = "Example Consulting"
SPACE_NAME = "Clients"


class ClickUpBench:
    """The ClickUp sandbox at a rate limit, with the figures the harness compares the sync against."""

    name: ClassVar[str] = "clickup"
    # Business Plus: 1,000 requests/min per token (Free..Business get 100, Enterprise 10,000).
    vendor_limit_per_minute: ClassVar[int] = PLAN_RATE_LIMITS[PLAN]

    def __init__(self, dataset: Dataset, limit_per_minute: int) -> None:
        self.dataset = dataset
        self.limit_per_minute = limit_per_minute
        self.sandbox = ClickUpSandbox(dataset, rate_limit_per_minute=limit_per_minute)

    def __enter__(self) -> ClickUpBench:
        self.sandbox.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sandbox.stop()

    @property
    def server(self) -> ClickUpSandbox:
        # The quota and its 429s live in the sandbox, not in its HTTP server, so the sandbox counts them.
        return self.sandbox

    def reset(self) -> None:
        # Setting the limit again also empties the quota window, so one phase's calls cannot cause
        # 429s in the next.
        self.sandbox.set_rate_limit(self.limit_per_minute)
        self.sandbox.reset_counts()

    def sync_env(self) -> dict[str, str]:
        return {
            "HOURBRIDGE_CLICKUP__TOKEN": self.sandbox.token,
            "HOURBRIDGE_CLICKUP__BASE_URL": self.sandbox.base_url,
            "HOURBRIDGE_CLICKUP__PLAN": PLAN,
            "HOURBRIDGE_CLICKUP__RATE_LIMIT_PER_MINUTE": str(self.limit_per_minute),
        }

    # ------------------------------------------------------------------ lower bound

    def lower_bound(self, window: Window) -> CallBound:
        """The user check, the Workspace listing, one time_entries call per listing window, task pages.

        The windows are the ingest stage's 14-day chunks, each split again by the connector's
        ``window_days``; ClickUp does not page time_entries, so each window is one call, empty or not.
        The task listing returns every task of the lists named, so the bound counts all tasks of the
        lists that hold time in the window, 100 per page.
        """
        window_days = ClickUpConfig().window_days
        listing = 0
        projects_with_time: set[str] = set()
        for chunk in window.split(CHUNK_DAYS):
            for part in chunk.split(window_days):
                listing += 1
                projects_with_time.update(e.project_id for e in self.dataset.entries_in(part.start, part.end))
        listed = sum(len(self.dataset.tasks_of(p)) for p in projects_with_time)
        tasks = math.ceil(listed / TASK_PAGE_SIZE)
        return CallBound(
            2 + listing + tasks,
            {"user + workspace": 2, "time_entries windows": listing, "task pages": tasks},
        )

    # ------------------------------------------------------------------ baseline

    def baseline(self) -> BaselineFigures:
        """List the Workspace and every task, then each task's entries over the whole range, one task at a time.

        Older connectors read ``GET /v2/task/{id}/time``; the sandbox does not serve that legacy
        endpoint, so each task is asked for with ``GET /v2/team/{team}/time_entries?task_id=`` over
        the sync's date range, every member named. Same limiter and retry policy as the connector.
        """
        limiter = RateLimiter(self.limit_per_minute)
        stats = CallStats()
        policy = RetryPolicy()
        team = self.sandbox.team_id
        start = datetime.combine(self.dataset.start, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(self.dataset.anchor + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        entries = 0
        started = time.perf_counter()
        with make_client(self.sandbox.base_url, headers={"Authorization": self.sandbox.token}) as client:

            def get(path: str, params: dict[str, str]) -> Any:
                return send(
                    client,
                    "GET",
                    path,
                    vendor="ClickUp",
                    setting="HOURBRIDGE_CLICKUP__TOKEN",
                    policy=policy,
                    limiter=limiter,
                    stats=stats,
                    params=params,
                ).json()

            teams = get("/v2/team", {})["teams"]
            members = ",".join(str(m["user"]["id"]) for t in teams if t["id"] == team for m in t["members"])
            for task in self._tasks(get, team):
                params = {
                    "task_id": task["id"],
                    "assignee": members,
                    "start_date": str(to_ms(start)),
                    "end_date": str(to_ms(end)),
                }
                data = get(f"/v2/team/{team}/time_entries", params)["data"]
                entries += sum(1 for e in data if int(e["duration"]) >= 0)  # a running timer is not time yet
        return BaselineFigures(
            calls=self.sandbox.call_count(),
            throttled=self.sandbox.rate_limited_count,
            seconds=time.perf_counter() - started,
            entries=entries,
            strategy="team → task pages → GET /team/{id}/time_entries?task_id= per task (no /task/{id}/time here)",
        )

    @staticmethod
    def _tasks(get: Any, team: str) -> Iterator[dict[str, Any]]:
        for page in range(10_000):
            body = get(f"/v2/team/{team}/task", {"page": str(page), "include_closed": "true", "subtasks": "true"})
            yield from body["tasks"]
            if body.get("last_page") or len(body["tasks"]) < TASK_PAGE_SIZE:
                return

    # ------------------------------------------------------------------ local pipeline input

    def time_entries(self) -> list[TimeEntry]:
        """The data set as ``ClickUpSource.fetch`` normalizes it from this sandbox (same content hashes)."""
        ds = self.dataset
        sandbox = self.sandbox
        team = sandbox.team_id
        # The tasks as the connector reads them (custom fields, tags, folder): a few direct pages,
        # outside any measured phase.
        tasks: dict[str, ClickUpTask] = {}
        raw_tasks: dict[str, dict[str, Any]] = {}
        with make_client(sandbox.base_url, headers={"Authorization": sandbox.token}) as client:

            def get(path: str, params: dict[str, str]) -> Any:
                return client.get(path, params=params).json()

            for raw in self._tasks(get, team):
                task = ClickUpTask.model_validate(raw)
                tasks[task.id] = task
                raw_tasks[task.id] = raw
        workspace = Container("workspace", team, TEAM_NAME)
        people = {
            c.id: Person(sandbox.user_id(c.id), c.name, c.email.lower() if c.email else None) for c in ds.contractors
        }
        by_task: dict[str, tuple[TaskRef, tuple[Container, ...], set[str], tuple[tuple[str, str], ...]]] = {}
        for t in ds.tasks:
            task_id = sandbox.task_id(t.id)
            task = tasks[task_id]
            project = ds.project(t.project_id)
            raw_task = raw_tasks[task_id]
            containers = (
                workspace,
                Container("space", str(raw_task["space"]["id"]), SPACE_NAME),
                Container("folder", str(raw_task["folder"]["id"]), ds.client(project.client_id).name),
                Container("list", sandbox.list_id(t.project_id), project.name),
            )
            by_task[t.id] = (
                TaskRef(task_id, t.name, sandbox.task_custom_id(task_id)),
                containers,
                {tag.name for tag in task.tags if tag.name},
                normalize_custom_fields(task.field_values()),
            )
        # The connector files an entry under the UTC day of its start, which can fall before the data
        # set's first (local) day, outside what the sync asks for.
        window = Window(ds.start, ds.anchor)
        built: list[TimeEntry] = []
        for entry in ds.entries:
            task_ref, where, task_tags, custom_fields = by_task[entry.task_id]
            # ClickUp carries instants as Unix ms.
            started_at = from_ms(to_ms(entry.started_at))
            if started_at.date() not in window:
                continue
            tags = task_tags | ({entry.category} if entry.category else set())
            built.append(
                TimeEntry(
                    source="clickup",
                    account=team,
                    external_id=sandbox.entry_id(entry.id),
                    work_date=started_at.date(),
                    duration_seconds=entry.minutes * 60,
                    person=people[entry.person_id],
                    task=task_ref,
                    containers=where,
                    tags=tuple(sorted(tags)),
                    custom_fields=custom_fields,
                    billable=entry.billable,
                    approval_status=APPROVALS.get(entry.approval_status),
                    description=entry.description or None,
                    started_at=started_at,
                    ended_at=started_at + timedelta(minutes=entry.minutes),
                )
            )
        # The emulator also logs a little time without a task (``task`` null, only the workspace as
        # container), which the sync stores like any other entry.
        person_by_user = {person.id: person for person in people.values()}
        for entry_id, user, start_ms, duration_ms, description in sandbox.stopped_without_task():
            started_at = from_ms(start_ms)
            if started_at.date() not in window:
                continue
            built.append(
                TimeEntry(
                    source="clickup",
                    account=team,
                    external_id=entry_id,
                    work_date=started_at.date(),
                    duration_seconds=duration_ms // 1000,
                    person=person_by_user[user],
                    task=None,
                    containers=(workspace,),
                    tags=(),
                    custom_fields=(),
                    billable=False,
                    approval_status=None,
                    description=description or None,
                    started_at=started_at,
                    ended_at=from_ms(start_ms + duration_ms),
                )
            )
        return built
