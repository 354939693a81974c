"""ClockifySource against a strict respx mock: page numbers, 429s, auth messages, running timers, chunks, budgets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.clockify import ClockifyConfig, ClockifySource
from connectors.errors import ConfigError, DailyLimitError
from connectors.model import Coverage, Scope, Slice, Window
from tests.fakes import FakeClock, no_sleep

API = "https://api.clockify.me/api"
REPORTS = "https://reports.api.clockify.me"
KEY = "clockify-unit-key-123"
SCOPE = Scope("clockify", "w1", "Workspace")
NOVEMBER = Window(date(2026, 11, 1), date(2026, 11, 29))
REPORT = f"{REPORTS}/v1/workspaces/w1/reports/detailed"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def make_source(clock: FakeClock | None = None, **config: Any) -> ClockifySource:
    clock = clock or FakeClock()
    settings = ClockifyConfig(token=SecretStr(KEY), **config)
    return ClockifySource(settings, limiter=RateLimiter(1_000_000, clock=clock), sleep=no_sleep, clock=clock)


def report_entry(entry_id: str, *, end: str | None = "2026-11-03T10:30:00Z", client: bool = True) -> dict[str, Any]:
    return {
        "_id": entry_id,
        "description": "Report",
        "userId": "u1",
        "userName": "Ada",
        "userEmail": "Ada@Example.com",
        "billable": True,
        "projectId": "p1",
        "projectName": "Website",
        "clientName": " Acme  Corp " if client else None,
        "taskId": "t1",
        "taskName": "Design",
        "tags": [{"name": "urgent"}, {"name": "a"}],
        "timeInterval": {"start": "2026-11-03T09:00:00Z", "end": end, "duration": 5400 if end else None},
    }


def test_report_pages_are_read_until_a_short_page_and_running_timers_skipped(mock: respx.MockRouter) -> None:
    route = mock.post(REPORT).mock(
        side_effect=[
            httpx.Response(200, json={"timeentries": [report_entry("e1"), report_entry("e2", end=None)]}),
            httpx.Response(200, json={"timeentries": [report_entry("e3", client=False)]}),
        ]
    )
    with make_source(page_size=2) as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [e.external_id for e in entries] == ["e1", "e3"]
    first = entries[0]
    assert first.duration_seconds == 5400 and first.person.email == "ada@example.com"
    assert [(c.kind, c.id, c.name) for c in first.containers] == [
        ("client", "acme corp", " Acme  Corp "),
        ("project", "p1", "Website"),
    ]
    assert [c.kind for c in entries[1].containers] == ["project"]
    assert first.tags == ("a", "urgent") and coverage == Coverage.complete_window()
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert [b["detailedFilter"]["page"] for b in bodies] == [1, 2]
    assert bodies[0]["dateRangeStart"] == "2026-10-31T00:00:00.000Z"
    assert bodies[0]["dateRangeEnd"] == "2026-11-30T23:59:59.999Z"
    assert route.calls[0].request.headers["X-Api-Key"] == KEY


def test_a_long_window_is_read_in_chunks_a_free_report_allows(mock: respx.MockRouter) -> None:
    route = mock.post(REPORT).respond(json={"timeentries": []})
    with make_source() as source:
        assert list(source.fetch(SCOPE, Window(date(2026, 9, 1), date(2026, 11, 30)))) == []
    bodies = [json.loads(call.request.content) for call in route.calls]
    spans = [
        (datetime.fromisoformat(b["dateRangeEnd"]) - datetime.fromisoformat(b["dateRangeStart"])).days + 1
        for b in bodies
    ]
    assert spans == [31, 31, 31, 6]  # 91 days in chunks of 29, each asked a day wider on both sides
    assert bodies[0]["dateRangeStart"].startswith("2026-08-31") and bodies[-1]["dateRangeEnd"].startswith("2026-12-01")


def test_the_me_feed_reads_the_users_own_pages_and_covers_only_them(mock: respx.MockRouter) -> None:
    mock.get(f"{API}/v1/user").respond(json={"id": "u1", "email": "ada@example.com", "name": "Ada"})
    own = {
        "id": "e9",
        "userId": "u1",
        "description": "",
        "billable": False,
        "project": {"id": "p1", "name": "Website", "clientId": "c1", "clientName": "Acme"},
        "task": None,
        "tags": [],
        "timeInterval": {"start": "2026-11-04T08:00:00Z", "end": "2026-11-04T08:45:30Z", "duration": "PT45M30S"},
    }
    running = {**own, "id": "e10", "timeInterval": {"start": "2026-11-05T08:00:00Z", "end": None, "duration": None}}
    listing = mock.get(f"{API}/v1/workspaces/w1/user/u1/time-entries").respond(json=[own, running])
    with make_source(feed="me") as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [(e.external_id, e.duration_seconds, e.description) for e in entries] == [("e9", 2730, None)]
    assert coverage == Coverage.snapshot([Slice("u1", NOVEMBER.start, NOVEMBER.end)])
    params = listing.calls[0].request.url.params
    assert (params["hydrated"], params["page"], params["page-size"]) == ("true", "1", "1000")


def test_a_short_429_is_retried(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.get(f"{API}/v1/user").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "1"}, json={}), httpx.Response(200, json={"id": "u1"})]
    )
    with make_source(clock, feed="me") as source:
        assert source.user().id == "u1"
        assert source.stats() == {"api_calls": 2, "retries": 1, "throttled": 1}


def test_a_long_429_on_a_report_is_the_spent_hourly_quota(mock: respx.MockRouter) -> None:
    mock.post(REPORT).respond(429, headers={"Retry-After": "1800"}, json={"message": "limit"})
    with make_source() as source:
        with pytest.raises(DailyLimitError) as info:
            list(source.fetch(SCOPE, NOVEMBER))
        assert source.stats()["retries"] == 0
    assert info.value.retry_after == 1800 and "HOURBRIDGE_CLOCKIFY__PLAN" in info.value.message


def test_a_refused_key_names_the_setting(mock: respx.MockRouter) -> None:
    mock.get(f"{API}/v1/user").respond(401, json={"message": f"bad key {KEY}", "code": 1000})
    with make_source() as source, pytest.raises(ConfigError) as info:
        source.check()
    assert "HOURBRIDGE_CLOCKIFY__TOKEN" in info.value.message and KEY not in info.value.message


def test_an_unknown_workspace_names_the_setting(mock: respx.MockRouter) -> None:
    mock.get(f"{API}/v1/user").respond(json={"id": "u1"})
    mock.get(f"{API}/v1/workspaces").respond(json=[{"id": "w1", "name": "W"}])
    with (
        make_source(workspace_ids=["w2"]) as source,
        pytest.raises(ConfigError, match="HOURBRIDGE_CLOCKIFY__WORKSPACE_IDS"),
    ):
        source.check()


def test_no_key_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_CLOCKIFY__TOKEN"):
        ClockifySource(ClockifyConfig())
