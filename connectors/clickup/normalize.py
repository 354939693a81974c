"""Turn ClickUp time-entry payloads into normalized ``TimeEntry`` values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from connectors.clickup.schema import ClickUpTask, ClickUpTimeEntry, ClickUpUser
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, normalize_custom_fields

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ms(value: int) -> datetime:
    """A UTC instant from Unix milliseconds (exact: no float round trip)."""
    return _EPOCH + timedelta(milliseconds=value)


def to_ms(value: datetime) -> int:
    """Unix milliseconds of an aware instant."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def work_date(start_ms: int, zone: ZoneInfo) -> date:
    """The calendar day a start instant falls on in ``zone``: the day the entry is filed under."""
    return from_ms(start_ms).astimezone(zone).date()


def normalize_entry(
    payload: ClickUpTimeEntry,
    *,
    scope: Scope,
    zone: ZoneInfo,
    members: Mapping[str, ClickUpUser],
    task: ClickUpTask | None,
) -> TimeEntry:
    """One stopped time entry (the caller skips running timers) as a ``TimeEntry``."""
    user = payload.user
    user_id = str(user.id) if user is not None else ""
    member = members.get(user_id)
    email = (user.email if user and user.email else None) or (member.email if member else None)
    person = Person(
        id=user_id,
        name=(user.username if user and user.username else None) or (member.username if member else None) or "",
        email=email.lower() if email else None,
    )
    task_ref: TaskRef | None = None
    if payload.task is not None:
        task_ref = TaskRef(
            id=payload.task.id,
            name=payload.task.name or (task.name if task and task.name else None) or "",
            custom_id=payload.task.custom_id or (task.custom_id if task else None) or None,
        )
    started_at = from_ms(payload.start)
    ended_at = (
        from_ms(payload.end) if payload.end is not None else started_at + timedelta(milliseconds=payload.duration)
    )
    tags = {t.name for t in payload.task_tags if t.name} | {t.name for t in payload.tags if t.name}
    if task is not None:
        tags |= {t.name for t in task.tags if t.name}
    return TimeEntry(
        source="clickup",
        account=scope.account,
        external_id=payload.id,
        work_date=work_date(payload.start, zone),
        # ClickUp: duration is milliseconds; partial seconds are dropped, never rounded up.
        duration_seconds=payload.duration // 1000,
        person=person,
        task=task_ref,
        containers=_containers(payload, scope),
        tags=tuple(sorted(tags)),
        custom_fields=normalize_custom_fields(task.field_values() if task is not None else {}),
        billable=payload.billable,
        approval_status=payload.approval.status if payload.approval is not None else None,
        description=payload.description or None,
        started_at=started_at,
        ended_at=ended_at,
    )


def _containers(payload: ClickUpTimeEntry, scope: Scope) -> tuple[Container, ...]:
    containers = [Container("workspace", scope.account, scope.name)]
    where = payload.task_location
    if where is not None:
        if where.space_id:
            containers.append(Container("space", where.space_id, where.space_name or ""))
        if where.folder_id:
            containers.append(Container("folder", where.folder_id, where.folder_name or ""))
        if where.list_id:
            containers.append(Container("list", where.list_id, where.list_name or ""))
    return tuple(containers)
