"""Turn Harvest time entries into normalized ``TimeEntry`` values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from connectors.errors import PayloadError
from connectors.harvest.schema import HarvestTimeEntry, HarvestUser
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, normalize_custom_fields

_SECONDS_PER_HOUR = Decimal(3600)


def hours_to_seconds(hours: object, entry_id: int) -> int:
    """Exact seconds of Harvest's decimal hours (read as text, rounded half up to the second)."""
    try:
        value = Decimal(str(hours))
    except InvalidOperation:
        raise PayloadError(f"Harvest time entry {entry_id} has hours {hours!r}, not a number") from None
    if not value.is_finite() or value < 0:
        raise PayloadError(f"Harvest time entry {entry_id} has hours {hours!r}")
    return int((value * _SECONDS_PER_HOUR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def normalize_entry(payload: HarvestTimeEntry, *, scope: Scope, users: Mapping[int, HarvestUser]) -> TimeEntry:
    """One stopped Harvest entry (the caller skips running timers) as a ``TimeEntry``.

    Harvest files time by ``spent_date`` and records hours, not instants (its optional
    ``started_time``/``ended_time`` are wall-clock strings such as "8:00am" without a zone), so
    ``started_at``/``ended_at`` stay empty, as for Asana.
    """
    known = users.get(payload.user.id)
    email = known.email.lower() if known is not None and known.email else None
    person = Person(id=str(payload.user.id), name=payload.user.name or (known.name if known else ""), email=email)
    containers: list[Container] = []
    if payload.client is not None:
        containers.append(Container("client", str(payload.client.id), payload.client.name))
    if payload.project is not None:
        containers.append(Container("project", str(payload.project.id), payload.project.name))
    code = payload.project.code if payload.project is not None else None
    try:
        day = date.fromisoformat(payload.spent_date)
    except ValueError:
        raise PayloadError(f"Harvest time entry {payload.id} has spent_date {payload.spent_date!r}") from None
    return TimeEntry(
        source="harvest",
        account=scope.account,
        external_id=str(payload.id),
        work_date=day,
        duration_seconds=hours_to_seconds(payload.hours, payload.id),
        person=person,
        task=None if payload.task is None else TaskRef(str(payload.task.id), payload.task.name),
        containers=tuple(containers),
        custom_fields=normalize_custom_fields({"project_code": code}),
        billable=payload.billable,
        approval_status=payload.approval_status,
        description=payload.notes or None,
        recorded_at=_instant(payload.created_at),
    )
