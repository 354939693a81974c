"""Copy a whole ledger into an empty database (SQLite ⇄ PostgreSQL), in batches, verified table by table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Integer, Table, func, insert, select, text

from connectors.errors import ConfigError
from sync.store.db import current_revision, head_revision, require_current, upgrade
from sync.store.tables import metadata

BATCH = 1000

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's rows in the source and the target, and whether their content digests agree."""

    table: str
    source_rows: int
    target_rows: int
    same_content: bool

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.same_content


def tables() -> list[Table]:
    """Every table of the store, parents before children (foreign keys hold at every insert)."""
    return list(metadata.sorted_tables)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table of a migrated ledger (the totals a copy's progress counts towards)."""
    with engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one()) for table in tables()
        }


def check_target(source: Engine, target: Engine) -> None:
    """Refuse a target that is the source, is on another schema revision, or already holds rows."""
    if source.url.render_as_string(hide_password=False) == target.url.render_as_string(hide_password=False):
        raise ConfigError("--to names the database the ledger is already in; name another database")
    require_current(source)
    revision, head = current_revision(target), head_revision()
    if revision is None:
        upgrade(target)
    elif revision != head:
        raise ConfigError(
            f"the target database's schema is at {revision}, not {head}: "
            "run `hourbridge db upgrade` with HOURBRIDGE_DATABASE_URL set to it, or copy into a new database"
        )
    with target.connect() as conn:
        held = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables()}
    busy = {name: count for name, count in held.items() if count}
    if busy:
        listed = ", ".join(f"{name} ({count} rows)" for name, count in sorted(busy.items()))
        raise ConfigError(
            f"the target database is not empty: {listed}. `hourbridge db copy` never merges two ledgers; "
            "copy into a new, empty database"
        )


def copy_ledger(
    source: Engine, target: Engine, *, batch: int = BATCH, progress: Progress | None = None
) -> list[TableCopy]:
    """Copy every row of every table from ``source`` into the empty, migrated ``target``; verify each table.

    One transaction on the target: a copy that fails leaves the target empty, ready to try again.
    Rows stream from the source ``batch`` at a time. Timestamps are written as UTC (SQLite keeps
    them without a zone; PostgreSQL would read a bare timestamp in its session's zone).
    """
    check_target(source, target)
    with source.connect() as reader, target.begin() as writer:
        for table in tables():
            copied = 0
            for rows in _batches(reader, table, batch):
                writer.execute(insert(table), [_utc_row(table, row) for row in rows])
                copied += len(rows)
                if progress is not None:
                    progress(table.name, len(rows))
            if target.dialect.name == "postgresql":
                _advance_sequence(writer, table)
    return verify(source, target)


def verify(source: Engine, target: Engine) -> list[TableCopy]:
    """Per table: rows in each database and whether a digest over every row's content agrees."""
    results: list[TableCopy] = []
    with source.connect() as left, target.connect() as right:
        for table in tables():
            count_l, digest_l = _digest(left, table)
            count_r, digest_r = _digest(right, table)
            results.append(TableCopy(table.name, count_l, count_r, digest_l == digest_r))
    return results


def _ordered(table: Table) -> Any:
    return select(table).order_by(*table.primary_key.columns)


def _batches(conn: Connection, table: Table, size: int) -> Iterator[list[dict[str, Any]]]:
    result = conn.execution_options(stream_results=True, yield_per=size).execute(_ordered(table))
    for part in result.mappings().partitions(size):
        yield [dict(row) for row in part]


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _utc_row(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    zoned = {c.name for c in table.columns if isinstance(c.type, DateTime)}
    return {key: _utc(value) if key in zoned else value for key, value in row.items()}


def _advance_sequence(conn: Connection, table: Table) -> None:
    """PostgreSQL: move the id sequence past the copied ids (rows were inserted with their ids)."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer) or keys[0].autoincrement is False:
        return
    column = keys[0].name
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}).scalar()
    if sequence is None:
        return
    conn.execute(
        text(
            f'SELECT setval(:s, COALESCE((SELECT MAX("{column}") FROM "{table.name}"), 1), '  # noqa: S608
            f'(SELECT MAX("{column}") FROM "{table.name}") IS NOT NULL)'
        ),
        {"s": sequence},
    )


def _digest(conn: Connection, table: Table) -> tuple[int, str]:
    """Rows and a sha256 over their canonical JSON, in primary-key order (equal across both databases)."""
    digest = hashlib.sha256()
    count = 0
    for rows in _batches(conn, table, BATCH):
        for row in rows:
            digest.update(json.dumps(_utc_row(table, row), sort_keys=True, default=_plain).encode())
            digest.update(b"\n")
            count += 1
    return count, digest.hexdigest()


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, Decimal)):
        return str(value)
    raise TypeError(f"cannot compare a {type(value).__name__}")
