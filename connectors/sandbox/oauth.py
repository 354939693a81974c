"""A local emulator of the QuickBooks and Xero OAuth 2.0 servers: authorize, rotating refresh tokens, connections.

One ``OAuthSandbox`` per vendor app. It answers the authorize endpoint at once (as if the admin had
clicked Allow), issues rotating refresh tokens with the vendor's grace for a lost answer, expires
access tokens on an injected clock, and can drop the answer of a refresh it has already rotated
(``drop_next_refresh``), which is what a crash mid-refresh looks like from the client. The vendor
emulators take it as ``oauth=`` and then accept the access tokens it issued (``issued_by``);
the Xero emulator also serves ``GET /connections`` from it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from connectors.sandbox._http import DropConnection, Request, Response, json_response
from connectors.sandbox._middleware import Clock
from connectors.sandbox._server import HostedSandbox, SandboxServer

Provider = Literal["quickbooks", "xero"]
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105  (a fake credential the local emulator accepts)

# Route names, for ``fail_next`` and ``call_count``.
AUTHORIZE = "oauth.authorize"
TOKEN = "oauth.token"  # noqa: S105  (a route name, not a credential)
CONNECTIONS = "connections"

CODE_SECONDS = 600.0
_NS = uuid.UUID("5a0f1c2e-7d3b-4e9a-8c1d-3b5e7f9a1c2d")


@dataclass(frozen=True, slots=True)
class VendorRules:
    """Lifetimes and the grace an already-rotated refresh token gets (api-facts 4.4 and 5.1)."""

    access_seconds: float
    refresh_seconds: float
    old_refresh_grace: float | None
    """Seconds a rotated refresh token still works (a lost answer may be retried); None = until it expires."""
    required_scope: str | None
    refresh_scope: str | None
    """Scope without which no refresh token is issued (Xero: offline_access)."""


RULES: dict[Provider, VendorRules] = {
    # QuickBooks: access 1 h; refresh tokens roll for 100 days, and an older one keeps working until then.
    "quickbooks": VendorRules(3600.0, 100 * 86_400.0, None, "com.intuit.quickbooks.accounting", None),
    # Xero: access 30 min; refresh tokens rotate, unused ones die after 60 days; the old one works 30 min more.
    "xero": VendorRules(1800.0, 60 * 86_400.0, 1800.0, None, "offline_access"),
}


@dataclass(slots=True)
class _Grant:
    """One authorization (a connection) and what it may reach."""

    accounts: tuple[str, ...]
    scope: str
    auth_event: str
    revoked: bool = False


@dataclass(slots=True)
class _Code:
    grant: _Grant
    redirect_uri: str
    issued_at: float
    used: bool = False


@dataclass(slots=True)
class _Refresh:
    grant: _Grant
    expires_at: float
    rotated_at: float | None = None
    revoked: bool = False


@dataclass(slots=True)
class _Access:
    grant: _Grant
    expires_at: float


@dataclass(slots=True)
class _State:
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)
    issued_refresh: list[str] = field(default_factory=list)
    drop_refresh: int = 0
    deny_authorize: int = 0


def _oauth_error(status: int, error: str, description: str = "") -> Response:
    payload = {"error": error, **({"error_description": description} if description else {})}
    return json_response(payload, status, {"Cache-Control": "no-store"})


def _server_error(status: int, message: str) -> Response:
    return _oauth_error(status, "server_error" if status >= 500 else "invalid_request", message)


class OAuthSandbox(HostedSandbox):
    """A vendor's OAuth server on 127.0.0.1: ``/authorize`` and ``/token`` (Basic client auth).

    ``accounts`` are the companies (QuickBooks realm ids) or organisations (Xero tenant id → name)
    an authorization grants. QuickBooks redirects with the first account as ``realmId``.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        accounts: Mapping[str, str] | Iterable[str],
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uris: Iterable[str] | None = None,
        rules: VendorRules | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.provider: Provider = provider
        self.rules = rules or RULES[provider]
        names = dict(accounts) if isinstance(accounts, Mapping) else {a: f"Sandbox {a}" for a in accounts}
        if not names:
            raise ValueError("an OAuth sandbox needs at least one account to grant")
        self._accounts = names
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uris = None if redirect_uris is None else frozenset(redirect_uris)
        self._clock: Clock = clock or time.monotonic
        self._lock = threading.RLock()
        self._state = _State()
        self._token = ""  # the OAuth server itself takes no bearer token
        self._server = SandboxServer(error_factory=_server_error)
        self._server.route("GET", "/authorize", self._authorize, name=AUTHORIZE)
        self._server.route("POST", "/token", self._token_endpoint, name=TOKEN)

    # -- where a client points -------------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return self._server.root_url + "/authorize"

    @property
    def token_url(self) -> str:
        return self._server.root_url + "/token"

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def client_secret(self) -> str:
        return self._client_secret

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    # -- controls --------------------------------------------------------------------------------

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    def drop_next_refresh(self, n: int = 1) -> None:
        """Rotate on the next ``n`` refresh grants, then drop the connection: the new tokens are never seen."""
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._state.drop_refresh += n

    def deny_next_authorization(self) -> None:
        """The next authorize request comes back with ``error=access_denied`` (the admin clicked Cancel)."""
        with self._lock:
            self._state.deny_authorize += 1

    def revoke_refresh_token(self, token: str) -> None:
        """Make one refresh token unusable (``invalid_grant``), as a vendor-side mishap would."""
        with self._lock:
            self._state.refresh[token].revoked = True

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops working before its expiry (the vendor answers 401)."""
        with self._lock:
            self._state.access.clear()

    def disconnect(self) -> None:
        """The admin removed the app in the vendor's UI: every grant's tokens stop working."""
        with self._lock:
            for refresh in self._state.refresh.values():
                refresh.grant.revoked = True

    def refresh_tokens(self) -> list[str]:
        """Every refresh token issued, oldest first (tests check none of them is stored in clear text)."""
        with self._lock:
            return list(self._state.issued_refresh)

    def access_tokens(self) -> list[str]:
        with self._lock:
            return list(self._state.access)

    def accepts(self, token: str, account: str | None = None) -> bool:
        """Whether ``token`` is a live access token of a grant that reaches ``account``."""
        with self._lock:
            access = self._state.access.get(token)
            if access is None or access.grant.revoked or access.expires_at <= self._clock():
                return False
            return account is None or account in access.grant.accounts

    def connections_handler(self, request: Request) -> Response:
        """Xero's ``GET /connections``: the organisations the bearer token's grant may use."""
        token = request.bearer_token or ""
        with self._lock:
            access = self._state.access.get(token)
            if access is None or not self.accepts(token):
                return json_response({"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired"}, 401)
            grant = access.grant
        return json_response(
            [
                {
                    "id": str(uuid.uuid5(_NS, f"connection:{tenant}")),
                    "authEventId": grant.auth_event,
                    "tenantId": tenant,
                    "tenantType": "ORGANISATION",
                    "tenantName": self._accounts[tenant],
                    "createdDateUtc": "2026-01-05T10:00:00.0000000",
                    "updatedDateUtc": "2026-01-05T10:00:00.0000000",
                }
                for tenant in grant.accounts
            ]
        )

    # -- handlers --------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        client_id = request.arg("client_id") or ""
        redirect_uri = request.arg("redirect_uri") or ""
        # Problems with the client or the redirect URI are shown in the browser, never redirected.
        if not hmac.compare_digest(client_id.encode(), self._client_id.encode()):
            return _oauth_error(400, "unauthorized_client", "unknown client_id")
        if not redirect_uri or (self._redirect_uris is not None and redirect_uri not in self._redirect_uris):
            return _oauth_error(400, "invalid_request", "redirect_uri is not registered for this app")
        state = request.arg("state")
        answer: dict[str, str] = {}
        scope = request.arg("scope") or ""
        with self._lock:
            if request.arg("response_type") != "code":
                answer["error"] = "unsupported_response_type"
            elif self.rules.required_scope and self.rules.required_scope not in scope.split():
                answer["error"] = "invalid_scope"
            elif self._state.deny_authorize:
                self._state.deny_authorize -= 1
                answer["error"] = "access_denied"
            else:
                grant = _Grant(tuple(self._accounts), scope, str(uuid.uuid4()))
                code = secrets.token_urlsafe(24)
                self._state.codes[code] = _Code(grant, redirect_uri, self._clock())
                answer["code"] = code
                if self.provider == "quickbooks":
                    answer["realmId"] = grant.accounts[0]
        if state is not None:
            answer["state"] = state
        parts = urlsplit(redirect_uri)
        query = "&".join(q for q in (parts.query, urlencode(answer)) if q)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        return Response(b"", status=302, headers={"Location": location}, content_type="text/plain; charset=utf-8")

    def _client_ok(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, client_secret = decoded.partition(":")
        return hmac.compare_digest(client_id.encode(), self._client_id.encode()) and hmac.compare_digest(
            client_secret.encode(), self._client_secret.encode()
        )

    def _token_endpoint(self, request: Request) -> Response:
        if not self._client_ok(request):
            return _oauth_error(401, "invalid_client")
        form = dict(parse_qsl(request.get_data().decode("utf-8"), keep_blank_values=True))
        grant_type = form.get("grant_type")
        with self._lock:
            now = self._clock()
            if grant_type == "authorization_code":
                code = self._state.codes.get(form.get("code", ""))
                if code is None or code.used or now - code.issued_at > CODE_SECONDS:
                    return _oauth_error(400, "invalid_grant")
                if form.get("redirect_uri") != code.redirect_uri:
                    return _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization")
                code.used = True
                return self._issue(code.grant, now)
            if grant_type == "refresh_token":
                old = self._state.refresh.get(form.get("refresh_token", ""))
                if old is None or old.revoked or old.grant.revoked or old.expires_at <= now:
                    return _oauth_error(400, "invalid_grant")
                grace = self.rules.old_refresh_grace
                if old.rotated_at is not None and grace is not None and now - old.rotated_at > grace:
                    return _oauth_error(400, "invalid_grant")
                if old.rotated_at is None:
                    old.rotated_at = now
                answer = self._issue(old.grant, now)
                if self._state.drop_refresh:
                    self._state.drop_refresh -= 1
                    # A rotation the client never sees: the new tokens are stored, the answer is lost.
                    raise DropConnection("sandbox dropped the connection after rotating the refresh token")
                return answer
            return _oauth_error(400, "unsupported_grant_type")

    def _issue(self, grant: _Grant, now: float) -> Response:
        access = "at-" + secrets.token_urlsafe(24)
        self._state.access[access] = _Access(grant, now + self.rules.access_seconds)
        payload: dict[str, object] = {
            "access_token": access,
            "token_type": "bearer" if self.provider == "quickbooks" else "Bearer",
            "expires_in": int(self.rules.access_seconds),
        }
        if self.rules.refresh_scope is None or self.rules.refresh_scope in grant.scope.split():
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._state.refresh[refresh] = _Refresh(grant, now + self.rules.refresh_seconds)
            self._state.issued_refresh.append(refresh)
            payload["refresh_token"] = refresh
        if self.provider == "quickbooks":
            payload["x_refresh_token_expires_in"] = int(self.rules.refresh_seconds)
        else:
            payload["scope"] = grant.scope
        return json_response(payload, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def issued_by(oauth: OAuthSandbox | None, token: str, account: str | None = None) -> bool:
    """A vendor emulator's second credential check: a live access token its ``oauth`` server issued."""
    return oauth is not None and bool(token) and oauth.accepts(token, account)
