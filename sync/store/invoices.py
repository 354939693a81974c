"""Stored invoice checks: each check's summary and result, and its findings, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, desc, func, insert, select

from sync.store.tables import invoice_checks, invoice_findings


@dataclass(frozen=True, slots=True)
class StoredCheck:
    """One stored check: what it covered, when, and what it found (``result`` as the check wrote it)."""

    id: int
    period: str
    checked_at: datetime
    contractor: str | None
    bills_checked: int
    findings: int
    result: Mapping[str, Any]

    def covers(self, contractor: str) -> bool:
        return self.contractor is None or self.contractor.casefold() == contractor.casefold()


def save_check(
    conn: Connection,
    *,
    period: str,
    checked_at: datetime,
    contractor: str | None,
    bills_checked: int,
    result: Mapping[str, Any],
    findings: Sequence[Mapping[str, Any]],
) -> int:
    """Store one check and its findings (in the caller's transaction); its id."""
    inserted = conn.execute(
        insert(invoice_checks).values(
            period=period,
            checked_at=checked_at,
            contractor=contractor,
            bills_checked=bills_checked,
            findings=len(findings),
            result=dict(result),
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    check_id = int(key[0])
    if findings:
        conn.execute(insert(invoice_findings), [{"check_id": check_id, **dict(f)} for f in findings])
    return check_id


def _stored(row: Any) -> StoredCheck:
    return StoredCheck(
        int(row.id),
        str(row.period),
        row.checked_at,
        row.contractor,
        int(row.bills_checked),
        int(row.findings),
        row.result or {},
    )


def checks_of(conn: Connection, period: str) -> list[StoredCheck]:
    """Every check of ``period``, newest first."""
    rows = conn.execute(
        select(invoice_checks).where(invoice_checks.c.period == period).order_by(desc(invoice_checks.c.id))
    ).all()
    return [_stored(row) for row in rows]


def latest_checks(conn: Connection) -> list[StoredCheck]:
    """The newest check of each period that was checked for everyone, newest period first."""
    newest = (
        select(func.max(invoice_checks.c.id))
        .where(invoice_checks.c.contractor.is_(None))
        .group_by(invoice_checks.c.period)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(invoice_checks).where(invoice_checks.c.id.in_(newest)).order_by(desc(invoice_checks.c.period))
    ).all()
    return [_stored(row) for row in rows]


def findings_by_kind(conn: Connection, check_ids: Sequence[int]) -> dict[str, int]:
    """How many findings of each kind the given checks hold."""
    if not check_ids:
        return {}
    rows = conn.execute(
        select(invoice_findings.c.kind, func.count())
        .where(invoice_findings.c.check_id.in_(list(check_ids)))
        .group_by(invoice_findings.c.kind)
    ).all()
    return {str(kind): int(count) for kind, count in rows}


def invoice_summary(conn: Connection) -> list[dict[str, Any]]:
    """Per period, its newest check for everyone: when, bills checked, findings in all and by kind."""
    latest = latest_checks(conn)
    summary: list[dict[str, Any]] = []
    for check in latest:
        summary.append(
            {
                "period": check.period,
                "checked_at": check.checked_at,
                "bills_checked": check.bills_checked,
                "findings": check.findings,
                "by_kind": findings_by_kind(conn, [check.id]),
            }
        )
    return summary
