"""Outbox and delivered-lines queries: enqueue ops, claim them for sending, close them by receipt, summarise."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from sync.store.tables import delivered_lines, outbox

# Line keys of adjustment lines (a closed line's change, delivered into a later open month) start with this.
ADJUSTMENT_PREFIX = "adj:"

__all__ = [
    "ADJUSTMENT_PREFIX",
    "OPEN_STATES",
    "add_pending",
    "adjustments_into",
    "close_op",
    "delivered_in",
    "known_keys",
    "latest_ops",
    "mark_sending",
    "mark_unanswered",
    "op_owners",
    "open_ops",
    "outbox_summary",
    "pending_ops",
    "record_adopted",
    "reset_to_pending",
]

# Outbox states whose op has not reached an end: the line waits until its outcome is known.
OPEN_STATES = ("pending", "sending", "unknown")
# Latest failures shown per sink by `status`.
_FAILURES_SHOWN = 5
# Keys bound in one IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
_KEYS_PER_QUERY = 500


def add_pending(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows (already carrying ``state="pending"`` and their idempotency keys)."""
    conn.execute(insert(outbox), list(rows))


def open_ops(conn: Connection, sink: str) -> list[Any]:
    """The ops of ``sink`` whose outcome an earlier run left open (``sending`` or ``unknown``), oldest first."""
    return list(
        conn.execute(
            select(outbox)
            .where(outbox.c.sink == sink, outbox.c.state.in_(("sending", "unknown")))
            .order_by(outbox.c.id)
        )
    )


def reset_to_pending(conn: Connection, op_id: int) -> None:
    conn.execute(update(outbox).where(outbox.c.id == op_id).values(state="pending"))


def pending_ops(conn: Connection, sink: str, limit: int) -> list[Any]:
    """The oldest ``limit`` pending ops of ``sink``."""
    return list(
        conn.execute(
            select(outbox).where(outbox.c.sink == sink, outbox.c.state == "pending").order_by(outbox.c.id).limit(limit)
        )
    )


def mark_sending(conn: Connection, op_ids: Sequence[int], now: datetime) -> None:
    """Ops about to be sent, with one more attempt counted."""
    conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(op_ids))
        .values(state="sending", sent_at=now, attempts=outbox.c.attempts + 1)
    )


def mark_unanswered(conn: Connection, op_ids: Sequence[int]) -> None:
    """Ops sent without a receipt: whether they landed is unknown until they are looked up."""
    conn.execute(update(outbox).where(outbox.c.id.in_(op_ids)).values(state="unknown", error="no receipt came back"))


def close_op(
    conn: Connection,
    row: Any,
    *,
    state: str,
    remote_id: str | None,
    sync_token: str | None,
    error: str | None,
    now: datetime,
) -> None:
    """Close outbox ``row`` in ``state``; an ``ok`` op also becomes what the sink holds for its line."""
    if state != "ok":
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(state=state, done_at=now, error=error))
        return
    conn.execute(
        update(outbox)
        .where(outbox.c.id == row.id)
        .values(state="ok", done_at=now, remote_id=remote_id, sync_token=sync_token, error=None)
    )
    _hold(conn, row, remote_id=remote_id, sync_token=sync_token, now=now)


def _hold(conn: Connection, row: Any, *, remote_id: str | None, sync_token: str | None, now: datetime) -> None:
    """Make ``row``'s line what its sink holds (or no longer holds, for a delete)."""
    values = {
        "version": row.version,
        "content_hash": row.content_hash,
        "line": row.line,
        "period": row.period,
        "seconds": int(row.line["seconds"]),
        "remote_id": remote_id,
        "sync_token": sync_token,
        "deleted": row.kind == "delete",
        "delivered_at": now,
    }
    changed = conn.execute(
        update(delivered_lines)
        .where(delivered_lines.c.sink == row.sink, delivered_lines.c.line_key == row.line_key)
        .values(values)
    ).rowcount
    if not changed:
        conn.execute(insert(delivered_lines).values(sink=row.sink, line_key=row.line_key, **values))


def record_adopted(
    conn: Connection, values: dict[str, Any], *, remote_id: str, sync_token: str | None, now: datetime
) -> None:
    """An op that was never sent from here because the sink already held its record (adopted).

    Stored as a closed ``ok`` op with no attempts (how adoption reads in the outbox), so the
    record's key has an owner here and ``reconcile`` matches it like any delivered line.
    """
    row = {
        **values,
        "state": "ok",
        "attempts": 0,
        "created_at": now,
        "done_at": now,
        "remote_id": remote_id,
        "sync_token": sync_token,
        "error": None,
    }
    conn.execute(insert(outbox).values(row))
    _hold(conn, SimpleNamespace(**row), remote_id=remote_id, sync_token=sync_token, now=now)


def known_keys(conn: Connection, sink: str, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` this ledger ever enqueued for ``sink`` (in any month)."""
    known: set[str] = set()
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), _KEYS_PER_QUERY):
        chunk = ordered[start : start + _KEYS_PER_QUERY]
        known.update(
            conn.execute(
                select(outbox.c.idempotency_key).where(outbox.c.sink == sink, outbox.c.idempotency_key.in_(chunk))
            ).scalars()
        )
    return known


def outbox_summary(conn: Connection) -> dict[str, Any]:
    """Per sink: ops by state, lines held, and the latest failures (what `status` shows)."""
    summary: dict[str, Any] = {}
    for sink, state, count in conn.execute(
        select(outbox.c.sink, outbox.c.state, func.count()).group_by(outbox.c.sink, outbox.c.state)
    ):
        summary.setdefault(sink, {"ops": {}, "lines": 0, "failures": []})["ops"][state] = int(count)
    for sink, count in conn.execute(
        select(delivered_lines.c.sink, func.count())
        .where(delivered_lines.c.deleted.is_(False))
        .group_by(delivered_lines.c.sink)
    ):
        summary.setdefault(sink, {"ops": {}, "lines": 0, "failures": []})["lines"] = int(count)
    for row in conn.execute(
        select(outbox.c.sink, outbox.c.line_key, outbox.c.kind, outbox.c.error)
        .where(outbox.c.state == "failed")
        .order_by(outbox.c.id.desc())
        .limit(20)
    ):
        failures = summary[row.sink]["failures"]
        if len(failures) < _FAILURES_SHOWN:
            failures.append({"line": row.line_key, "op": row.kind, "error": row.error})
    return summary


def delivered_in(conn: Connection, sink: str, label: str) -> dict[str, Any]:
    """The lines ``sink`` holds (not deleted) for month ``label``, by line key."""
    return {
        r.line_key: r
        for r in conn.execute(
            select(delivered_lines).where(
                delivered_lines.c.sink == sink,
                delivered_lines.c.period == label,
                delivered_lines.c.deleted.is_(False),
            )
        )
    }


def op_owners(conn: Connection, sink: str, label: str) -> dict[str, Any]:
    """(line key, version) of every op ever enqueued for ``sink`` in month ``label``, by idempotency key."""
    return {
        r.idempotency_key: r
        for r in conn.execute(
            select(outbox.c.idempotency_key, outbox.c.line_key, outbox.c.version).where(
                outbox.c.sink == sink, outbox.c.period == label
            )
        )
    }


def adjustments_into(conn: Connection, sink: str, label: str) -> dict[str, Any]:
    """Live adjustment lines of ``sink`` that correct a line of closed month ``label``, by the line they adjust."""
    return {r.line["adjusts"]: r for r in adjustment_rows_into(conn, sink, label)}


def adjustment_rows_into(conn: Connection, sink: str, label: str) -> list[Any]:
    """Every live adjustment line of ``sink`` that corrects a line of month ``label``, oldest month first."""
    return [
        r
        for r in conn.execute(
            select(delivered_lines)
            .where(
                delivered_lines.c.sink == sink,
                delivered_lines.c.line_key.startswith(ADJUSTMENT_PREFIX),
                delivered_lines.c.deleted.is_(False),
            )
            .order_by(delivered_lines.c.period, delivered_lines.c.line_key)
        )
        if r.line.get("adjusts_period") == label
    ]


def latest_ops(conn: Connection, states: Sequence[str], limit: int = 500) -> list[Any]:
    """Each line's latest op when it is in one of ``states`` (newest first): what a line is waiting on."""
    latest = select(func.max(outbox.c.id).label("id")).group_by(outbox.c.sink, outbox.c.line_key).subquery()
    return list(
        conn.execute(
            select(outbox)
            .join(latest, outbox.c.id == latest.c.id)
            .where(outbox.c.state.in_(tuple(states)))
            .order_by(outbox.c.id.desc())
            .limit(limit)
        )
    )
