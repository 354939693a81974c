"""Settings of the Harvest source (nested under ``HOURBRIDGE_HARVEST__`` by the sync settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from connectors._config import MaxAttempts, RequestTimeout, known_timezone

ENV_PREFIX = "HOURBRIDGE_HARVEST__"

# Harvest: "100 requests per 15 seconds" per account and token
# (https://www.mcpbundles.com/skills/harvest; the v1 overview at
# https://help.getharvest.com/api-v1/introduction/overview/introduction/ says "100 calls per 15 seconds").
# The client's bucket holds two seconds of burst on top of its rate, so 340 a minute keeps any 15 s
# span at 11 + 85 = 96 requests, under the vendor's 100.
DEFAULT_RATE_LIMIT_PER_MINUTE = 340
# Harvest: per_page "can range between 1 and 2000 (Default: 2000)"
# (https://help.getharvest.com/api-v2/roles-api/roles/roles/, the same wording on every v2 list).
MAX_PER_PAGE = 2000


class HarvestConfig(BaseModel):
    """How to reach Harvest and whose time to read."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None,
        description=(
            "Personal access token (Harvest ID → Developers). An Administrator's token reads everyone's "
            "time; any other token reads only its own user's time."
        ),
    )
    account_id: str = Field(
        default="",
        description="Required. The Harvest account id shown beside the token (sent as Harvest-Account-Id).",
    )
    contact_email: str = Field(
        default="",
        description="Required. E-mail named in the User-Agent Harvest requires (it reaches whoever runs hourbridge).",
    )
    base_url: str = Field(default="https://api.harvestapp.com/v2", description="API root (v2 paths are appended).")
    per_page: int = Field(default=MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE, description="Time entries per page.")
    rate_limit_per_minute: int = Field(
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        ge=1,
        description="Requests per minute; the default stays under Harvest's 100 requests per 15 seconds.",
    )
    timezone: str = Field(default="UTC", description="IANA time zone of the account (Harvest files time by date).")
    timeout_seconds: RequestTimeout = 30.0
    max_attempts: MaxAttempts = 6

    _known_timezone = known_timezone("timezone", setting=f"{ENV_PREFIX}TIMEZONE")
