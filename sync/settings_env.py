"""What the HOURBRIDGE_ environment holds: unknown variables, malformed values, and the settings in effect."""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url

from connectors.base import sink_plugins, source_plugins
from sync.settings import ENV_PREFIX, SECRETS_DIR_ENV, Settings, settings_model

__all__ = [
    "EffectiveSetting",
    "SettingField",
    "UnknownVariable",
    "effective_settings",
    "malformed_value",
    "setting_fields",
    "unknown_variables",
    "validation_problems",
]

# Variables read outside the settings model: the secrets folder, and the test suite's own
# (HOURBRIDGE_TEST_POSTGRES_URL and friends), which must not be reported as typos of a setting.
EXTRA_VARIABLES = frozenset({SECRETS_DIR_ENV})
RESERVED_PREFIXES = (f"{ENV_PREFIX}TEST_",)
# Settings shown masked even when typed as plain strings: names ending in these words (access_token,
# client_secret), but not token_url, which only names an endpoint.
_SECRET_WORDS = ("token", "secret", "password")


@dataclass(frozen=True, slots=True)
class SettingField:
    """One setting: its variable, the pydantic field behind it, and the section it belongs to."""

    env: str
    name: str
    field: FieldInfo
    section: str | None

    @property
    def complex(self) -> bool:
        """Lists, dicts and sections: pydantic-settings reads these as JSON."""
        return _json_kind(self.field.annotation) is not None

    @property
    def secret(self) -> bool:
        return _is_secret(self.name, self.field.annotation)


def _args(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in _args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _json_kind(annotation: Any) -> str | None:
    inner = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if origin in (list, set, frozenset, tuple):
        return "list"
    if origin is dict or _model_of(inner) is not None:
        return "object"
    return None


def _is_secret(name: str, annotation: Any) -> bool:
    inner = _unwrap_optional(annotation)
    return inner is SecretStr or name.lower().rsplit("_", 1)[-1] in _SECRET_WORDS


def setting_fields() -> list[SettingField]:
    """Every setting the registry-built model has, sections included (with ``section`` their own name)."""
    found: list[SettingField] = []

    def walk(prefix: str, model: type[BaseModel], section: str | None) -> None:
        for name, field in model.model_fields.items():
            env = f"{prefix}{name.upper()}"
            found.append(SettingField(env, name, field, section))
            sub = _model_of(field.annotation)
            if sub is not None:
                walk(env + "__", sub, section or name)

    walk(ENV_PREFIX, settings_model(), None)
    return found


# --------------------------------------------------------------------------- unknown variables


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    """A HOURBRIDGE_ variable (or secret file) no setting reads, and the setting it most likely meant."""

    name: str
    suggestion: str | None
    origin: str  # "environment" or "secret file"

    def message(self) -> str:
        what = self.name if self.origin == "environment" else f"the secret file {self.name.lower()}"
        hint = f": did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{what} is not a setting of hourbridge and is ignored{hint} (`hourbridge config` lists every setting)"


def _known() -> tuple[frozenset[str], tuple[str, ...]]:
    """Exact variable names, and prefixes under which any name is valid (dict settings take keys)."""
    fields = setting_fields()
    exact = frozenset({f.env for f in fields} | EXTRA_VARIABLES)
    open_prefixes = tuple(
        f.env + "__" for f in fields if typing.get_origin(_unwrap_optional(f.field.annotation)) is dict
    )
    return exact, open_prefixes + RESERVED_PREFIXES


def _secret_files(secrets_dir: Path | None) -> list[Path]:
    """The HOURBRIDGE_ files of the secrets folder (none when it is absent or unreadable)."""
    if secrets_dir is None:
        return []
    try:
        return [p for p in sorted(secrets_dir.iterdir()) if p.is_file() and p.name.upper().startswith(ENV_PREFIX)]
    except OSError:
        return []


def unknown_variables(environ: Mapping[str, str], secrets_dir: Path | None = None) -> list[UnknownVariable]:
    """HOURBRIDGE_ variables and secret files that no setting reads, each with its closest setting."""
    exact, prefixes = _known()
    leaves = sorted(exact)
    candidates: list[tuple[str, str]] = [
        (k.upper(), "environment") for k in environ if k.upper().startswith(ENV_PREFIX)
    ]
    candidates += [(path.name.upper(), "secret file") for path in _secret_files(secrets_dir)]
    unknown: list[UnknownVariable] = []
    for name, origin in sorted(set(candidates)):
        if name in exact or name.startswith(prefixes):
            continue
        close = difflib.get_close_matches(name, leaves, n=1, cutoff=0.8)
        unknown.append(UnknownVariable(name, close[0] if close else None, origin))
    return unknown


# --------------------------------------------------------------------------- malformed values


def _example(setting: SettingField) -> str:
    """A value of the right form for a list or section setting."""
    inner = _unwrap_optional(setting.field.annotation)
    if _json_kind(inner) == "object":
        if setting.section is None and _model_of(inner) is not None:
            first = next(iter(_model_of(inner).model_fields), "setting")  # type: ignore[union-attr]
            return json.dumps({first: "…"})
        return '{"key": "value"}'
    item = _args(inner)[0] if _args(inner) else str
    literals = _args(item) if typing.get_origin(item) is typing.Literal else ()
    if literals:
        return json.dumps([str(v) for v in literals[:2]])
    if item is int:
        return "[1, 2]"
    if setting.name.endswith("_ids") or setting.name == "workspaces":
        return '["1200000000000001", "1200000000000002"]'
    return '["first", "second"]'


def right_form(setting: SettingField) -> str:
    """How to write a list or section setting, as an admin would type it in a shell or env file."""
    kind = _json_kind(setting.field.annotation)
    quoted = " of quoted strings" if kind == "list" and "[1, 2]" not in _example(setting) else ""
    what = "a JSON list" + quoted if kind == "list" else "a JSON object"
    return f"{what}, e.g. {setting.env}='{_example(setting)}'"


def _by_env() -> dict[str, SettingField]:
    return {f.env: f for f in setting_fields()}


def malformed_value(exc: Exception, environ: Mapping[str, str], secrets_dir: Path | None) -> str:
    """The admin-readable message of a value pydantic-settings could not parse (it names only the section)."""
    fields = _by_env()
    values: list[tuple[str, str, str]] = [(k.upper(), v, "") for k, v in environ.items()]
    for path in _secret_files(secrets_dir):
        try:
            values.append((path.name.upper(), path.read_text(encoding="utf-8").strip(), f" (secret file {path})"))
        except (OSError, UnicodeDecodeError):  # unreadable: pydantic-settings reports that one itself
            continue
    for env, raw, where in sorted(values):
        setting = fields.get(env)
        if setting is None or not setting.complex:
            continue
        try:
            json.loads(raw)
        except ValueError as error:
            reason = getattr(error, "msg", str(error))
            return f"{env}{where} is not valid JSON ({reason}): write it as {right_form(setting)}"
    example = f"{ENV_PREFIX}ASANA__WORKSPACES='[\"1200000000000001\"]'"
    return f"invalid settings: {exc} (lists and sections are written as JSON, e.g. {example})"


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per variable pydantic refused, with the right form for lists and sections."""
    fields = _by_env()
    problems: dict[str, str] = {}
    for error in exc.errors():
        path = [str(p) for p in error["loc"] if not isinstance(p, int)]
        env = ENV_PREFIX + "__".join(p.upper() for p in path) if path else ENV_PREFIX
        setting = fields.get(env)
        problem = f"{env}: {error['msg']}"
        if setting is not None and setting.complex and error["type"] in _FORM_ERRORS:
            problem += f"; write it as {right_form(setting)}"
        problems.setdefault(env, problem)
    return list(problems.values())


# Validation failures that mean "wrong shape" (a number where a quoted string belongs, a bare value
# where a list belongs), as opposed to a value that is well formed but out of range.
_FORM_ERRORS = frozenset(
    {"string_type", "list_type", "dict_type", "model_type", "int_type", "int_parsing", "literal_error"}
)


# --------------------------------------------------------------------------- the settings in effect


@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    """One setting's value in effect (masked when secret) and where it came from."""

    env: str
    value: str
    origin: str  # environment | secret file | default | required


def _origin(env: str, environ: Mapping[str, str], secrets_dir: Path | None) -> str:
    upper = {k.upper() for k in environ}
    parts = env.split("__")
    # A section written as one JSON variable (HOURBRIDGE_ASANA='{...}') sets every setting in it.
    if any("__".join(parts[:n]) in upper for n in range(1, len(parts) + 1)):
        return "environment"
    if secrets_dir is not None and any((secrets_dir / name).is_file() for name in (env.lower(), env)):
        return "secret file"
    return "default"


def _shown(setting: SettingField, value: Any) -> str:
    if value is None:
        return "(not set)"
    if setting.secret:
        return "***"
    if setting.env == f"{ENV_PREFIX}DATABASE_URL":
        try:
            return make_url(str(value)).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL is reported by the store; show nothing of it here
            return "(not a database URL)"
    if isinstance(value, list | tuple):
        return json.dumps([str(v) for v in value])
    return str(value)


def _leaves(settings: BaseModel, environ: Mapping[str, str], secrets_dir: Path | None) -> Iterator[EffectiveSetting]:
    for setting in setting_fields():
        if _model_of(setting.field.annotation) is not None:
            continue
        holder: Any = settings
        for part in setting.env[len(ENV_PREFIX) :].lower().split("__")[:-1]:
            holder = getattr(holder, part, None)
        if holder is None:  # a section that is off: none of its settings is in effect
            continue
        origin = _origin(setting.env, environ, secrets_dir)
        yield EffectiveSetting(setting.env, _shown(setting, getattr(holder, setting.name)), origin)


def effective_settings(
    settings: Settings, environ: Mapping[str, str], secrets_dir: Path | None
) -> tuple[list[EffectiveSetting], dict[str, list[str]]]:
    """The values in effect (sections that are off left out) and which sources and sinks are on and off."""
    on_off = {
        "sources on": settings.enabled_sources(),
        "sources off": [p.name for p in source_plugins() if p.name not in settings.enabled_sources()],
        "sinks on": settings.enabled_sinks(),
        "sinks off": [p.name for p in sink_plugins() if p.name not in settings.enabled_sinks()],
    }
    return list(_leaves(settings, environ, secrets_dir)), on_off
