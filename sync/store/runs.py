"""Run bookkeeping: start and finish a run, its heartbeat, abandoning killed runs, and listing recent runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from sync.store.tables import entries, runs

__all__ = [
    "ABANDONED_AFTER",
    "abandon_stale_runs",
    "finish_run",
    "never_synced",
    "recent_runs",
    "record_heartbeat",
    "start_run",
]

# A "running" run whose heartbeat is older than this was killed; the next run records it as
# abandoned so status and health stop showing it as live. A live run beats every
# HOURBRIDGE_RUN_HEARTBEAT_SECONDS (a thread of its own, besides one per committed window or
# delivery chunk), so a few missed intervals are enough: the settings' default, 60 s x 5.
ABANDONED_AFTER = timedelta(minutes=5)


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


def record_heartbeat(conn: Connection, run_id: int, now: datetime) -> None:
    """Record that run ``run_id`` is alive (after each committed window or delivery chunk)."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(heartbeat_at=now))


def abandon_stale_runs(conn: Connection, now: datetime, after: timedelta = ABANDONED_AFTER) -> int:
    """Mark runs left "running" by a killed process (no heartbeat for ``after``) as abandoned."""
    last_sign = func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
    return conn.execute(
        update(runs)
        .where(runs.c.status == "running", last_sign < now - after)
        .values(status="abandoned", finished_at=now)
    ).rowcount


def never_synced(conn: Connection) -> bool:
    """No run was ever recorded and no entry is held: a brand-new ledger (or a mistyped path to one)."""
    return conn.execute(select(runs.c.id).limit(1)).first() is None and (
        conn.execute(select(entries.c.source).limit(1)).first() is None
    )


def recent_runs(
    conn: Connection, limit: int = 10, *, now: datetime | None = None, after: timedelta = ABANDONED_AFTER
) -> list[dict[str, Any]]:
    """The last ``limit`` runs, newest first; with ``now``, a silent "running" one shows as abandoned
    (what the next run will record), so `status` never calls a killed run live."""
    rows = [dict(row) for row in conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings()]
    if now is not None:
        for row in rows:
            last_sign = row["heartbeat_at"] or row["started_at"]
            if row["status"] == "running" and _utc(last_sign) < now - after:
                row["status"] = "abandoned"
    return rows


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
