"""TogglSource against a strict respx mock: X-Next paging, 429, 402 quota, auth, running and deleted entries."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._budget import HourlyBudget
from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError, DailyLimitError
from connectors.model import Coverage, Scope, Slice, Window
from connectors.toggl import TogglConfig, TogglSource
from connectors.toggl.client import ME_MAX_ENTRIES
from tests.fakes import FakeClock, no_sleep

HOST = "https://api.track.toggl.com"
TOKEN = "toggl-unit-token-123"
SCOPE = Scope("toggl", "77", "Toggl Track workspace 77")
NOVEMBER = Window(date(2026, 11, 1), date(2026, 11, 30))
SEARCH = f"{HOST}/reports/api/v3/workspace/77/search/time_entries"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def make_source(clock: FakeClock | None = None, **config: Any) -> TogglSource:
    config.setdefault("workspace_ids", ["77"])
    settings = TogglConfig(token=SecretStr(TOKEN), plan="premium", **config)
    clock = clock or FakeClock()
    return TogglSource(settings, limiter=RateLimiter(1_000_000, clock=clock), sleep=no_sleep, clock=clock)


def lookups(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/workspaces/77/projects").respond(json=[{"id": 6, "name": "Website", "client_id": 5}])
    mock.get(f"{HOST}/api/v9/workspaces/77/clients").respond(json=[{"id": 5, "name": "Acme"}])


def row(entry_id: int, *, stop: str | None = "2026-11-03T10:30:00Z", seconds: int | None = 5400) -> dict[str, Any]:
    return {
        "user_id": 3,
        "username": "Ada",
        "project_id": 6,
        "task_id": None,
        "billable": True,
        "description": "Report",
        "tag_ids": [11],
        "time_entries": [{"id": entry_id, "seconds": seconds, "start": "2026-11-03T09:00:00Z", "stop": stop}],
    }


def own(entry_id: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": entry_id,
        "workspace_id": 77,
        "user_id": 3,
        "project_id": 6,
        "billable": False,
        "description": "Mine",
        "tags": ["b", "a"],
        "start": "2026-11-04T08:00:00+01:00",
        "stop": "2026-11-04T09:00:00+01:00",
        "duration": 3600,
        "server_deleted_at": None,
    }
    return {**base, **fields}


def test_report_pages_follow_the_x_next_headers_and_skip_running_timers(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/workspaces/77").respond(json={"id": 77, "name": "W", "admin": True})
    lookups(mock)
    mock.get(f"{HOST}/api/v9/workspaces/77/tags").respond(json=[{"id": 11, "name": "urgent"}])
    mock.get(f"{HOST}/api/v9/workspaces/77/users").respond(
        json=[{"id": 3, "email": "Ada@Example.com", "fullname": "Ada"}]
    )
    next_page = {"X-Next-ID": "2", "X-Next-Row-Number": "2", "X-Next-Timestamp": "1793000000"}
    search = mock.post(SEARCH).mock(
        side_effect=[
            httpx.Response(200, json=[row(1)], headers=next_page),
            httpx.Response(200, json=[row(2), row(3, stop=None, seconds=-1793000000)]),
        ]
    )
    with make_source() as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [e.external_id for e in entries] == ["1", "2"]
    first = entries[0]
    assert first.duration_seconds == 5400 and first.tags == ("urgent",)
    assert (first.person.id, first.person.name, first.person.email) == ("3", "Ada", "ada@example.com")
    assert [(c.kind, c.id, c.name) for c in first.containers] == [("client", "5", "Acme"), ("project", "6", "Website")]
    assert coverage == Coverage.complete_window()
    bodies = [json.loads(call.request.content) for call in search.calls]
    assert bodies[0]["start_date"] == "2026-10-31" and bodies[0]["end_date"] == "2026-12-01"
    assert "first_id" not in bodies[0]
    assert (bodies[1]["first_id"], bodies[1]["first_row_number"], bodies[1]["first_timestamp"]) == (2, 2, 1793000000)
    expected = "Basic " + base64.b64encode(f"{TOKEN}:api_token".encode()).decode()
    assert search.calls[0].request.headers["Authorization"] == expected


def test_the_me_feed_skips_deleted_running_and_other_workspaces(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/me").respond(
        json={"id": 3, "email": "Ada@Example.com", "fullname": "Ada", "default_workspace_id": 77}
    )
    lookups(mock)
    mock.get(f"{HOST}/api/v9/me/time_entries", params={"start_date": "2026-10-31", "end_date": "2026-12-02"}).respond(
        json=[
            own(1),
            own(2, server_deleted_at="2026-11-05T00:00:00Z"),
            own(3, stop=None, duration=-1793000000),
            own(4, workspace_id=99),
        ]
    )
    with make_source(feed="me", workspace_ids=[]) as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [e.external_id for e in entries] == ["1"]
    entry = entries[0]
    assert entry.person.email == "ada@example.com" and entry.tags == ("a", "b")
    assert entry.started_at is not None and entry.started_at.hour == 7  # +01:00 read as UTC
    assert coverage == Coverage.snapshot([Slice("3", NOVEMBER.start, NOVEMBER.end)])


def test_a_full_own_answer_is_split_until_complete(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/me").respond(json={"id": 3, "fullname": "Ada"})
    lookups(mock)
    full = [
        own(i, start="2026-11-10T08:00:00Z", stop="2026-11-10T08:01:00Z", duration=60) for i in range(ME_MAX_ENTRIES)
    ]
    listing = mock.get(f"{HOST}/api/v9/me/time_entries").mock(
        side_effect=[
            httpx.Response(200, json=full),
            httpx.Response(200, json=full[:10]),
            httpx.Response(200, json=full[10:20]),
        ]
    )
    with make_source(feed="me") as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
    assert listing.call_count == 3 and len(entries) == 20


def test_a_429_waits_for_retry_after(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.get(f"{HOST}/api/v9/me").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}, json="Too Many Requests"),
            httpx.Response(200, json={"id": 3}),
        ]
    )
    with make_source(clock, feed="me") as source:
        source.check()
        assert source.stats() == {"api_calls": 2, "retries": 1, "throttled": 1}
    assert clock.slept == pytest.approx(1.0, abs=0.01)


def test_a_402_with_quota_headers_is_a_spent_quota(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/me").respond(
        402, headers={"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": "1200"}, json="quota"
    )
    with make_source(feed="me") as source:
        with pytest.raises(DailyLimitError) as info:
            source.check()
        assert source.stats()["retries"] == 0  # not retried per request: the job runs again later
    assert info.value.retry_after == 1200


@pytest.mark.parametrize(
    ("status", "setting"), [(401, "HOURBRIDGE_TOGGL__TOKEN"), (403, "HOURBRIDGE_TOGGL__WORKSPACE_IDS")]
)
def test_refusals_name_the_setting(mock: respx.MockRouter, status: int, setting: str) -> None:
    mock.get(f"{HOST}/api/v9/workspaces/77").respond(status, json=f"bad {TOKEN}")
    with make_source() as source, pytest.raises(ConfigError) as info:
        source.check()
    assert setting in info.value.message and TOKEN not in info.value.message


def test_a_non_admin_workspace_token_is_refused_before_reading(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/workspaces/77").respond(json={"id": 77, "name": "W", "admin": False})
    with make_source() as source, pytest.raises(ConfigError, match="FEED=me"):
        source.check()


def test_the_workspace_feed_needs_workspace_ids() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_TOGGL__WORKSPACE_IDS"):
        TogglSource(TogglConfig(token=SecretStr(TOKEN)))


def test_the_hourly_budget_refuses_the_call_past_the_quota() -> None:
    clock = FakeClock()
    budget = HourlyBudget(2, vendor="Toggl Track", what="workspace requests", advice="upgrade", clock=clock)
    budget.take()
    clock.advance(600)
    budget.take()
    with pytest.raises(DailyLimitError) as info:
        budget.take()
    assert info.value.retry_after == pytest.approx(3000)
    clock.advance(3000)
    budget.take()  # the first call has aged out of the hour


def test_without_the_user_list_people_keep_id_and_name(mock: respx.MockRouter) -> None:
    mock.get(f"{HOST}/api/v9/workspaces/77").respond(json={"id": 77, "name": "W", "admin": True})
    lookups(mock)
    mock.get(f"{HOST}/api/v9/workspaces/77/tags").respond(json=[])
    mock.get(f"{HOST}/api/v9/workspaces/77/users").respond(403, json="Forbidden")
    mock.post(SEARCH).respond(json=[row(1)])
    with make_source() as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
    assert [(e.person.id, e.person.name, e.person.email) for e in entries] == [("3", "Ada", None)]
