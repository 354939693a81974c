"""Mapping revisions in the store on SQLite and PostgreSQL: append-only, linear, and per-entry results."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from connectors.model import Container, Person, TimeEntry, Window
from sync.store import ledger, revisions
from sync.store.runs import start_run
from sync.store.tables import entries

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def offer(engine: Engine, content: str, *, comment: str = "") -> revisions.Appended:
    return revisions.append(
        engine,
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        canonical_json=content,
        yaml_text=f"# {content}\n",
        author="alice",
        comment=comment,
        now=NOW,
    )


def test_a_revision_is_stored_only_when_the_content_changes(engine: Engine) -> None:
    first = offer(engine, '{"v":1}', comment="first")
    again = offer(engine, '{"v":1}', comment="same again")
    second = offer(engine, '{"v":2}', comment="second")
    assert (first.created, again.created, second.created) == (True, False, True)
    assert again.revision.id == first.revision.id
    assert second.revision.info.parent_id == first.revision.id
    with engine.connect() as conn:
        assert revisions.count(conn) == 2
        listed = revisions.history(conn)
        stored = revisions.get(conn, first.revision.id)
        latest = revisions.current(conn)
    assert [(r.id, r.comment, r.author) for r in listed] == [
        (second.revision.id, "second", "alice"),
        (first.revision.id, "first", "alice"),
    ]
    assert stored is not None and stored.yaml_text == '# {"v":1}\n' and stored.canonical_json == '{"v":1}'
    assert latest is not None and latest.id == second.revision.id
    assert latest.info.created_at.replace(tzinfo=UTC) == NOW


def test_returning_to_an_earlier_content_is_a_new_revision(engine: Engine) -> None:
    first = offer(engine, '{"v":1}')
    offer(engine, '{"v":2}')
    back = offer(engine, '{"v":1}')
    assert back.created and back.revision.id > first.revision.id


def test_a_writer_that_lost_the_race_adopts_or_follows_the_winner(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = offer(engine, '{"v":1}').revision
    winner = offer(engine, '{"v":2}').revision
    real_current = revisions.current
    calls = {"n": 0}

    def stale_first(conn: Any) -> revisions.Revision | None:
        # The first read happens "before" the winner committed: it still sees the base revision.
        calls["n"] += 1
        return base if calls["n"] == 1 else real_current(conn)

    monkeypatch.setattr(revisions, "current", stale_first)
    same = offer(engine, '{"v":2}')
    assert (same.created, same.revision.id) == (False, winner.id)

    calls["n"] = 0
    other = offer(engine, '{"v":3}')
    assert other.created and other.revision.info.parent_id == winner.id
    with engine.connect() as conn:
        assert revisions.count(conn) == 3


def make_entry(external_id: str, day: int = 5) -> TimeEntry:
    return TimeEntry(
        source="asana",
        account="ws1",
        external_id=external_id,
        work_date=date(2026, 11, day),
        duration_seconds=1800,
        person=Person("u1", "Zoë Müller", "zoe@example.com"),
        containers=(Container("project", "p1", "Website"),),
    )


def ingest(engine: Engine, batch: list[TimeEntry]) -> None:
    with engine.begin() as conn:
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", Window(date(2026, 11, 1), date(2026, 11, 20)), run_id, NOW)
        writer.add(batch)
        writer.close()


def result(entry_id: int, code: str | None) -> dict[str, Any]:
    return {
        "id": entry_id,
        "code": code,
        "rule_id": "r1" if code else None,
        "contractor": "Zoë Müller",
        "client": None,
        "cost_center": None,
        "billable": False,
        "unmapped_reason": None if code else "no_rule_matched",
        "unmapped_detail": None,
    }


def ids_to_map(engine: Engine, revision: int, closed_through: date | None = None) -> list[str]:
    with engine.connect() as conn:
        rows = revisions.entries_to_map(conn, revision, closed_through=closed_through)
        by_id = dict(conn.execute(select(entries.c.id, entries.c.external_id)).all())
    return sorted(by_id[row.id] for row in rows)


def test_entries_are_remapped_when_the_revision_differs_and_remember_it(engine: Engine) -> None:
    one = offer(engine, '{"v":1}').revision.id
    two = offer(engine, '{"v":2}').revision.id
    ingest(engine, [make_entry("a", day=3), make_entry("b", day=12)])
    assert ids_to_map(engine, one) == ["a", "b"]
    with engine.begin() as conn:
        rows = revisions.entries_to_map(conn, one)
        assert revisions.store_mappings(conn, one, "hash-1", [result(row.id, "WEB") for row in rows]) == 2
    assert ids_to_map(engine, one) == []
    assert ids_to_map(engine, two) == ["a", "b"]
    with engine.connect() as conn:
        stored = conn.execute(select(entries.c.mapping_revision, entries.c.mapping_hash, entries.c.rule_id)).all()
    assert {tuple(row) for row in stored} == {(one, "hash-1", "r1")}


def test_a_closed_period_keeps_its_revision_but_edits_and_new_entries_are_mapped(engine: Engine) -> None:
    one = offer(engine, '{"v":1}').revision.id
    two = offer(engine, '{"v":2}').revision.id
    ingest(engine, [make_entry("old", day=3), make_entry("new", day=12)])
    with engine.begin() as conn:
        rows = revisions.entries_to_map(conn, one)
        revisions.store_mappings(conn, one, "hash-1", [result(row.id, "WEB") for row in rows])
    closed = date(2026, 11, 10)
    assert ids_to_map(engine, two, closed_through=closed) == ["new"]
    # An edit clears mapping_hash (ledger ingest): the entry is mapped again even in a closed period.
    with engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.external_id == "old").values(mapping_hash=None))
    assert ids_to_map(engine, two, closed_through=closed) == ["new", "old"]


def test_tombstoned_entries_are_not_mapped(engine: Engine) -> None:
    one = offer(engine, '{"v":1}').revision.id
    ingest(engine, [make_entry("a"), make_entry("b")])
    ingest(engine, [make_entry("a")])
    assert ids_to_map(engine, one) == ["a"]
