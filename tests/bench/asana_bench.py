"""Asana's part of the benchmark: its sandbox, its call lower bound, and the per-task baseline fetch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar

from connectors._http import make_client, send
from connectors._ratelimit import RateLimiter
from connectors._retry import CallStats, RetryPolicy
from connectors.asana.client import LIST_FIELDS, TASK_FIELDS
from connectors.asana.config import PLAN_RATE_LIMITS, AsanaConfig
from connectors.model import Container, Person, TaskRef, TimeEntry, Window
from connectors.sandbox._server import SandboxServer
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset
from sync.run.context import CHUNK_DAYS
from tests.bench.adapters import BaselineFigures, CallBound

PAGE = 100  # Asana's largest page, for every list endpoint used here


class AsanaBench:
    """The Asana sandbox at a rate limit, with the figures the harness compares the sync against.

    This row is the rich list: the (strict) emulator's list returns task, billable and approval
    unasked. ``AsanaCompactBench`` is the list the spec promises, compact, completed per entry.
    """

    name: ClassVar[str] = "asana"
    vendor_limit_per_minute: ClassVar[int] = PLAN_RATE_LIMITS["paid"]
    rich_list: ClassVar[bool] = True

    def __init__(self, dataset: Dataset, limit_per_minute: int) -> None:
        self.dataset = dataset
        self.limit_per_minute = limit_per_minute
        self.sandbox = AsanaSandbox(dataset, rate_limit_per_minute=limit_per_minute, list_full_fields=self.rich_list)

    def __enter__(self) -> AsanaBench:
        self.sandbox.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sandbox.stop()

    @property
    def server(self) -> SandboxServer:
        return self.sandbox.server

    def reset(self) -> None:
        # Setting the limit again also empties the sliding window, so one phase's calls cannot
        # cause 429s in the next.
        self.server.set_rate_limit(self.limit_per_minute)
        self.server.reset_counts()

    def sync_env(self) -> dict[str, str]:
        return {
            "HOURBRIDGE_ASANA__TOKEN": self.sandbox.token,
            "HOURBRIDGE_ASANA__BASE_URL": self.sandbox.base_url,
            "HOURBRIDGE_ASANA__RATE_LIMIT_PER_MINUTE": str(self.limit_per_minute),
        }

    # ------------------------------------------------------------------ lower bound

    def lower_bound(self, window: Window) -> CallBound:
        """Listing pages per listing window, one task page per 100 tasks of each project with time, users;
        for a compact list also one GET per entry and the timesheet statuses (100 per page).

        The windows are the ones the sync asks for: the ingest stage's 14-day chunks, each split again by
        the connector's ``window_days``. An empty window still costs the one call that finds it empty.
        """
        listing = self.listing_calls(window)
        entries = self.dataset.entries_in(window.start, window.end)
        projects_with_time = {e.project_id for e in entries}
        tasks = sum(math.ceil(len(self.dataset.tasks_of(p)) / PAGE) for p in projects_with_time)
        users = len(self.sandbox.workspace_gids) * math.ceil(len(self.dataset.contractors) / PAGE)
        parts = {"entry listing": listing, "task pages": tasks, "user pages": users}
        if not self.rich_list:
            parts["entry details"] = len(entries)
            sheets = {(e.person_id, e.work_date - timedelta(days=e.work_date.weekday())) for e in entries}
            parts["timesheet pages"] = max(1, math.ceil(len(sheets) / PAGE))
        return CallBound(sum(parts.values()), parts)

    def listing_calls(self, window: Window) -> int:
        """The entry listing pages alone: what an unchanged re-run of ``window`` cannot avoid."""
        window_days = AsanaConfig().window_days
        listing = 0
        for chunk in window.split(CHUNK_DAYS):
            for part in chunk.split(window_days):
                listing += max(1, math.ceil(len(self.dataset.entries_in(part.start, part.end)) / PAGE))
        return listing

    # ------------------------------------------------------------------ baseline

    def baseline(self) -> BaselineFigures:
        """List projects, every task of every project, then each task's time entries, one task at a time.

        Same limiter, retry policy and page size as the connector, so only the fetch strategy differs.
        """
        limiter = RateLimiter(self.limit_per_minute)
        stats = CallStats()
        policy = RetryPolicy()
        headers = {"Authorization": f"Bearer {self.sandbox.token}"}
        entries = 0
        started = time.perf_counter()
        with make_client(self.sandbox.base_url, headers=headers) as client:

            def pages(path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
                offset: str | None = None
                while True:
                    query = params | {"limit": str(PAGE)} | ({"offset": offset} if offset else {})
                    body = send(
                        client,
                        "GET",
                        path,
                        vendor="Asana",
                        setting="HOURBRIDGE_ASANA__TOKEN",
                        policy=policy,
                        limiter=limiter,
                        stats=stats,
                        params=query,
                    ).json()
                    yield from body["data"]
                    offset = (body.get("next_page") or {}).get("offset")
                    if not offset:
                        return

            for workspace in self.sandbox.workspace_gids:
                for project in list(pages("/projects", {"workspace": workspace, "opt_fields": "name"})):
                    tasks = list(pages("/tasks", {"project": project["gid"], "opt_fields": TASK_FIELDS}))
                    for task in tasks:
                        path = f"/tasks/{task['gid']}/time_tracking_entries"
                        entries += sum(1 for _ in pages(path, {"opt_fields": LIST_FIELDS}))
        return BaselineFigures(
            calls=self.server.call_count(),
            throttled=self.server.rate_limited_count,
            seconds=time.perf_counter() - started,
            entries=entries,
            strategy="projects → tasks → GET /tasks/{gid}/time_tracking_entries per task",
        )

    # ------------------------------------------------------------------ local pipeline input

    def time_entries(self) -> list[TimeEntry]:
        """The data set as ``AsanaSource.fetch`` normalizes it from this sandbox (same content hashes)."""
        ds = self.dataset
        sandbox = self.sandbox
        account = sandbox.workspace_gids[0]
        with make_client(sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.token}"}) as client:
            names = {
                w["gid"]: w["name"] for w in client.get("/workspaces", params={"opt_fields": "name"}).json()["data"]
            }
        workspace = Container("workspace", account, names[account])
        people = {
            c.id: Person(sandbox.user_gid(c.id), c.name, c.email.lower() if c.email else None) for c in ds.contractors
        }
        projects = {p.id: Container("project", sandbox.project_gid(p.id), p.name) for p in ds.projects}
        tasks = {t.id: TaskRef(sandbox.task_gid(t.id), t.name) for t in ds.tasks}
        task_extras = {
            t.id: (tuple(sorted(set(t.tags))), (("Project code", t.code),) if t.code else ()) for t in ds.tasks
        }
        built: list[TimeEntry] = []
        for entry in ds.entries:
            tags, custom_fields = task_extras[entry.task_id]
            built.append(
                TimeEntry(
                    source="asana",
                    account=account,
                    external_id=sandbox.entry_gid(entry.id),
                    work_date=entry.work_date,
                    duration_seconds=entry.minutes * 60,
                    person=people[entry.person_id],
                    task=tasks[entry.task_id],
                    containers=(workspace, projects[entry.project_id]),
                    tags=tags,
                    categories=(entry.category,) if entry.category else (),
                    custom_fields=custom_fields,
                    billable=entry.billable,
                    approval_status=entry.approval_status,
                    description=entry.description or None,
                    # Asana sends created_at with millisecond precision.
                    recorded_at=_to_millis(entry.recorded_at),
                )
            )
        return built


def _to_millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class AsanaCompactBench(AsanaBench):
    """The list as the spec promises it (compact): details once per new entry, none on a re-run."""

    name: ClassVar[str] = "asana-compact"
    rich_list: ClassVar[bool] = False
