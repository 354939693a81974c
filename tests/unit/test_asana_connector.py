"""AsanaSource against a strict Asana emulator: spec-valid lists, both list behaviours, stored details, offsets.

The Asana SDK talks through urllib3, which respx cannot intercept, so these run over loopback
against the emulator (``connectors/sandbox/asana.py``) with its strict ``opt_fields`` mode on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.asana import AsanaConfig, AsanaSource
from connectors.asana.client import LIST_FIELDS
from connectors.errors import PayloadError
from connectors.model import TimeEntry, Window
from connectors.sandbox import asana as routes
from connectors.sandbox._asana_wire import LIST_OPT_FIELDS
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from tests.fakes import FakeClock

ANCHOR = date(2026, 11, 20)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate_dataset(5, anchor=ANCHOR, days=21, entries=400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(ds: Dataset, clock: FakeClock) -> Iterator[AsanaSandbox]:
    with AsanaSandbox(ds, clock=clock) as running:
        yield running


def _source(sandbox: AsanaSandbox, **config: Any) -> AsanaSource:
    settings = AsanaConfig(token=SecretStr(sandbox.token), base_url=sandbox.base_url, **config)
    return AsanaSource(settings, limiter=RateLimiter(1_000_000, clock=FakeClock()), sleep=lambda _: None)


def _fetch(source: AsanaSource, window: Window, known: Mapping[str, TimeEntry] | None = None) -> list[TimeEntry]:
    def lookup(ids: Sequence[str]) -> dict[str, TimeEntry]:
        assert known is not None
        return {gid: known[gid] for gid in ids if gid in known}

    source.check()
    return [e for s in source.scopes() for e in source.fetch(s, window, known=None if known is None else lookup)]


def _window(ds: Dataset) -> Window:
    return Window(ds.start, ds.anchor)


def test_list_requests_only_the_spec_enum() -> None:
    assert set(LIST_FIELDS.split(",")) <= LIST_OPT_FIELDS


def test_compact_list_reads_details_once_per_entry(sandbox: AsanaSandbox, ds: Dataset) -> None:
    with _source(sandbox) as source:
        entries = _fetch(source, _window(ds))
    assert len(entries) == len(ds.entries)
    assert sandbox.call_count(routes.ENTRIES_GET) == len(entries)
    assert sandbox.call_count(routes.TIMESHEETS_LIST) == 1
    by_gid = {e.external_id: e for e in entries}
    for item in ds.entries:
        entry = by_gid[sandbox.entry_gid(item.id)]
        assert entry.approval_status == item.approval_status
        assert entry.billable is item.billable
        assert entry.task is not None and entry.task.name == ds.task(item.task_id).name


def test_rich_list_needs_no_detail_calls(sandbox: AsanaSandbox, ds: Dataset) -> None:
    sandbox.set_list_full_fields(True)
    with _source(sandbox) as source:
        entries = _fetch(source, _window(ds))
    assert len(entries) == len(ds.entries)
    assert sandbox.call_count(routes.ENTRIES_GET) == 0
    assert sandbox.call_count(routes.TIMESHEETS_LIST) == 0  # the list carries approval itself
    assert {e.approval_status for e in entries} == {e.approval_status for e in ds.entries}


def test_extended_list_fields_fall_back_when_the_list_refuses_them(sandbox: AsanaSandbox, ds: Dataset) -> None:
    with _source(sandbox, list_fields="extended") as source:
        entries = _fetch(source, _window(ds))
        refused = sandbox.call_count(routes.ENTRIES_LIST)
        _fetch(source, _window(ds))  # remembered: no second refusal
        assert sandbox.call_count(routes.ENTRIES_LIST) == 2 * refused - 1
    assert len(entries) == len(ds.entries)
    assert sandbox.call_count(routes.ENTRIES_GET) == 2 * len(entries)


def test_extended_list_fields_are_used_where_the_list_honours_them(sandbox: AsanaSandbox, ds: Dataset) -> None:
    sandbox.set_strict_opt_fields(False)
    sandbox.set_list_full_fields(True)
    with _source(sandbox, list_fields="extended") as source:
        entries = _fetch(source, _window(ds))
    assert len(entries) == len(ds.entries)
    assert sandbox.call_count(routes.ENTRIES_GET) == 0


@pytest.mark.parametrize("rich", [False, True])
def test_unchanged_entries_reuse_the_stored_details(sandbox: AsanaSandbox, ds: Dataset, rich: bool) -> None:
    sandbox.set_list_full_fields(rich)
    with _source(sandbox) as source:
        first = {e.external_id: e for e in _fetch(source, _window(ds))}
    sandbox.server.reset_counts()
    with _source(sandbox) as source:
        again = {e.external_id: e for e in _fetch(source, _window(ds), known=first)}
    assert again == first
    assert {e.content_hash for e in again.values()} == {e.content_hash for e in first.values()}
    for route in (routes.ENTRIES_GET, routes.WORKSPACE_USERS_LIST, routes.TASKS_LIST, routes.TASKS_GET):
        assert sandbox.call_count(route) == 0, route
    listing = sandbox.call_count(routes.ENTRIES_LIST)
    # One workspace listing (check and scopes share it) and, for a compact list, one timesheet listing.
    assert sandbox.call_count() == listing + 1 + (0 if rich else 1)


def test_changed_entries_and_moved_timesheets_are_read_again(sandbox: AsanaSandbox, ds: Dataset) -> None:
    with _source(sandbox) as source:
        first = {e.external_id: e for e in _fetch(source, _window(ds))}
    edited = sandbox.entry_gid(ds.entries[3].id)
    sandbox.edit_entry(edited, duration_minutes=ds.entries[3].minutes + 15)
    person = ds.entries[40]
    week = person.work_date - timedelta(days=person.work_date.weekday())
    status = "REJECTED" if person.approval_status != "REJECTED" else "APPROVED"
    sandbox.set_timesheet_status(sandbox.user_gid(person.person_id), person.work_date, status)
    moved = {
        sandbox.entry_gid(e.id)
        for e in ds.entries
        if e.person_id == person.person_id and week <= e.work_date <= week + timedelta(days=6)
    }
    sandbox.server.reset_counts()
    with _source(sandbox) as source:
        again = {e.external_id: e for e in _fetch(source, _window(ds), known=first)}
    assert sandbox.call_count(routes.ENTRIES_GET) == len(moved | {edited})
    assert again[edited].duration_seconds == (ds.entries[3].minutes + 15) * 60
    assert {again[gid].approval_status for gid in moved} == {status}
    unchanged = set(first) - moved - {edited}
    assert all(again[gid] == first[gid] for gid in unchanged)


def test_without_timesheets_unapproved_entries_are_read_again(sandbox: AsanaSandbox, ds: Dataset) -> None:
    with _source(sandbox, timesheets=False) as source:
        first = {e.external_id: e for e in _fetch(source, _window(ds))}
        assert sandbox.call_count(routes.TIMESHEETS_LIST) == 0
    sandbox.server.reset_counts()
    with _source(sandbox, timesheets=False) as source:
        _fetch(source, _window(ds), known=first)
    pending = sum(1 for e in first.values() if e.approval_status != "APPROVED")
    assert 0 < pending < len(first)
    assert sandbox.call_count(routes.ENTRIES_GET) == pending


def test_always_reads_every_entry(sandbox: AsanaSandbox, ds: Dataset) -> None:
    with _source(sandbox) as source:
        first = {e.external_id: e for e in _fetch(source, _window(ds))}
    sandbox.server.reset_counts()
    with _source(sandbox, detail="always") as source:
        _fetch(source, _window(ds), known=first)
    assert sandbox.call_count(routes.ENTRIES_GET) == len(first)


def test_an_expired_offset_restarts_the_listing_without_duplicates(
    sandbox: AsanaSandbox, ds: Dataset, clock: FakeClock
) -> None:
    sandbox.set_list_full_fields(True)
    with _source(sandbox, page_size=50) as source:
        source.check()
        scope = next(iter(source.scopes()))
        fetched = source.fetch(scope, _window(ds))
        entries = [next(fetched) for _ in range(60)]  # into the second page
        clock.advance(10_000)  # every offset handed out so far is now past its age
        entries.extend(fetched)
    gids = [e.external_id for e in entries]
    assert len(gids) == len(set(gids)) == len(ds.entries)
    pages = -(-len(ds.entries) // 50)
    # The second page's offset was refused once: one refused call plus the first two pages again.
    assert sandbox.call_count(routes.ENTRIES_LIST) == pages + 3


def test_an_offset_refused_every_time_gives_up(sandbox: AsanaSandbox, ds: Dataset) -> None:
    sandbox.set_offset_ttl(-1.0)  # every offset is already too old
    with _source(sandbox, page_size=50) as source, pytest.raises(PayloadError, match="offset"):
        _fetch(source, _window(ds))


def test_entries_reused_keep_their_identity(ds: Dataset) -> None:
    # A sanity check of the comparison itself: any listed field that differs is a change.
    from connectors.asana.normalize import listing_unchanged
    from connectors.asana.schema import AsanaTimeEntry

    stored_person = "1201000000000001"
    listed = AsanaTimeEntry.model_validate(
        {
            "gid": "1",
            "duration_minutes": 30,
            "entered_on": "2026-11-02",
            "attributable_to": {"gid": "9", "name": "P"},
            "created_by": {"gid": stored_person, "name": "Zoë"},
            "categories": [],
        }
    )
    from connectors.model import Container, Person

    stored = TimeEntry(
        source="asana",
        account="w",
        external_id="1",
        work_date=date(2026, 11, 2),
        duration_seconds=1800,
        person=Person(stored_person, "Zoë", None),
        task=None,
        containers=(Container("workspace", "w", "W"), Container("project", "9", "P")),
    )
    assert listing_unchanged(listed, stored)
    assert not listing_unchanged(listed, dataclasses.replace(stored, duration_seconds=1860, content_hash=""))
    assert not listing_unchanged(listed, dataclasses.replace(stored, work_date=date(2026, 11, 3), content_hash=""))
