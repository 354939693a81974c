"""Settings of the Xero sink (nested under ``HOURBRIDGE_XERO__`` by the sync settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from connectors._config import check_timezone
from connectors.delivery import GRANULARITY_HELP, Granularity

ENV_PREFIX = "HOURBRIDGE_XERO__"

# Xero: the spec sets no element count per call; Xero's guidance is to keep a call to about 50
# elements (and under its 3.5 MB body cap), so 50 bills per PUT/POST is the ceiling here.
MAX_INVOICES_PER_CALL = 50


class XeroConfig(BaseModel):
    """How to reach one Xero organisation (tenant) and whether time goes to projects or to bills."""

    model_config = {"extra": "forbid"}

    tenant_id: str = Field(min_length=1, description="The organisation's tenant id (GET /connections lists them).")
    mode: Literal["projects", "bills"] = Field(
        default="projects",
        description=(
            "projects: one Projects API time entry per line; bills: draft ACCPAY bills per contractor per period."
        ),
    )
    projects_base_url: str = Field(default="https://api.xero.com/projects.xro/2.0", description="Projects API root.")
    accounting_base_url: str = Field(default="https://api.xero.com/api.xro/2.0", description="Accounting API root.")
    access_token: SecretStr | None = Field(
        default=None, description="OAuth 2.0 access token (lives 30 minutes); normally supplied by the OAuth layer."
    )
    client_id: str | None = Field(
        default=None,
        description=(
            "Client id of your Xero app (developer.xero.com, My Apps). With the secret set, "
            "`hourbridge connect xero` links the organisation once and tokens refresh themselves."
        ),
    )
    client_secret: SecretStr | None = Field(default=None, description="Client secret of your Xero app.")
    authorize_url: str = Field(
        default="https://login.xero.com/identity/connect/authorize", description="Xero's OAuth 2.0 authorize endpoint."
    )
    token_url: str = Field(
        default="https://identity.xero.com/connect/token", description="Xero's OAuth 2.0 token endpoint."
    )
    connections_url: str = Field(
        default="https://api.xero.com/connections",
        description="Lists the organisations a connection may use (GET /connections).",
    )
    scopes: list[str] = Field(
        default_factory=lambda: [
            "offline_access",
            "projects",
            "accounting.transactions",
            "accounting.contacts.read",
            "accounting.settings.read",
        ],
        description=(
            "Scopes `hourbridge connect xero` asks for; offline_access is what makes Xero hand out a refresh token."
        ),
    )
    redirect_uri: str = Field(
        default="http://localhost:8765/callback",
        description=(
            "Redirect URI registered with the app, exactly. On localhost, `hourbridge connect` answers it itself; "
            "otherwise you paste the address the browser lands on."
        ),
    )
    rate_limit_per_minute: int = Field(default=60, ge=1, description="Calls per minute per tenant.")
    max_concurrency: int = Field(default=5, ge=1, le=5, description="Calls in flight at once per tenant.")
    daily_limit: int = Field(default=5000, ge=1, description="Calls per day per tenant.")
    tracking_categories: list[str] = Field(
        default_factory=list,
        max_length=2,
        description=(
            "Tracking category names for the cost center (Xero allows two per line). The first takes the "
            "code's cost center unless the code's refs name an option; the second needs the code's xero.tracking2."
        ),
    )
    organisation_timezone: str = Field(
        default="UTC",
        description="The organisation's time zone: a time entry is logged at noon of its work date there.",
    )
    invoices_per_call: int = Field(
        default=MAX_INVOICES_PER_CALL, ge=1, le=MAX_INVOICES_PER_CALL, description="Bills per create or update call."
    )
    due_days: int = Field(default=14, ge=0, le=365, description="Bill due date: days after the period end.")
    line_amount_types: Literal["Exclusive", "Inclusive", "NoTax"] = Field(
        default="Exclusive", description="Whether bill amounts include tax."
    )
    include_description: bool = Field(
        default=True, description="Copy the PM tool's description (our key marker is always sent)."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request before giving up.")

    @field_validator("scopes")
    @classmethod
    def _offline_access(cls, value: list[str]) -> list[str]:
        # Xero: without offline_access the token answer carries no refresh token, so the connection
        # would die with its first access token (30 minutes).
        if "offline_access" not in value:
            raise ValueError("add offline_access: without it Xero hands out no refresh token")
        return value

    @field_validator("organisation_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value, setting=f"{ENV_PREFIX}ORGANISATION_TIMEZONE")


class XeroSettings(XeroConfig):
    """The Xero sink's settings plus how the planner groups time into its lines."""

    granularity: Granularity | None = Field(
        default=None,
        description=GRANULARITY_HELP + " Default: day for projects; bills always use period (one line per code).",
    )

    @model_validator(mode="after")
    def _bills_per_period(self) -> XeroSettings:
        if self.mode == "bills" and self.granularity not in (None, "period"):
            raise ValueError(
                "bills hold one line per code per contractor and period: set HOURBRIDGE_XERO__GRANULARITY=period "
                "or leave it unset"
            )
        return self

    @property
    def line_granularity(self) -> Granularity:
        if self.granularity is not None:
            return self.granularity
        return "period" if self.mode == "bills" else "day"
