"""Run bookkeeping: start and finish a run, its heartbeat, abandoning killed runs, and listing recent runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from sync.store.tables import runs

__all__ = ["ABANDONED_AFTER", "abandon_stale_runs", "finish_run", "recent_runs", "record_heartbeat", "start_run"]

# A "running" run whose heartbeat (one per committed window or delivery chunk) is older than this
# was killed; the next run records it as abandoned so status and health stop showing it as live.
ABANDONED_AFTER = timedelta(hours=2)


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


def abandon_stale_runs(conn: Connection, now: datetime) -> int:
    """Mark runs left "running" by a killed process (no heartbeat for ABANDONED_AFTER) as abandoned."""
    last_sign = func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
    return conn.execute(
        update(runs)
        .where(runs.c.status == "running", last_sign < now - ABANDONED_AFTER)
        .values(status="abandoned", finished_at=now)
    ).rowcount


def recent_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings().all()
    return [dict(row) for row in rows]
