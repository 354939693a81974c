"""Settings of the QuickBooks Online sink (nested under ``HOURBRIDGE_QUICKBOOKS__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from connectors.delivery import GRANULARITY_HELP, Granularity

ENV_PREFIX = "HOURBRIDGE_QUICKBOOKS__"

# QuickBooks: sources disagree on the batch ceiling (Intuit's 2023 blog: 30; a SampleApp tutorial:
# 50; a 2017 blog: 10). 30 is the documented current limit, so it is also our ceiling.
MAX_BATCH_ITEMS = 30


class QuickBooksConfig(BaseModel):
    """How to reach one QuickBooks Online company (realm) and how to write TimeActivity records."""

    model_config = {"extra": "forbid"}

    realm_id: str = Field(min_length=1, description="The company (realm) id the time is written to.")
    base_url: str = Field(
        default="https://quickbooks.api.intuit.com",
        description="API host; https://sandbox-quickbooks.api.intuit.com for an Intuit sandbox company.",
    )
    minor_version: int = Field(
        default=75, ge=1, description="minorversion query parameter (Intuit runs every request as 75 since 2025-08)."
    )
    access_token: SecretStr | None = Field(
        default=None, description="OAuth 2.0 access token (lives one hour); normally supplied by the OAuth layer."
    )
    client_id: str | None = Field(
        default=None,
        description=(
            "Client id of your Intuit app (developer.intuit.com, Keys & credentials). With the secret set, "
            "`hourbridge connect quickbooks` links the company once and tokens refresh themselves."
        ),
    )
    client_secret: SecretStr | None = Field(default=None, description="Client secret of your Intuit app.")
    authorize_url: str = Field(
        default="https://appcenter.intuit.com/connect/oauth2", description="Intuit's OAuth 2.0 authorize endpoint."
    )
    token_url: str = Field(
        default="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        description="Intuit's OAuth 2.0 token endpoint.",
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["com.intuit.quickbooks.accounting"],
        min_length=1,
        description="Scopes `hourbridge connect quickbooks` asks for.",
    )
    redirect_uri: str = Field(
        default="http://localhost:8765/callback",
        description=(
            "Redirect URI registered with the app, exactly. On localhost, `hourbridge connect` answers it itself; "
            "otherwise you paste the address the browser lands on."
        ),
    )
    name_of: Literal["Vendor", "Employee"] = Field(
        default="Vendor", description="Whose time it is: contractors are Vendors, payroll staff are Employees."
    )
    cost_center_as: Literal["class", "department", "none"] = Field(
        default="class",
        description="Where a code's cost center goes when its refs name neither a class nor a department.",
    )
    batch_size: int = Field(default=MAX_BATCH_ITEMS, ge=1, le=MAX_BATCH_ITEMS, description="Items per batch call.")
    rate_limit_per_minute: int = Field(
        default=500, ge=1, description="Requests per minute per realm; every batch item counts as one."
    )
    max_batches_per_minute: int = Field(default=40, ge=1, description="Batch calls per minute per realm.")
    include_description: bool = Field(
        default=True,
        description="Copy the PM tool's description into TimeActivity.Description (our key marker is always sent).",
    )
    throttle_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Wait after a 429 that carries no Retry-After (QuickBooks may not send one).",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request before giving up.")


class QuickBooksSettings(QuickBooksConfig):
    """The QuickBooks sink's settings plus how the planner groups time into its lines."""

    granularity: Granularity = Field(default="day", description=GRANULARITY_HELP)
