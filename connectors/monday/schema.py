"""Pydantic models of the monday.com GraphQL payloads hourbridge reads (only the fields it asks for)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def parse_date(value: Any) -> datetime | None:
    """monday's ``Date`` scalar as an aware UTC datetime.

    The scalar's wire format is undocumented: ISO-8601 with ``Z`` is what is expected, but offsets,
    naive values (taken as UTC), a trailing `` UTC`` and Unix seconds or milliseconds are accepted too.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = float(value)
        parsed = datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[:-4]
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a monday Date: {value!r}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


MondayDate = Annotated[datetime | None, BeforeValidator(parse_date)]


class _Payload(BaseModel):
    # monday adds fields every quarter; unknown ones are ignored rather than failing a sync.
    model_config = ConfigDict(extra="ignore", frozen=True)


class MondayComplexity(_Payload):
    before: int
    after: int
    query: int
    reset_in_x_seconds: int


class MondayAccount(_Payload):
    id: str
    name: str = ""


class MondayUser(_Payload):
    id: str
    name: str = ""
    email: str | None = None
    time_zone_identifier: str | None = None


class MondayColumnRef(_Payload):
    id: str | None = None
    title: str = ""


class MondayBoard(_Payload):
    id: str
    name: str = ""
    columns: list[MondayColumnRef] | None = None


class MondayGroup(_Payload):
    id: str
    title: str = ""


class MondayHistoryItem(_Payload):
    """``TimeTrackingHistoryItem``: one session. It has no duration; ``ended_at - started_at`` is it."""

    id: str
    started_at: MondayDate = None
    ended_at: MondayDate = None
    started_user_id: str | None = None
    created_at: MondayDate = None


class MondayTimeTracking(_Payload):
    id: str
    history: list[MondayHistoryItem] = Field(default_factory=list)


class MondayFieldValue(_Payload):
    id: str
    type: str | None = None
    text: str | None = None
    column: MondayColumnRef | None = None


class MondayItem(_Payload):
    id: str
    name: str = ""
    group: MondayGroup | None = None
    time_tracking: list[MondayTimeTracking] = Field(default_factory=list)
    fields: list[MondayFieldValue] = Field(default_factory=list)


class MondayItemsPage(_Payload):
    cursor: str | None = None
    items: list[MondayItem] = Field(default_factory=list)
