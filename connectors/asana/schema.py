"""Pydantic models of the Asana payloads hourbridge reads (only the fields it uses)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    # Asana adds fields over time; unknown ones are ignored rather than failing a sync.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AsanaRef(_Payload):
    gid: str
    name: str | None = None


class AsanaUser(_Payload):
    gid: str
    name: str | None = None
    email: str | None = None


class AsanaCustomField(_Payload):
    gid: str | None = None
    name: str | None = None
    display_value: str | None = None


class AsanaTask(_Payload):
    gid: str
    name: str | None = None
    custom_fields: list[AsanaCustomField] | None = None
    tags: list[AsanaRef] | None = None
    actual_time_minutes: float | None = None


class AsanaTimeEntry(_Payload):
    """``TimeTrackingEntryCompact``/``Base``; full-object fields are optional on purpose.

    The list endpoint's ``opt_fields`` enum does not name ``task``, ``billable_status``,
    ``approval_status``, ``description`` or ``created_at``; whether the real list returns them at all
    is unconfirmed, so their absence (not ``null``) is what tells us to look them up.
    """

    gid: str
    duration_minutes: int | None = None
    entered_on: date
    attributable_to: AsanaRef | None = None
    created_by: AsanaRef | None = None
    categories: list[AsanaRef] | None = None
    task: AsanaRef | None = None
    billable_status: str | None = None
    approval_status: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    # Set by the source, never read from Asana: the full fields came from the single GET.
    from_detail: bool = Field(default=False, exclude=True)

    @property
    def has_task_field(self) -> bool:
        return "task" in self.model_fields_set

    @property
    def has_full_fields(self) -> bool:
        return {"task", "billable_status"} <= self.model_fields_set
