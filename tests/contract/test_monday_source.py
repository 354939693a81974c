"""MondaySource against the sandbox: totals, call costs, complexity pacing, cursors, edits, schema fidelity.

Cost per 1,000 sessions: monday cannot filter sessions by date, so the cost follows items, not
entries: one ``account`` call for scopes, one ``boards`` listing per 100 boards, ceil(items / 500)
page calls per board (at least one) and one ``users`` call per page that meets new people. A board
of up to 500 items costs one call however many sessions it holds, so 1,000 sessions on one board
cost 1 page + 1 boards + 1 users = 3 calls (plus 1 for scopes); here, 10 boards of about five items
hold about 300 sessions for 10 pages + 1 + at most 10 users calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError, RequestBugError
from connectors.model import TimeEntry, Window
from connectors.monday import MondaySource
from connectors.sandbox import monday as routes
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.monday import SCHEMA_SDL, MondaySandbox
from tests.fakes import FakeClock

from .makers_monday import monday_source

OFFICIAL_SDL = Path(__file__).resolve().parents[3] / "shared" / "specs" / "monday-schema.graphql"


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[MondaySandbox]:
    with MondaySandbox(dataset) as running:
        yield running


def fetch_all(source: MondaySource, window: Window) -> list[TimeEntry]:
    return [e for scope in source.scopes() for e in source.fetch(scope, window)]


def test_totals_equal_the_sandbox_and_fields_are_normalized(sandbox: MondaySandbox, dataset: Dataset) -> None:
    window = dataset.window
    with monday_source(sandbox) as source:
        entries = fetch_all(source, window)
    assert sum(e.duration_seconds for e in entries) == sandbox.total_minutes(window.start, window.end) * 60
    assert sorted(e.external_id for e in entries) == sorted(sandbox.session_ids(window.start, window.end))
    assert sandbox.running_session_id not in {e.external_id for e in entries}
    sample = dataset.entries[0]
    task = dataset.task(sample.task_id)
    match = [e for e in entries if e.task and e.task.name == task.name and e.started_at == sample.started_at]
    assert match and match[0].duration_seconds == sample.minutes * 60
    person = dataset.contractor(sample.person_id)
    assert match[0].person.email == person.email.lower() and match[0].person.name == person.name
    board = match[0].container("board")
    assert board is not None and board.name == dataset.project(sample.project_id).name
    assert match[0].container("group") is not None
    assert match[0].custom_field_map.get("Project code") == task.code
    assert all(e.billable is None and e.approval_status is None for e in entries)


@pytest.mark.parametrize("page_size", [500, 2])
def test_calls_are_one_per_page_per_board_plus_listing_and_users(
    sandbox: MondaySandbox, dataset: Dataset, page_size: int
) -> None:
    with monday_source(sandbox, page_size=page_size) as source:
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
    boards = sandbox.board_ids()
    pages = sum(max(1, math.ceil(sandbox.items_of(b) / page_size)) for b in boards)
    assert entries
    assert sandbox.call_count(routes.BOARDS) == 1
    assert sandbox.call_count(routes.ITEMS_PAGE) == len(boards)
    assert sandbox.call_count(routes.NEXT_ITEMS_PAGE) == pages - len(boards)
    assert 1 <= sandbox.call_count(routes.USERS) <= pages
    assert sandbox.call_count(routes.ACCOUNT) == 1
    assert stats["api_calls"] == sandbox.call_count() == 1 + 1 + pages + sandbox.call_count(routes.USERS)


def test_only_the_configured_boards_are_read(sandbox: MondaySandbox, dataset: Dataset) -> None:
    first = sandbox.board_ids()[0]
    with monday_source(sandbox, board_ids=[first]) as source:
        entries = fetch_all(source, dataset.window)
    # container() is Optional; every sandbox entry has a board, and a None would fail here anyway.
    assert entries and {e.container("board").id for e in entries} == {first}  # type: ignore[union-attr]
    with monday_source(sandbox, board_ids=["42"]) as source, pytest.raises(ConfigError, match="BOARD_IDS"):
        fetch_all(source, dataset.window)


def test_work_dates_follow_the_configured_zone(sandbox: MondaySandbox, dataset: Dataset) -> None:
    window = Window(dataset.start, dataset.anchor)
    with monday_source(sandbox, timezone="Pacific/Auckland") as source:
        entries = fetch_all(source, window)
    expected = sandbox.session_ids(window.start, window.end, timezone="Pacific/Auckland")
    assert sorted(e.external_id for e in entries) == sorted(expected)
    assert any(e.started_at and e.work_date != e.started_at.date() for e in entries)


def test_the_sandbox_rejects_a_query_the_schema_rejects(sandbox: MondaySandbox) -> None:
    bad = {"query": "query { boards { id items_page(limit: 5) { items { id colour } } } }"}
    response = httpx.post(sandbox.base_url, headers={"Authorization": sandbox.token}, json=bad)
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert "colour" in errors[0]["message"] and "data" not in response.json()
    missing_arg = {"query": "query { next_items_page(limit: 5) { cursor } }"}
    response = httpx.post(sandbox.base_url, headers={"Authorization": sandbox.token}, json=missing_arg)
    assert "cursor" in response.json()["errors"][0]["message"]
    refused = httpx.post(sandbox.base_url, headers={"Authorization": "nope"}, json=bad)
    assert refused.status_code == 401


def test_an_unknown_graphql_error_is_a_request_bug(sandbox: MondaySandbox, dataset: Dataset) -> None:
    sandbox.fail_next(routes.ITEMS_PAGE, 1, code="InvalidArgumentException", message="Something is wrong")
    with monday_source(sandbox) as source, pytest.raises(RequestBugError, match="Something is wrong"):
        fetch_all(source, dataset.window)


def test_edits_and_deletions_show_in_the_next_fetch(sandbox: MondaySandbox, dataset: Dataset) -> None:
    window = dataset.window
    keys = sandbox.session_ids(window.start, window.end)
    sandbox.edit_session(keys[0], minutes=77)
    sandbox.delete_session(keys[1])
    with monday_source(sandbox) as source:
        entries = {e.external_id: e for e in fetch_all(source, window)}
    assert entries[keys[0]].duration_seconds == 77 * 60
    assert keys[1] not in entries
    assert sum(e.duration_seconds for e in entries.values()) == sandbox.total_minutes(window.start, window.end) * 60


@pytest.mark.parametrize("errors_as_http_200", [True, False])
def test_a_small_complexity_budget_is_paced_or_waited_out(dataset: Dataset, errors_as_http_200: bool) -> None:
    clock = FakeClock()
    limiter = RateLimiter(1_000_000, clock=clock)
    with (
        MondaySandbox(dataset, complexity_budget=800, clock=clock, errors_as_http_200=errors_as_http_200) as sandbox,
        monday_source(sandbox, limiter=limiter, page_size=2) as source,
    ):
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
    assert sum(e.duration_seconds for e in entries) == sandbox.total_minutes() * 60
    assert stats["paced"] + stats["throttled"] > 0
    assert clock.now > 1000.0 + 60  # at least one budget minute was waited out, on the fake clock


def test_expired_cursors_restart_the_board_without_duplicates(sandbox: MondaySandbox, dataset: Dataset) -> None:
    sandbox.fail_next(
        routes.NEXT_ITEMS_PAGE,
        1,
        code="CursorExpiredError",
        message="The cursor provided for pagination has expired. Please use a new cursor",
    )
    with monday_source(sandbox, page_size=2) as source:
        entries = fetch_all(source, dataset.window)
    keys = [e.external_id for e in entries]
    assert len(keys) == len(set(keys)) == len(sandbox.session_ids(dataset.start, dataset.anchor))
    assert sandbox.call_count(routes.ITEMS_PAGE) == len(sandbox.board_ids()) + 1


def test_cursors_expire_after_an_hour_on_the_sandbox_clock(dataset: Dataset) -> None:
    clock = FakeClock()
    with MondaySandbox(dataset, clock=clock) as sandbox:
        headers = {"Authorization": sandbox.token}
        first = "query ($b: [ID!]) { boards(ids: $b) { items_page(limit: 1) { cursor } } }"
        body = {"query": first, "variables": {"b": [sandbox.board_ids()[0]]}}
        cursor = httpx.post(sandbox.base_url, headers=headers, json=body).json()["data"]["boards"][0]["items_page"][
            "cursor"
        ]
        clock.now += 3601
        following = {"query": "query ($c: String!) { next_items_page(cursor: $c, limit: 1) { cursor } }"}
        answer = httpx.post(sandbox.base_url, headers=headers, json={**following, "variables": {"c": cursor}}).json()
    assert answer["errors"][0]["extensions"]["code"] == "CursorExpiredError"


def _signature(field: graphql.GraphQLField) -> dict[str, Any]:
    args = {}
    for name, arg in field.args.items():
        default = arg.ast_node.default_value if arg.ast_node else None
        args[name] = (str(arg.type), graphql.print_ast(default) if default else None)
    return {"type": str(field.type), "args": args}


def test_the_sandbox_schema_is_a_faithful_subset_of_the_official_one() -> None:
    if not OFFICIAL_SDL.exists():
        pytest.skip(f"the official monday schema is not at {OFFICIAL_SDL}; nothing to compare against")
    official = graphql.build_schema(OFFICIAL_SDL.read_text(encoding="utf-8"))
    ours = graphql.build_schema(SCHEMA_SDL)
    checked = 0
    for name, ours_type in ours.type_map.items():
        if name.startswith("__"):
            continue
        theirs = official.type_map.get(name)
        assert theirs is not None, f"type {name} is not in the official schema"
        assert type(theirs) is type(ours_type), name
        if isinstance(ours_type, graphql.GraphQLEnumType):
            assert isinstance(theirs, graphql.GraphQLEnumType)
            assert set(ours_type.values) <= set(theirs.values), name
        if isinstance(ours_type, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
            assert isinstance(theirs, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType)
            assert {i.name for i in ours_type.interfaces} <= {i.name for i in theirs.interfaces}, name
            for field_name, ours_field in ours_type.fields.items():
                assert field_name in theirs.fields, f"{name}.{field_name} is not in the official schema"
                mine, official_sig = _signature(ours_field), _signature(theirs.fields[field_name])
                assert mine["type"] == official_sig["type"], f"{name}.{field_name}"
                for arg, signature in mine["args"].items():
                    assert official_sig["args"].get(arg) == signature, f"{name}.{field_name}({arg})"
                checked += 1
    assert checked > 40


def test_dates_from_the_sandbox_are_utc(sandbox: MondaySandbox, dataset: Dataset) -> None:
    with monday_source(sandbox) as source:
        entries = fetch_all(source, dataset.window)
    assert all(e.started_at and e.started_at.tzinfo == UTC for e in entries)
    assert all(e.recorded_at is None or e.recorded_at <= datetime.now(UTC) for e in entries)
