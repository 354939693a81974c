"""Turn Clockify report entries and per-user time entries into normalized ``TimeEntry`` values."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from connectors.clockify.schema import ClockifyInterval, ClockifyReportEntry, ClockifyTimeEntry, ClockifyUser
from connectors.errors import PayloadError
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry


def instant(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"Clockify {what} has the time {value!r}, not ISO 8601") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"Clockify {what} has the time {value!r} without a zone")
    return parsed.astimezone(UTC)


def _key(entity_id: str | None, name: str | None) -> str:
    """The id when Clockify gives one, else the normalized name (the convention the file imports share)."""
    return entity_id or " ".join((name or "").split()).lower()


def _containers(
    client_id: str | None, client_name: str | None, project_id: str | None, project_name: str | None
) -> tuple[Container, ...]:
    found: list[Container] = []
    if client_id or client_name:
        found.append(Container("client", _key(client_id, client_name), client_name or ""))
    if project_id or project_name:
        found.append(Container("project", _key(project_id, project_name), project_name or ""))
    return tuple(found)


def _span(interval: ClockifyInterval, what: str) -> tuple[datetime, datetime]:
    assert interval.end is not None  # the caller skips running timers
    started, ended = instant(interval.start, what), instant(interval.end, what)
    if ended < started:
        raise PayloadError(f"Clockify {what} ends before it starts")
    return started, ended


def normalize_report_entry(entry: ClockifyReportEntry, *, scope: Scope, zone: ZoneInfo) -> TimeEntry:
    """One stopped entry of the detailed report (the caller skips running ones)."""
    what = f"time entry {entry.id}"
    started, ended = _span(entry.time_interval, what)
    duration = entry.time_interval.duration
    # Clockify: the report's duration is whole seconds; without it, the interval says as much.
    seconds = duration if isinstance(duration, int) else int((ended - started).total_seconds())
    return TimeEntry(
        source="clockify",
        account=scope.account,
        external_id=entry.id,
        work_date=started.astimezone(zone).date(),
        duration_seconds=seconds,
        person=Person(entry.user_id, entry.user_name, entry.user_email.lower() if entry.user_email else None),
        task=TaskRef(_key(entry.task_id, entry.task_name), entry.task_name or "")
        if entry.task_id or entry.task_name
        else None,
        containers=_containers(entry.client_id, entry.client_name, entry.project_id, entry.project_name),
        tags=tuple(sorted(t.name for t in entry.tags or () if t.name)),
        billable=entry.billable,
        description=entry.description or None,
        started_at=started,
        ended_at=ended,
    )


def normalize_user_entry(entry: ClockifyTimeEntry, *, scope: Scope, zone: ZoneInfo, user: ClockifyUser) -> TimeEntry:
    """One stopped entry of the per-user listing (hydrated: project, task and tag names inline)."""
    what = f"time entry {entry.id}"
    started, ended = _span(entry.time_interval, what)
    project = entry.project
    return TimeEntry(
        source="clockify",
        account=scope.account,
        external_id=entry.id,
        work_date=started.astimezone(zone).date(),
        # The per-user listing gives the duration as ISO 8601 text ("PT1H30M"); the instants are exact.
        duration_seconds=int((ended - started).total_seconds()),
        person=Person(entry.user_id, user.name, user.email.lower() if user.email else None),
        task=None if entry.task is None else TaskRef(entry.task.id, entry.task.name),
        containers=_containers(
            project.client_id if project else None,
            project.client_name if project else None,
            project.id if project else None,
            project.name if project else None,
        ),
        tags=tuple(sorted(t.name for t in entry.tags or () if t.name)),
        billable=entry.billable,
        description=entry.description or None,
        started_at=started,
        ended_at=ended,
    )
