"""MondaySource against a strict respx mock: paging, sessions, zones, complexity errors, cursors, auth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError
from connectors.model import Scope, TimeEntry, Window
from connectors.monday import DailyLimitError, MondayConfig, MondaySource
from connectors.monday import source as monday_source
from tests.fakes import FakeClock

URL = "https://api.monday.com/v2"
TOKEN = "monday-unit-token-123"
SCOPE = Scope("monday", "1", "Acme", "UTC")
NOVEMBER = Window(date(2026, 11, 1), date(2026, 11, 30))
COMPLEXITY = {"before": 10_000_000, "after": 9_999_000, "query": 1000, "reset_in_x_seconds": 40}

Handler = Callable[[dict[str, Any]], httpx.Response]


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def data(payload: dict[str, Any], complexity: dict[str, int] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"data": {"complexity": complexity or COMPLEXITY, **payload}})


def session(sid: str, start: str, end: str | None, user: str = "7") -> dict[str, Any]:
    return {"id": sid, "started_at": start, "ended_at": end, "started_user_id": user, "created_at": start}


def item(iid: str, name: str, sessions: list[dict[str, Any]], code: str | None = "ACME-1") -> dict[str, Any]:
    fields = [{"id": "text_code", "type": "text", "text": code, "column": {"title": "Project code"}}]
    return {
        "id": iid,
        "name": name,
        "group": {"id": "topics", "title": "Sprint 1"},
        "time_tracking": [{"id": "time_tracking", "history": sessions}],
        "fields": fields,
    }


def graphql_router(mock: respx.MockRouter, answers: dict[str, list[httpx.Response] | Handler]) -> list[str]:
    """Route each POST by the root operation it performs; returns the operations in call order."""
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == TOKEN
        assert request.headers["API-Version"] == "2026-10"
        body = json.loads(request.content)
        query = body["query"]
        for op in ("next_items_page", "items_page", "users(", "boards(", "account"):
            if op in query:
                break
        seen.append(op)
        answer = answers[op]
        return answer(body) if callable(answer) else answer.pop(0)

    mock.post(URL).mock(side_effect=respond)
    return seen


def boards(*ids: str) -> list[httpx.Response]:
    return [data({"boards": [{"id": b, "name": f"Bøard {b}", "columns": [{"id": "tt"}]} for b in ids]})]


def users() -> list[httpx.Response]:
    return [data({"users": [{"id": "7", "name": "Zoë Müller", "email": "Zoe@Example.com"}]})]


def waited(clock: FakeClock) -> float:
    """Seconds slept in total; retry plumbing may add zero-length and sub-millisecond sleeps."""
    return round(sum(clock.sleeps), 1)


def make_source(clock: FakeClock | None = None, **config: Any) -> MondaySource:
    clock = clock or FakeClock()
    limiter = RateLimiter(1_000_000, clock=clock)
    settings = MondayConfig(token=SecretStr(config.pop("token", TOKEN)), **config)
    return MondaySource(settings, limiter=limiter, sleep=clock.sleep)


def fetch(source: MondaySource, window: Window = NOVEMBER) -> list[TimeEntry]:
    with source:
        return list(source.fetch(SCOPE, window))


def test_items_page_then_next_items_page_until_the_cursor_is_null(mock: respx.MockRouter) -> None:
    backend = item("11", "Backend", [session("s1", "2026-11-03T09:00:00Z", "2026-11-03T10:30:00Z")])
    # The Date scalar's format is unconfirmed; milliseconds must parse as well as whole seconds.
    frontend = item("12", "Frontend", [session("s2", "2026-11-04T09:00:00.000Z", "2026-11-04T09:15:00.000Z")])
    first = data({"boards": [{"id": "1", "items_page": {"cursor": "c1", "items": [backend]}}]})
    second = data({"next_items_page": {"cursor": None, "items": [frontend]}})
    order = graphql_router(
        mock, {"boards(": boards("1"), "items_page": [first], "next_items_page": [second], "users(": users()}
    )
    entries = fetch(make_source())
    assert [e.external_id for e in entries] == ["11:s1", "12:s2"]
    assert [e.duration_seconds for e in entries] == [5400, 900]
    assert order == ["boards(", "items_page", "next_items_page", "users("]
    entry = entries[0]
    assert entry.person.email == "zoe@example.com" and entry.person.name == "Zoë Müller"
    board = entry.container("board")
    assert board is not None and board.name == "Bøard 1"
    assert entry.container("group") is not None and entry.custom_field_map == {"Project code": "ACME-1"}


def test_running_sessions_are_skipped(mock: respx.MockRouter) -> None:
    running = session("s1", "2026-11-03T09:00:00Z", None)
    stopped = session("s2", "2026-11-03T08:00:00Z", "2026-11-03T08:30:00Z")
    page = data(
        {"boards": [{"id": "1", "items_page": {"cursor": None, "items": [item("11", "A", [running, stopped])]}}]}
    )
    graphql_router(mock, {"boards(": boards("1"), "items_page": [page], "users(": users()})
    assert [e.external_id for e in fetch(make_source())] == ["11:s2"]


def test_a_session_crossing_midnight_is_filed_under_the_local_start_day(mock: respx.MockRouter) -> None:
    # 23:30 UTC on the 2nd is 00:30 on the 3rd in Berlin; the session runs into the next UTC day.
    late = session("s1", "2026-11-02T23:30:00Z", "2026-11-03T01:00:00Z")
    pages = [
        data({"boards": [{"id": "1", "items_page": {"cursor": None, "items": [item("11", "Nachtschicht", [late])]}}]})
        for _ in range(2)
    ]
    graphql_router(mock, {"boards(": boards("1") * 2, "items_page": pages, "users(": users()})
    source = make_source(timezone="Europe/Berlin")
    with source:
        on_third = list(source.fetch(SCOPE, Window(date(2026, 11, 3), date(2026, 11, 3))))
        on_second = list(source.fetch(SCOPE, Window(date(2026, 11, 2), date(2026, 11, 2))))
    assert [e.work_date for e in on_third] == [date(2026, 11, 3)] and on_second == []
    task = on_third[0].task
    assert on_third[0].duration_seconds == 5400 and task is not None and task.name == "Nachtschicht"


def test_a_complexity_error_inside_a_200_waits_retry_in_seconds(mock: respx.MockRouter) -> None:
    exhausted = httpx.Response(
        200,
        json={
            "errors": [
                {
                    "message": "Complexity budget exhausted",
                    "extensions": {"code": "complexityBudgetExhausted", "retry_in_seconds": 17},
                }
            ]
        },
    )
    page = data({"boards": [{"id": "1", "items_page": {"cursor": None, "items": []}}]})
    graphql_router(mock, {"boards(": boards("1"), "items_page": [exhausted, page]})
    clock = FakeClock()
    source = make_source(clock)
    assert fetch(source) == []
    assert waited(clock) == 17.0
    assert source.stats()["throttled"] == 1


def test_a_429_waits_retry_after(mock: respx.MockRouter) -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "5"}, json={"errors": [{"message": "Rate Limit Exceeded"}]})
    page = data({"boards": [{"id": "1", "items_page": {"cursor": None, "items": []}}]})
    graphql_router(mock, {"boards(": boards("1"), "items_page": [throttled, page]})
    clock = FakeClock()
    fetch(make_source(clock))
    assert waited(clock) == 5.0


def test_an_expired_cursor_restarts_the_board_without_duplicates(mock: respx.MockRouter) -> None:
    s1 = session("s1", "2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z")
    s2 = session("s2", "2026-11-04T09:00:00Z", "2026-11-04T10:00:00Z")
    first = {"boards": [{"id": "1", "items_page": {"cursor": "c1", "items": [item("11", "A", [s1])]}}]}
    message = "The cursor provided for pagination has expired. Please use a new cursor"
    expired = httpx.Response(200, json={"errors": [{"message": message, "extensions": {"code": "CursorExpiredError"}}]})
    restart = {"boards": [{"id": "1", "items_page": {"cursor": "c2", "items": [item("11", "A", [s1])]}}]}
    last = data({"next_items_page": {"cursor": None, "items": [item("12", "B", [s2])]}})
    order = graphql_router(
        mock,
        {
            "boards(": boards("1"),
            "items_page": [data(first), data(restart)],
            "next_items_page": [expired, last],
            "users(": users(),
        },
    )
    entries = fetch(make_source())
    assert [e.external_id for e in entries] == ["11:s1", "12:s2"]
    assert order == ["boards(", "items_page", "next_items_page", "items_page", "next_items_page", "users("]


def test_a_refused_token_names_the_variable_and_never_the_token(mock: respx.MockRouter) -> None:
    refused = httpx.Response(401, json={"errors": [{"message": f"Not Authenticated ({TOKEN})"}]})
    graphql_router(mock, {"account": [refused]})
    with make_source() as source, pytest.raises(ConfigError) as info:
        source.check()
    assert "HOURBRIDGE_MONDAY__TOKEN" in info.value.message and TOKEN not in info.value.message


def test_not_authenticated_inside_a_200_is_a_config_error(mock: respx.MockRouter) -> None:
    graphql_router(mock, {"account": [httpx.Response(200, json={"errors": [{"message": "Not Authenticated"}]})]})
    with make_source() as source, pytest.raises(ConfigError, match="HOURBRIDGE_MONDAY__TOKEN"):
        source.check()


def test_a_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_MONDAY__TOKEN"):
        make_source(token=" ")


def test_pacing_waits_for_the_reset_before_overspending(mock: respx.MockRouter) -> None:
    # The first page cost 5,000 and left 1,000: the next page would overspend, so wait 30 s first.
    tight = {"before": 6000, "after": 1000, "query": 5000, "reset_in_x_seconds": 30}
    first = data({"boards": [{"id": "1", "items_page": {"cursor": "c1", "items": []}}]}, tight)
    last = data({"next_items_page": {"cursor": None, "items": []}})
    graphql_router(mock, {"boards(": boards("1"), "items_page": [first], "next_items_page": [last]})
    clock = FakeClock()
    source = make_source(clock)
    fetch(source)
    assert waited(clock) == 30.0
    assert source.stats()["paced"] == 1 and source.stats()["throttled"] == 0


def test_the_daily_limit_stops_without_retrying(mock: respx.MockRouter) -> None:
    daily = httpx.Response(
        200, json={"errors": [{"message": "Daily limit exceeded", "extensions": {"code": "DAILY_LIMIT_EXCEEDED"}}]}
    )
    graphql_router(mock, {"boards(": [daily]})
    with pytest.raises(DailyLimitError) as info:
        fetch(make_source())
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 24 * 3600
    assert mock.calls.call_count == 1


class People:
    """A users handler that answers the ids it knows (the others were deactivated) and records each call."""

    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self.asked: list[list[str]] = []

    def __call__(self, body: dict[str, Any]) -> httpx.Response:
        ids = body["variables"]["ids"]
        assert body["variables"]["limit"] == len(ids) <= 200
        self.asked.append(list(ids))
        return data({"users": [{"id": i, "name": self.known[i], "email": None} for i in ids if i in self.known]})


def first_page(board: str, cursor: str | None, *items: dict[str, Any]) -> httpx.Response:
    return data({"boards": [{"id": board, "items_page": {"cursor": cursor, "items": list(items)}}]})


def test_people_of_every_board_are_looked_up_together_after_paging(mock: respx.MockRouter) -> None:
    one = item("11", "A", [session("s1", "2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z", user="7")])
    two = item("12", "B", [session("s2", "2026-11-04T09:00:00Z", "2026-11-04T10:00:00Z", user="8")])
    three = item("21", "C", [session("s3", "2026-11-05T09:00:00Z", "2026-11-05T10:00:00Z", user="9")])
    people = People({"7": "Zoë", "8": "Ana"})  # 9 was deactivated: monday leaves it out
    order = graphql_router(
        mock,
        {
            "boards(": boards("1", "2"),
            "items_page": [
                first_page("1", "c1", one),
                first_page("2", None, three),
            ],
            "next_items_page": [data({"next_items_page": {"cursor": None, "items": [two]}})],
            "users(": people,
        },
    )
    entries = fetch(make_source(concurrency=1))
    assert order == ["boards(", "items_page", "next_items_page", "items_page", "users("]
    assert people.asked == [["7", "8", "9"]]
    assert [(e.external_id, e.person.id, e.person.name) for e in entries] == [
        ("11:s1", "7", "Zoë"),
        ("12:s2", "8", "Ana"),
        ("21:s3", "9", ""),
    ]


def test_two_hundred_new_people_are_looked_up_while_paging_goes_on(mock: respx.MockRouter) -> None:
    crowd = [session(f"s{i}", "2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z", user=str(1000 + i)) for i in range(250)]
    late = item("12", "B", [session("x", "2026-11-04T09:00:00Z", "2026-11-04T10:00:00Z", user="7")])
    people = People({str(1000 + i): f"P{i}" for i in range(250)} | {"7": "Zoë"})
    order = graphql_router(
        mock,
        {
            "boards(": boards("1"),
            "items_page": [
                data({"boards": [{"id": "1", "items_page": {"cursor": "c1", "items": [item("11", "A", crowd)]}}]})
            ],
            "next_items_page": [data({"next_items_page": {"cursor": None, "items": [late]}})],
            "users(": people,
        },
    )
    entries = fetch(make_source())
    assert order == ["boards(", "items_page", "users(", "next_items_page", "users("]
    asked = people.asked
    assert [len(chunk) for chunk in asked] == [200, 51]
    assert sorted(i for chunk in asked for i in chunk) == sorted([*(str(1000 + i) for i in range(250)), "7"])
    assert len(entries) == 251 and all(e.person.name for e in entries)


def test_held_sessions_are_released_once_too_many_wait(mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monday_source, "HOLD_SESSIONS", 2)
    pair = [session(f"s{i}", "2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z") for i in range(2)]
    later = item("12", "B", [session("s9", "2026-11-04T09:00:00Z", "2026-11-04T10:00:00Z", user="8")])
    order = graphql_router(
        mock,
        {
            "boards(": boards("1"),
            "items_page": [
                data({"boards": [{"id": "1", "items_page": {"cursor": "c1", "items": [item("11", "A", pair)]}}]})
            ],
            "next_items_page": [data({"next_items_page": {"cursor": None, "items": [later]}})],
            "users(": People({"7": "Zoë", "8": "Ana"}),
        },
    )
    with make_source() as source:
        entries = source.fetch(SCOPE, NOVEMBER)
        first = next(entries)
        # The first page's people were looked up as soon as two sessions waited on them.
        assert order[:3] == ["boards(", "items_page", "users("]
        rest = list(entries)
    assert (first.person.name, [e.person.name for e in rest]) == ("Zoë", ["Zoë", "Ana"])
    assert order == ["boards(", "items_page", "users(", "next_items_page", "users("]
