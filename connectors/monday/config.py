"""Settings of the monday.com source (nested under ``HOURBRIDGE_MONDAY__`` by the sync settings)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator

from connectors._config import check_timezone

ENV_PREFIX = "HOURBRIDGE_MONDAY__"

# monday: complexity points per minute. Personal tokens get 10M (reads and writes together; 1M on
# trial and free plans); app tokens get 5M for reads plus 5M for writes, so set 5_000_000 for them.
PERSONAL_TOKEN_BUDGET = 10_000_000
APP_TOKEN_BUDGET = 5_000_000
MAX_PAGE_SIZE = 500

_COLUMN_TYPE = re.compile(r"^[a-z][a-z_]*$")


class MondayConfig(BaseModel):
    """How to reach monday.com and what to pull."""

    model_config = {"extra": "forbid"}

    token: SecretStr | None = Field(
        default=None, description="Personal API token or app OAuth token of a user who can read the boards."
    )
    board_ids: list[str] = Field(
        default_factory=list,
        description="Board ids to pull; empty means every active board with a time tracking column the token sees.",
    )
    base_url: str = Field(default="https://api.monday.com/v2", description="GraphQL endpoint.")
    api_version: str = Field(
        default="2026-10",
        pattern=r"^\d{4}-\d{2}$",
        description="API version sent as the API-Version header; pinned so a new release cannot change answers.",
    )
    page_size: int = Field(
        default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per items_page call (monday allows 1-500)."
    )
    complexity_budget_per_minute: int = Field(
        default=PERSONAL_TOKEN_BUDGET,
        ge=1,
        description=(
            "Complexity points per minute for this token: 10,000,000 for personal tokens, "
            "5,000,000 (reads) for app tokens, 1,000,000 on trial and free plans."
        ),
    )
    timezone: str = Field(
        default="UTC",
        description="IANA time zone whose calendar day a session is filed under (the account's reporting zone).",
    )
    field_column_types: list[str] = Field(
        default_factory=lambda: ["text", "status", "dropdown"],
        description="Column types read as custom fields (mapping keys such as a 'Project code' column).",
    )
    concurrency: int = Field(default=2, ge=1, le=16, description="Boards paged in parallel under the shared limiter.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request before giving up.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value, setting=f"{ENV_PREFIX}TIMEZONE")

    @field_validator("field_column_types")
    @classmethod
    def _column_types(cls, value: list[str]) -> list[str]:
        # The types are written into the query as enum literals, so only enum-shaped names pass.
        bad = [v for v in value if not _COLUMN_TYPE.match(v) or v == "time_tracking"]
        if bad:
            raise ValueError(f"not usable as monday column types: {', '.join(bad)}")
        return value
