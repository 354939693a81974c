"""Accounting periods: close a month, reopen it with a recorded reason, and answer which months are closed."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, insert, select, update

from connectors.errors import ConfigError
from sync.store.tables import period_events, periods

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_label(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(text: str) -> str:
    """``YYYY-MM`` checked; a ConfigError otherwise (the CLI shows it as is)."""
    match = _MONTH.match(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"expected a month as YYYY-MM (e.g. 2026-10), got {text!r}")
    return text.strip()


def month_bounds(label: str) -> tuple[date, date]:
    year, month = int(label[:4]), int(label[5:7])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def next_month(label: str) -> str:
    year, month = int(label[:4]), int(label[5:7])
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def previous_month(label: str) -> str:
    year, month = int(label[:4]), int(label[5:7])
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


@dataclass(frozen=True, slots=True)
class PeriodEvent:
    label: str
    action: str
    at: datetime
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class ClosedPeriods:
    """The set of closed months, with the rule for where a late change to one of them goes."""

    labels: frozenset[str]

    def is_closed(self, label: str) -> bool:
        return label in self.labels

    def first_open_after(self, label: str) -> str:
        """The first open month after ``label``: where adjustments of ``label`` are delivered."""
        candidate = next_month(label)
        while candidate in self.labels:
            candidate = next_month(candidate)
        return candidate

    @property
    def closed_through(self) -> date | None:
        """The last day of the latest closed month (None when none is closed)."""
        if not self.labels:
            return None
        return month_bounds(max(self.labels))[1]


def closed(conn: Connection) -> ClosedPeriods:
    rows = conn.execute(select(periods.c.label).where(periods.c.status == "closed")).scalars()
    return ClosedPeriods(frozenset(rows))


def close(engine: Engine, label: str, *, by: str, reason: str, now: datetime) -> bool:
    """Close ``label``; False when it already was (nothing recorded then)."""
    label = parse_month(label)
    with engine.begin() as conn:
        row = conn.execute(select(periods.c.status).where(periods.c.label == label)).first()
        if row is not None and row.status == "closed":
            return False
        values = {"status": "closed", "changed_at": now, "changed_by": by}
        if row is None:
            conn.execute(insert(periods).values(label=label, **values))
        else:
            conn.execute(update(periods).where(periods.c.label == label).values(values))
        conn.execute(insert(period_events).values(label=label, action="close", at=now, by=by, reason=reason or ""))
    return True


def reopen(engine: Engine, label: str, *, by: str, reason: str, now: datetime) -> None:
    """Reopen a closed month; the reason is required and recorded with who and when."""
    label = parse_month(label)
    if not reason or not reason.strip():
        raise ConfigError(f'reopening {label} needs a reason: pass --reason "..." (it is kept in the history)')
    with engine.begin() as conn:
        row = conn.execute(select(periods.c.status).where(periods.c.label == label)).first()
        if row is None or row.status != "closed":
            raise ConfigError(f"{label} is not closed; nothing to reopen")
        conn.execute(
            update(periods).where(periods.c.label == label).values(status="open", changed_at=now, changed_by=by)
        )
        conn.execute(insert(period_events).values(label=label, action="reopen", at=now, by=by, reason=reason.strip()))


def history(conn: Connection, label: str | None = None) -> list[PeriodEvent]:
    query = select(period_events).order_by(period_events.c.id)
    if label is not None:
        query = query.where(period_events.c.label == label)
    return [PeriodEvent(r.label, r.action, r.at, r.by, r.reason) for r in conn.execute(query)]
