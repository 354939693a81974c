"""Ledger reads and writes: versioned upserts, tombstones, cursors, runs and mapping results."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import (
    ARRAY,
    ClauseElement,
    ColumnElement,
    Connection,
    CursorResult,
    Table,
    and_,
    any_,
    bindparam,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from connectors.model import Coverage, TimeEntry, Window
from sync.store.tables import RawJSON, cursors, entries, entry_versions, runs

T = TypeVar("T")
BATCH = 500
# Columns an edit rewrites (the key columns and first_seen_at never change).
_VERSIONED_COLUMNS = (
    "version",
    "content_hash",
    "work_date",
    "duration_seconds",
    "person_id",
    "person_name",
    "payload",
    "updated_at",
)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(slots=True)
class IngestCounts:
    """What one window's ingest did to the ledger."""

    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    restored: int = 0
    outside_window: int = 0

    @property
    def versions_written(self) -> int:
        return self.created + self.updated + self.deleted + self.restored

    def add(self, other: IngestCounts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


EntryMapper = Callable[[TimeEntry], dict[str, Any]]
"""Maps one entry to the ledger's mapping columns (``_MAPPED_COLUMNS``) under one revision."""

MAPPING_COLUMNS = (
    "code",
    "rule_id",
    "contractor",
    "client",
    "cost_center",
    "billable",
    "unmapped_reason",
    "unmapped_detail",
)
# Everything a mapper writes: the result, and which document hash and revision produced it.
_MAPPED_COLUMNS = (*MAPPING_COLUMNS, "mapping_hash", "mapping_revision")


# --------------------------------------------------------------------------- runs


def start_run(conn: Connection, *, command: str, as_of: datetime, now: datetime) -> int:
    result = conn.execute(
        insert(runs).values(command=command, status="running", as_of=as_of, started_at=now, counts={}, errors=[])
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    counts: dict[str, Any],
    errors: list[dict[str, Any]],
    now: datetime,
) -> None:
    conn.execute(
        update(runs).where(runs.c.id == run_id).values(status=status, counts=counts, errors=errors, finished_at=now)
    )


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings().all()
    return [dict(row) for row in rows]


# --------------------------------------------------------------------------- cursors


def scanned_through(conn: Connection, source: str, account: str) -> date | None:
    return conn.execute(
        select(cursors.c.scanned_through).where(cursors.c.source == source, cursors.c.account == account)
    ).scalar_one_or_none()


def advance_cursor(conn: Connection, source: str, account: str, through: date, *, run_id: int, now: datetime) -> None:
    """Move the cursor forward (never back), in the caller's transaction, beside the data."""
    current = scanned_through(conn, source, account)
    if current is None:
        conn.execute(
            insert(cursors).values(
                source=source, account=account, scanned_through=through, updated_at=now, run_id=run_id
            )
        )
    elif through > current:
        conn.execute(
            update(cursors)
            .where(cursors.c.source == source, cursors.c.account == account)
            .values(scanned_through=through, updated_at=now, run_id=run_id)
        )


def all_cursors(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(cursors).order_by(cursors.c.source, cursors.c.account)).mappings()]


# --------------------------------------------------------------------------- driver-level batch writes

# The ingest writes every entry and its first version; SQLAlchemy Core's per-row parameter handling
# (building, type-processing and re-ordering each parameter set) cost about 40 % of that. The batch
# statements are therefore compiled once per dialect by SQLAlchemy (same SQL, same casts) and run
# through ``exec_driver_sql`` (same connection, same transaction) with rows of values that already
# have the form the dialect's own bind processors give them (see ``_Adapters``).

# Column order of the rows the ingest builds: the tables' own order, in which SQLAlchemy compiles
# the statements (checked when they are compiled).
_MAPPED_ORDER = ("mapping_hash", *MAPPING_COLUMNS, "mapping_revision")
_ENTRY_INSERT = (
    "source",
    "account",
    "external_id",
    "version",
    "content_hash",
    "work_date",
    "duration_seconds",
    "person_id",
    "person_name",
    "payload",
    "first_seen_at",
    "updated_at",
    *_MAPPED_ORDER,
)
_ENTRY_UPDATE = (*_VERSIONED_COLUMNS, *_MAPPED_ORDER, "id")
_VERSION_INSERT = (
    "entry_id",
    "version",
    "change",
    "content_hash",
    "work_date",
    "duration_seconds",
    "payload",
    "run_id",
    "recorded_at",
)
# Columns whose values go through a dialect bind processor in ``_Adapters``; every other column
# written must have none (checked when the statements are built).
_ADAPTED = frozenset({"work_date", "billable", "payload", "updated_at", "first_seen_at", "recorded_at"})
# Most keys in one IN list (SQLite allows 32,766 parameters per statement).
_LOOKUP_MAX = 512

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _DriverSQL:
    """One statement compiled by SQLAlchemy for one dialect, executed with rows of driver values."""

    sql: str
    # Named paramstyles (psycopg): the bind names in row order, to make each row a mapping.
    # Positional ones (SQLite's qmark): None, the rows go as they are.
    names: tuple[str, ...] | None

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect, binds: Sequence[str]) -> _DriverSQL:
        # for_executemany: no implicit RETURNING of the primary key on PostgreSQL.
        compiled = statement.compile(dialect=dialect, for_executemany=True)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        if compiled.positiontup is None:
            return cls(compiled.string, tuple(binds))
        if list(compiled.positiontup) != list(binds):
            raise RuntimeError(f"compiled binds {compiled.positiontup} do not match the row layout {list(binds)}")
        return cls(compiled.string, None)

    def execute(self, conn: Connection, rows: Sequence[Row]) -> CursorResult[*Row]:
        """Run the statement once per row (one driver ``executemany`` for several rows)."""
        if self.names is None:
            return conn.exec_driver_sql(self.sql, rows)
        return conn.exec_driver_sql(self.sql, [dict(zip(self.names, row, strict=True)) for row in rows])


def _processor(column: ColumnElement[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The bind processor SQLAlchemy applies to ``column`` on ``dialect`` (None: values go as they are)."""
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _memoized(process: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """``process`` applied once per distinct value (for columns with few values: dates, flags)."""
    if process is None:
        return lambda value: value
    cache: dict[Any, Any] = {}

    def adapt(value: Any) -> Any:
        try:
            return cache[value]
        except KeyError:
            cache[value] = adapted = process(value)
            return adapted

    return adapt


class _Adapters:
    """Values of the typed columns exactly as SQLAlchemy's bind processors give them on one dialect.

    SQLite, for one, stores dates and timestamps as text in SQLAlchemy's own layout and reads them
    back through it: applying the dialect's own processors keeps what is stored, and read, identical.
    Dates and flags take few values, so each distinct value is processed once.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.entry_day = _memoized(_processor(entries.c.work_date, dialect))
        self.version_day = _memoized(_processor(entry_versions.c.work_date, dialect))
        self.flag = _memoized(_processor(entries.c.billable, dialect))
        self.updated_at = _memoized(_processor(entries.c.updated_at, dialect))
        self.first_seen_at = _memoized(_processor(entries.c.first_seen_at, dialect))
        self.recorded_at = _memoized(_processor(entry_versions.c.recorded_at, dialect))
        for table, names in ((entries, _ENTRY_INSERT), (entries, _ENTRY_UPDATE), (entry_versions, _VERSION_INSERT)):
            for name in set(names) - _ADAPTED:
                if _processor(table.c[name], dialect) is not None:
                    raise RuntimeError(f"{dialect.name} adapts {table.name}.{name}; the ledger's batch writes do not")
        # One processed payload serves the entry and its version (encoding it is PostgreSQL's cost).
        if type(entries.c.payload.type) is not type(entry_versions.c.payload.type):
            raise RuntimeError("entries.payload and entry_versions.payload must have the same type")
        process = _processor(entries.c.payload, dialect)
        self._payload: Callable[[Any], Any] = process if process is not None else (lambda value: value)
        # SQLite stores the canonical JSON the hash was taken over as is; other drivers encode the
        # payload object themselves (see PayloadJSON).
        self._raw_payload = dialect.name == "sqlite"

    def payload(self, entry: TimeEntry) -> Any:
        return self._payload(RawJSON(entry.payload_json()) if self._raw_payload else entry.to_payload())


class _LedgerSQL:
    """The ingest's statements and value adapters for one dialect (built once per dialect)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.adapt = _Adapters(dialect)
        self.insert_entries = _BatchInsert.build(entries, _ENTRY_INSERT, dialect)
        self.insert_versions = _BatchInsert.build(entry_versions, _VERSION_INSERT, dialect)
        self.update_entries = _DriverSQL.compile(
            update(entries)
            .where(entries.c.id == bindparam("p_id"))
            .values({name: bindparam(f"p_{name}") for name in _ENTRY_UPDATE if name != "id"} | {"deleted_at": null()}),
            dialect,
            [f"p_{name}" for name in _ENTRY_UPDATE],
        )
        # PostgreSQL takes the keys as one array parameter: one statement for any batch, and psycopg
        # caches only short query texts. Elsewhere the IN list is padded to a power of two
        # (repeating the last key), so a handful of statements serve every batch size.
        self._lookup_array = self._compile_lookup(None) if dialect.name == "postgresql" else None
        self._lookups: dict[int, _DriverSQL] = {}
        # (id, external_id) of the live entries of one scope in a range of work dates.
        self.live = _DriverSQL.compile(
            select(entries.c.id, entries.c.external_id).where(
                entries.c.source == bindparam("p_source"),
                entries.c.account == bindparam("p_account"),
                entries.c.work_date >= bindparam("p_start"),
                entries.c.work_date <= bindparam("p_end"),
                entries.c.deleted_at.is_(None),
            ),
            dialect,
            ["p_source", "p_account", "p_start", "p_end"],
        )

    def lookup(self, conn: Connection, source: str, account: str, external_ids: Sequence[str]) -> dict[str, Row]:
        """external_id → (external_id, id, version, content_hash, deleted) for the keys that exist."""
        if self._lookup_array is not None:
            rows = self._lookup_array.execute(conn, [(source, account, list(external_ids))]).fetchall()
            return {row[0]: row for row in rows}
        found: dict[str, Row] = {}
        for start in range(0, len(external_ids), _LOOKUP_MAX):
            keys = list(external_ids[start : start + _LOOKUP_MAX])
            size = 1 << (len(keys) - 1).bit_length()
            keys += keys[-1:] * (size - len(keys))
            statement = self._lookups.get(size)
            if statement is None:
                statement = self._lookups[size] = self._compile_lookup(size)
            for row in statement.execute(conn, [(source, account, *keys)]).fetchall():
                found[row[0]] = row
        return found

    def _compile_lookup(self, size: int | None) -> _DriverSQL:
        """The key lookup with ``size`` key parameters, or (None) one array parameter."""
        keys = ["p_keys"] if size is None else [f"p_k{i}" for i in range(size)]
        match = (
            entries.c.external_id == any_(bindparam("p_keys", type_=ARRAY(entries.c.external_id.type)))
            if size is None
            else entries.c.external_id.in_([bindparam(name) for name in keys])
        )
        statement = select(
            entries.c.external_id,
            entries.c.id,
            entries.c.version,
            entries.c.content_hash,
            entries.c.deleted_at.is_not(None),
        ).where(entries.c.source == bindparam("p_source"), entries.c.account == bindparam("p_account"), match)
        return _DriverSQL.compile(statement, self.dialect, ["p_source", "p_account", *keys])


@dataclass(frozen=True, slots=True)
class _BatchInsert:
    """Rows into one table: ``COPY FROM STDIN`` on psycopg, one driver ``executemany`` elsewhere."""

    statement: _DriverSQL
    copy: str | None

    @classmethod
    def build(cls, table: Table, names: Sequence[str], dialect: Dialect) -> _BatchInsert:
        binds = [f"p_{name}" for name in names]
        values: dict[str, Any] = {name: bindparam(bind) for name, bind in zip(names, binds, strict=True)}
        statement = _DriverSQL.compile(insert(table).values(values), dialect, binds)
        if dialect.driver != "psycopg":
            return cls(statement, None)
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.quote(name) for name in names)
        return cls(statement, f"COPY {quote.format_table(table)} ({columns}) FROM STDIN")

    def write(self, conn: Connection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.copy is None:
            self.statement.execute(conn, rows)
            return
        # PostgreSQL: per-statement work (parsing, planning, a pipeline slot) dominates an
        # executemany of small rows; COPY streams them in the same transaction. psycopg adapts the
        # values with the same dumpers it uses for bound parameters.
        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(self.copy) as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:
            # Raised like every other statement's error (the worker retries DBAPIError).
            raise DBAPIError.instance(
                self.copy, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc


_statements: WeakKeyDictionary[Dialect, _LedgerSQL] = WeakKeyDictionary()


def _ledger_sql(dialect: Dialect) -> _LedgerSQL:
    built = _statements.get(dialect)
    if built is None:
        built = _statements[dialect] = _LedgerSQL(dialect)
    return built


# --------------------------------------------------------------------------- entries


@dataclass(slots=True)
class WindowIngest:
    """Writes one completely fetched window into the ledger (call ``add`` per batch, then ``close``)."""

    conn: Connection
    source: str
    account: str
    window: Window
    run_id: int
    now: datetime
    drop_descriptions: bool = False
    # Maps each new or changed entry in the same statement that writes it (see ``EntryMapper``), so
    # a run does not read every entry back to map it; None leaves mapping to a later pass.
    mapper: EntryMapper | None = None
    counts: IngestCounts = field(default_factory=IngestCounts)
    _seen: set[str] = field(default_factory=set)
    _analyze_at: int = 2000
    _sql: _LedgerSQL = field(init=False)
    # ``now`` as the driver takes it, per column (the same instant for every row of the window).
    _updated_at: Any = field(init=False)
    _first_seen_at: Any = field(init=False)
    _recorded_at: Any = field(init=False)

    def __post_init__(self) -> None:
        self._sql = _ledger_sql(self.conn.dialect)
        adapt = self._sql.adapt
        self._updated_at = adapt.updated_at(self.now)
        self._first_seen_at = adapt.first_seen_at(self.now)
        self._recorded_at = adapt.recorded_at(self.now)

    def add(self, batch: Sequence[TimeEntry]) -> None:
        latest: dict[str, TimeEntry] = {}
        for entry in batch:
            if (entry.source, entry.account) != (self.source, self.account):
                raise ValueError(f"entry {entry.key} does not belong to {self.source}/{self.account}")
            if entry.work_date not in self.window:
                self.counts.outside_window += 1
                continue
            if self.drop_descriptions and entry.description is not None:
                entry = dataclasses.replace(entry, description=None, content_hash="")
            latest[entry.external_id] = entry  # a repeated id within a page: the last one wins
        if not latest:
            return
        self.counts.seen += sum(1 for key in latest if key not in self._seen)
        self._seen.update(latest)
        sql = self._sql
        adapt = sql.adapt
        existing = sql.lookup(self.conn, self.source, self.account, list(latest))
        new: list[TimeEntry] = []
        changed: list[tuple[int, int, TimeEntry, str]] = []  # (entry id, new version, entry, change)
        for external_id, entry in latest.items():
            row = existing.get(external_id)
            if row is None:
                new.append(entry)
            elif row[4]:
                changed.append((row[1], row[2] + 1, entry, "restored"))
            elif row[3] != entry.content_hash:
                changed.append((row[1], row[2] + 1, entry, "updated"))
            else:
                self.counts.unchanged += 1
        if not new and not changed:
            return
        payloads = {entry.external_id: adapt.payload(entry) for entry in (*new, *(change[2] for change in changed))}
        versions: list[Row] = []
        if new:
            # One executemany for the batch, then one lookup for the new ids: INSERT .. RETURNING
            # with ordered rows runs row by row on SQLite.
            sql.insert_entries.write(
                self.conn,
                [
                    (
                        self.source,
                        self.account,
                        entry.external_id,
                        1,
                        entry.content_hash,
                        adapt.entry_day(entry.work_date),
                        entry.duration_seconds,
                        entry.person.id,
                        entry.person.name,
                        payloads[entry.external_id],
                        self._first_seen_at,
                        self._updated_at,
                        *self._mapped(entry),
                    )
                    for entry in new
                ],
            )
            ids = sql.lookup(self.conn, self.source, self.account, [entry.external_id for entry in new])
            versions.extend(
                (
                    ids[entry.external_id][1],
                    1,
                    "created",
                    entry.content_hash,
                    adapt.version_day(entry.work_date),
                    entry.duration_seconds,
                    payloads[entry.external_id],
                    self.run_id,
                    self._recorded_at,
                )
                for entry in new
            )
            self.counts.created += len(new)
            self._refresh_statistics()
        if changed:
            sql.update_entries.execute(
                self.conn,
                [
                    (
                        version,
                        entry.content_hash,
                        adapt.entry_day(entry.work_date),
                        entry.duration_seconds,
                        entry.person.id,
                        entry.person.name,
                        payloads[entry.external_id],
                        self._updated_at,
                        *self._mapped(entry),
                        entry_id,
                    )
                    for entry_id, version, entry, _ in changed
                ],
            )
            for entry_id, version, entry, change in changed:
                versions.append(
                    (
                        entry_id,
                        version,
                        change,
                        entry.content_hash,
                        adapt.version_day(entry.work_date),
                        entry.duration_seconds,
                        payloads[entry.external_id],
                        self.run_id,
                        self._recorded_at,
                    )
                )
                if change == "restored":
                    self.counts.restored += 1
                else:
                    self.counts.updated += 1
        sql.insert_versions.write(self.conn, versions)

    def _refresh_statistics(self) -> None:
        """PostgreSQL: re-ANALYZE while a large first load grows the table (at 2k, 4k, 8k… new rows).

        Without statistics the planner takes the freshly filled table for a tiny one and answers the
        per-batch key lookup by scanning every row of the scope, which makes a first sync quadratic.
        ANALYZE inside the transaction sees its own rows; doubling the threshold keeps it rare.
        """
        if self.conn.dialect.name != "postgresql" or self.counts.created < self._analyze_at:
            return
        # Only the columns the ledger's indexes and lookups use: the payload's statistics cost most.
        self.conn.exec_driver_sql(
            "ANALYZE entries (source, account, external_id, work_date, deleted_at, mapping_hash, mapping_revision)"
        )
        self._analyze_at = self.counts.created * 2

    def close(self, coverage: Coverage | None = None) -> IngestCounts:
        """Tombstone the live entries the fetch covered but did not return; advance the cursor.

        ``coverage`` says what the fetch was complete for: the whole window (the default, the PM
        tools) or snapshot slices, where only entries of a covered person and date can be gone.
        """
        if coverage is None or coverage.kind == "window":
            day = self._sql.adapt.entry_day
            live = self._sql.live.execute(
                self.conn, [(self.source, self.account, day(self.window.start), day(self.window.end))]
            ).fetchall()
            gone_ids = [row[0] for row in live if row[1] not in self._seen]
        else:
            gone_ids = self._gone_in_slices(coverage)
        for chunk in batched(gone_ids, BATCH):
            gone = self.conn.execute(
                select(
                    entries.c.id,
                    entries.c.version,
                    entries.c.content_hash,
                    entries.c.work_date,
                    entries.c.duration_seconds,
                    entries.c.payload,
                ).where(entries.c.id.in_(chunk))
            ).all()
            self.conn.execute(
                update(entries)
                .where(entries.c.id == bindparam("b_id"))
                .values(version=bindparam("b_version"), deleted_at=self.now, updated_at=self.now),
                [{"b_id": row.id, "b_version": row.version + 1} for row in gone],
            )
            self.conn.execute(
                insert(entry_versions),
                [
                    {
                        "entry_id": row.id,
                        "version": row.version + 1,
                        "change": "deleted",
                        "content_hash": row.content_hash,
                        "work_date": row.work_date,
                        "duration_seconds": row.duration_seconds,
                        "payload": row.payload,
                        "run_id": self.run_id,
                        "recorded_at": self.now,
                    }
                    for row in gone
                ],
            )
            self.counts.deleted += len(gone)
        advance_cursor(self.conn, self.source, self.account, self.window.end, run_id=self.run_id, now=self.now)
        return self.counts

    def _gone_in_slices(self, coverage: Coverage) -> list[int]:
        """Ids of live entries inside a covered (person, dates) slice of the window that the fetch did not return."""
        gone: set[int] = set()
        for piece in coverage.slices:
            start, end = max(piece.start, self.window.start), min(piece.end, self.window.end)
            if end < start:
                continue
            rows = self.conn.execute(
                select(entries.c.id, entries.c.external_id).where(
                    entries.c.source == self.source,
                    entries.c.account == self.account,
                    entries.c.person_id == piece.person,
                    entries.c.work_date >= start,
                    entries.c.work_date <= end,
                    entries.c.deleted_at.is_(None),
                )
            )
            gone.update(row.id for row in rows if row.external_id not in self._seen)
        return sorted(gone)

    def _mapped(self, entry: TimeEntry) -> Row:
        """The mapping columns for ``entry`` in ``_MAPPED_ORDER``: the mapper's result, or empty."""
        if self.mapper is None:
            return _UNMAPPED
        columns = self.mapper(entry)
        return (
            columns["mapping_hash"],
            columns["code"],
            columns["rule_id"],
            columns["contractor"],
            columns["client"],
            columns["cost_center"],
            self._sql.adapt.flag(columns["billable"]),
            columns["unmapped_reason"],
            columns["unmapped_detail"],
            columns["mapping_revision"],
        )


_UNMAPPED: Row = (None,) * len(_MAPPED_ORDER)


def live_entries_between(conn: Connection, start: date, end: date) -> Iterator[Any]:
    """Live (not tombstoned) entries with their mapping, ordered for deterministic reports."""
    yield from conn.execute(
        select(entries)
        .where(entries.c.deleted_at.is_(None), and_(entries.c.work_date >= start, entries.c.work_date <= end))
        .order_by(entries.c.work_date, entries.c.source, entries.c.account, entries.c.external_id)
    )


def ledger_totals(conn: Connection, start: date | None = None, end: date | None = None) -> dict[str, int]:
    """Live entries and seconds (and unmapped ones) in the ledger, optionally within a date range."""
    conditions: list[ColumnElement[bool]] = [entries.c.deleted_at.is_(None)]
    if start is not None:
        conditions.append(entries.c.work_date >= start)
    if end is not None:
        conditions.append(entries.c.work_date <= end)
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(entries.c.duration_seconds), 0),
            func.coalesce(func.sum(entries.c.duration_seconds).filter(entries.c.code.is_(None)), 0),
            func.count().filter(entries.c.code.is_(None)),
        ).where(*conditions)
    ).one()
    return {
        "entries": int(row[0]),
        "seconds": int(row[1]),
        "unmapped_seconds": int(row[2]),
        "unmapped_entries": int(row[3]),
    }


def version_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(entry_versions)).scalar_one())


def entry_history(conn: Connection, source: str, account: str, external_id: str) -> list[dict[str, Any]]:
    row = conn.execute(
        select(entries.c.id).where(
            entries.c.source == source, entries.c.account == account, entries.c.external_id == external_id
        )
    ).scalar_one_or_none()
    if row is None:
        return []
    return [
        dict(r)
        for r in conn.execute(
            select(entry_versions).where(entry_versions.c.entry_id == row).order_by(entry_versions.c.version)
        ).mappings()
    ]
