"""AsanaSource against the sandbox: fields, call costs per case, errors, retries and paging safety."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.errors import ConfigError, PayloadError, TransientError
from connectors.model import Window
from connectors.sandbox import asana as routes
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset

from .conftest import asana_source


def fetch_all(sandbox: AsanaSandbox, dataset: Dataset, **config: object) -> tuple[list, dict[str, int]]:
    with asana_source(sandbox, **config) as source:
        window = Window(dataset.start, dataset.anchor)
        entries = [e for s in source.scopes() for e in source.fetch(s, window)]
        return entries, source.stats()


def test_normalized_fields_match_the_data_set(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    entries, _ = fetch_all(asana_sandbox, dataset)
    assert sum(e.duration_seconds for e in entries) == asana_sandbox.total_minutes() * 60
    by_gid = {e.external_id: e for e in entries}
    sample = dataset.entries[0]
    entry = by_gid[asana_sandbox.entry_gid(sample.id)]
    task = dataset.task(sample.task_id)
    person = dataset.contractor(sample.person_id)
    assert entry.work_date == sample.work_date
    assert entry.duration_seconds == sample.minutes * 60
    assert entry.person.name == person.name and entry.person.email == person.email.lower()
    assert entry.task is not None and entry.task.name == task.name
    assert entry.container("project") is not None
    assert entry.container("project").name == dataset.project(sample.project_id).name
    assert entry.billable is sample.billable
    assert entry.approval_status == sample.approval_status
    if task.code:
        assert entry.custom_field_map.get("Project code") == task.code


def test_full_list_costs_one_call_per_page_plus_tasks_and_users(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    # A list that returns the full object unasked (the spec's list schema is the compact one).
    asana_sandbox.set_list_full_fields(True)
    entries, stats = fetch_all(asana_sandbox, dataset)
    pages = -(-len(entries) // 100) + 1  # the window is split in 31-day parts; allow one partial page each
    projects = len({e.container("project").id for e in entries if e.container("project")})
    assert asana_sandbox.call_count(routes.ENTRIES_GET) == 0
    assert asana_sandbox.call_count(routes.ENTRIES_LIST) <= pages + 1
    assert asana_sandbox.call_count(routes.TASKS_LIST) == projects
    assert stats["api_calls"] == asana_sandbox.call_count()


def test_compact_list_gets_details_with_one_call_per_entry(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    asana_sandbox.set_list_full_fields(False)
    entries, _ = fetch_all(asana_sandbox, dataset)
    assert asana_sandbox.call_count(routes.ENTRIES_GET) == len(entries)
    assert all(e.task is not None for e in entries)
    assert {e.approval_status for e in entries} - {None}


def test_compact_list_in_tasks_mode_recovers_tasks_without_per_entry_calls(
    asana_sandbox: AsanaSandbox, dataset: Dataset
) -> None:
    asana_sandbox.set_list_full_fields(False)
    entries, _ = fetch_all(asana_sandbox, dataset, detail="tasks")
    assert asana_sandbox.call_count(routes.ENTRIES_GET) == 0
    with_project = [e for e in entries if e.container("project")]
    assert with_project and all(e.task is not None for e in with_project)
    tasks_with_time = len({e.task.id for e in with_project if e.task})
    assert asana_sandbox.call_count(routes.TASK_ENTRIES_LIST) >= tasks_with_time


def test_plan_without_time_tracking_names_what_to_fix(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    asana_sandbox.set_plan_has_time_tracking(False)
    with asana_source(asana_sandbox) as source, pytest.raises(ConfigError) as info:
        scope = next(iter(source.scopes()))
        list(source.fetch(scope, Window(dataset.start, dataset.anchor)))
    assert "402" in info.value.message and "plan" in info.value.message
    assert "HOURBRIDGE_ASANA__WORKSPACES" in info.value.message


def test_unknown_workspace_names_the_setting(asana_sandbox: AsanaSandbox) -> None:
    with asana_source(asana_sandbox, workspaces=["999"]) as source, pytest.raises(ConfigError) as info:
        list(source.scopes())
    assert "HOURBRIDGE_ASANA__WORKSPACES" in info.value.message


def test_missing_token_names_the_env_var(asana_sandbox: AsanaSandbox) -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_ASANA__TOKEN"):
        asana_source(asana_sandbox, token="")


def test_429_is_retried_once_per_answer_with_the_sdk_retry_switched_off(
    asana_sandbox: AsanaSandbox, dataset: Dataset
) -> None:
    asana_sandbox.fail_next(routes.ENTRIES_LIST, 2, 429, {"Retry-After": "5"})
    entries, stats = fetch_all(asana_sandbox, dataset)
    assert sum(e.duration_seconds for e in entries) == asana_sandbox.total_minutes() * 60
    assert stats["throttled"] == 2 and stats["retries"] == 2
    # Each 429 reached the sandbox exactly once: the SDK's own urllib3 retry did not repeat it.
    assert stats["api_calls"] == asana_sandbox.call_count()


def test_persistent_5xx_gives_up_with_a_transient_error(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    asana_sandbox.fail_next(routes.ENTRIES_LIST, 50, 503)
    with pytest.raises(TransientError):
        fetch_all(asana_sandbox, dataset, max_attempts=3)
    assert asana_sandbox.call_count(routes.ENTRIES_LIST) == 3


def test_a_repeated_offset_stops_paging(asana_sandbox: AsanaSandbox) -> None:
    with asana_source(asana_sandbox) as source:
        pages = iter(
            [
                {"data": [], "next_page": {"offset": "abc", "path": "/x", "uri": "u"}},
                {"data": [], "next_page": {"offset": "abc", "path": "/x", "uri": "u"}},
            ]
        )
        with pytest.raises(PayloadError, match="same page offset"):
            list(source.client._pages("time_tracking_entries", lambda _: next(pages), {}))


def test_edits_and_deletions_show_in_the_next_fetch(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    window = Window(dataset.start, dataset.anchor)
    gids = asana_sandbox.entry_gids(dataset.start, dataset.anchor)
    asana_sandbox.edit_entry(gids[0], duration_minutes=77)
    asana_sandbox.delete_entry(gids[1])
    with asana_source(asana_sandbox) as source:
        entries = {e.external_id: e for s in source.scopes() for e in source.fetch(s, window)}
    assert entries[gids[0]].duration_seconds == 77 * 60
    assert gids[1] not in entries


def test_window_dates_are_inclusive(asana_sandbox: AsanaSandbox, dataset: Dataset) -> None:
    day = dataset.entries[-1].work_date
    with asana_source(asana_sandbox) as source:
        entries = [e for s in source.scopes() for e in source.fetch(s, Window(day, day))]
    assert entries and all(e.work_date == day for e in entries)
    assert len(entries) == len(asana_sandbox.entry_gids(day, day))
    assert date(2026, 11, 20) >= day
