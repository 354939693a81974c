"""Settings of the ClickUp source (nested under ``HOURBRIDGE_CLICKUP__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from connectors._config import check_timezone

ENV_PREFIX = "HOURBRIDGE_CLICKUP__"

# ClickUp: requests per minute per token, set by the plan of the Workspace that hosts the token.
PLAN_RATE_LIMITS = {"free": 100, "unlimited": 100, "business": 100, "business_plus": 1_000, "enterprise": 10_000}

Plan = Literal["free", "unlimited", "business", "business_plus", "enterprise"]


class ClickUpConfig(BaseModel):
    """How to reach ClickUp and what to pull."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None,
        description=(
            "Personal API token (pk_…) or OAuth access token of a Workspace owner or admin; "
            "only they can read every member's time."
        ),
    )
    team_ids: list[str] = Field(
        default_factory=list,
        description="Workspace (team) ids to pull; empty means every Workspace the token sees.",
    )
    base_url: str = Field(default="https://api.clickup.com/api", description="API root (v2 paths are appended).")
    plan: Plan = Field(default="free", description="The Workspace's plan; sets the default rate limit.")
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, description="Requests per minute for this token; default from the plan."
    )
    window_days: int = Field(
        default=7,
        ge=1,
        le=31,
        description="Days asked for in one time_entries call (ClickUp does not page that endpoint, so keep it modest).",
    )
    concurrency: int = Field(default=4, ge=1, le=32, description="Date chunks fetched in parallel under the limiter.")
    timezone: str = Field(
        default="UTC",
        description="IANA time zone whose calendar day an entry is filed under (taken from its start instant).",
    )
    custom_fields: bool = Field(
        default=True, description="Read task custom fields such as a 'Project code' drop-down (one call per 100 tasks)."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request before giving up.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value, setting=f"{ENV_PREFIX}TIMEZONE")

    @property
    def effective_rate_limit(self) -> int:
        return self.rate_limit_per_minute or PLAN_RATE_LIMITS[self.plan]
