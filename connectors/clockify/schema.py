"""Pydantic models of the Clockify answers hourbridge reads (API v1 and the Reports API; unknown fields ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ClockifyUser(_Wire):
    """``GET /v1/user``: the key's own user."""

    id: str
    email: str | None = None
    name: str = ""
    active_workspace: str | None = Field(default=None, alias="activeWorkspace")
    default_workspace: str | None = Field(default=None, alias="defaultWorkspace")


class ClockifyWorkspace(_Wire):
    id: str
    name: str = ""


class ClockifyInterval(_Wire):
    start: str
    end: str | None = None
    duration: int | str | None = None  # seconds in reports, ISO 8601 ("PT1H30M") in v1 entries


class ClockifyTag(_Wire):
    id: str | None = Field(default=None, alias="_id")
    name: str = ""


class ClockifyReportEntry(_Wire):
    """One entry of the detailed report's ``timeentries``."""

    id: str = Field(alias="_id")
    description: str | None = None
    user_id: str = Field(alias="userId")
    user_name: str = Field(default="", alias="userName")
    user_email: str | None = Field(default=None, alias="userEmail")
    billable: bool | None = None
    project_id: str | None = Field(default=None, alias="projectId")
    project_name: str | None = Field(default=None, alias="projectName")
    client_id: str | None = Field(default=None, alias="clientId")
    client_name: str | None = Field(default=None, alias="clientName")
    task_id: str | None = Field(default=None, alias="taskId")
    task_name: str | None = Field(default=None, alias="taskName")
    tags: list[ClockifyTag] | None = None
    time_interval: ClockifyInterval = Field(alias="timeInterval")


class ClockifyReport(_Wire):
    timeentries: list[dict[str, object]] = Field(default_factory=list)


class ClockifyNamedRef(_Wire):
    id: str
    name: str = ""


class ClockifyProjectRef(ClockifyNamedRef):
    client_id: str | None = Field(default=None, alias="clientId")
    client_name: str | None = Field(default=None, alias="clientName")


class ClockifyTimeEntry(_Wire):
    """One entry of ``GET /v1/workspaces/{w}/user/{u}/time-entries?hydrated=true``."""

    id: str
    description: str | None = None
    user_id: str = Field(alias="userId")
    billable: bool | None = None
    project: ClockifyProjectRef | None = None
    task: ClockifyNamedRef | None = None
    tags: list[ClockifyNamedRef] | None = None
    time_interval: ClockifyInterval = Field(alias="timeInterval")
