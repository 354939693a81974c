"""monday.com's part of the benchmark: its sandbox, its call lower bound, and the per-item baseline fetch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from datetime import UTC
from types import TracebackType
from typing import Any, ClassVar

import httpx

from connectors._http import make_client, send
from connectors._ratelimit import RateLimiter
from connectors._retry import CallStats, RetryPolicy
from connectors.model import Container, Person, TaskRef, TimeEntry, Window, normalize_custom_fields
from connectors.monday.client import (
    BOARDS_PER_PAGE,
    BOARDS_QUERY,
    REQUESTS_PER_MINUTE,
    USERS_PER_CALL,
    VENDOR,
    _errors_of,
    classify_graphql_errors,
)
from connectors.monday.config import MAX_PAGE_SIZE, PERSONAL_TOKEN_BUDGET
from connectors.sandbox._server import SandboxServer
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.monday import ACCOUNT_ID, MondaySandbox
from tests.bench.adapters import BaselineFigures, CallBound

API_VERSION = "2026-10"
HISTORY = "history { id started_at ended_at started_user_id created_at }"
ITEM_FIELDS = (
    "id name group { id title } "
    f"column_values(types: [time_tracking]) {{ id ... on TimeTrackingValue {{ {HISTORY} }} }}"
)


class MondayBench:
    """The monday.com sandbox at a request rate and complexity budget, with the harness's figures.

    ``limit_per_minute`` is requests per minute (monday documents about 5,000 per token); the
    complexity budget (10,000,000 points a minute for personal tokens) is scaled by the same factor.
    """

    name: ClassVar[str] = "monday"
    vendor_limit_per_minute: ClassVar[int] = REQUESTS_PER_MINUTE

    def __init__(self, dataset: Dataset, limit_per_minute: int) -> None:
        self.dataset = dataset
        self.limit_per_minute = limit_per_minute
        self.budget = max(1, round(PERSONAL_TOKEN_BUDGET * limit_per_minute / REQUESTS_PER_MINUTE))
        self.sandbox = MondaySandbox(dataset, complexity_budget=self.budget)
        self.sandbox.server.set_rate_limit(limit_per_minute)

    def __enter__(self) -> MondayBench:
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
        # Setting the limit again empties the request window; the complexity window reopens by itself
        # 60 s after its first call, and the budget is far above what one phase spends.
        self.sandbox.server.set_rate_limit(self.limit_per_minute)
        self.sandbox.reset_counts()

    def sync_env(self) -> dict[str, str]:
        # The connector's request limiter is fixed at monday's 5,000/min; only the budget is a setting,
        # so at a rate scale other than 1 the sandbox's request cap and the connector's differ.
        return {
            "HOURBRIDGE_MONDAY__TOKEN": self.sandbox.token,
            "HOURBRIDGE_MONDAY__BASE_URL": self.sandbox.base_url,
            "HOURBRIDGE_MONDAY__API_VERSION": API_VERSION,
            "HOURBRIDGE_MONDAY__COMPLEXITY_BUDGET_PER_MINUTE": str(self.budget),
        }

    # ------------------------------------------------------------------ lower bound

    def lower_bound(self, window: Window) -> CallBound:
        """The account check, board listings, ceil(items / 500) pages per board (at least 1), users.

        monday cannot filter sessions by date, so the bound is the same for any window: every item's
        history is read.
        """
        boards = self.sandbox.board_ids()
        # The listing stops at the first short page, so a full last page costs one more, empty, call.
        listings = math.floor(len(boards) / BOARDS_PER_PAGE) + 1
        pages = sum(max(1, math.ceil(self.sandbox.items_of(b) / MAX_PAGE_SIZE)) for b in boards)
        people = {e.person_id for e in self.dataset.entries}
        users = math.ceil(len(people) / USERS_PER_CALL)
        return CallBound(
            1 + listings + pages + users,
            {"account": 1, "board listings": listings, "item pages": pages, "users": users},
        )

    # ------------------------------------------------------------------ baseline

    def baseline(self) -> BaselineFigures:
        """List boards, then read one item per query with its time tracking column.

        Older connectors ask ``items(ids: [id])`` per item; the sandbox does not serve a root
        ``items`` field, so each board is walked with ``items_page``/``next_items_page`` at
        ``limit: 1``: still one query per item. Same limiter and retry policy as the connector.
        """
        limiter = RateLimiter(self.limit_per_minute)
        stats = CallStats()
        policy = RetryPolicy()
        headers = {"Authorization": self.sandbox.token, "API-Version": API_VERSION}
        entries = 0
        started = time.perf_counter()
        with make_client(self.sandbox.base_url, headers=headers) as client:

            def post(query: str, variables: dict[str, Any]) -> dict[str, Any]:
                response = send(
                    client,
                    "POST",
                    self.sandbox.base_url,
                    vendor=VENDOR,
                    setting="HOURBRIDGE_MONDAY__TOKEN",
                    policy=policy,
                    limiter=limiter,
                    stats=stats,
                    check=_check,
                    json={"query": query, "variables": variables},
                )
                data: dict[str, Any] = response.json()["data"]
                return data

            for board in self._boards(post):
                for item in self._items_one_by_one(post, board):
                    for column in item["column_values"]:
                        entries += sum(1 for s in column.get("history") or () if s["ended_at"] is not None)
        return BaselineFigures(
            calls=self.server.call_count(),
            throttled=self.server.rate_limited_count,
            seconds=time.perf_counter() - started,
            entries=entries,
            strategy="boards → one query per item (items_page/next_items_page limit 1; sandbox lacks items(ids:))",
        )

    @staticmethod
    def _boards(post: Any) -> Iterator[str]:
        for page in range(1, 10_000):
            raw = post(BOARDS_QUERY, {"limit": BOARDS_PER_PAGE, "page": page}).get("boards") or []
            yield from (b["id"] for b in raw if b and b.get("columns"))
            if len(raw) < BOARDS_PER_PAGE:
                return

    @staticmethod
    def _items_one_by_one(post: Any, board: str) -> Iterator[dict[str, Any]]:
        first = (
            f"query ($b: [ID!]) {{ boards(ids: $b) {{ items_page(limit: 1) {{ cursor items {{ {ITEM_FIELDS} }} }} }} }}"
        )
        more = f"query ($c: String!) {{ next_items_page(cursor: $c, limit: 1) {{ cursor items {{ {ITEM_FIELDS} }} }} }}"
        page = post(first, {"b": [board]})["boards"][0]["items_page"]
        while True:
            yield from page["items"]
            if not page["cursor"]:
                return
            page = post(more, {"c": page["cursor"]})["next_items_page"]

    # ------------------------------------------------------------------ local pipeline input

    def time_entries(self) -> list[TimeEntry]:
        """The data set as ``MondaySource.fetch`` normalizes it from this sandbox (same content hashes)."""
        ds = self.dataset
        sandbox = self.sandbox
        # Session keys come in session-id order, and the sandbox numbers sessions by data-set entry.
        keys = sandbox.session_ids()
        ordered = sorted(ds.entries, key=lambda e: e.index)
        if len(keys) != len(ordered):
            raise RuntimeError(f"the sandbox holds {len(keys)} stopped sessions for {len(ordered)} entries")
        boards = {
            p.id: Container("board", bid, p.name)
            for p, bid in zip(_by_index(ds.projects), sandbox.board_ids(), strict=True)
        }
        people = {c.id: (c.name, c.email.lower() if c.email else None) for c in ds.contractors}
        user_ids = self._user_ids()
        # The connector files a session under the UTC day of its start, which can fall before the
        # data set's first (local) day, outside what the sync asks for.
        window = Window(ds.start, ds.anchor)
        built: list[TimeEntry] = []
        for entry, key in zip(ordered, keys, strict=True):
            item_id = key.partition(":")[0]
            task = ds.task(entry.task_id)
            name, email = people[entry.person_id]
            # monday sends instants with whole seconds.
            started_at = entry.started_at.astimezone(UTC).replace(microsecond=0)
            ended_at = entry.ended_at.astimezone(UTC).replace(microsecond=0)
            if started_at.date() not in window:
                continue
            group = Container("group", task.category.lower().replace(" ", "_"), task.category)
            built.append(
                TimeEntry(
                    source="monday",
                    account=ACCOUNT_ID,
                    external_id=key,
                    work_date=started_at.date(),
                    duration_seconds=max(0, int((ended_at - started_at).total_seconds())),
                    person=Person(user_ids[(name, email)], name, email),
                    task=TaskRef(item_id, task.name),
                    containers=(boards[task.project_id], group),
                    custom_fields=normalize_custom_fields({"Project code": task.code or "", "Category": task.category}),
                    billable=None,
                    approval_status=None,
                    started_at=started_at,
                    ended_at=ended_at,
                    # The sandbox records a session's creation at its start.
                    recorded_at=started_at,
                )
            )
        return built

    def _user_ids(self) -> dict[tuple[str, str | None], str]:
        """monday user ids by (name, lowercased email): one direct users query, outside any measured phase."""
        headers = {"Authorization": self.sandbox.token, "API-Version": API_VERSION}
        query = "query { users(limit: 100000) { id name email } }"
        with make_client(self.sandbox.base_url, headers=headers) as client:
            users = client.post(self.sandbox.base_url, json={"query": query}).json()["data"]["users"]
        return {(u["name"], u["email"].lower() if u["email"] else None): u["id"] for u in users}


def _by_index(values: Iterable[Any]) -> list[Any]:
    return sorted(values, key=lambda v: v.index)


def _check(response: httpx.Response) -> None:
    """GraphQL errors arrive inside a 200: raise them as the connector does, so retries match."""
    body = response.json()
    errors = _errors_of(body) if isinstance(body, dict) else []
    if errors:
        raise classify_graphql_errors(errors, body)
