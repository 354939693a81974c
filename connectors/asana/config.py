"""Settings of the Asana source (nested under ``HOURBRIDGE_ASANA__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

ENV_PREFIX = "HOURBRIDGE_ASANA__"

# Asana: 150 requests/min on free domains, 1,500/min on paid ones, per token.
PLAN_RATE_LIMITS = {"free": 150, "paid": 1500}


class AsanaConfig(BaseModel):
    """How to reach Asana and what to pull."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None, description="Personal access token (or OAuth access token) of a workspace member."
    )
    workspaces: list[str] = Field(
        default_factory=list, description="Workspace gids to pull; empty means every workspace the token sees."
    )
    base_url: str = Field(default="https://app.asana.com/api/1.0", description="API root.")
    plan: Literal["paid", "free"] = Field(default="paid", description="Sets the default rate limit.")
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, description="Requests per minute for this token; default from the plan."
    )
    page_size: int = Field(default=100, ge=1, le=100, description="Entries per page (Asana allows 1-100).")
    window_days: int = Field(default=31, ge=1, le=366, description="Largest date range asked for in one listing.")
    list_fields: Literal["spec", "extended"] = Field(
        default="spec",
        description=(
            "What the entry list is asked for: spec = only the fields its opt_fields enum allows (the list "
            "may still return more); extended = also task, billable, approval, description and created_at, "
            "for an Asana known to answer them there (a 400 falls back to spec for the run)."
        ),
    )
    detail: Literal["auto", "always", "tasks", "never"] = Field(
        default="auto",
        description=(
            "How to get task, billable and approval data when the list leaves them out: auto = one GET per "
            "new or changed entry (or whose timesheet changed status), the rest from the ledger; always = one "
            "GET per entry every run; tasks = per-task listings (task only); never = skip."
        ),
    )
    timesheets: bool = Field(
        default=True,
        description=(
            "Keep approval fresh from the timesheet approval statuses (one listing per workspace per run) "
            "when the list leaves approval out."
        ),
    )
    custom_fields: bool = Field(default=True, description="Read task custom fields (one call per 100 tasks).")
    concurrency: int = Field(default=4, ge=1, le=32, description="Parallel detail requests under the limiter.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request before giving up.")

    @property
    def effective_rate_limit(self) -> int:
        return self.rate_limit_per_minute or PLAN_RATE_LIMITS[self.plan]
