"""Turn Toggl Track report rows and v9 time entries into normalized ``TimeEntry`` values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from connectors.errors import PayloadError
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry
from connectors.toggl.schema import TogglMe, TogglNamed, TogglReportEntry, TogglReportRow, TogglTimeEntry


def instant(value: str, what: str) -> datetime:
    """A UTC instant from Toggl's RFC 3339 text (offsets and ``Z`` both occur)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"Toggl Track {what} has the time {value!r}, not RFC 3339") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"Toggl Track {what} has the time {value!r} without a zone")
    return parsed.astimezone(UTC)


def _containers(
    project_id: int | None,
    projects: Mapping[int, TogglNamed],
    clients: Mapping[int, TogglNamed],
    *,
    project_name: str | None = None,
    client_id: int | None = None,
    client_name: str | None = None,
) -> tuple[Container, ...]:
    if project_id is None:
        return ()
    project = projects.get(project_id)
    client_id = project.client_id if project is not None and project.client_id is not None else client_id
    found: list[Container] = []
    if client_id is not None:
        client = clients.get(client_id)
        found.append(Container("client", str(client_id), client.name if client else client_name or ""))
    found.append(Container("project", str(project_id), project.name if project else project_name or ""))
    return tuple(found)


def _person(user_id: int, username: str, users: Mapping[int, TogglNamed]) -> Person:
    member = users.get(user_id)
    email = member.email.lower() if member is not None and member.email else None
    return Person(str(user_id), username or (member.fullname if member else ""), email)


def _task(task_id: int | None, tasks: Mapping[int, TogglNamed], name: str | None) -> TaskRef | None:
    if task_id is None:
        return None
    known = tasks.get(task_id)
    return TaskRef(str(task_id), known.name if known else name or "")


def normalize_report_entry(
    row: TogglReportRow,
    item: TogglReportEntry,
    *,
    scope: Scope,
    zone: ZoneInfo,
    projects: Mapping[int, TogglNamed],
    clients: Mapping[int, TogglNamed],
    tags: Mapping[int, TogglNamed],
    tasks: Mapping[int, TogglNamed],
    users: Mapping[int, TogglNamed],
) -> TimeEntry:
    """One stopped entry of a Reports API row (the caller skips running ones)."""
    what = f"time entry {item.id}"
    started = instant(item.start, what)
    ended = instant(item.stop, what) if item.stop else None
    seconds = item.seconds if item.seconds is not None else int((ended - started).total_seconds()) if ended else 0
    return TimeEntry(
        source="toggl",
        account=scope.account,
        external_id=str(item.id),
        work_date=started.astimezone(zone).date(),
        duration_seconds=seconds,
        person=_person(row.user_id, row.username, users),
        task=_task(row.task_id, tasks, row.task_name),
        containers=_containers(row.project_id, projects, clients),
        tags=tuple(sorted(tags[t].name if t in tags else str(t) for t in row.tag_ids or ())),
        billable=row.billable,
        description=row.description or None,
        started_at=started,
        ended_at=ended,
    )


def normalize_own_entry(
    entry: TogglTimeEntry,
    *,
    scope: Scope,
    zone: ZoneInfo,
    me: TogglMe,
    projects: Mapping[int, TogglNamed],
    clients: Mapping[int, TogglNamed],
    tasks: Mapping[int, TogglNamed],
) -> TimeEntry:
    """One stopped entry of ``/api/v9/me/time_entries`` (the caller skips running and deleted ones)."""
    what = f"time entry {entry.id}"
    started = instant(entry.start, what)
    ended = instant(entry.stop, what) if entry.stop else None
    email = me.email.lower() if me.email else None
    return TimeEntry(
        source="toggl",
        account=scope.account,
        external_id=str(entry.id),
        work_date=started.astimezone(zone).date(),
        duration_seconds=entry.duration,
        person=Person(str(entry.user_id), me.fullname, email),
        task=_task(entry.task_id, tasks, entry.task_name),
        containers=_containers(
            entry.project_id,
            projects,
            clients,
            project_name=entry.project_name,
            client_id=entry.client_id,
            client_name=entry.client_name,
        ),
        tags=tuple(sorted(entry.tags or ())),
        billable=entry.billable,
        description=entry.description or None,
        started_at=started,
        ended_at=ended,
    )
