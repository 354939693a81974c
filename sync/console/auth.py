"""Who is signed in to the console: local tokens, OpenID Connect, a trusted proxy's header; sessions and CSRF."""

from __future__ import annotations

import ipaddress
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Engine

from connectors.errors import ConfigError, HourbridgeError
from sync.settings import ConsoleSettings
from sync.store import console as store

COOKIE = "hb_console"
LOGIN_COOKIE = "hb_login"  # double-submit CSRF of the sign-in form (there is no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# How long an identity provider sign-in may take between leaving and coming back.
OIDC_PENDING = timedelta(minutes=10)
# A session's last request is written at most this often (not on every request): the idle timeout
# is therefore kept to within this much.
TOUCH_EVERY = timedelta(minutes=1)
FORWARDED_FOR = "X-Forwarded-For"


class SignInRefused(HourbridgeError):
    """A sign-in that must not succeed; the message is safe to show (it never says which part was wrong)."""


class SignInLimited(SignInRefused):
    """Too many token sign-ins from one address: refused, token unchecked, for ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A request whose session ran out: ``reason`` is "idle" (no request for too long) or "expired" (maximum age)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person behind a request: who, with which role, in which session."""

    identity: str
    role: str
    session: store.Session
    new_cookie: str | None = None  # set when this request opened the session (a trusted proxy's user)

    @property
    def can_change(self) -> bool:
        return self.role == "admin"

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def role_of(console: ConsoleSettings, identity: str) -> str | None:
    """The role an identity vouched for by a proxy or identity provider has (None: not allowed in)."""
    wanted = identity.strip().casefold()
    if wanted in {name.strip().casefold() for name in console.admins}:
        return "admin"
    viewers = {name.strip().casefold() for name in console.viewers}
    if wanted in viewers or "*" in viewers:
        return "viewer"
    return None


def trusted_proxy(console: ConsoleSettings, address: str | None) -> bool:
    """Whether the peer is one of the configured reverse proxies (no proxies configured: never)."""
    if not address or not console.trusted_proxies:
        return False
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in console.trusted_proxies)


def client_address(console: ConsoleSettings, peer: str | None, headers: Any) -> str:
    """The address a request comes from: the peer, or what trusted proxies say in X-Forwarded-For.

    Each proxy appends the address it was reached from, so the list is read from the right, past the
    configured proxies; the first address that is not one of them is the client. A forwarded address
    is taken only from a trusted proxy, and only as far as trusted proxies vouch for it.
    """
    client = peer or "unknown"
    if not trusted_proxy(console, peer):
        return client
    hops = [hop.strip() for value in headers.getlist(FORWARDED_FOR) for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            client = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # not an address: the last trusted proxy is as far back as can be told
        if not trusted_proxy(console, client):
            break
    return client


class Gate:
    """Sign-in and session checks over the store; ``clock`` is injected so tests can let sessions expire."""

    def __init__(self, engine: Engine, console: ConsoleSettings, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.console = console
        self.clock = clock

    @property
    def lifetime(self) -> timedelta:
        return timedelta(minutes=self.console.session_minutes)

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.console.idle_minutes)

    def ended_message(self, reason: str) -> str:
        """What the sign-in page says about a session that ran out (reason from SessionEnded)."""
        if reason == "idle":
            return f"Your session expired after {self.console.idle_minutes} minutes without activity: sign in again."
        return f"Your session expired (sign-ins last {self.console.session_minutes} minutes): sign in again."

    # ------------------------------------------------------------------ who is this

    def viewer(self, cookie: str | None, peer: str | None, headers: Any) -> Viewer | SessionEnded | None:
        """The signed-in viewer of a request; SessionEnded when its session ran out; None (sign in first)."""
        now = self.clock()
        header_user = None
        if trusted_proxy(self.console, peer):
            header_user = (headers.get(self.console.proxy_header) or "").strip() or None
        with self.engine.begin() as conn:
            session = store.get_session(conn, cookie, now) if cookie else None
            ended = None
            if session is not None and session.role is not None:
                if session.expires_at <= now:
                    ended = SessionEnded("expired")
                elif now - session.last_seen_at >= self.idle:
                    ended = SessionEnded("idle")
                elif now - session.last_seen_at >= TOUCH_EVERY:
                    store.touch_session(conn, session.id_hash, now)
                if ended is not None:
                    store.end_session(conn, session.id_hash)
                    session = None
            elif session is not None and session.expires_at <= now:
                session = None
            if header_user is not None:
                if session is not None and session.method == "proxy" and session.identity == header_user:
                    return Viewer(session.identity, session.role or "viewer", session)
                role = role_of(self.console, header_user)
                if role is None:
                    return None
                store.purge_expired(conn, now, self.idle)
                cookie_value, opened = store.open_session(
                    conn, identity=header_user, role=role, method="proxy", now=now, lifetime=self.lifetime
                )
                return Viewer(header_user, role, opened, new_cookie=cookie_value)
            # A proxy session is only good while the proxy keeps vouching for it.
            if session is None or session.role is None or session.method == "proxy":
                return ended
            return Viewer(session.identity, session.role, session)

    def check_csrf(self, viewer: Viewer, submitted: str | None) -> bool:
        return bool(submitted) and secrets.compare_digest(str(submitted), viewer.csrf_token)

    # ------------------------------------------------------------------ local tokens

    def sign_in_with_token(self, token: str, address: str) -> tuple[str, store.Session]:
        """A new session for a valid local token; SignInRefused otherwise (nothing about why).

        Every attempt is counted against ``address`` before the token is looked at, in its own
        transaction, so an address over the limit is refused (SignInLimited) whatever it sends; a
        successful sign-in clears the address's count.
        """
        now = self.clock()
        window = timedelta(minutes=self.console.sign_in_window_minutes)
        with self.engine.begin() as conn:
            counted = store.count_sign_in(conn, address, now, window)
        if counted.attempts > self.console.sign_in_limit:
            retry_after = max(1, math.ceil((counted.window_start + window - now).total_seconds()))
            raise SignInLimited(
                f"too many failed sign-ins from this address: try again in {math.ceil(retry_after / 60)} minutes",
                retry_after,
            )
        with self.engine.begin() as conn:
            store.purge_expired(conn, now, self.idle)
            found = store.token_for(conn, token.strip(), now) if token.strip() else None
            if found is None:
                raise SignInRefused("that token is not valid (or was revoked): ask an admin for a new one")
            store.clear_sign_ins(conn, address)
            return store.open_session(
                conn,
                identity=f"{found.label} (token {found.id})",
                role=found.role,
                method="token",
                now=now,
                lifetime=self.lifetime,
            )

    def sign_out(self, viewer: Viewer) -> None:
        with self.engine.begin() as conn:
            store.end_session(conn, viewer.session.id_hash)

    # ------------------------------------------------------------------ OpenID Connect

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.console.oidc_issuer and self.console.oidc_client_id)

    def oidc_start(self, client: httpx.Client, redirect_uri: str) -> tuple[str, str]:
        """(cookie of a pending sign-in, the identity provider's authorization URL)."""
        metadata = self._metadata(client)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            cookie, _ = store.open_session(
                conn,
                identity="",
                role=None,
                method="oidc",
                now=self.clock(),
                lifetime=OIDC_PENDING,
                oidc_state=state,
                oidc_nonce=nonce,
            )
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            client_id=self.console.oidc_client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=["openid", "email", "profile"],
            state=state,
            nonce=nonce,
        )
        return cookie, str(url)

    def oidc_finish(
        self, client: httpx.Client, cookie: str | None, state: str, code: str, redirect_uri: str
    ) -> tuple[str, store.Session]:
        """Exchange the code, check the ID token (issuer, audience, nonce, expiry, signature); a new session."""
        now = self.clock()
        with self.engine.begin() as conn:
            pending = store.find_session(conn, cookie, now) if cookie else None
            if pending is not None:
                store.end_session(conn, pending.id_hash)  # one use, whatever happens next
        if (
            pending is None
            or pending.method != "oidc"
            or pending.oidc_state is None
            or pending.oidc_nonce is None
            or not secrets.compare_digest(pending.oidc_state, state)
        ):
            raise SignInRefused("the sign-in expired or did not start here: sign in again")
        metadata = self._metadata(client)
        secret = self.console.oidc_client_secret
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        # OpenID Connect's default client authentication is HTTP Basic; a provider may offer only POST.
        offered = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in offered else "client_secret_post"
        if secret is None:
            method = "none"
        url, headers, body = ClientAuth(
            self.console.oidc_client_id, None if secret is None else secret.get_secret_value(), method
        ).prepare("POST", metadata["token_endpoint"], headers, body)
        answer = client.post(str(url), content=str(body).encode("ascii"), headers=dict(headers))
        if answer.status_code != 200:
            raise SignInRefused(f"the identity provider refused the sign-in (HTTP {answer.status_code}): sign in again")
        id_token = answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("the identity provider sent no ID token: check the client's scopes (openid)")
        keys = KeySet.import_key_set(client.get(metadata["jwks_uri"]).json())
        try:
            decoded = jwt.decode(id_token, keys)
            jwt.JWTClaimsRegistry(
                now=int(now.timestamp()),
                iss={"essential": True, "value": str(metadata.get("issuer") or self.console.oidc_issuer)},
                aud={"essential": True, "value": str(self.console.oidc_client_id)},
                nonce={"essential": True, "value": pending.oidc_nonce},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise SignInRefused(f"the ID token is not valid ({type(exc).__name__}): sign in again") from None
        claims = decoded.claims
        identity = str(claims.get("email") or claims.get("preferred_username") or claims.get("sub") or "")
        role = role_of(self.console, identity) if identity else None
        if role is None:
            raise SignInRefused(
                f"{identity or 'this account'} may not use the console: an admin lists it in "
                "HOURBRIDGE_CONSOLE__ADMINS or HOURBRIDGE_CONSOLE__VIEWERS"
            )
        with self.engine.begin() as conn:
            return store.open_session(
                conn, identity=identity, role=role, method="oidc", now=now, lifetime=self.lifetime
            )

    def _metadata(self, client: httpx.Client) -> dict[str, Any]:
        issuer = (self.console.oidc_issuer or "").rstrip("/")
        try:
            answer = client.get(f"{issuer}/.well-known/openid-configuration")
            answer.raise_for_status()
            metadata: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the identity provider's configuration at {issuer} ({type(exc).__name__}): "
                "check HOURBRIDGE_CONSOLE__OIDC_ISSUER"
            ) from None
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(key), str):
                raise ConfigError(
                    f"the identity provider at {issuer} names no {key}: check HOURBRIDGE_CONSOLE__OIDC_ISSUER"
                )
        return metadata
