"""TimeEntry invariants: UTC only, int seconds, stable content hash, lossless payload round trip."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest

from connectors.model import Container, Person, TaskRef, TimeEntry, Window, normalize_custom_fields


def entry(**changes: Any) -> TimeEntry:
    base = TimeEntry(
        source="clickup",
        account="9001",
        external_id="42",
        work_date=date(2026, 11, 3),
        duration_seconds=5400,
        person=Person("u7", "José Álvarez", "jose@example.org"),
        task=TaskRef("t1", "Diseño", "NW-12"),
        containers=(Container("space", "s1", "Clients"), Container("list", "l1", "Northwind")),
        tags=("billable",),
        custom_fields=(("Project code", "NWT-WEB"),),
        billable=True,
        approval_status="APPROVED",
        description="Kick-off",
        started_at=datetime(2026, 11, 3, 23, 30, tzinfo=UTC),
        ended_at=datetime(2026, 11, 4, 1, 0, tzinfo=UTC),
    )
    return dataclasses.replace(base, content_hash="", **changes) if changes else base


def test_hash_is_stable_and_content_sensitive() -> None:
    assert entry().content_hash == entry().content_hash
    assert len(entry().content_hash) == 64
    assert entry(duration_seconds=5460).content_hash != entry().content_hash
    assert entry(description=None).content_hash != entry().content_hash
    assert entry(tags=("internal",)).content_hash != entry().content_hash


def test_payload_round_trip_keeps_everything() -> None:
    original = entry()
    again = TimeEntry.from_payload(original.to_payload())
    assert again == original
    assert again.content_hash == original.content_hash


def test_naive_or_non_utc_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC"):
        entry(started_at=datetime(2026, 11, 3, 9, 0))
    with pytest.raises(ValueError, match="UTC"):
        entry(started_at=datetime(2026, 11, 3, 9, 0, tzinfo=timezone(timedelta(hours=2))))


def test_durations_are_non_negative_ints() -> None:
    with pytest.raises(ValueError, match="negative"):
        entry(duration_seconds=-1)
    with pytest.raises(TypeError):
        entry(duration_seconds=1.5)


def test_window_split_covers_every_day_once() -> None:
    window = Window(date(2026, 1, 1), date(2026, 3, 15))
    parts = window.split(31)
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert sum(p.days for p in parts) == window.days
    assert all(b.start - a.end == timedelta(days=1) for a, b in pairwise(parts))
    with pytest.raises(ValueError, match="before its start"):
        Window(date(2026, 2, 1), date(2026, 1, 1))


def test_custom_fields_are_sorted_and_empty_values_dropped() -> None:
    assert normalize_custom_fields({"b": "2", "a": "1", "c": None, "d": ""}) == (("a", "1"), ("b", "2"))
