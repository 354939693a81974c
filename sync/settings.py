"""Every setting of hourbridge, read from HOURBRIDGE_ environment variables and secret files."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connectors.asana.config import AsanaConfig
from connectors.clickup.config import ClickUpConfig
from connectors.errors import ConfigError
from connectors.monday.config import MondayConfig
from connectors.quickbooks.config import QuickBooksConfig
from connectors.xero.config import XeroConfig

ENV_PREFIX = "HOURBRIDGE_"
SECRETS_DIR_ENV = "HOURBRIDGE_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
ReportFormat = Literal["csv", "xlsx", "json"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("csv", "xlsx", "json")
SOURCE_NAMES = ("asana", "clickup", "monday")
SINK_NAMES = ("quickbooks", "xero")
Granularity = Literal["entry", "day", "period"]
Gate = Literal["approved", "settled", "none"]

_GRANULARITY_HELP = (
    "Lines delivered: entry = one per time entry; day = one per person, code and day; "
    "period = one per person, code and month."
)


class QuickBooksSettings(QuickBooksConfig):
    """The QuickBooks sink's settings plus how the planner groups time into its lines."""

    granularity: Granularity = Field(default="day", description=_GRANULARITY_HELP)


class XeroSettings(XeroConfig):
    """The Xero sink's settings plus how the planner groups time into its lines."""

    granularity: Granularity | None = Field(
        default=None,
        description=_GRANULARITY_HELP + " Default: day for projects; bills always use period (one line per code).",
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


class DeliverySettings(BaseModel):
    """What may be delivered to accounting: approval gates per source and the settle delay."""

    model_config = {"extra": "forbid"}

    asana_gate: Gate = Field(
        default="approved",
        description="approved = only entries whose timesheet is APPROVED; settled = after the settle delay; none.",
    )
    clickup_gate: Gate = Field(default="settled", description="Gate of ClickUp time (approved needs approval data).")
    monday_gate: Gate = Field(default="settled", description="Gate of monday.com time (monday has no approvals).")
    settle_hours: int = Field(
        default=48,
        ge=0,
        le=24 * 90,
        description="Settled = the work date ended at least this many hours ago (UTC), so late edits land first.",
    )
    max_ops_per_run: int = Field(
        default=5000, ge=1, description="Ops one run sends per sink; the rest follow on the next run."
    )

    def gate(self, source: str) -> Gate:
        gate: Gate = getattr(self, f"{source}_gate", "settled")
        return gate


class Settings(BaseSettings):
    """hourbridge's configuration. Nested settings use ``__``: ``HOURBRIDGE_ASANA__TOKEN``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        secrets_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    database_url: str = Field(
        default="sqlite:///hourbridge.db",
        description="SQLAlchemy URL of the state store (SQLite file by default; postgresql+psycopg://… to scale out).",
    )
    mappings_file: Path = Field(default=Path("mappings.yaml"), description="The mapping document every run applies.")
    output_dir: Path = Field(default=Path("out"), description="Folder the period reports are written to.")
    report_formats: list[ReportFormat] = Field(
        default_factory=lambda: list(REPORT_FORMATS), description="Report formats to write."
    )
    lookback_days: int = Field(
        default=35, ge=0, le=400, description="Days before the cursor re-scanned on every run (edits, deletions)."
    )
    start_date: date | None = Field(
        default=None, description="Earliest work date pulled on the first run (default: today minus lookback_days)."
    )
    drop_descriptions: bool = Field(default=False, description="Never store or report entry descriptions (privacy).")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON lines otherwise."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    asana: AsanaConfig | None = Field(
        default=None, description="Asana source; enabled when any HOURBRIDGE_ASANA__ setting is present."
    )
    clickup: ClickUpConfig | None = Field(
        default=None, description="ClickUp source; enabled when any HOURBRIDGE_CLICKUP__ setting is present."
    )
    monday: MondayConfig | None = Field(
        default=None, description="monday.com source; enabled when any HOURBRIDGE_MONDAY__ setting is present."
    )
    # --- accounting delivery (sync/delivery/plan.py, sync/delivery/outbox.py, sync/delivery/periods.py) ---
    quickbooks: QuickBooksSettings | None = Field(
        default=None, description="QuickBooks Online sink; enabled when any HOURBRIDGE_QUICKBOOKS__ setting is present."
    )
    xero: XeroSettings | None = Field(
        default=None, description="Xero sink; enabled when any HOURBRIDGE_XERO__ setting is present."
    )
    delivery: DeliverySettings = Field(default_factory=DeliverySettings, description="What may be delivered.")
    statements: bool = Field(
        default=True, description="Write a statement per contractor (their own hours only) beside the period reports."
    )
    token_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts stored OAuth tokens (`hourbridge connect` prints a new one when unset).",
    )
    # --- running on a schedule and at scale (sync/ops/schedule.py, sync/ops/worker.py, sync/ops/health.py) ---
    schedule: str = Field(
        default="*/30 * * * *",
        description="Cron expression (UTC) of `hourbridge schedule` and of the worker's periodic pulls.",
    )
    health_max_intervals: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="`hourbridge health` fails when a source's last success is older than this many intervals.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the Prometheus /metrics of `worker` and `schedule` (off when unset; 9464 is usual).",
    )
    worker_retry_attempts: int = Field(
        default=5, ge=0, le=50, description="Retries of a failed worker job (transient API or database errors)."
    )
    worker_retry_seconds: int = Field(
        default=60, ge=0, le=86_400, description="Wait before a job's first retry; each further retry waits this more."
    )
    worker_stalled_seconds: int = Field(
        default=60,
        ge=2,
        le=86_400,
        description="A job whose worker sent no heartbeat for this long (killed, lost) is retried by another worker.",
    )
    worker_shutdown_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long a running job may finish its scope before it stops after the current window.",
    )
    source_factory: str | None = Field(
        default=None,
        description="module:function returning the sources to pull instead of the configured tools (tests, plugins).",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter  # procrastinate's own cron parser, so both schedulers read cron alike

        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r} (e.g. '*/30 * * * *')")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secret files (Docker/Kubernetes secrets) are named like the variables, e.g.
        # /run/secrets/hourbridge_asana__token, and nest with the same "__".
        return (init_settings, env_settings, dotenv_settings, NestedSecretsSettingsSource(file_secret_settings))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def enabled_sources(self) -> list[str]:
        return [name for name in SOURCE_NAMES if getattr(self, name) is not None]

    def enabled_sinks(self) -> list[str]:
        return [name for name in SINK_NAMES if getattr(self, name) is not None]


def load_settings(**overrides: Any) -> Settings:
    """Read settings; turn a validation failure into a ConfigError that names the variable to fix."""
    secrets_dir = Path(os.environ.get(SECRETS_DIR_ENV, str(DEFAULT_SECRETS_DIR)))
    try:
        if secrets_dir.is_dir():
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = [str(p) for p in error["loc"] if not isinstance(p, int)]
            env = ENV_PREFIX + "__".join(p.upper() for p in path) if path else ENV_PREFIX
            problems.append(f"{env}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for docs and `hourbridge config`."""
    rows: list[tuple[str, str, str]] = []

    def walk(prefix: str, model: Any) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            nested = getattr(annotation, "__args__", None)
            sub = next((a for a in nested or () if hasattr(a, "model_fields")), None)
            if hasattr(annotation, "model_fields"):
                sub = annotation
            env = f"{prefix}{name.upper()}"
            if sub is not None:
                walk(env + "__", sub)
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((env, "" if default is None else str(default), field.description or ""))

    walk(ENV_PREFIX, Settings)
    return rows
