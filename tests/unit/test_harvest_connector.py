"""HarvestSource against a strict respx mock: paging, 429, auth messages, running timers, deletions, exact hours."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError, PayloadError
from connectors.harvest import HarvestConfig, HarvestSource
from connectors.harvest.normalize import hours_to_seconds
from connectors.model import Coverage, Scope, Slice, Window
from tests.fakes import FakeClock, no_sleep

BASE = "https://api.harvestapp.com/v2"
TOKEN = "harvest-unit-token-123"
SCOPE = Scope("harvest", "42", "Harvest account 42")
NOVEMBER = Window(date(2026, 11, 1), date(2026, 11, 30))
ADMIN = {
    "id": 7,
    "first_name": "Ada",
    "last_name": "Admin",
    "email": "Ada@Example.com",
    "access_roles": ["administrator"],
}
MEMBER = {"id": 8, "first_name": "Max", "last_name": "Member", "email": "max@example.com", "access_roles": ["member"]}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def make_source(clock: FakeClock | None = None, **config: Any) -> HarvestSource:
    settings = HarvestConfig(token=SecretStr(TOKEN), account_id="42", contact_email="ops@example.com", **config)
    return HarvestSource(settings, limiter=RateLimiter(1_000_000, clock=clock or FakeClock()), sleep=no_sleep)


def entry(
    entry_id: int, hours: float, *, user: int = 7, running: bool = False, day: str = "2026-11-03"
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "spent_date": day,
        "hours": hours,
        "notes": "Wrote the report",
        "is_running": running,
        "billable": True,
        "user": {"id": user, "name": "Ada Admin"},
        "client": {"id": 5, "name": "Acme"},
        "project": {"id": 6, "name": "Website", "code": "ACME-WEB"},
        "task": {"id": 9, "name": "Design"},
        "created_at": "2026-11-03T10:00:00Z",
        "updated_at": "2026-11-04T10:00:00Z",
    }


def page(entries: list[dict[str, Any]], next_link: str | None) -> dict[str, Any]:
    return {"time_entries": entries, "per_page": 2, "links": {"next": next_link}, "next_page": 2 if next_link else None}


def users(*people: dict[str, Any]) -> dict[str, Any]:
    return {"users": list(people), "per_page": 2000, "links": {"next": None}}


def test_pages_follow_links_next_and_running_timers_are_skipped(mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/users/me").respond(json=ADMIN)
    mock.get(f"{BASE}/users").respond(json=users(ADMIN))
    first = mock.get(f"{BASE}/time_entries", params={"from": "2026-11-01", "to": "2026-11-30"}).respond(
        json=page([entry(1, 1.5), entry(2, 0.25, running=True)], f"{BASE}/time_entries?cursor=abc&per_page=2000")
    )
    second = mock.get(f"{BASE}/time_entries", params={"cursor": "abc"}).respond(json=page([entry(3, 2.11)], None))
    with make_source() as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [e.external_id for e in entries] == ["1", "3"]
    assert [e.duration_seconds for e in entries] == [5400, 7596]
    assert entries[0].person.email == "ada@example.com"
    assert entries[0].custom_field_map == {"project_code": "ACME-WEB"}
    assert coverage == Coverage.complete_window()
    request = first.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Harvest-Account-Id"] == "42"
    assert request.headers["User-Agent"] == "hourbridge (ops@example.com)"
    assert "from" not in str(second.calls[0].request.url)  # the cursor link is followed as given


def test_a_member_token_asks_for_its_own_time_and_covers_only_it(mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/users/me").respond(json=MEMBER)
    listing = mock.get(f"{BASE}/time_entries", params={"user_id": "8"}).respond(
        json=page([entry(4, 1.0, user=8)], None)
    )
    with make_source() as source:
        entries = list(source.fetch(SCOPE, NOVEMBER))
        coverage = source.covered(SCOPE, NOVEMBER)
    assert [e.person.id for e in entries] == ["8"] and listing.called
    assert coverage == Coverage.snapshot([Slice("8", NOVEMBER.start, NOVEMBER.end)])


def test_a_deleted_entry_is_simply_missing_from_the_next_read(mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/users/me").respond(json=ADMIN)
    mock.get(f"{BASE}/users").respond(json=users(ADMIN))
    mock.get(f"{BASE}/time_entries").mock(
        side_effect=[
            httpx.Response(200, json=page([entry(1, 1.0), entry(2, 1.0)], None)),
            httpx.Response(200, json=page([entry(1, 1.0)], None)),
        ]
    )
    with make_source() as source:
        first = {e.external_id for e in source.fetch(SCOPE, NOVEMBER)}
        second = {e.external_id for e in source.fetch(SCOPE, NOVEMBER)}
        coverage = source.covered(SCOPE, NOVEMBER)
    # The window was read whole, so the ledger may tombstone what is no longer listed.
    assert first - second == {"2"} and coverage.covers("7", date(2026, 11, 3))


def test_a_429_waits_for_retry_after_and_tries_again(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    mock.get(f"{BASE}/users/me").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "9"}, json={"error": "too_many"}),
            httpx.Response(200, json=ADMIN),
        ]
    )
    with make_source(clock) as source:
        source.check()
        assert source.stats() == {"api_calls": 2, "retries": 1, "throttled": 1}
    assert clock.slept == pytest.approx(9.0, abs=0.01)


@pytest.mark.parametrize(
    ("status", "setting"), [(401, "HOURBRIDGE_HARVEST__TOKEN"), (403, "HOURBRIDGE_HARVEST__ACCOUNT_ID")]
)
def test_a_refusal_names_the_setting_to_fix(mock: respx.MockRouter, status: int, setting: str) -> None:
    mock.get(f"{BASE}/users/me").respond(status, json={"error": "invalid_token", "error_description": TOKEN})
    with make_source() as source, pytest.raises(ConfigError) as info:
        source.check()
    assert setting in info.value.message and TOKEN not in info.value.message


def test_no_token_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_HARVEST__TOKEN"):
        HarvestSource(HarvestConfig(account_id="42"))


def test_a_next_link_to_another_host_is_refused(mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/users/me").respond(json=MEMBER)
    mock.get(f"{BASE}/time_entries").respond(json=page([entry(1, 1.0, user=8)], "https://evil.example/v2/x"))
    with make_source() as source, pytest.raises(PayloadError, match="another host"):
        list(source.fetch(SCOPE, NOVEMBER))


def test_a_repeated_next_link_stops_paging(mock: respx.MockRouter) -> None:
    mock.get(f"{BASE}/users/me").respond(json=MEMBER)
    loop = f"{BASE}/time_entries?cursor=same"
    mock.get(f"{BASE}/time_entries").respond(json=page([entry(1, 1.0, user=8)], loop))
    with make_source() as source, pytest.raises(PayloadError, match="twice"):
        list(source.fetch(SCOPE, NOVEMBER))


@pytest.mark.parametrize(("hours", "seconds"), [(0.1, 360), (2.11, 7596), (1.005, 3618), ("0.3333", 1200), (0, 0)])
def test_hours_become_exact_seconds(hours: object, seconds: int) -> None:
    assert hours_to_seconds(hours, 1) == seconds


@pytest.mark.parametrize("hours", ["abc", -1, "NaN"])
def test_unreadable_hours_are_a_payload_error(hours: object) -> None:
    with pytest.raises(PayloadError, match="hours"):
        hours_to_seconds(hours, 1)
