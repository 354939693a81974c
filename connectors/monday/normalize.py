"""Turn monday.com time-tracking sessions into normalized ``TimeEntry`` values."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, normalize_custom_fields
from connectors.monday.schema import MondayBoard, MondayHistoryItem, MondayItem, MondayUser


def session_key(item_id: str, session_id: str) -> str:
    """The source key of a session: session ids are only documented as unique under their column."""
    return f"{item_id}:{session_id}"


def normalize_session(
    session: MondayHistoryItem,
    *,
    item: MondayItem,
    board: MondayBoard,
    scope: Scope,
    zone: ZoneInfo,
    users: dict[str, MondayUser | None],
) -> TimeEntry | None:
    """One stopped session as a ``TimeEntry``; ``None`` when it cannot be billed yet (see comments)."""
    # monday: ended_at is set only once a session stops. A running session has no length yet; it is
    # picked up by a later run (the look-back window re-reads it) once someone presses stop.
    if session.ended_at is None:
        return None
    # monday: started_at is documented as set only for sessions started with play or by an
    # automation; how manual entries look is unconfirmed. created_at is when the row was added, not
    # when work began, so it cannot stand in for the start: without started_at there is no duration.
    if session.started_at is None:
        return None
    user_id = session.started_user_id or ""
    user = users.get(user_id)
    person = Person(
        id=user_id,
        name=user.name if user else "",
        email=user.email.lower() if user and user.email else None,
    )
    containers = [Container("board", board.id, board.name)]
    if item.group is not None:
        containers.append(Container("group", item.group.id, item.group.title))
    custom = {value.column.title: value.text for value in item.fields if value.column and value.column.title}
    return TimeEntry(
        source="monday",
        account=scope.account,
        external_id=session_key(item.id, session.id),
        work_date=session.started_at.astimezone(zone).date(),
        # A clock moved backwards (or an edit that ends before it starts) is no time, not negative time.
        duration_seconds=max(0, int((session.ended_at - session.started_at).total_seconds())),
        person=person,
        task=TaskRef(item.id, item.name),
        containers=tuple(containers),
        custom_fields=normalize_custom_fields(custom),
        billable=None,
        approval_status=None,
        started_at=session.started_at,
        ended_at=session.ended_at,
        recorded_at=session.created_at,
    )
