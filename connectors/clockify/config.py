"""Settings of the Clockify source (nested under ``HOURBRIDGE_CLOCKIFY__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from connectors._config import FilingZone, MaxAttempts, RequestTimeout, known_timezone

ENV_PREFIX = "HOURBRIDGE_CLOCKIFY__"

# Clockify: 50 requests a second per add-on or key and IP, 429 beyond (unconfirmed wording). Half of it
# keeps the client's two-second burst (50 requests) inside any one second.
REQUESTS_PER_MINUTE = 1500
# Clockify's Free plan allows reports only sparingly: 30 report requests an hour (unconfirmed; the
# stricter reading), and a report spans at most 31 days there
# (https://glama.ai/mcp/connectors/io.usefulapi/clockify/tools/clockify_detailed_report).
FREE_REPORTS_PER_HOUR = 30
MAX_REPORT_DAYS = 31
# Clockify: detailed report pageSize "default: 50, max: 1000"
# (https://glama.ai/mcp/servers/ratheesh-aot/clockify-mcp/tools/get_detailed_report).
MAX_PAGE_SIZE = 1000

Plan = Literal["free", "paid"]
Feed = Literal["workspace", "me"]


class ClockifyConfig(BaseModel):
    """How to reach Clockify and whose time to read."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None, description="API key (Clockify → Profile settings → API), sent as X-Api-Key."
    )
    feed: Feed = Field(
        default="workspace",
        description=(
            "workspace: every member's time through the detailed report (a workspace owner's or admin's key); "
            "me: only the key owner's own time entries."
        ),
    )
    workspace_ids: list[str] = Field(
        default_factory=list, description="Workspace ids to read; empty means every workspace the key sees."
    )
    plan: Plan = Field(default="free", description="free keeps report requests within the Free plan's hourly quota.")
    reports_per_hour: int | None = Field(
        default=None, ge=1, description="Report requests per hour; default 30 on the free plan, unlimited on paid ones."
    )
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Entries per page.")
    base_url: str = Field(default="https://api.clockify.me/api", description="API root (v1 paths are appended).")
    reports_url: str = Field(default="https://reports.api.clockify.me", description="Reports API root.")
    timezone: FilingZone = "UTC"
    timeout_seconds: RequestTimeout = 30.0
    max_attempts: MaxAttempts = 6

    _known_timezone = known_timezone("timezone", setting=f"{ENV_PREFIX}TIMEZONE")

    @property
    def report_quota(self) -> int | None:
        return self.reports_per_hour or (FREE_REPORTS_PER_HOUR if self.plan == "free" else None)
