"""Checks every connector's settings share: a token that is really set, and a known time zone."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr

from connectors._http import register_secret
from connectors.errors import ConfigError


def require_token(token: SecretStr | None, *, vendor: str, setting: str, what: str) -> str:
    """The token's value (registered for redaction), or a ConfigError naming the variable and the file."""
    value = token.get_secret_value().strip() if token is not None else ""
    if not value:
        raise ConfigError(
            f"{vendor} is enabled but no token is set: set {setting} (or put it in the file "
            f"'{setting.lower()}' in HOURBRIDGE_SECRETS_DIR) to {what}."
        )
    register_secret(value)
    return value


def check_timezone(value: str, *, setting: str) -> str:
    """``value`` when it names an IANA time zone; a message naming the setting otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: set {setting} to an IANA name such as 'Europe/Berlin'"
        ) from None
    return value
