"""The ledger of time entries: versioned upserts of one window, tombstones, cursors and reads of live entries."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from connectors.model import Coverage, TimeEntry, Window
from sync.store.batch import MAPPED_ORDER, LedgerSQL, Row, ledger_sql
from sync.store.mapped import BoundMatcher, mapping_columns
from sync.store.tables import cursors, entries, entry_versions

T = TypeVar("T")
BATCH = 500


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
    # Maps each new or changed entry in the same statement that writes it (with ``mapping_columns``,
    # as remap does), so a run does not read every entry back to map it; None leaves mapping to a
    # later pass.
    matcher: BoundMatcher | None = None
    counts: IngestCounts = field(default_factory=IngestCounts)
    _seen: set[str] = field(default_factory=set)
    _analyze_at: int = 2000
    _sql: LedgerSQL = field(init=False)
    # ``now`` as the driver takes it, per column (the same instant for every row of the window).
    _updated_at: Any = field(init=False)
    _first_seen_at: Any = field(init=False)
    _recorded_at: Any = field(init=False)

    def __post_init__(self) -> None:
        self._sql = ledger_sql(self.conn.dialect)
        adapt = self._sql.adapt
        self._updated_at = adapt.updated_at(self.now)
        self._first_seen_at = adapt.first_seen_at(self.now)
        self._recorded_at = adapt.recorded_at(self.now)

    # One function on purpose (over 60 lines): it is the ingest's hot loop, and each batch's rows are
    # built inline as driver tuples in the column order of the compiled statements.
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
        """The mapping columns for ``entry`` in ``MAPPED_ORDER``: the bound matcher's result, or empty."""
        if self.matcher is None:
            return _UNMAPPED
        columns = mapping_columns(self.matcher, entry)
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


_UNMAPPED: Row = (None,) * len(MAPPED_ORDER)


def live_entries_between(conn: Connection, start: date, end: date) -> Iterator[Any]:
    """Live (not tombstoned) entries with their mapping, ordered for deterministic reports."""
    yield from conn.execute(
        select(entries)
        .where(entries.c.deleted_at.is_(None), and_(entries.c.work_date >= start, entries.c.work_date <= end))
        .order_by(entries.c.work_date, entries.c.source, entries.c.account, entries.c.external_id)
    )


def recorded_entries_between(conn: Connection, sources: Iterable[str], start: date, end: date) -> Iterator[Any]:
    """Entries of ``sources`` beside their last recorded version, where either is dated ``start..end``.

    A snapshot source (an imported file) has no live side to read again: the version its last
    import wrote is what the source holds. Columns: the entry's own (``deleted_at`` included) and
    ``recorded_change``, ``recorded_seconds``, ``recorded_date`` (None when no version matches the
    entry's, which an import never leaves behind).
    """
    names = sorted(set(sources))
    if not names:
        return
    recorded = entry_versions.alias("recorded")
    yield from conn.execute(
        select(
            entries,
            recorded.c.change.label("recorded_change"),
            recorded.c.duration_seconds.label("recorded_seconds"),
            recorded.c.work_date.label("recorded_date"),
        )
        .select_from(
            entries.outerjoin(
                recorded, and_(recorded.c.entry_id == entries.c.id, recorded.c.version == entries.c.version)
            )
        )
        .where(
            entries.c.source.in_(names),
            or_(
                and_(entries.c.work_date >= start, entries.c.work_date <= end),
                and_(recorded.c.work_date >= start, recorded.c.work_date <= end),
            ),
        )
        .order_by(entries.c.source, entries.c.account, entries.c.external_id)
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
