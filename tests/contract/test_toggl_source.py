"""TogglSource against its emulator: both feeds, coverage, deletions, X-Next paging, quotas, 429s, strictness."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError, DailyLimitError
from connectors.model import Coverage, Slice, TimeEntry, Window
from connectors.sandbox import toggl as routes
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.toggl import TogglSandbox
from connectors.toggl import TogglConfig, TogglSource
from tests.fakes import FakeClock, no_sleep

from .makers_toggl import toggl_source


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(dataset: Dataset, clock: FakeClock) -> Iterator[TogglSandbox]:
    with TogglSandbox(dataset, clock=clock) as running:
        yield running


def fetch_all(source: TogglSource, window: Window) -> list[TimeEntry]:
    return [e for s in source.scopes() for e in source.fetch(s, window)]


def test_the_workspace_feed_matches_the_emulator(sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock) -> None:
    window = dataset.window
    with toggl_source(sandbox, clock) as source:
        source.check()
        entries = fetch_all(source, window)
        coverage = source.covered(next(iter(source.scopes())), window)
    ids = sandbox.entry_ids(window.start, window.end)
    assert sorted(int(e.external_id) for e in entries) == sorted(ids)
    assert sum(e.duration_seconds for e in entries) == sandbox.seconds_of(ids)
    assert str(routes._TIMER_ID) not in {e.external_id for e in entries}
    assert coverage == Coverage.complete_window()
    sample = dataset.entries[len(dataset.entries) // 2]
    entry = next(e for e in entries if e.external_id == str(routes._ENTRY_BASE + sample.index))
    project = dataset.project(sample.project_id)
    assert entry.started_at == sample.started_at and entry.duration_seconds == sample.minutes * 60
    assert entry.person.id == str(sandbox.user_id(sample.person_id))
    assert entry.person.name == dataset.contractor(sample.person_id).name
    assert entry.person.email == dataset.contractor(sample.person_id).email
    assert [(c.kind, c.name) for c in entry.containers] == [
        ("client", dataset.client(project.client_id).name),
        ("project", project.name),
    ]
    assert entry.tags == tuple(sorted(dataset.task(sample.task_id).tags))


def test_the_me_feed_reads_and_covers_only_the_owners_time(
    sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock
) -> None:
    window = dataset.window
    with toggl_source(sandbox, clock, token=sandbox.member_token, feed="me", workspace_ids=[]) as source:
        source.check()
        scope = next(iter(source.scopes()))
        entries = list(source.fetch(scope, window))
        coverage = source.covered(scope, window)
    me = sandbox.user_id(dataset.contractors[1].id)
    assert {int(e.external_id) for e in entries} == sandbox.entry_ids(window.start, window.end, user=me)
    assert {e.person.email for e in entries} == {dataset.contractors[1].email}
    assert coverage == Coverage.snapshot([Slice(str(me), window.start, window.end)])
    assert not coverage.covers(str(sandbox.user_id(dataset.contractors[0].id)), window.start)


@pytest.mark.parametrize("feed", ["workspace", "me"])
def test_a_deleted_entry_is_gone_from_the_next_read(
    sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock, feed: str
) -> None:
    window = dataset.window
    token = sandbox.token if feed == "workspace" else sandbox.member_token
    user = None if feed == "workspace" else sandbox.user_id(dataset.contractors[1].id)
    victim = min(sandbox.entry_ids(window.start, window.end, user=user))
    with toggl_source(sandbox, clock, token=token, feed=feed) as source:
        before = {e.external_id for e in fetch_all(source, window)}
        sandbox.delete_entry(victim)
        after = {e.external_id for e in fetch_all(source, window)}
    assert before - after == {str(victim)}


def test_a_member_token_on_the_workspace_feed_is_told_what_to_do(sandbox: TogglSandbox, clock: FakeClock) -> None:
    with toggl_source(sandbox, clock, token=sandbox.member_token) as source, pytest.raises(ConfigError) as info:
        source.check()
    assert "admin" in info.value.message and "HOURBRIDGE_TOGGL__FEED=me" in info.value.message


def test_a_quota_spent_elsewhere_stops_the_run_until_it_resets(dataset: Dataset, clock: FakeClock) -> None:
    with TogglSandbox(dataset, clock=clock, plan="free") as sandbox:
        # Another program spends the token's hour first; the source only learns of it from Toggl's 402.
        for _ in range(30):
            clock.advance(2)
            assert (
                httpx.get(
                    f"{sandbox.base_url}/api/v9/workspaces/{sandbox.workspace_id}/tags", headers=_basic(sandbox.token)
                ).status_code
                == 200
            )
        with toggl_source(sandbox, clock, plan="free") as source, pytest.raises(DailyLimitError) as info:
            fetch_all(source, dataset.window)
        assert sandbox.quota_refusals == 1
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 3600
    assert "HOURBRIDGE_TOGGL__PLAN" in info.value.message


def test_the_plan_budget_stops_before_toggl_refuses(dataset: Dataset, clock: FakeClock) -> None:
    with TogglSandbox(dataset, clock=clock, plan="free") as sandbox:
        with toggl_source(sandbox, clock, plan="free", page_size=5) as source, pytest.raises(DailyLimitError):
            fetch_all(source, dataset.window)
        assert sandbox.quota_refusals == 0  # the 31st call was never sent
        assert sandbox.call_count() == 30


def test_429s_from_the_one_per_second_bucket_are_waited_out(dataset: Dataset, clock: FakeClock) -> None:
    with TogglSandbox(dataset, clock=clock) as sandbox:
        settings = TogglConfig(
            token=SecretStr(sandbox.token),
            workspace_ids=[sandbox.workspace_id],
            base_url=sandbox.base_url,
            plan="premium",
        )
        # A limiter far above Toggl's pace: the emulator's 429s and their Retry-After do the pacing.
        with TogglSource(settings, limiter=RateLimiter(1_000_000, clock=clock), sleep=no_sleep, clock=clock) as source:
            entries = fetch_all(source, dataset.window)
            assert source.stats()["throttled"] > 0
    assert len(entries) == len(sandbox.entry_ids(dataset.start, dataset.anchor))
    assert sandbox.throttled > 0


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{token}:api_token".encode()).decode()}


def _search(sandbox: TogglSandbox, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    url = f"{sandbox.base_url}/reports/api/v3/workspace/{sandbox.workspace_id}/search/time_entries"
    return httpx.post(url, json=body, headers=_basic(token or sandbox.token))


def test_the_emulator_is_strict(sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock) -> None:
    ok = {"start_date": "2026-11-01", "end_date": "2026-11-02"}
    assert _search(sandbox, ok).status_code == 200
    clock.advance(5)
    assert _search(sandbox, {**ok, "end_date": "2026-11-01"}).status_code == 400  # end must be after start
    clock.advance(5)
    assert _search(sandbox, {**ok, "since": "2026-11-01"}).status_code == 400  # v2's parameter
    clock.advance(5)
    assert _search(sandbox, {**ok, "page_size": 51}).status_code == 400
    clock.advance(5)
    assert _search(sandbox, {**ok, "first_id": 1, "first_row_number": 2, "first_timestamp": 3}).status_code == 400
    clock.advance(5)
    assert _search(sandbox, ok, token=sandbox.member_token).status_code == 403
    clock.advance(5)
    assert httpx.get(f"{sandbox.base_url}/api/v9/me", headers=_basic("nope")).status_code == 403
    clock.advance(5)
    wrong = httpx.get(f"{sandbox.base_url}/api/v9/me", headers={"Authorization": f"Bearer {sandbox.token}"})
    assert wrong.status_code == 403


def test_x_next_headers_page_through_the_report(sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock) -> None:
    body: dict[str, Any] = {
        "start_date": dataset.start.isoformat(),
        "end_date": dataset.anchor.isoformat(),
        "page_size": 50,
    }
    first = _search(sandbox, body)
    clock.advance(5)
    cursor = {
        "first_id": int(first.headers["X-Next-ID"]),
        "first_row_number": int(first.headers["X-Next-Row-Number"]),
        "first_timestamp": int(first.headers["X-Next-Timestamp"]),
    }
    second = _search(sandbox, {**body, **cursor})
    assert len(first.json()) == 50 and second.json()[0]["time_entries"][0]["id"] == cursor["first_id"]
    assert int(first.headers["X-Toggl-Quota-Remaining"]) == 599


def test_the_since_feed_lists_deletions(sandbox: TogglSandbox, dataset: Dataset) -> None:
    me = sandbox.user_id(dataset.contractors[1].id)
    victim = min(sandbox.entry_ids(dataset.start, dataset.anchor, user=me))
    sandbox.delete_entry(victim)
    listed = httpx.get(
        f"{sandbox.base_url}/api/v9/me/time_entries", params={"since": "0"}, headers=_basic(sandbox.member_token)
    ).json()
    deleted = [e for e in listed if e["server_deleted_at"] is not None]
    assert [e["id"] for e in deleted] == [victim]


def test_calls_per_thousand_entries(sandbox: TogglSandbox, dataset: Dataset, clock: FakeClock) -> None:
    """The README's figure: workspace, projects, clients, tags, users, then one report call per 50 rows."""
    with toggl_source(sandbox, clock) as source:
        entries = fetch_all(source, Window(dataset.start, date(2026, 11, 20)))
        calls = source.stats()["api_calls"]
    # The report is asked a day wider on each side; the running timer is a row too.
    rows = len(sandbox.entry_ids(dataset.start - timedelta(days=1), dataset.anchor)) + 1
    assert len(entries) > 300
    assert calls == 5 + -(-rows // 50)
