"""Settings of the Toggl Track source (nested under ``HOURBRIDGE_TOGGL__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from connectors._config import FilingZone, MaxAttempts, RequestTimeout, known_timezone

ENV_PREFIX = "HOURBRIDGE_TOGGL__"

# Toggl: workspace and organization requests are limited per user and organization by the plan:
# "Free: 30 requests per hour, Starter: 240, Premium: 600; higher, custom limits on Enterprise", and
# requests about the user's own data (``/api/v9/me…``) to "30 requests per hour" on every plan
# (https://support.toggl.com/en/articles/11484112-api-webhook-limits).
PLAN_HOURLY_QUOTAS = {"free": 30, "starter": 240, "premium": 600}
ME_HOURLY_QUOTA = 30
# Toggl: "limit API calls to approximately one request per second" (leaky bucket, 429 beyond it; same page).
REQUESTS_PER_MINUTE = 60

Plan = Literal["free", "starter", "premium", "enterprise"]
Feed = Literal["workspace", "me"]


class TogglConfig(BaseModel):
    """How to reach Toggl Track and whose time to read."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None,
        description="API token (Toggl Track → Profile settings → API Token).",
    )
    feed: Feed = Field(
        default="workspace",
        description=(
            "workspace: every member's time through the Reports API (a workspace admin's token); "
            "me: only the token owner's own time through /api/v9/me/time_entries."
        ),
    )
    workspace_ids: list[str] = Field(
        default_factory=list,
        description="Workspace ids to read; required for the workspace feed, the token's default workspace for 'me'.",
    )
    plan: Plan = Field(default="free", description="The organization's plan; sets the hourly request quota.")
    hourly_quota: int | None = Field(
        default=None,
        ge=1,
        description="Requests per hour for workspace calls; default from the plan (required on enterprise).",
    )
    page_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Rows per Reports API page (50 is the documented detailed-report page; larger is unconfirmed).",
    )
    base_url: str = Field(
        default="https://api.track.toggl.com", description="API host (v9 and Reports v3 paths are appended)."
    )
    timezone: FilingZone = "UTC"
    timeout_seconds: RequestTimeout = 30.0
    max_attempts: MaxAttempts = 6

    _known_timezone = known_timezone("timezone", setting=f"{ENV_PREFIX}TIMEZONE")

    @property
    def workspace_quota(self) -> int | None:
        """Workspace requests per hour, or None when an Enterprise plan names no quota (headers pace it)."""
        return self.hourly_quota or PLAN_HOURLY_QUOTAS.get(self.plan)
