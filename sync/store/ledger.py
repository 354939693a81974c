"""Ledger reads and writes: versioned upserts, tombstones, cursors, runs and mapping results."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, insert, select, update

from connectors.model import TimeEntry, Window
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
        existing = {
            row.external_id: row
            for row in self.conn.execute(
                select(
                    entries.c.id,
                    entries.c.external_id,
                    entries.c.version,
                    entries.c.content_hash,
                    entries.c.deleted_at,
                ).where(
                    entries.c.source == self.source,
                    entries.c.account == self.account,
                    entries.c.external_id.in_(list(latest)),
                )
            )
        }
        # SQLite stores the canonical JSON the hash was taken over as is; other drivers adapt objects.
        raw = self.conn.dialect.name == "sqlite"
        payloads: dict[str, Any] = {
            external_id: RawJSON(entry.payload_json()) if raw else entry.to_payload()
            for external_id, entry in latest.items()
        }
        new_rows: list[dict[str, Any]] = []
        changed: list[tuple[Any, TimeEntry, str]] = []
        for external_id, entry in latest.items():
            row = existing.get(external_id)
            if row is None:
                new_rows.append(
                    self._entry_row(entry, payloads[external_id], version=1)
                    | {"first_seen_at": self.now}
                    | self._mapping_row(entry)
                )
            elif row.deleted_at is not None:
                changed.append((row, entry, "restored"))
            elif row.content_hash != entry.content_hash:
                changed.append((row, entry, "updated"))
            else:
                self.counts.unchanged += 1
        versions: list[dict[str, Any]] = []
        if new_rows:
            # A plain executemany (one statement for the batch), then one select for the new ids:
            # INSERT .. RETURNING with ordered rows runs row by row on SQLite.
            self.conn.execute(insert(entries), new_rows)
            new_ids = self.conn.execute(
                select(entries.c.external_id, entries.c.id).where(
                    entries.c.source == self.source,
                    entries.c.account == self.account,
                    entries.c.external_id.in_([row["external_id"] for row in new_rows]),
                )
            ).all()
            for external_id, entry_id in new_ids:
                versions.append(self._version_row(entry_id, 1, "created", latest[external_id], payloads[external_id]))
            self.counts.created += len(new_rows)
            self._refresh_statistics()
        if changed:
            self.conn.execute(
                update(entries)
                .where(entries.c.id == bindparam("b_id"))
                .values(
                    {name: bindparam(f"b_{name}") for name in (*_VERSIONED_COLUMNS, *_MAPPED_COLUMNS)}
                    | {"deleted_at": None}
                ),
                [
                    {"b_id": row.id}
                    | {
                        f"b_{k}": v
                        for k, v in self._entry_row(entry, payloads[entry.external_id], version=row.version + 1).items()
                        if k in _VERSIONED_COLUMNS
                    }
                    | {f"b_{k}": v for k, v in self._mapping_row(entry).items()}
                    for row, entry, _ in changed
                ],
            )
            for row, entry, change in changed:
                versions.append(self._version_row(row.id, row.version + 1, change, entry, payloads[entry.external_id]))
                if change == "restored":
                    self.counts.restored += 1
                else:
                    self.counts.updated += 1
        if versions:
            self.conn.execute(insert(entry_versions), versions)

    def _refresh_statistics(self) -> None:
        """PostgreSQL: re-ANALYZE while a large first load grows the table (at 2k, 4k, 8k… new rows).

        Without statistics the planner takes the freshly filled table for a tiny one and answers the
        per-batch key lookup by scanning every row of the scope, which makes a first sync quadratic.
        ANALYZE inside the transaction sees its own rows; doubling the threshold keeps it rare.
        """
        if self.conn.dialect.name != "postgresql" or self.counts.created < self._analyze_at:
            return
        self.conn.exec_driver_sql("ANALYZE entries")
        self._analyze_at = self.counts.created * 2

    def close(self) -> IngestCounts:
        """Tombstone live entries of the window that the complete scan did not return; advance the cursor."""
        live = self.conn.execute(
            select(entries.c.id, entries.c.external_id).where(
                entries.c.source == self.source,
                entries.c.account == self.account,
                entries.c.work_date >= self.window.start,
                entries.c.work_date <= self.window.end,
                entries.c.deleted_at.is_(None),
            )
        ).all()
        gone_ids = [row.id for row in live if row.external_id not in self._seen]
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

    def _mapping_row(self, entry: TimeEntry) -> dict[str, Any]:
        """The mapping columns for ``entry``: the mapper's result, or empty (mapped by a later pass)."""
        if self.mapper is None:
            return dict.fromkeys(_MAPPED_COLUMNS)
        return self.mapper(entry)

    def _entry_row(self, entry: TimeEntry, payload: Any, *, version: int) -> dict[str, Any]:
        return {
            "source": entry.source,
            "account": entry.account,
            "external_id": entry.external_id,
            "version": version,
            "content_hash": entry.content_hash,
            "work_date": entry.work_date,
            "duration_seconds": entry.duration_seconds,
            "person_id": entry.person.id,
            "person_name": entry.person.name,
            "payload": payload,
            "updated_at": self.now,
        }

    def _version_row(self, entry_id: int, version: int, change: str, entry: TimeEntry, payload: Any) -> dict[str, Any]:
        return {
            "entry_id": entry_id,
            "version": version,
            "change": change,
            "content_hash": entry.content_hash,
            "work_date": entry.work_date,
            "duration_seconds": entry.duration_seconds,
            "payload": payload,
            "run_id": self.run_id,
            "recorded_at": self.now,
        }


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
