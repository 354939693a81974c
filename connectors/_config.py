"""What every connector's settings share: a token that is really set, its bearer auth, a known time zone."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, SecretStr, field_validator

from connectors._redact import register_secret
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


def known_timezone(field: str, *, setting: str) -> Any:
    """A model's validator of ``field`` (a time zone name), naming ``setting`` when the zone is unknown."""

    def check(cls: type, value: str) -> str:
        return check_timezone(value, setting=setting)

    return field_validator(field)(classmethod(check))


# The request settings every API connector has, with the same bounds and words.
RequestTimeout = Annotated[float, Field(gt=0, description="Per-request timeout.")]
MaxAttempts = Annotated[int, Field(ge=1, le=20, description="Attempts per request before giving up.")]
# A tracker files an entry under the calendar day its start falls on in this zone.
FilingZone = Annotated[
    str, Field(description="IANA time zone whose calendar day an entry is filed under (from its start instant).")
]


TokenSource = str | Callable[[], str]
"""An access token, or a callable that returns the current one (an OAuth layer that refreshes it)."""


def resolve_token_source(
    configured: SecretStr | None, given: TokenSource | None, *, vendor: str, setting: str, what: str
) -> TokenSource:
    """The token source a client uses: the one handed in, else the configured token (which must be set)."""
    if given is not None:
        if isinstance(given, str):
            register_secret(given)
        return given
    return require_token(configured, vendor=vendor, setting=setting, what=what)


class BearerAuth(httpx.Auth):
    """Asks the token source on every request, so a refreshed token is picked up at once.

    When the source can refresh (it has ``refresh_rejected``, as the OAuth layer's does), a 401 is
    answered once with a fresh token and the same request: the vendor refused it without acting on it.
    """

    # The body must be readable twice for that one repeat after a 401.
    requires_request_body = True

    def __init__(self, token: TokenSource, *, vendor: str, setting: str, reconnect: str) -> None:
        self._token = token
        self._missing = f"{vendor} has no access token: set {setting} or {reconnect}."

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self._token() if callable(self._token) else self._token
        if not value:
            raise ConfigError(self._missing)
        register_secret(value)
        request.headers["Authorization"] = f"Bearer {value}"
        response = yield request
        refresh: Callable[[str], str] | None = getattr(self._token, "refresh_rejected", None)
        if response.status_code != 401 or refresh is None:
            return
        fresh = refresh(value)
        if not fresh or fresh == value:
            return
        register_secret(fresh)
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request
