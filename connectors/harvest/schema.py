"""Pydantic models of the Harvest API v2 answers hourbridge reads (unknown fields are ignored)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class HarvestRef(_Wire):
    """``{id, name}`` as entries name their user, client, project and task."""

    id: int
    name: str = ""


class HarvestProjectRef(HarvestRef):
    code: str | None = None


class HarvestUser(_Wire):
    """A user of ``/v2/users`` or ``/v2/users/me``."""

    id: int
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    is_admin: bool | None = None  # older answers; ``access_roles`` replaced it
    access_roles: list[str] = Field(default_factory=list)

    @property
    def administrator(self) -> bool:
        # Harvest: access_roles holds "administrator", "manager" or "member" (plus manager
        # permissions); only an Administrator sees every user's time.
        return "administrator" in self.access_roles or bool(self.is_admin)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class HarvestTimeEntry(_Wire):
    """One entry of ``GET /v2/time_entries``."""

    id: int
    spent_date: str
    hours: Any  # a JSON number; read through ``str`` into a Decimal, never through float arithmetic
    notes: str | None = None
    is_running: bool = False
    billable: bool | None = None
    is_locked: bool | None = None
    approval_status: str | None = None  # unconfirmed: present on accounts with approvals
    user: HarvestRef
    client: HarvestRef | None = None
    project: HarvestProjectRef | None = None
    task: HarvestRef | None = None
    created_at: str | None = None
    updated_at: str | None = None


class HarvestLinks(_Wire):
    next: str | None = None


class HarvestPage(_Wire):
    """The paging fields every v2 list answer carries."""

    per_page: int | None = None
    total_pages: int | None = None
    total_entries: int | None = None
    next_page: int | None = None
    page: int | None = None
    links: HarvestLinks = Field(default_factory=HarvestLinks)


class HarvestTimeEntries(HarvestPage):
    time_entries: list[dict[str, Any]]


class HarvestUsers(HarvestPage):
    users: list[dict[str, Any]]
