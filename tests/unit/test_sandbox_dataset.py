"""Tests for the seeded sandbox data set: determinism, realism and scale."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.model import Window
from connectors.sandbox.dataset import Client, Contractor, Dataset, Entry, Project, Task, generate_dataset

ANCHOR = date(2026, 11, 20)  # a Friday


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate_dataset(7, anchor=ANCHOR)


def test_same_seed_and_anchor_give_identical_data(ds: Dataset) -> None:
    again = generate_dataset(7, anchor=ANCHOR)
    assert again == ds
    assert [e.id for e in again.entries] == [e.id for e in ds.entries]
    assert again.total_minutes == ds.total_minutes


def test_another_seed_or_anchor_gives_other_data(ds: Dataset) -> None:
    assert generate_dataset(8, anchor=ANCHOR).entries != ds.entries
    shifted = generate_dataset(7, anchor=ANCHOR + timedelta(days=7))
    assert shifted.window == Window(ds.start + timedelta(days=7), ANCHOR + timedelta(days=7))
    assert shifted.entries != ds.entries


def test_default_size_is_fourteen_entries_per_working_day(ds: Dataset) -> None:
    working_days = [ds.start + timedelta(days=i) for i in range(ds.days)]
    working_days = [d for d in working_days if d.weekday() < 5]
    assert len(ds.entries) == 14 * len(working_days)
    assert 550 <= len(ds.entries) <= 650
    assert ds.total_minutes == sum(e.minutes for e in ds.entries)


def test_entries_fall_on_working_days_inside_the_window(ds: Dataset) -> None:
    assert ds.window == Window(ANCHOR - timedelta(days=59), ANCHOR)
    for entry in ds.entries:
        assert entry.work_date in ds.window
        assert entry.work_date.weekday() < 5
        assert 15 <= entry.minutes <= 480
        assert isinstance(entry.minutes, int)
        assert entry.duration_seconds == entry.minutes * 60
    # Spread over the whole window, not bunched up.
    assert len({e.work_date for e in ds.entries}) >= 40


def test_starts_are_utc_and_inside_local_working_hours(ds: Dataset) -> None:
    for entry in ds.entries:
        person = ds.contractor(entry.person_id)
        assert entry.started_at.utcoffset() == timedelta(0)
        local = entry.started_at.astimezone(ZoneInfo(person.timezone))
        assert local.date() == entry.work_date
        assert person.work_start_hour * 60 <= local.hour * 60 + local.minute
        local_end = entry.ended_at.astimezone(ZoneInfo(person.timezone))
        assert local_end.date() == entry.work_date
        assert local_end.hour * 60 + local_end.minute <= max(
            person.work_end_hour * 60, person.work_start_hour * 60 + entry.minutes
        )
        assert entry.recorded_at >= entry.ended_at


def test_some_entries_cross_midnight_utc_or_start_on_another_utc_day(ds: Dataset) -> None:
    crossing = [e for e in ds.entries if e.started_at.date() != e.ended_at.date()]
    other_day = [e for e in ds.entries if e.started_at.date() != e.work_date]
    assert len(crossing) >= 3
    assert len(other_day) >= 3


def test_people_are_realistic_and_scrubbed(ds: Dataset) -> None:
    names = {c.name for c in ds.contractors}
    assert len(ds.contractors) == 8
    assert {"Zoë Müller", "José Álvarez", "Åsa Lindqvist"} <= names
    for person in ds.contractors:
        assert person.email.rsplit("@", 1)[1] in {"example.com", "example.org", "example.net"}
        ZoneInfo(person.timezone)  # a real zone
    assert len({c.timezone for c in ds.contractors}) >= 6
    assert {e.person_id for e in ds.entries} == {c.id for c in ds.contractors}


def test_projects_clients_and_tasks_hang_together(ds: Dataset) -> None:
    assert len(ds.clients) == 5
    assert "Northwind Traders" in {c.name for c in ds.clients}
    assert len(ds.projects) == 10
    client_ids = {c.id for c in ds.clients}
    for project in ds.projects:
        assert project.client_id in client_ids
        assert ds.tasks_of(project.id)
    codeless = [p for p in ds.projects if p.code is None]
    assert 1 <= len(codeless) <= 3
    # A project without a code has no coded task either, so mapping has nothing to go on.
    for project in codeless:
        assert all(t.code is None for t in ds.tasks_of(project.id))
    assert "NWT-WEB" in {p.code for p in ds.projects}
    assert any(t.code for t in ds.tasks)
    assert any(t.code is None for t in ds.tasks if ds.project(t.project_id).code)
    tags = Counter(tag for t in ds.tasks for tag in t.tags)
    assert tags["billable"] > 0
    assert tags["internal"] > 0
    assert all(not t.billable for t in ds.tasks if "internal" in t.tags)
    records: tuple[Contractor | Client | Project | Task | Entry, ...] = (
        *ds.contractors,
        *ds.clients,
        *ds.projects,
        *ds.tasks,
        *ds.entries,
    )
    ids = [x.id for x in records]
    assert len(ids) == len(set(ids))
    for entry in ds.entries:
        assert ds.task(entry.task_id).project_id == entry.project_id
    # Every project gets some time logged against it.
    assert {e.project_id for e in ds.entries} == {p.id for p in ds.projects}


def test_billable_categories_and_descriptions_vary(ds: Dataset) -> None:
    billable = Counter(e.billable for e in ds.entries)
    assert billable[True] > billable[False] > 0
    assert {e.category for e in ds.entries} >= {"Development", "Meetings", None}
    assert {e.category for e in ds.entries} - {None} <= set(ds.categories)
    assert any(e.description for e in ds.entries)
    assert any(e.description is None for e in ds.entries)


def test_approval_is_per_person_week_and_mostly_approved_when_old(ds: Dataset) -> None:
    by_sheet: dict[tuple[str, date], set[str]] = defaultdict(set)
    for entry in ds.entries:
        monday = entry.work_date - timedelta(days=entry.work_date.weekday())
        by_sheet[(entry.person_id, monday)].add(entry.approval_status)
    assert all(len(statuses) == 1 for statuses in by_sheet.values())
    this_monday = ANCHOR - timedelta(days=ANCHOR.weekday())
    old = [e for e in ds.entries if e.work_date < this_monday - timedelta(days=7)]
    current = [e for e in ds.entries if e.work_date >= this_monday]
    old_statuses = Counter(e.approval_status for e in old)
    assert old_statuses["APPROVED"] / len(old) > 0.75
    assert {e.approval_status for e in current} <= {"DRAFT", "SUBMITTED"}
    assert {e.approval_status for e in ds.entries} == {"DRAFT", "SUBMITTED", "APPROVED", "REJECTED"}


def test_entries_are_sorted_with_sequential_ids(ds: Dataset) -> None:
    keys = [(e.work_date, e.person_id, e.started_at) for e in ds.entries]
    assert keys == sorted(keys)
    assert [e.index for e in ds.entries] == list(range(len(ds.entries)))
    assert ds.entries[0].id == "e000001"


def test_entries_in_is_inclusive_and_lookups_work(ds: Dataset) -> None:
    start, end = date(2026, 10, 5), date(2026, 10, 9)
    chosen = ds.entries_in(start, end)
    expected = [e for e in ds.entries if start <= e.work_date <= end]
    assert list(chosen) == expected
    assert {e.work_date for e in chosen} == {start + timedelta(days=i) for i in range(5)}
    assert ds.minutes_in(start, end) == sum(e.minutes for e in expected)
    assert ds.entries_in() == ds.entries
    assert ds.entries_in(ANCHOR + timedelta(days=1), None) == ()
    assert ds.minutes_in(None, ANCHOR) == ds.total_minutes
    sample = ds.entries[123]
    assert ds.entry(sample.id) is sample
    assert ds.contractor(sample.person_id).id == sample.person_id
    assert ds.task(sample.task_id).id == sample.task_id
    assert ds.project(sample.project_id).id == sample.project_id
    assert ds.client(ds.project(sample.project_id).client_id).name
    with pytest.raises(KeyError):
        ds.entry("e999999")


def test_entries_parameter_scales_to_one_hundred_thousand() -> None:
    big = generate_dataset(7, anchor=ANCHOR, entries=100_000)
    assert len(big.entries) == 100_000
    assert len({e.id for e in big.entries}) == 100_000
    assert big.total_minutes == sum(e.minutes for e in big.entries)
    assert big.entries[-1].work_date <= ANCHOR
    assert big.entries[0].work_date >= big.start
    # The catalogue does not depend on the entry count.
    assert big.projects == generate_dataset(7, anchor=ANCHOR).projects


def test_small_and_degenerate_requests() -> None:
    assert generate_dataset(anchor=ANCHOR, entries=0).entries == ()
    one_day = generate_dataset(anchor=ANCHOR, days=1)
    assert len(one_day.entries) == 14
    assert {e.work_date for e in one_day.entries} == {ANCHOR}
    sunday = date(2026, 11, 22)
    assert generate_dataset(anchor=sunday, days=1).entries == ()
    with pytest.raises(ValueError, match="no working day"):
        generate_dataset(anchor=sunday, days=1, entries=5)
    with pytest.raises(ValueError, match="days must be at least 1"):
        generate_dataset(anchor=ANCHOR, days=0)
    with pytest.raises(ValueError, match="must not be negative"):
        generate_dataset(anchor=ANCHOR, entries=-1)


def test_recorded_at_never_runs_past_the_day_after_the_anchor(ds: Dataset) -> None:
    horizon = datetime(ANCHOR.year, ANCHOR.month, ANCHOR.day, 12, tzinfo=UTC) + timedelta(days=1)
    assert all(e.recorded_at <= horizon for e in ds.entries)
    # A few are logged days late: what a look-back window has to catch.
    assert any(e.recorded_at - e.ended_at > timedelta(days=1) for e in ds.entries)
