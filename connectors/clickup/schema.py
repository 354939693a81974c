"""Pydantic models of the ClickUp v2 payloads hourbridge reads (only the fields it uses)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# ClickUp roles on a Workspace member: only owners and admins may read other members' time.
ROLE_OWNER = 1
ROLE_ADMIN = 2
ROLE_MEMBER = 3
ROLE_GUEST = 4
ROLE_NAMES = {ROLE_OWNER: "owner", ROLE_ADMIN: "admin", ROLE_MEMBER: "member", ROLE_GUEST: "guest"}


class _Payload(BaseModel):
    # ClickUp adds fields over time; unknown ones are ignored rather than failing a sync. Ids come
    # as numbers in some places (user.id, task_location.list_id) and strings in others: keep strings.
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class ClickUpUser(_Payload):
    id: int
    username: str | None = None
    email: str | None = None
    # Not in the spec's schema, but GET /v2/team returns it on each member's user object.
    role: int | None = None


class ClickUpMember(_Payload):
    user: ClickUpUser
    role: int | None = None

    @property
    def effective_role(self) -> int | None:
        return self.user.role if self.user.role is not None else self.role


class ClickUpTeam(_Payload):
    id: str
    name: str | None = None
    members: list[ClickUpMember] = []


class ClickUpTeams(_Payload):
    teams: list[ClickUpTeam]


class ClickUpAuthorizedUser(_Payload):
    user: ClickUpUser


class ClickUpTag(_Payload):
    name: str | None = None


class ClickUpEntryTask(_Payload):
    id: str
    custom_id: str | None = None
    name: str | None = None


class ClickUpLocation(_Payload):
    list_id: str | None = None
    folder_id: str | None = None
    space_id: str | None = None
    list_name: str | None = None
    folder_name: str | None = None
    space_name: str | None = None


class ClickUpApproval(_Payload):
    id: str | None = None
    status: str | None = None


class ClickUpTimeEntry(_Payload):
    """One item of ``GET /v2/team/{team_id}/time_entries``.

    ``start``/``end`` are Unix ms: the schema says string, the list example shows a number, so both
    parse. ``duration`` is a string of ms, negative while the timer runs.
    """

    id: str
    task: ClickUpEntryTask | None = None
    wid: str | None = None
    user: ClickUpUser | None = None
    billable: bool | None = None
    start: int
    end: int | None = None
    duration: int
    description: str | None = None
    tags: list[ClickUpTag] = []
    task_location: ClickUpLocation | None = None
    task_tags: list[ClickUpTag] = []
    approval: ClickUpApproval | None = None

    @field_validator("start", "end", "duration", mode="before")
    @classmethod
    def _ms(cls, value: Any) -> Any:
        # ClickUp sends Unix ms as strings (or numbers); an empty string is a missing value.
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                return None
            try:
                return int(value)
            except ValueError:
                return int(float(value))
        if isinstance(value, float):
            return int(value)
        return value

    @field_validator("tags", "task_tags", mode="before")
    @classmethod
    def _tag_list(cls, value: Any) -> Any:
        # The spec types an entry's ``tags`` as strings; answers carry {name, tag_fg, tag_bg}: take both.
        if value is None:
            return []
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def running(self) -> bool:
        return self.duration < 0


class ClickUpTimeEntries(_Payload):
    data: list[dict[str, Any]]


class ClickUpOption(_Payload):
    id: str | None = None
    name: str | None = None
    # Labels fields call it ``label``; drop-downs call it ``name``.
    label: str | None = None
    orderindex: int | None = None

    @property
    def text(self) -> str | None:
        return self.name if self.name is not None else self.label


class ClickUpTypeConfig(_Payload):
    options: list[ClickUpOption] = []


class ClickUpCustomField(_Payload):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    type_config: ClickUpTypeConfig | None = None
    value: Any = None

    @field_validator("type_config", mode="before")
    @classmethod
    def _lenient_type_config(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None

    def display_value(self) -> str | None:
        """The value as a person reads it: drop-down and label options resolved to their names."""
        value = self.value
        if value is None or value == "":
            return None
        options = self.type_config.options if self.type_config else []
        if self.type == "drop_down":
            # ClickUp: a drop-down's value is the chosen option's orderindex (older answers) or its id.
            return _option_text(options, value)
        if self.type == "labels" and isinstance(value, list):
            names = [_option_text(options, item) for item in value]
            return ", ".join(name for name in names if name) or None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        return None  # objects (users, locations, attachments) are not mapping keys


def _option_text(options: list[ClickUpOption], value: Any) -> str | None:
    text = str(value)
    for option in options:
        if option.id is not None and option.id == text:
            return option.text
    if isinstance(value, int) or (isinstance(value, str) and text.lstrip("-").isdigit()):
        for option in options:
            if option.orderindex is not None and option.orderindex == int(text):
                return option.text
    return None


class ClickUpTask(_Payload):
    """A task from ``GET /v2/team/{team_id}/task`` or ``GET /v2/task/{task_id}``."""

    id: str
    custom_id: str | None = None
    name: str | None = None
    custom_fields: list[ClickUpCustomField] = []
    tags: list[ClickUpTag] = []

    @field_validator("custom_fields", "tags", mode="before")
    @classmethod
    def _no_null_lists(cls, value: Any) -> Any:
        return [] if value is None else value

    def field_values(self) -> dict[str, str | None]:
        return {f.name: f.display_value() for f in self.custom_fields if f.name}


class ClickUpTasksPage(_Payload):
    tasks: list[dict[str, Any]]
    # Newer answers say whether this was the last page; older ones only end with a short page.
    last_page: bool | None = None
