"""Every setting of hourbridge, read from HOURBRIDGE_ environment variables and secret files."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from connectors.base import (
    Gate,
    SinkPlugin,
    SourcePlugin,
    sink_plugins,
    source_plugins,
    vocabulary,
)
from connectors.delivery import Granularity
from connectors.errors import ConfigError
from connectors.quickbooks.config import QuickBooksSettings
from connectors.xero.config import XeroSettings
from mappings.schema import use_vocabulary

# The mapping documents sync reads name the registered sources and their container kinds.
use_vocabulary(vocabulary)

ENV_PREFIX = "HOURBRIDGE_"
SECRETS_DIR_ENV = "HOURBRIDGE_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
ReportFormat = Literal["csv", "xlsx", "json"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("csv", "xlsx", "json")
# Owner reads and writes, the group (a backup or BI account) reads, others nothing: the files hold billing data.
DEFAULT_FILE_MODE = "0640"
DEFAULT_FILE_PERMISSIONS = int(DEFAULT_FILE_MODE, 8)

__all__ = [
    "DeliverySettings",
    "Gate",
    "Granularity",
    "QuickBooksSettings",
    "Settings",
    "XeroSettings",
    "describe_settings",
    "load_settings",
    "settings_model",
    "settings_table",
]

_Self = TypeVar("_Self")


class DeliverySettings(BaseModel):
    """What may be delivered to accounting: approval gates per source and the settle delay.

    The gates are fields ``<source>_gate`` (``HOURBRIDGE_DELIVERY__<SOURCE>_GATE``), one per
    registered source, added by ``delivery_model()``; constructing this class builds that model.
    """

    model_config = {"extra": "forbid"}

    settle_hours: int = Field(
        default=48,
        ge=0,
        le=24 * 90,
        description="Settled = the work date ended at least this many hours ago (UTC), so late edits land first.",
    )
    max_ops_per_run: int = Field(
        default=5000, ge=1, description="Ops one run sends per sink; the rest follow on the next run."
    )

    def __new__(cls: type[_Self], *args: Any, **kwargs: Any) -> _Self:
        # Built from the registry, so `DeliverySettings(asana_gate="none")` keeps working.
        target: type[Any] = delivery_model() if cls is DeliverySettings else cls
        return cast(_Self, object.__new__(target))

    @classmethod
    def with_gates(cls, *, settle_hours: int = 48, **gates: Gate) -> DeliverySettings:
        """Delivery settings with the gates of the named sources: ``with_gates(asana="none")``."""
        values: dict[str, Any] = {f"{source}_gate": gate for source, gate in gates.items()}
        return delivery_model()(settle_hours=settle_hours, **values)

    def gate(self, source: str) -> Gate:
        gate: Gate = getattr(self, f"{source}_gate", "settled")
        return gate


class InvoiceSettings(BaseModel):
    """Tolerances of the invoice check (``HOURBRIDGE_INVOICES__...``): how far a bill may be from the ledger.

    A difference is inside a tolerance when it is at most the minutes OR at most the percent of the
    logged hours, whichever allows more (so small totals get the minutes, large ones the percent).
    """

    model_config = {"extra": "forbid"}

    code_minutes: int = Field(
        default=30, ge=0, description="Minutes billed hours may differ from logged hours per project code."
    )
    code_percent: Decimal = Field(
        default=Decimal("5"), ge=0, le=100, description="Percent of the logged hours per project code, likewise."
    )
    bill_minutes: int = Field(
        default=60,
        ge=0,
        description="Minutes a contractor's bills for a period may differ from all their logged hours.",
    )
    bill_percent: Decimal = Field(
        default=Decimal("2"), ge=0, le=100, description="Percent of all their logged hours in the period, likewise."
    )
    rate_percent: Decimal = Field(
        default=Decimal("0"), ge=0, le=100, description="Percent a billed unit price may differ from the agreed rate."
    )
    due_days: int = Field(
        default=15, ge=0, le=366, description="Days after a period ends before logged time without a bill is a finding."
    )


class ConsoleSettings(BaseModel):
    """`hourbridge console`: who may sign in and for how long (HOURBRIDGE_CONSOLE__…)."""

    model_config = {"extra": "forbid"}

    session_minutes: int = Field(
        default=480, ge=5, le=7 * 24 * 60, description="A console sign-in ends after this many minutes."
    )
    idle_minutes: int = Field(
        default=30,
        ge=5,
        le=7 * 24 * 60,
        description="A console sign-in also ends after this many minutes without a request.",
    )
    sign_in_limit: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed token sign-ins per client address before it gets HTTP 429 (until its window ends).",
    )
    sign_in_window_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="Minutes from an address's first failed sign-in over which its failures are counted.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose user header is believed; none = header off.",
    )
    proxy_header: str = Field(
        default="X-Forwarded-User", description="The header a trusted reverse proxy names the signed-in user in."
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL (its /.well-known/openid-configuration is read); unset = OIDC off.",
    )
    oidc_client_id: str | None = Field(default=None, description="OpenID Connect client id of the console.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="OpenID Connect client secret.")
    public_url: str | None = Field(
        default=None,
        description="The console's address as browsers reach it (OIDC redirect); default: the request's own.",
    )
    admins: list[str] = Field(
        default_factory=list, description="OIDC or proxy identities (e-mail or user name) who may change things."
    )
    viewers: list[str] = Field(
        default_factory=list,
        description='OIDC or proxy identities who may look but not change ("*" = everyone the proxy or IdP admits).',
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r} (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return value


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
    delivery: DeliverySettings = Field(default_factory=DeliverySettings, description="What may be delivered.")
    invoices: InvoiceSettings = Field(
        default_factory=InvoiceSettings, description="Tolerances of `hourbridge invoices check`."
    )
    statements: bool = Field(
        default=True, description="Write a statement per contractor (their own hours only) beside the period reports."
    )
    file_mode: str = Field(
        default=DEFAULT_FILE_MODE,
        description="Permissions (octal) of the SQLite database, its lock files, reports, statements and the files "
        "sink's accounting files, applied exactly (the umask does not narrow them); the owner keeps read and write, "
        "execute bits are refused.",
    )
    csv_bom: bool = Field(
        default=True,
        description="Start CSV reports, statements and the files sink's accounting files with a UTF-8 byte order "
        "mark, so Excel reads accents right.",
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
    health_delivery_minutes: int = Field(
        default=120,
        ge=1,
        le=10_080,
        description="`hourbridge health` fails while an accounting write has stayed refused or without an answer "
        "for longer than this many minutes.",
    )
    run_heartbeat_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="How often a running sync or worker job records that it is alive.",
    )
    run_abandoned_heartbeats: int = Field(
        default=5,
        ge=2,
        le=1000,
        description="A run with no heartbeat for this many intervals was killed; the next run records it as abandoned.",
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
    # --- contractors' own trackers and timesheets as files (sync/run/imports.py) ---
    inbox_dir: Path | None = Field(
        default=None,
        description="Folder whose files (Clockify/Toggl/Harvest exports, timesheets) sync, schedule and the worker "
        "import, then move to processed/ or rejected/ (with <file>.errors.txt).",
    )
    inbox_settle_seconds: int = Field(
        default=30,
        ge=0,
        le=86_400,
        description="A file in the inbox modified less than this many seconds ago may still be copied; it waits.",
    )
    import_timezone: str | None = Field(
        default=None,
        description="Time zone of imported files' start/end times (e.g. Europe/Berlin); files with times need it.",
    )
    import_date_order: Literal["mdy", "dmy"] | None = Field(
        default=None, description="Date order of imported files whose dates all read both ways (04/05/2024)."
    )
    import_decimal_mark: Literal["comma", "dot"] | None = Field(
        default=None, description="Decimal mark of imported files whose numbers all read both ways (1,000)."
    )
    console: ConsoleSettings = Field(default_factory=ConsoleSettings, description="The browser console.")
    source_factory: str | None = Field(
        default=None,
        description="module:function returning the sources to pull instead of the configured tools (tests, plugins).",
    )

    @field_validator("import_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is None or not value.strip():
            return None
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin") from None
        return value.strip()

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

    @field_validator("file_mode", mode="before")
    @classmethod
    def _octal_mode(cls, value: Any) -> str:
        text = oct(value)[2:] if isinstance(value, int) and not isinstance(value, bool) else str(value).strip()
        digits = text.removeprefix("0o").removeprefix("0") or ("0" if text else "")
        if not digits.isdigit() or any(d in "89" for d in digits) or len(digits) > 3:
            raise ValueError(f"not an octal file mode: {value!r} (e.g. 0640, or 0600 for the owner only)")
        mode = int(digits, 8)
        if mode & 0o600 != 0o600:
            raise ValueError(f"{value!r} takes read or write from the owner, and hourbridge must rewrite its files")
        if mode & 0o111:
            raise ValueError(f"{value!r} has execute bits; data files are not programs (e.g. 0640)")
        return f"0{mode:03o}"

    @property
    def file_permissions(self) -> int:
        """``file_mode`` as permission bits (0o640)."""
        return int(self.file_mode, 8)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def __new__(cls: type[_Self], *args: Any, **kwargs: Any) -> _Self:
        # The sections of the registered sources and sinks are fields of a model built from the
        # registry; constructing Settings builds that model, so `Settings(asana=...)` keeps working.
        target: type[Any] = settings_model() if cls is Settings else cls
        return cast(_Self, object.__new__(target))

    def source_config(self, name: str) -> BaseModel | None:
        """The settings section of source ``name`` (None when it is not configured)."""
        config: BaseModel | None = getattr(self, name, None)
        return config

    def sink_config(self, name: str) -> BaseModel | None:
        """The settings section of sink ``name`` (None when it is not configured)."""
        config: BaseModel | None = getattr(self, name, None)
        return config

    @property
    def run_abandoned_after(self) -> timedelta:
        """No heartbeat for this long: the run's process is gone (killed, machine lost)."""
        return timedelta(seconds=self.run_heartbeat_seconds * self.run_abandoned_heartbeats)

    def enabled_sources(self) -> list[str]:
        return [plugin.name for plugin in source_plugins() if self.source_config(plugin.name) is not None]

    def enabled_sinks(self) -> list[str]:
        return [plugin.name for plugin in sink_plugins() if self.sink_config(plugin.name) is not None]


def _source_field(plugin: SourcePlugin) -> tuple[Any, Any]:
    env = f"{ENV_PREFIX}{plugin.name.upper()}__"
    description = f"{plugin.label} source; enabled when any {env} setting is present."
    return (plugin.config | None, Field(default=None, description=description))


def _sink_field(plugin: SinkPlugin) -> tuple[Any, Any]:
    env = f"{ENV_PREFIX}{plugin.name.upper()}__"
    description = f"{plugin.label} sink; enabled when any {env} setting is present."
    return (plugin.config | None, Field(default=None, description=description))


_MODELS: dict[tuple[Any, ...], type[Any]] = {}


def delivery_model() -> type[DeliverySettings]:
    """DeliverySettings with one ``<source>_gate`` per registered source, defaults from the registry."""
    plugins = source_plugins()
    key = ("delivery", *((p.name, p.gate, p.gate_help) for p in plugins))
    model = _MODELS.get(key)
    if model is None:
        fields: dict[str, Any] = {
            f"{p.name}_gate": (Gate, Field(default=p.gate, description=p.gate_help or f"Gate of {p.label} time."))
            for p in plugins
        }
        model = create_model("DeliverySettings", __base__=DeliverySettings, __module__=__name__, **fields)
        _MODELS[key] = model
    return cast(type[DeliverySettings], model)


def settings_model() -> type[Settings]:
    """Settings with one section per registered source and sink: ``HOURBRIDGE_<NAME>__...``."""
    sources, sinks = source_plugins(), sink_plugins()
    key = ("settings", *((p.name, p.config, p.label) for p in sources), *((p.name, p.config, p.label) for p in sinks))
    model = _MODELS.get(key)
    if model is None:
        taken = set(Settings.model_fields)
        fields: dict[str, Any] = {}
        for plugin in sources:
            fields[plugin.name] = _source_field(plugin)
        for sink in sinks:
            fields[sink.name] = _sink_field(sink)
        clash = sorted(taken & set(fields))
        if clash:
            raise ValueError(f"plug-in names {clash} collide with core settings; register them under another name")
        delivery = delivery_model()
        fields["delivery"] = (delivery, Field(default_factory=delivery, description="What may be delivered."))
        model = create_model("Settings", __base__=Settings, __module__=__name__, **fields)
        _MODELS[key] = model
    return cast(type[Settings], model)


def load_settings(**overrides: Any) -> Settings:
    """Read settings; turn a validation failure into a ConfigError that names the variable to fix."""
    secrets_dir = Path(os.environ.get(SECRETS_DIR_ENV, str(DEFAULT_SECRETS_DIR)))
    try:
        if secrets_dir.is_dir():
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        from sync.settings_env import validation_problems

        raise ConfigError("invalid settings: " + "; ".join(validation_problems(exc))) from None
    except SettingsError as exc:
        # pydantic-settings could not even parse a value (a list or section that is not JSON); it
        # names only the section, so find the variable and say how to write it.
        from sync.settings_env import malformed_value

        raise ConfigError(malformed_value(exc, os.environ, secrets_dir)) from None


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
            if field.is_required():  # no default to show: say so rather than print pydantic's sentinel
                rows.append((env, "", "Required when this section is used. " + (field.description or "")))
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((env, "" if default is None else str(default), field.description or ""))

    walk(ENV_PREFIX, settings_model())
    return rows


SECRETS_DIR_ROW = (
    f"| `{SECRETS_DIR_ENV}` | `{DEFAULT_SECRETS_DIR}` | Folder of secret files (read only if it exists). |"
)


def settings_table() -> str:
    """The README's settings table (Markdown rows after its header), generated from ``describe_settings``."""
    rows = [SECRETS_DIR_ROW]
    for env, default, description in describe_settings():
        shown = f"`{default}`" if default else "—"
        rows.append(f"| `{env}` | {shown} | {description} |")
    return "\n".join(rows) + "\n"
