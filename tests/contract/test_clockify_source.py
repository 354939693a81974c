"""ClockifySource against its emulator: both feeds, coverage, deletions, the Free plan's report budget, strictness."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.clockify import ClockifySource
from connectors.errors import ConfigError, DailyLimitError
from connectors.model import Coverage, Slice, TimeEntry, Window
from connectors.sandbox import clockify as routes
from connectors.sandbox.clockify import ClockifySandbox
from connectors.sandbox.dataset import Dataset
from tests.fakes import FakeClock

from .makers_clockify import clockify_source


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(dataset: Dataset, clock: FakeClock) -> Iterator[ClockifySandbox]:
    with ClockifySandbox(dataset, clock=clock) as running:
        yield running


def fetch_all(source: ClockifySource, window: Window) -> list[TimeEntry]:
    return [e for s in source.scopes() for e in source.fetch(s, window)]


def test_the_workspace_feed_matches_the_emulator(sandbox: ClockifySandbox, dataset: Dataset, clock: FakeClock) -> None:
    window = dataset.window
    with clockify_source(sandbox, clock) as source:
        source.check()
        entries = fetch_all(source, window)
        coverage = source.covered(next(iter(source.scopes())), window)
    ids = sandbox.entry_ids(window.start, window.end)
    assert sorted(e.external_id for e in entries) == sorted(ids)
    assert sum(e.duration_seconds for e in entries) == sandbox.seconds_of(ids)
    assert routes._TIMER_ID not in {e.external_id for e in entries}
    assert coverage == Coverage.complete_window()
    sample = dataset.entries[len(dataset.entries) // 2]
    entry = next(e for e in entries if e.external_id == routes._hex(0x6500, sample.index))
    project, person = dataset.project(sample.project_id), dataset.contractor(sample.person_id)
    assert entry.started_at == sample.started_at and entry.duration_seconds == sample.minutes * 60
    assert (entry.person.name, entry.person.email) == (person.name, person.email)
    assert [(c.kind, c.name) for c in entry.containers] == [
        ("client", dataset.client(project.client_id).name),
        ("project", project.name),
    ]
    assert entry.task is not None and entry.task.name == dataset.task(sample.task_id).name
    assert entry.tags == tuple(sorted(dataset.task(sample.task_id).tags))


def test_the_me_feed_reads_and_covers_only_the_owners_time(
    sandbox: ClockifySandbox, dataset: Dataset, clock: FakeClock
) -> None:
    window = dataset.window
    with clockify_source(sandbox, clock, token=sandbox.member_token, feed="me") as source:
        scope = next(iter(source.scopes()))
        entries = list(source.fetch(scope, window))
        coverage = source.covered(scope, window)
    me = sandbox.user_id(dataset.contractors[1].id)
    assert {e.external_id for e in entries} == sandbox.entry_ids(window.start, window.end, user=me)
    assert sum(e.duration_seconds for e in entries) == sandbox.seconds_of({e.external_id for e in entries})
    assert coverage == Coverage.snapshot([Slice(me, window.start, window.end)])
    assert not coverage.covers(sandbox.user_id(dataset.contractors[0].id), window.start)


@pytest.mark.parametrize("feed", ["workspace", "me"])
def test_a_deleted_entry_is_gone_from_the_next_read(
    sandbox: ClockifySandbox, dataset: Dataset, clock: FakeClock, feed: str
) -> None:
    window = dataset.window
    token = sandbox.token if feed == "workspace" else sandbox.member_token
    user = None if feed == "workspace" else sandbox.user_id(dataset.contractors[1].id)
    victim = min(sandbox.entry_ids(window.start, window.end, user=user))
    with clockify_source(sandbox, clock, token=token, feed=feed) as source:
        before = {e.external_id for e in fetch_all(source, window)}
        sandbox.delete_entry(victim)
        after = {e.external_id for e in fetch_all(source, window)}
    assert before - after == {victim}


def test_a_member_key_on_the_workspace_feed_is_told_what_to_do(sandbox: ClockifySandbox, clock: FakeClock) -> None:
    with clockify_source(sandbox, clock, token=sandbox.member_token) as source, pytest.raises(ConfigError) as info:
        fetch_all(source, Window(sandbox.dataset.start, sandbox.dataset.anchor))
    assert "HOURBRIDGE_CLOCKIFY__FEED=me" in info.value.message and "admin" in info.value.message


def test_the_free_plan_budget_stops_before_clockify_refuses(dataset: Dataset, clock: FakeClock) -> None:
    with ClockifySandbox(dataset, clock=clock) as sandbox:
        with clockify_source(sandbox, clock, page_size=5) as source, pytest.raises(DailyLimitError) as info:
            fetch_all(source, dataset.window)
        assert sandbox.report_refusals == 0 and sandbox.call_count(routes.DETAILED_REPORT) == 30
    assert "HOURBRIDGE_CLOCKIFY__PLAN" in info.value.message
    assert info.value.retry_after is not None and info.value.retry_after > 3000


def test_a_report_quota_spent_elsewhere_stops_the_run(dataset: Dataset, clock: FakeClock) -> None:
    with ClockifySandbox(dataset, clock=clock) as sandbox:
        body = _report_body("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
        for _ in range(30):
            assert _report(sandbox, body).status_code == 200
        with clockify_source(sandbox, clock) as source, pytest.raises(DailyLimitError) as info:
            fetch_all(source, dataset.window)
        assert sandbox.report_refusals == 1
    assert info.value.retry_after is not None and info.value.retry_after > 60


def test_429s_from_the_per_second_limit_are_retried(dataset: Dataset, clock: FakeClock) -> None:
    with ClockifySandbox(dataset, clock=clock, plan="paid") as sandbox:
        sandbox.server.fail_next(routes.DETAILED_REPORT, 2, 429, {"Retry-After": "1"})
        with clockify_source(sandbox, clock, plan="paid") as source:
            entries = fetch_all(source, dataset.window)
            assert source.stats()["throttled"] == 2
    assert len(entries) == len(sandbox.entry_ids(dataset.start, dataset.anchor))


def _report_body(start: str, end: str, **detailed: Any) -> dict[str, Any]:
    return {
        "dateRangeStart": start,
        "dateRangeEnd": end,
        "exportType": "JSON",
        "detailedFilter": {"page": 1, "pageSize": 50, **detailed},
    }


def _report(sandbox: ClockifySandbox, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    url = f"{sandbox.reports_url}/v1/workspaces/{sandbox.workspace_id}/reports/detailed"
    return httpx.post(url, json=body, headers={"X-Api-Key": key or sandbox.token})


def test_the_emulator_is_strict(sandbox: ClockifySandbox, dataset: Dataset) -> None:
    assert _report(sandbox, _report_body("2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z")).status_code == 200
    too_long = _report_body("2026-10-01T00:00:00Z", "2026-11-30T00:00:00Z")
    assert _report(sandbox, too_long).status_code == 400  # the Free plan's 31 days
    assert _report(sandbox, _report_body("2026-11-01", "2026-11-02T00:00:00Z")).status_code == 400
    assert (
        _report(sandbox, _report_body("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", pageSize=1001)).status_code == 400
    )
    assert _report(sandbox, {**_report_body("a", "b"), "page": 1}).status_code == 400
    member = _report(sandbox, _report_body("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"), key=sandbox.member_token)
    assert member.status_code == 403
    assert httpx.get(f"{sandbox.api_url}/v1/user", headers={"X-Api-Key": "nope"}).status_code == 401
    other = sandbox.user_id(dataset.contractors[0].id)
    url = f"{sandbox.api_url}/v1/workspaces/{sandbox.workspace_id}/user/{other}/time-entries"
    assert httpx.get(url, headers={"X-Api-Key": sandbox.member_token}).status_code == 403
    assert httpx.get(url, params={"page-size": "1001"}, headers={"X-Api-Key": sandbox.token}).status_code == 400


def test_calls_per_thousand_entries(sandbox: ClockifySandbox, dataset: Dataset, clock: FakeClock) -> None:
    """The README's figure: user, workspaces, one report call per 1,000 entries per 29-day chunk."""
    window = Window(dataset.anchor - timedelta(days=28), dataset.anchor)
    with clockify_source(sandbox, clock) as source:
        source.check()
        entries = fetch_all(source, window)
        calls = source.stats()["api_calls"]
    assert len(entries) > 250 and calls == 3
