"""Ledger semantics on SQLite and PostgreSQL: versions on change, tombstones, cursors, atomic windows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError

from connectors.model import Person, TimeEntry, Window
from mappings.engine import compile_rules
from mappings.loader import load_document
from sync.store import ledger, revisions
from sync.store.batch import ENTRY_INSERT, DriverSQL
from sync.store.mapped import BoundMatcher, mapping_columns
from sync.store.runs import start_run
from sync.store.tables import MAPPING_COLUMNS, RawJSON, cursors, entries, entry_versions

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
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
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
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
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
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW, drop_descriptions=True)
        writer.add([make_entry("a")])
        writer.close()
    with engine.connect() as conn:
        payload = conn.execute(select(entries.c.payload)).scalar_one()
    assert payload["description"] is None


def test_entry_of_another_scope_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="does not belong"), engine.begin() as conn:
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "other", WINDOW, run_id, NOW)
        writer.add([make_entry("a")])


# --------------------------------------------------------------------------- driver-level batch writes

REFERENCE = "reference"


# The first ingest writes no mapping (every mapping column NULL, the flag too); the later ones map
# with BOUND, under which entries up to 8 November are mapped and later ones are not: the mapping
# columns vary with the entry, so the flag and NULL handling are both exercised.
BOUND_YAML = """\
version: 1
codes:
  P-1: {name: Project one, client: Acme, cost_center: CC-1, billable: true}
rules:
  - {id: r1, priority: 1, code: P-1, effective_to: 2026-11-08}
"""
BOUND = BoundMatcher(compile_rules(load_document(BOUND_YAML)), revision=1)
NOT_MAPPED = dict.fromkeys((*MAPPING_COLUMNS, "mapping_hash", "mapping_revision"))


def mapper(entry: TimeEntry, matcher: BoundMatcher | None) -> dict[str, object]:
    """The mapping columns the ingest writes for ``entry`` under ``matcher`` (None: not mapped yet)."""
    return NOT_MAPPED if matcher is None else mapping_columns(matcher, entry)


def sqlalchemy_row(entry: TimeEntry, *, version: int, dialect: str, matcher: BoundMatcher | None) -> dict[str, object]:
    """The entry's columns as SQLAlchemy Core binds them (the reference for the driver-level writes)."""
    return {
        "source": REFERENCE,
        "account": entry.account,
        "external_id": entry.external_id,
        "version": version,
        "content_hash": entry.content_hash,
        "work_date": entry.work_date,
        "duration_seconds": entry.duration_seconds,
        "person_id": entry.person.id,
        "person_name": entry.person.name,
        "payload": RawJSON(entry.payload_json()) if dialect == "sqlite" else entry.to_payload(),
        "updated_at": NOW,
    } | mapper(entry, matcher)


def stored(conn: Connection, table: Table, condition: ColumnElement[bool]) -> list[tuple[object, ...]]:
    """Every column but the keys as the database holds it: its text and, on SQLite, its storage class."""
    columns = [c for c in table.c if c.name not in ("id", "entry_id", "source")]
    shown: list[ColumnElement[object]] = [cast(c, Text) for c in columns]
    if conn.dialect.name == "sqlite":
        shown += [func.typeof(c) for c in columns]
    return [tuple(row) for row in conn.execute(select(*shown).where(condition).order_by(*table.primary_key))]


def test_batch_writes_store_what_sqlalchemy_core_stores(engine: Engine) -> None:
    first = [make_entry("a", 30), make_entry("b", 10, day=7), make_entry("c", 45, day=9)]
    edited = [make_entry("a", 50), make_entry("b", 10, day=7)]  # a edited, b unchanged, c vanished
    restored = [make_entry("a", 50), make_entry("b", 10, day=7), make_entry("c", 20, day=9)]
    dialect = engine.dialect.name
    reference_ids: dict[str, int] = {}
    document = BOUND.matcher.document
    stored_revision = revisions.append(
        engine,
        content_hash=BOUND.document_hash,
        canonical_json=document.canonical_json(),
        yaml_text=BOUND_YAML,
        author="test",
        comment="the revision BOUND stands for",
        now=NOW,
    ).revision
    assert stored_revision.id == BOUND.revision
    for step, batch in enumerate((first, edited, restored), start=1):
        with engine.begin() as conn:
            run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
            matcher = None if step == 1 else BOUND
            writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW, matcher=matcher)
            writer.add(batch)
            counts = writer.close()
            # The same changes written the way SQLAlchemy Core binds them, under another source.
            for entry in batch:
                if step == 1:
                    row = sqlalchemy_row(entry, version=1, dialect=dialect, matcher=matcher) | {"first_seen_at": NOW}
                    reference_ids[entry.external_id] = conn.execute(
                        insert(entries).values(row).returning(entries.c.id)
                    ).scalar_one()
                    change, version = "created", 1
                elif (step, entry.external_id) in ((2, "a"), (3, "c")):
                    version = 2 if step == 2 else 3
                    row = sqlalchemy_row(entry, version=version, dialect=dialect, matcher=matcher) | {
                        "deleted_at": None
                    }
                    row.pop("source")
                    conn.execute(update(entries).where(entries.c.id == reference_ids[entry.external_id]).values(row))
                    change = "updated" if step == 2 else "restored"
                else:
                    continue
                conn.execute(
                    insert(entry_versions).values(
                        entry_id=reference_ids[entry.external_id],
                        version=version,
                        change=change,
                        content_hash=entry.content_hash,
                        work_date=entry.work_date,
                        duration_seconds=entry.duration_seconds,
                        payload=RawJSON(entry.payload_json()) if dialect == "sqlite" else entry.to_payload(),
                        run_id=run_id,
                        recorded_at=NOW,
                    )
                )
            if step == 2:  # the tombstone of c, which close() writes through SQLAlchemy Core
                gone = conn.execute(select(entries).where(entries.c.id == reference_ids["c"])).one()
                conn.execute(
                    update(entries)
                    .where(entries.c.id == gone.id)
                    .values(version=gone.version + 1, deleted_at=NOW, updated_at=NOW)
                )
                conn.execute(
                    insert(entry_versions).values(
                        entry_id=gone.id,
                        version=gone.version + 1,
                        change="deleted",
                        content_hash=gone.content_hash,
                        work_date=gone.work_date,
                        duration_seconds=gone.duration_seconds,
                        payload=gone.payload,
                        run_id=run_id,
                        recorded_at=NOW,
                    )
                )
        assert counts.versions_written == (3, 2, 1)[step - 1]
    with engine.connect() as conn:
        ours = stored(conn, entries, entries.c.source == "asana")
        theirs = stored(conn, entries, entries.c.source == REFERENCE)
        assert len(ours) == 3
        assert ours == theirs
        our_ids = select(entries.c.id).where(entries.c.source == "asana").scalar_subquery()
        their_ids = select(entries.c.id).where(entries.c.source == REFERENCE).scalar_subquery()
        assert stored(conn, entry_versions, entry_versions.c.entry_id.in_(our_ids)) == stored(
            conn, entry_versions, entry_versions.c.entry_id.in_(their_ids)
        )
        # Read back through SQLAlchemy, dates, timestamps, flags and payloads come out alike.
        read = {
            (row.source, row.external_id): {k: v for k, v in row._mapping.items() if k not in ("id", "source")}
            for row in conn.execute(select(entries))
        }
    for external_id in "abc":
        assert read[("asana", external_id)] == read[(REFERENCE, external_id)]
    a = read[("asana", "a")]
    assert a["work_date"] == date(2026, 11, 5)
    assert a["updated_at"].replace(tzinfo=UTC) == NOW
    assert a["first_seen_at"].replace(tzinfo=UTC) == NOW
    assert (a["version"], a["duration_seconds"], a["billable"], a["code"]) == (2, 3000, True, "P-1")
    assert a["payload"] == make_entry("a", 50).to_payload()
    assert read[("asana", "b")]["billable"] is None
    assert read[("asana", "c")]["deleted_at"] is None


def test_batches_larger_than_one_lookup_keep_every_version_on_its_entry(engine: Engine) -> None:
    batch = [make_entry(f"e{i:04d}", minutes=1 + i % 90, day=1 + i % 20) for i in range(1100)]
    counts = ingest(engine, batch)
    assert (counts.created, counts.seen) == (1100, 1100)
    with engine.connect() as conn:
        pairs = conn.execute(
            select(entries.c.external_id, entry_versions.c.duration_seconds, entry_versions.c.work_date).join(
                entry_versions, entry_versions.c.entry_id == entries.c.id
            )
        ).all()
    assert sorted(pairs) == sorted((e.external_id, e.duration_seconds, e.work_date) for e in batch)
    again = ingest(engine, [*batch[:700], dataclasses.replace(batch[700], duration_seconds=1, content_hash="")])
    assert (again.unchanged, again.updated, again.deleted) == (700, 1, 399)


def test_batch_insert_errors_are_sqlalchemy_errors(engine: Engine) -> None:
    entry = make_entry("a")
    with engine.begin() as conn:
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW).add([entry])
    # The same key once more, past the ingest's own lookup: the database refuses it.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run_id, NOW)
        row = next(iter(conn.exec_driver_sql("SELECT * FROM entries")))
        values = {name: row._mapping[name] for name in ENTRY_INSERT}
        values["payload"] = writer._sql.adapt.payload(entry)
        writer._sql.insert_entries.write(conn, [tuple(values.values())])


def test_compiled_batch_statements_refuse_a_row_layout_they_do_not_take() -> None:
    statement = insert(entries).values(source=bindparam("p_source"), account=bindparam("p_account"))
    dialect = sqlite_dialect.dialect()
    assert DriverSQL.compile(statement, dialect, ["p_source", "p_account"]).names is None
    with pytest.raises(RuntimeError, match="row layout"):
        DriverSQL.compile(statement, dialect, ["p_account", "p_source"])
