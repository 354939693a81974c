"""Ledger semantics on SQLite and PostgreSQL: versions on change, tombstones, cursors, atomic windows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select

from connectors.model import Person, TimeEntry, Window
from sync.store import ledger
from sync.store.tables import cursors, entries, entry_versions

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(date(2026, 11, 1), date(2026, 11, 20))


def make_entry(external_id: str, minutes: int = 30, day: int = 5, **changes: object) -> TimeEntry:
    entry = TimeEntry(
        source="asana",
        account="ws1",
        external_id=external_id,
        work_date=date(2026, 11, day),
        duration_seconds=minutes * 60,
        person=Person("u1", "Zoë Müller", "zoe@example.com"),
        description="Design review",
    )
    return dataclasses.replace(entry, content_hash="", **changes) if changes else entry


def ingest(engine: Engine, batch: list[TimeEntry], window: Window = WINDOW) -> ledger.IngestCounts:
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", window, run_id, NOW)
        writer.add(batch)
        return writer.close()


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_first_ingest_creates_entries_and_versions(engine: Engine) -> None:
    counts = ingest(engine, [make_entry("a"), make_entry("b", 45)])
    assert (counts.created, counts.updated, counts.deleted, counts.seen) == (2, 0, 0, 2)
    assert count(engine, entries) == 2
    assert count(engine, entry_versions) == 2
    with engine.connect() as conn:
        assert ledger.ledger_totals(conn)["seconds"] == 75 * 60
        assert ledger.scanned_through(conn, "asana", "ws1") == WINDOW.end


def test_unchanged_rescan_writes_nothing(engine: Engine) -> None:
    ingest(engine, [make_entry("a"), make_entry("b")])
    versions_before = count(engine, entry_versions)
    counts = ingest(engine, [make_entry("a"), make_entry("b")])
    assert counts.versions_written == 0
    assert counts.unchanged == 2
    assert count(engine, entry_versions) == versions_before


def test_edit_becomes_new_version_with_new_duration(engine: Engine) -> None:
    ingest(engine, [make_entry("a", 30)])
    counts = ingest(engine, [make_entry("a", 50)])
    assert counts.updated == 1
    with engine.connect() as conn:
        history = ledger.entry_history(conn, "asana", "ws1", "a")
    assert [(h["version"], h["change"], h["duration_seconds"]) for h in history] == [
        (1, "created", 1800),
        (2, "updated", 3000),
    ]


def test_vanished_entry_is_tombstoned_and_can_come_back(engine: Engine) -> None:
    ingest(engine, [make_entry("a"), make_entry("b")])
    counts = ingest(engine, [make_entry("a")])
    assert counts.deleted == 1
    with engine.connect() as conn:
        assert ledger.ledger_totals(conn)["entries"] == 1
        history = ledger.entry_history(conn, "asana", "ws1", "b")
    assert [h["change"] for h in history] == ["created", "deleted"]
    counts = ingest(engine, [make_entry("a"), make_entry("b")])
    assert counts.restored == 1
    with engine.connect() as conn:
        assert ledger.ledger_totals(conn)["entries"] == 2


def test_tombstones_only_inside_the_scanned_window(engine: Engine) -> None:
    ingest(engine, [make_entry("early", day=2), make_entry("late", day=15)])
    counts = ingest(engine, [make_entry("late", day=15)], Window(date(2026, 11, 10), date(2026, 11, 20)))
    assert counts.deleted == 0  # "early" lies before the re-scanned window: kept
    with engine.connect() as conn:
        assert ledger.ledger_totals(conn)["entries"] == 2


def test_entries_outside_the_window_are_not_written(engine: Engine) -> None:
    counts = ingest(engine, [make_entry("a", day=25)], Window(date(2026, 11, 1), date(2026, 11, 20)))
    assert counts.outside_window == 1
    assert count(engine, entries) == 0


def test_failed_window_leaves_nothing_half_written(engine: Engine) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        run_id = ledger.start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW)
        writer.add([make_entry("a")])
        raise Boom
    assert count(engine, entries) == 0
    assert count(engine, entry_versions) == 0
    assert count(engine, cursors) == 0


def test_cursor_never_moves_back(engine: Engine) -> None:
    ingest(engine, [], Window(date(2026, 11, 1), date(2026, 11, 20)))
    ingest(engine, [], Window(date(2026, 10, 1), date(2026, 10, 31)))
    with engine.connect() as conn:
        assert ledger.scanned_through(conn, "asana", "ws1") == date(2026, 11, 20)


def test_dropping_descriptions_keeps_them_out_of_the_ledger(engine: Engine) -> None:
    with engine.begin() as conn:
        run_id = ledger.start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW, drop_descriptions=True)
        writer.add([make_entry("a")])
        writer.close()
    with engine.connect() as conn:
        payload = conn.execute(select(entries.c.payload)).scalar_one()
    assert payload["description"] is None


def test_entry_of_another_scope_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="does not belong"), engine.begin() as conn:
        run_id = ledger.start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "other", WINDOW, run_id, NOW)
        writer.add([make_entry("a")])
