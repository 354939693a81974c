"""Pydantic models of the Toggl Track answers hourbridge reads (API v9 and Reports API v3; unknown fields ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TogglMe(_Wire):
    """``GET /api/v9/me``."""

    id: int
    email: str | None = None
    fullname: str = ""
    default_workspace_id: int | None = None


class TogglWorkspace(_Wire):
    """``GET /api/v9/workspaces/{id}``; ``admin`` says whether the token's user administers it (unconfirmed name)."""

    id: int
    name: str = ""
    admin: bool | None = None


class TogglNamed(_Wire):
    """A project, client, tag or user of a workspace listing."""

    id: int
    name: str = ""
    client_id: int | None = None  # projects only
    email: str | None = None  # users only
    fullname: str = ""  # users only


class TogglReportEntry(_Wire):
    """One time entry inside a Reports API row."""

    id: int
    seconds: int | None = None
    start: str
    stop: str | None = None
    at: str | None = None


class TogglReportRow(_Wire):
    """One row of ``search/time_entries``: what its entries share (user, project, task, tags, text)."""

    user_id: int
    username: str = ""
    project_id: int | None = None
    task_id: int | None = None
    billable: bool | None = None
    description: str | None = None
    tag_ids: list[int] | None = None
    time_entries: list[TogglReportEntry] = Field(default_factory=list)
    # Unconfirmed: what ``enrich_response`` adds; read when present, never required.
    task_name: str | None = None


class TogglTimeEntry(_Wire):
    """One entry of ``GET /api/v9/me/time_entries`` (``duration`` is negative while the timer runs)."""

    id: int
    workspace_id: int
    user_id: int
    project_id: int | None = None
    task_id: int | None = None
    billable: bool | None = None
    description: str | None = None
    tags: list[str] | None = None
    start: str
    stop: str | None = None
    duration: int
    at: str | None = None
    server_deleted_at: str | None = None
    # With ``meta=true`` (unconfirmed which of these come back): names beside the ids.
    project_name: str | None = None
    client_name: str | None = None
    client_id: int | None = None
    task_name: str | None = None
