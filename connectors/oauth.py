"""OAuth 2.0 for the accounting sinks: authorization URL, callback, code exchange, refresh, Xero connections.

Provider-neutral and stateless: storing, encrypting and serialising refreshes is ``sync.admin.oauth``'s job.
Authlib builds and parses the protocol messages; the requests go through ``connectors._http`` so they
share the retry policy and the secret redaction of every other call.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from pydantic import SecretStr

from connectors._http import error_from_status, make_client, send
from connectors._redact import redact, register_secret
from connectors._retry import RetryPolicy, Sleep, call_with_retry
from connectors.errors import (
    ConfigError,
    InvalidGrantError,
    PayloadError,
    RequestBugError,
    TransientError,
    parse_retry_after,
)

log = structlog.get_logger("hourbridge.oauth")

Provider = Literal["quickbooks", "xero"]
PROVIDER_NAMES: tuple[Provider, ...] = ("quickbooks", "xero")


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What differs between the two vendors' OAuth servers (api-facts 4.4 and 5.1)."""

    name: Provider
    vendor: str
    env_prefix: str
    account_what: str
    account_setting: str
    access_seconds: int
    """Access-token life when the answer does not say (``expires_in`` is normally sent)."""
    refresh_seconds: int
    """Refresh-token life when the answer does not say: QuickBooks 100 days rolling, Xero 60 days unused."""
    callback_account: str | None
    """Query parameter of the callback that names the account (QuickBooks: ``realmId``)."""

    def setting(self, name: str) -> str:
        return f"{self.env_prefix}{name.upper()}"

    @property
    def reconnect(self) -> str:
        return f"reconnect with `hourbridge connect {self.name}`"


PROVIDERS: dict[Provider, ProviderFacts] = {
    "quickbooks": ProviderFacts(
        name="quickbooks",
        vendor="QuickBooks",
        env_prefix="HOURBRIDGE_QUICKBOOKS__",
        account_what="company",
        account_setting="HOURBRIDGE_QUICKBOOKS__REALM_ID",
        access_seconds=3600,
        refresh_seconds=100 * 86_400,
        callback_account="realmId",
    ),
    "xero": ProviderFacts(
        name="xero",
        vendor="Xero",
        env_prefix="HOURBRIDGE_XERO__",
        account_what="organisation",
        account_setting="HOURBRIDGE_XERO__TENANT_ID",
        access_seconds=1800,
        refresh_seconds=60 * 86_400,
        callback_account=None,
    ),
}


def provider_facts(name: str) -> ProviderFacts:
    """The facts of ``name`` (``quickbooks`` or ``xero``)."""
    for facts in PROVIDERS.values():
        if facts.name == name:
            return facts
    raise ValueError(f"unknown OAuth provider {name!r}: expected one of {', '.join(PROVIDER_NAMES)}")


class OAuthSettings(Protocol):
    """The OAuth fields QuickBooksConfig and XeroConfig both carry."""

    @property
    def client_id(self) -> str | None: ...
    @property
    def client_secret(self) -> SecretStr | None: ...
    @property
    def authorize_url(self) -> str: ...
    @property
    def token_url(self) -> str: ...
    @property
    def scopes(self) -> list[str]: ...
    @property
    def redirect_uri(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """One vendor app's OAuth client: who we are to the vendor, and where its endpoints are."""

    provider: ProviderFacts
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    redirect_uri: str
    connections_url: str | None = None
    timeout_seconds: float = 30.0
    max_attempts: int = 4


def oauth_app(provider: Provider, config: OAuthSettings | None) -> OAuthApp | None:
    """The app a sink's settings describe; None when no client id is set (the static access token is used)."""
    facts = PROVIDERS[provider]
    client_id = (config.client_id or "").strip() if config is not None else ""
    if config is None or not client_id:
        return None
    secret = config.client_secret.get_secret_value().strip() if config.client_secret is not None else ""
    if not secret:
        raise ConfigError(
            f"{facts.setting('client_id')} is set but {facts.setting('client_secret')} is not: set the app's "
            f"client secret too (or put it in the file '{facts.setting('client_secret').lower()}' in "
            "HOURBRIDGE_SECRETS_DIR)."
        )
    register_secret(secret)
    connections_url = getattr(config, "connections_url", None)
    return OAuthApp(
        provider=facts,
        client_id=client_id,
        client_secret=secret,
        authorize_url=config.authorize_url,
        token_url=config.token_url,
        scopes=tuple(config.scopes),
        redirect_uri=config.redirect_uri,
        connections_url=connections_url if isinstance(connections_url, str) else None,
        timeout_seconds=config.timeout_seconds,
    )


# --------------------------------------------------------------------------- results and errors


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A token endpoint's answer. ``repr`` shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    refresh_expires_in: int | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class Callback:
    """What the vendor sent the browser back with: the code and, for QuickBooks, the company (realm)."""

    code: str = field(repr=False)
    account: str | None


@dataclass(frozen=True, slots=True)
class XeroConnection:
    """One organisation a Xero connection may use (an element of GET /connections)."""

    tenant_id: str
    name: str
    tenant_type: str


def new_state() -> str:
    """An unguessable ``state`` that ties the callback to this authorization attempt."""
    return str(generate_token(32))


# --------------------------------------------------------------------------- the client


class OAuthClient:
    """Talks to one vendor's OAuth server. Stateless: every method is one exchange."""

    def __init__(
        self,
        app: OAuthApp,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.app = app
        self._transport = transport
        self._sleep = sleep
        self._policy = RetryPolicy(max_attempts=app.max_attempts)

    @property
    def provider(self) -> ProviderFacts:
        return self.app.provider

    def authorization_url(self, state: str, *, redirect_uri: str | None = None) -> str:
        """Where the admin's browser goes to allow access."""
        return str(
            prepare_grant_uri(
                self.app.authorize_url,
                client_id=self.app.client_id,
                response_type="code",
                redirect_uri=redirect_uri or self.app.redirect_uri,
                scope=list(self.app.scopes),
                state=state,
            )
        )

    def parse_callback(self, url: str, *, state: str) -> Callback:
        """The code from the address the vendor redirected to; refused when ``state`` does not match."""
        facts = self.provider
        params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        # The state is checked first: an answer that is not ours is not believed, error or not.
        if not hmac.compare_digest(params.get("state", "").encode(), state.encode()):
            raise ConfigError(
                f"the answer from {facts.vendor} does not belong to this connect attempt (its state does not "
                f"match): nothing was stored; run `hourbridge connect {facts.name}` again"
            )
        error = params.get("error")
        if error:
            if error == "access_denied":
                raise ConfigError(
                    f"access was not allowed in {facts.vendor}: run `hourbridge connect {facts.name}` again "
                    "and choose Connect/Allow"
                )
            detail = redact(params.get("error_description", ""))[:200]
            raise ConfigError(
                f"{facts.vendor} refused the authorization ({redact(error)[:60]}"
                + (f": {detail}" if detail else "")
                + f"): check {facts.setting('client_id')}, {facts.setting('redirect_uri')} and "
                f"{facts.setting('scopes')} against the app"
            )
        code = params.get("code", "")
        if not code:
            raise PayloadError(f"{facts.vendor} redirected back without an authorization code")
        register_secret(code)
        account = params.get(facts.callback_account) if facts.callback_account else None
        return Callback(code=code, account=account or None)

    def exchange_code(self, code: str, *, redirect_uri: str | None = None) -> TokenSet:
        """Trade the callback's code for the first token pair."""
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri or self.app.redirect_uri
        )
        return self._token_request(str(body), grant="authorization_code")

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new token pair for ``refresh_token``; both vendors rotate the refresh token."""
        register_secret(refresh_token)
        body = prepare_token_request("refresh_token", refresh_token=refresh_token)
        return self._token_request(str(body), grant="refresh_token")

    def connections(self, access_token: str) -> list[XeroConnection]:
        """Xero: the organisations this connection may use (GET /connections)."""
        facts = self.provider
        if self.app.connections_url is None:
            raise RequestBugError(f"{facts.vendor} has no connections endpoint")
        register_secret(access_token)
        with make_client("", timeout=self.app.timeout_seconds, transport=self._transport) as http:
            response = send(
                http,
                "GET",
                self.app.connections_url,
                vendor=facts.vendor,
                setting=facts.setting("connections_url"),
                policy=self._policy,
                sleep=self._sleep,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        try:
            rows = response.json()
        except ValueError:
            raise PayloadError(f"{facts.vendor} answered GET /connections with something that is not JSON") from None
        if not isinstance(rows, list):
            raise PayloadError(f"{facts.vendor} answered GET /connections with {type(rows).__name__}, not a list")
        found: list[XeroConnection] = []
        for row in rows:
            if isinstance(row, Mapping) and row.get("tenantId"):
                found.append(
                    XeroConnection(
                        tenant_id=str(row["tenantId"]),
                        name=str(row.get("tenantName") or ""),
                        tenant_type=str(row.get("tenantType") or ""),
                    )
                )
        return found

    # ------------------------------------------------------------------ plumbing

    def _token_request(self, body: str, *, grant: str) -> TokenSet:
        facts = self.provider
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        # Both vendors document HTTP Basic client authentication at the token endpoint.
        url, headers, body = ClientAuth(self.app.client_id, self.app.client_secret, "client_secret_basic").prepare(
            "POST", self.app.token_url, headers, body
        )

        def once() -> TokenSet:
            with make_client("", timeout=self.app.timeout_seconds, transport=self._transport) as http:
                try:
                    response = http.post(str(url), content=str(body).encode("ascii"), headers=dict(headers))
                except httpx.TimeoutException as exc:
                    raise TransientError(f"{facts.vendor}'s token endpoint timed out ({type(exc).__name__})") from None
                except httpx.TransportError as exc:
                    raise TransientError(
                        f"{facts.vendor}'s token endpoint could not be reached: {redact(str(exc))}"
                    ) from None
            return self._token_answer(response, grant=grant)

        # A retry after a lost answer re-sends the same refresh token; both vendors honour it for a
        # while (Xero for 30 minutes, QuickBooks as long as the old token lives), so this is safe.
        tokens = call_with_retry(once, policy=self._policy, sleep=self._sleep, what=f"{facts.vendor} token")
        log.info("oauth.token", provider=facts.name, grant=grant, expires_in=tokens.expires_in)
        return tokens

    def _token_answer(self, response: httpx.Response, *, grant: str) -> TokenSet:
        facts = self.provider
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if status == 429 or status >= 500:
            raise TransientError(
                f"{facts.vendor}'s token endpoint answered HTTP {status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=status,
            )
        if status >= 400 or (isinstance(payload, Mapping) and payload.get("error")):
            raise self._token_error(status, payload if isinstance(payload, Mapping) else {}, grant=grant)
        if not isinstance(payload, Mapping):
            raise PayloadError(f"{facts.vendor}'s token endpoint answered HTTP {status} without a JSON object")
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise PayloadError(f"{facts.vendor}'s token endpoint answered without an access token")
        token_type = str(payload.get("token_type") or "bearer")
        if token_type.lower() != "bearer":
            raise PayloadError(f"{facts.vendor} issued a {token_type!r} token; only bearer tokens are supported")
        register_secret(access)
        refresh = payload.get("refresh_token")
        refresh = refresh if isinstance(refresh, str) and refresh else None
        register_secret(refresh)
        scope = payload.get("scope")
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_in=_seconds(payload.get("expires_in"), facts.access_seconds),
            # QuickBooks sends the refresh token's remaining life; Xero does not (60 days unused).
            refresh_expires_in=_seconds(payload.get("x_refresh_token_expires_in"), facts.refresh_seconds),
            scope=" ".join(scope) if isinstance(scope, list) else (str(scope) if scope else None),
        )

    def _token_error(self, status: int, payload: Mapping[str, Any], *, grant: str) -> Exception:
        facts = self.provider
        code = str(payload.get("error") or f"HTTP {status}")
        detail = redact(str(payload.get("error_description") or ""))[:200]
        said = f"{redact(code)[:60]}" + (f": {detail}" if detail else "")
        if code == "invalid_grant":
            if grant == "authorization_code":
                return InvalidGrantError(
                    f"{facts.vendor} refused the authorization code ({said}); it lives a few minutes and works "
                    f"once: run `hourbridge connect {facts.name}` again"
                )
            return InvalidGrantError(
                f"{facts.vendor} refused the stored refresh token ({said}): the connection was revoked or "
                f"expired; {facts.reconnect}"
            )
        if code in ("invalid_client", "unauthorized_client") or status == 401:
            return ConfigError(
                f"{facts.vendor} refused the app's credentials ({said}): check {facts.setting('client_id')} and "
                f"{facts.setting('client_secret')}"
            )
        if code == "invalid_scope":
            return ConfigError(f"{facts.vendor} refused the scopes ({said}): check {facts.setting('scopes')}")
        if status in (403, 404):
            return error_from_status(status, vendor=facts.vendor, setting=facts.setting("token_url"), detail=said)
        return RequestBugError(f"{facts.vendor}'s token endpoint rejected the request ({said})")


def _seconds(value: Any, default: int) -> int:
    """A lifetime in seconds from a token answer (vendors send numbers, sometimes as strings)."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
