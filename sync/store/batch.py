"""Driver-level batch writes of the ledger: statements compiled once per dialect, run by executemany or COPY."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    ARRAY,
    ClauseElement,
    ColumnElement,
    Connection,
    CursorResult,
    Table,
    any_,
    bindparam,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from connectors.model import TimeEntry
from sync.store.tables import MAPPING_COLUMNS, RawJSON, entries, entry_versions

__all__ = [
    "ENTRY_INSERT",
    "ENTRY_UPDATE",
    "MAPPED_ORDER",
    "VERSION_INSERT",
    "BatchInsert",
    "DriverSQL",
    "LedgerSQL",
    "Row",
    "ledger_sql",
]

# The ingest writes every entry and its first version; SQLAlchemy Core's per-row parameter handling
# (building, type-processing and re-ordering each parameter set) cost about 40 % of that. The batch
# statements are therefore compiled once per dialect by SQLAlchemy (same SQL, same casts) and run
# through ``exec_driver_sql`` (same connection, same transaction) with rows of values that already
# have the form the dialect's own bind processors give them (see ``_Adapters``).

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

# Column order of the rows the ingest builds: the tables' own order, in which SQLAlchemy compiles
# the statements (checked when they are compiled).
MAPPED_ORDER = ("mapping_hash", *MAPPING_COLUMNS, "mapping_revision")
ENTRY_INSERT = (
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
    *MAPPED_ORDER,
)
ENTRY_UPDATE = (*_VERSIONED_COLUMNS, *MAPPED_ORDER, "id")
VERSION_INSERT = (
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
class DriverSQL:
    """One statement compiled by SQLAlchemy for one dialect, executed with rows of driver values."""

    sql: str
    # Named paramstyles (psycopg): the bind names in row order, to make each row a mapping.
    # Positional ones (SQLite's qmark): None, the rows go as they are.
    names: tuple[str, ...] | None

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect, binds: Sequence[str]) -> DriverSQL:
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
        for table, names in ((entries, ENTRY_INSERT), (entries, ENTRY_UPDATE), (entry_versions, VERSION_INSERT)):
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


class LedgerSQL:
    """The ingest's statements and value adapters for one dialect (built once per dialect)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.adapt = _Adapters(dialect)
        self.insert_entries = BatchInsert.build(entries, ENTRY_INSERT, dialect)
        self.insert_versions = BatchInsert.build(entry_versions, VERSION_INSERT, dialect)
        self.update_entries = DriverSQL.compile(
            update(entries)
            .where(entries.c.id == bindparam("p_id"))
            .values({name: bindparam(f"p_{name}") for name in ENTRY_UPDATE if name != "id"} | {"deleted_at": null()}),
            dialect,
            [f"p_{name}" for name in ENTRY_UPDATE],
        )
        # PostgreSQL takes the keys as one array parameter: one statement for any batch, and psycopg
        # caches only short query texts. Elsewhere the IN list is padded to a power of two
        # (repeating the last key), so a handful of statements serve every batch size.
        self._lookup_array = self._compile_lookup(None) if dialect.name == "postgresql" else None
        self._lookups: dict[int, DriverSQL] = {}
        # (id, external_id) of the live entries of one scope in a range of work dates.
        self.live = DriverSQL.compile(
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

    def _compile_lookup(self, size: int | None) -> DriverSQL:
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
        return DriverSQL.compile(statement, self.dialect, ["p_source", "p_account", *keys])


@dataclass(frozen=True, slots=True)
class BatchInsert:
    """Rows into one table: ``COPY FROM STDIN`` on psycopg, one driver ``executemany`` elsewhere."""

    statement: DriverSQL
    copy: str | None

    @classmethod
    def build(cls, table: Table, names: Sequence[str], dialect: Dialect) -> BatchInsert:
        binds = [f"p_{name}" for name in names]
        values: dict[str, Any] = {name: bindparam(bind) for name, bind in zip(names, binds, strict=True)}
        statement = DriverSQL.compile(insert(table).values(values), dialect, binds)
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


_statements: WeakKeyDictionary[Dialect, LedgerSQL] = WeakKeyDictionary()


def ledger_sql(dialect: Dialect) -> LedgerSQL:
    built = _statements.get(dialect)
    if built is None:
        built = _statements[dialect] = LedgerSQL(dialect)
    return built
