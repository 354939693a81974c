"""Stored OAuth connections of the accounting sinks: encrypted at rest, rotated crash-safely, one refresher at a time.

How a refresh stays safe (both vendors rotate the refresh token on every refresh):

1. One refresher per connection: threads of a process queue on a lock; processes take a lease
   (``refreshing_until``) with a compare-and-swap on ``generation``, on SQLite and PostgreSQL alike.
   Whoever waits re-reads the row and uses the token the refresher stored.
2. The vendor is asked with the stored refresh token; the answer (new refresh and access token)
   is committed, encrypted, with ``generation + 1`` before the access token is handed to anyone.
3. A crash between the vendor's rotation and that commit leaves the old refresh token stored. The
   next refresh sends it again, which the vendors allow (Xero for 30 minutes, QuickBooks as long as
   it lives). ``previous_refresh_token`` keeps the token the current one came from, for one more try
   when the current one is refused.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from connectors._config import TokenSource
from connectors._redact import register_secret
from connectors._retry import Sleep
from connectors.errors import ConfigError, InvalidGrantError
from connectors.oauth import PROVIDERS, OAuthClient, TokenSet, oauth_app, provider_facts
from sync.settings import Settings
from sync.store.tables import oauth_tokens

log = structlog.get_logger("hourbridge.oauth")

Provider = Literal["quickbooks", "xero"]
Now = Callable[[], datetime]
KEY_SETTING = "HOURBRIDGE_TOKEN_KEY"
REFRESH_MARGIN = timedelta(minutes=5)
"""An access token this close to its expiry is refreshed before use (a request must not outlive it)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


# --------------------------------------------------------------------------- encryption


def new_token_key() -> str:
    """A fresh Fernet key for HOURBRIDGE_TOKEN_KEY."""
    return Fernet.generate_key().decode("ascii")


class TokenCipher:
    """Encrypts tokens for the database with the Fernet key from HOURBRIDGE_TOKEN_KEY."""

    def __init__(self, key: str) -> None:
        key = key.strip()
        register_secret(key)
        try:
            self._fernet = Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                f"{KEY_SETTING} is not a valid Fernet key (32 url-safe base64-encoded bytes). Unset it and run "
                "`hourbridge connect quickbooks|xero`, which prints a new one; connections stored with another "
                "key must then be connected again."
            ) from None

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, value: str, *, provider: str, account: str) -> str:
        try:
            plain = self._fernet.decrypt(value.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"the stored {provider_facts(provider).vendor} connection ({account}) cannot be decrypted with "
                f"{KEY_SETTING}: set the key it was stored with, or {provider_facts(provider).reconnect}"
            ) from None
        register_secret(plain)
        return plain


def token_cipher(settings: Settings) -> TokenCipher:
    """The cipher of HOURBRIDGE_TOKEN_KEY; a ConfigError that says how to get a key when it is unset."""
    key = settings.token_key.get_secret_value().strip() if settings.token_key is not None else ""
    if not key:
        raise ConfigError(
            f"{KEY_SETTING} is not set: OAuth tokens are stored encrypted with it. "
            "`hourbridge connect quickbooks|xero` prints a new key when it is missing."
        )
    return TokenCipher(key)


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Connection:
    """One stored connection as `hourbridge connect --status` shows it (no secrets)."""

    provider: str
    account: str
    generation: int
    connected_at: datetime
    connected_by: str
    refreshed_at: datetime | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    scope: str | None
    refreshing_until: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token and when it stops working."""

    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Row:
    provider: str
    account: str
    generation: int
    refresh_token: str = field(repr=False)
    previous_refresh_token: str | None = field(repr=False)
    access_token: str | None = field(repr=False)
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    scope: str | None


class ConnectionLocks:
    """One lock per connection in this process, so its threads queue instead of polling the database."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


PROCESS_LOCKS = ConnectionLocks()


# --------------------------------------------------------------------------- the store


class TokenStore:
    """The ``oauth_tokens`` table: save a new connection, hand out access tokens, refresh them safely.

    ``lease`` must outlast one refresh call with its retries; a refresher that died holds the
    connection that long at most. ``locks`` is per process (tests give two stores separate locks to
    play two processes).
    """

    def __init__(
        self,
        engine: Engine,
        cipher: TokenCipher,
        *,
        now: Now = _utcnow,
        sleep: Sleep = time.sleep,
        locks: ConnectionLocks | None = None,
        lease: timedelta = timedelta(minutes=3),
        poll_seconds: float = 0.5,
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._now = now
        self._sleep = sleep
        self._locks = locks or PROCESS_LOCKS
        self._lease = lease
        self._poll = poll_seconds
        self._margin = margin
        self._url = engine.url.render_as_string(hide_password=True)

    # ------------------------------------------------------------------ connections

    def save(self, provider: Provider, account: str, tokens: TokenSet, *, obtained_at: datetime, by: str) -> Connection:
        """Store a new connection (or replace the account's old one); ``obtained_at`` is when the code was traded."""
        if tokens.refresh_token is None:
            raise ConfigError(
                f"{PROVIDERS[provider].vendor} gave no refresh token, so the connection would die within the hour: "
                f"check {PROVIDERS[provider].setting('scopes')}"
            )
        values: dict[str, Any] = {
            "refresh_token": self._cipher.encrypt(tokens.refresh_token),
            "previous_refresh_token": None,
            "access_token": self._cipher.encrypt(tokens.access_token),
            "access_expires_at": obtained_at + timedelta(seconds=tokens.expires_in),
            "refresh_expires_at": _after(obtained_at, tokens.refresh_expires_in),
            "scope": tokens.scope,
            "connected_at": self._now(),
            "connected_by": by,
            "refreshed_at": None,
            "refreshing_until": None,
        }
        with self._engine.begin() as conn:
            # generation + 1: a refresh of the old connection still in flight must not overwrite this one.
            replaced = conn.execute(
                update(oauth_tokens)
                .where(oauth_tokens.c.provider == provider, oauth_tokens.c.account == account)
                .values(generation=oauth_tokens.c.generation + 1, **values)
            ).rowcount
            if not replaced:
                conn.execute(insert(oauth_tokens).values(provider=provider, account=account, generation=1, **values))
        log.info("oauth.connected", provider=provider, account=account, replaced=bool(replaced))
        found = self.connection(provider, account)
        assert found is not None  # written just above, in a committed transaction
        return found

    def connection(self, provider: str, account: str) -> Connection | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(oauth_tokens).where(oauth_tokens.c.provider == provider, oauth_tokens.c.account == account)
            ).one_or_none()
        return None if row is None else _connection(row._mapping)

    def connections(self) -> list[Connection]:
        return stored_connections(self._engine)

    def verify(self, provider: Provider, account: str) -> Connection:
        """The stored connection, checked to be readable with the key; a ConfigError saying what to do otherwise."""
        row = self._row(provider, account)
        self._cipher.decrypt(row.refresh_token, provider=provider, account=account)
        found = self.connection(provider, account)
        assert found is not None  # _row just read it
        return found

    # ------------------------------------------------------------------ access tokens

    def access_token(
        self, provider: Provider, account: str, client: OAuthClient, *, rejected: str | None = None
    ) -> IssuedToken:
        """A usable access token: the stored one while it has more than ``margin`` left, else a refreshed one.

        ``rejected`` is a token the vendor just refused (HTTP 401): it is not handed out again.
        """
        with self._locks.lock((self._url, provider, account)):
            first: int | None = None
            waited = False
            while True:
                row = self._row(provider, account)
                now = self._now()
                first = row.generation if first is None else first
                # A generation we did not start with was just refreshed by someone else: use it as is.
                issued = self._usable(row, now, rejected=rejected, fresh=row.generation != first)
                if issued is not None:
                    return issued
                if self._take_lease(row, now):
                    issued = self._refresh_leased(row, client)
                    if issued is not None:
                        return issued
                    continue  # another refresher stored first; its row is the truth
                if not waited:
                    log.info("oauth.waiting", provider=provider, account=account, reason="another process refreshes")
                    waited = True
                self._sleep(self._poll)

    def _row(self, provider: str, account: str) -> _Row:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(oauth_tokens).where(oauth_tokens.c.provider == provider, oauth_tokens.c.account == account)
            ).one_or_none()
        if found is None:
            facts = provider_facts(provider)
            raise ConfigError(
                f"{facts.vendor} {facts.account_what} {account} is not connected: run "
                f"`hourbridge connect {provider}` (or check {facts.account_setting})"
            )
        m = found._mapping
        return _Row(
            provider=m["provider"],
            account=m["account"],
            generation=m["generation"],
            refresh_token=m["refresh_token"],
            previous_refresh_token=m["previous_refresh_token"],
            access_token=m["access_token"],
            access_expires_at=_maybe_utc(m["access_expires_at"]),
            refresh_expires_at=_maybe_utc(m["refresh_expires_at"]),
            scope=m["scope"],
        )

    def _usable(self, row: _Row, now: datetime, *, rejected: str | None, fresh: bool) -> IssuedToken | None:
        if row.access_token is None or row.access_expires_at is None:
            return None
        if row.access_expires_at <= (now if fresh else now + self._margin):
            return None
        token = self._cipher.decrypt(row.access_token, provider=row.provider, account=row.account)
        if rejected is not None and hmac.compare_digest(token.encode(), rejected.encode()):
            return None
        return IssuedToken(token, row.access_expires_at)

    def _where(self, row: _Row) -> Any:
        return (
            (oauth_tokens.c.provider == row.provider)
            & (oauth_tokens.c.account == row.account)
            & (oauth_tokens.c.generation == row.generation)
        )

    def _take_lease(self, row: _Row, now: datetime) -> bool:
        """Become the one refresher of ``row``'s generation, unless a live lease says someone else is."""
        free = or_(oauth_tokens.c.refreshing_until.is_(None), oauth_tokens.c.refreshing_until <= now)
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(oauth_tokens).where(self._where(row), free).values(refreshing_until=now + self._lease)
            ).rowcount
        return taken == 1

    def _release(self, row: _Row) -> None:
        # Best effort: when the database is gone too, the lease simply runs out.
        with contextlib.suppress(SQLAlchemyError), self._engine.begin() as conn:
            conn.execute(update(oauth_tokens).where(self._where(row)).values(refreshing_until=None))

    def _refresh_leased(self, row: _Row, client: OAuthClient) -> IssuedToken | None:
        """Refresh while holding the lease; the new tokens are committed before the access token is returned."""
        facts = client.provider
        started = self._now()
        used = self._cipher.decrypt(row.refresh_token, provider=row.provider, account=row.account)
        try:
            try:
                tokens = client.refresh(used)
            except InvalidGrantError:
                if row.previous_refresh_token is None:
                    raise
                # The current token may be one the vendor never confirmed; the one before it can still
                # be inside the vendor's grace.
                log.warning("oauth.retry_previous", provider=row.provider, account=row.account)
                used = self._cipher.decrypt(row.previous_refresh_token, provider=row.provider, account=row.account)
                tokens = client.refresh(used)
        except BaseException:
            self._release(row)
            raise
        refresh = tokens.refresh_token or used
        access_expires_at = started + timedelta(seconds=tokens.expires_in)
        values: dict[str, Any] = {
            "generation": row.generation + 1,
            "refresh_token": self._cipher.encrypt(refresh),
            "previous_refresh_token": (self._cipher.encrypt(used) if refresh != used else row.previous_refresh_token),
            "access_token": self._cipher.encrypt(tokens.access_token),
            "access_expires_at": access_expires_at,
            "refresh_expires_at": _after(started, tokens.refresh_expires_in) or row.refresh_expires_at,
            "scope": tokens.scope or row.scope,
            "refreshed_at": self._now(),
            "refreshing_until": None,
        }
        try:
            with self._engine.begin() as conn:
                stored = conn.execute(update(oauth_tokens).where(self._where(row)).values(**values)).rowcount
        except BaseException:
            # Not stored, so not handed out: the next refresh sends the old token again (vendor grace).
            self._release(row)
            raise
        if stored != 1:
            # Our lease ran out mid-call and another refresher stored first; its tokens win.
            log.warning("oauth.refresh_superseded", provider=row.provider, account=row.account)
            return None
        log.info(
            "oauth.refreshed",
            provider=facts.name,
            account=row.account,
            generation=row.generation + 1,
            access_expires_at=access_expires_at.isoformat(),
        )
        return IssuedToken(tokens.access_token, access_expires_at)


def stored_connections(engine: Engine) -> list[Connection]:
    """Every stored connection, without its tokens (listing needs no key)."""
    with engine.connect() as conn:
        rows = conn.execute(select(oauth_tokens).order_by(oauth_tokens.c.provider, oauth_tokens.c.account)).all()
    return [_connection(row._mapping) for row in rows]


def _after(start: datetime, seconds: int | None) -> datetime | None:
    return None if seconds is None else start + timedelta(seconds=seconds)


def _connection(m: Any) -> Connection:
    return Connection(
        provider=m["provider"],
        account=m["account"],
        generation=m["generation"],
        connected_at=_utc(m["connected_at"]),
        connected_by=m["connected_by"],
        refreshed_at=_maybe_utc(m["refreshed_at"]),
        access_expires_at=_maybe_utc(m["access_expires_at"]),
        refresh_expires_at=_maybe_utc(m["refresh_expires_at"]),
        scope=m["scope"],
        refreshing_until=_maybe_utc(m["refreshing_until"]),
    )


# --------------------------------------------------------------------------- what the run uses


class AccessTokenSource:
    """A sink's token source: a valid access token on every call, refreshed through the store when due.

    Called on every request (``BearerAuth``), so the token is kept in memory while it has more than
    the margin left; ``refresh_rejected`` is what ``BearerAuth`` calls after a 401.
    """

    def __init__(
        self,
        store: TokenStore,
        client: OAuthClient,
        provider: Provider,
        account: str,
        *,
        now: Now = _utcnow,
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self._store = store
        self._client = client
        self._provider: Provider = provider
        self._account = account
        self._now = now
        self._margin = margin
        self._cached: IssuedToken | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            cached = self._cached
        if cached is not None and cached.expires_at - self._margin > self._now():
            return cached.token
        return self._fetch(None)

    def refresh_rejected(self, rejected: str) -> str:
        """A token other than ``rejected`` (the vendor refused it): someone's fresh one, or a new refresh."""
        with self._lock:
            if self._cached is not None and hmac.compare_digest(self._cached.token.encode(), rejected.encode()):
                self._cached = None
        return self._fetch(rejected)

    def _fetch(self, rejected: str | None) -> str:
        issued = self._store.access_token(self._provider, self._account, self._client, rejected=rejected)
        with self._lock:
            self._cached = issued
        return issued.token


def access_token_source(
    settings: Settings, engine: Engine, provider: Literal["quickbooks", "xero"]
) -> TokenSource | None:
    """The token source of a sink: None when no OAuth client is configured (the sink's access_token is used).

    Fails at once, with what to do, when the account was never connected or the key cannot read it.
    """
    config: Any = settings.sink_config(provider)
    app = oauth_app(provider, config)
    if provider == "quickbooks":
        account = config.realm_id if config is not None else ""
    else:
        account = config.tenant_id if config is not None else ""
    if app is None:
        return None
    # The lease outlasts one refresh with all its attempts, so a slow refresher is not overtaken.
    lease = timedelta(seconds=app.timeout_seconds * app.max_attempts + 30)
    store = TokenStore(engine, token_cipher(settings), lease=lease)
    store.verify(provider, account)
    return AccessTokenSource(store, OAuthClient(app), provider, account)
