"""OAuth tokens: encrypted at rest, rotation stored before use, one refresher at a time, crash-safe within grace."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import Engine, event, select, text, update
from structlog.testing import capture_logs

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError, TransientError
from connectors.oauth import PROVIDERS, OAuthApp, OAuthClient, Provider, TokenSet, new_state
from connectors.quickbooks import QuickBooksConfig, QuickBooksSink
from connectors.sandbox.oauth import TOKEN, OAuthSandbox
from connectors.sandbox.quickbooks import COMPANY_INFO, QuickBooksSandbox
from sync.admin.oauth import (
    AccessTokenSource,
    ConnectionLocks,
    TokenCipher,
    TokenStore,
    access_token_source,
    token_cipher,
)
from sync.settings import Settings
from sync.store.tables import oauth_tokens
from tests.fakes import FakeClock, no_sleep

REALM = "9130350000000001"
TENANT = "b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
REDIRECT = "http://127.0.0.1:8765/callback"
KEY = Fernet.generate_key().decode()


class Clock:
    """One hand-moved 'now' for the store (a datetime) and the emulator (seconds since START)."""

    def __init__(self) -> None:
        self.now = START
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def seconds(self) -> float:
        return (self() - START).total_seconds()

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


@dataclass
class Rig:
    """One vendor's OAuth emulator, a client of it and a token store on one database."""

    provider: Provider
    account: str
    oauth: OAuthSandbox
    engine: Engine
    clock: Clock
    key: str = KEY
    max_attempts: int = 4
    codes: list[str] = field(default_factory=list)

    @property
    def app(self) -> OAuthApp:
        scopes = ("com.intuit.quickbooks.accounting",) if self.provider == "quickbooks" else ("offline_access",)
        return OAuthApp(
            provider=PROVIDERS[self.provider],
            client_id=self.oauth.client_id,
            client_secret=self.oauth.client_secret,
            authorize_url=self.oauth.authorize_url,
            token_url=self.oauth.token_url,
            scopes=scopes,
            redirect_uri=REDIRECT,
            max_attempts=self.max_attempts,
        )

    def client(self, cls: type[OAuthClient] = OAuthClient) -> OAuthClient:
        return cls(self.app, sleep=no_sleep)

    def store(self, **kwargs: Any) -> TokenStore:
        kwargs.setdefault("now", self.clock)
        kwargs.setdefault("sleep", no_sleep)
        kwargs.setdefault("locks", ConnectionLocks())
        return TokenStore(self.engine, TokenCipher(self.key), **kwargs)

    def connect(self) -> TokenSet:
        """What `hourbridge connect` does, with httpx standing in for the browser."""
        return self.finish(*self.browse())

    def browse(self) -> tuple[str, str]:
        """The browser's part: (the state, the address the vendor sent it back to)."""
        state = new_state()
        answer = httpx.get(self.client().authorization_url(state))
        assert answer.status_code == 302
        return state, answer.headers["location"]

    def finish(self, state: str, location: str) -> TokenSet:
        """hourbridge's part: check the callback, trade the code, store the connection."""
        client = self.client()
        callback = client.parse_callback(location, state=state)
        self.codes.append(callback.code)
        tokens = client.exchange_code(callback.code)
        account = callback.account or self.account
        assert account == self.account
        self.store().save(self.provider, account, tokens, obtained_at=self.clock(), by="admin")
        return tokens

    def token(self, store: TokenStore | None = None, client: OAuthClient | None = None, **kwargs: Any) -> str:
        store = store or self.store()
        return store.access_token(self.provider, self.account, client or self.client(), **kwargs).token

    def row(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(oauth_tokens)).one()._mapping)

    def stored(self, column: str) -> str | None:
        value = self.row()[column]
        return None if value is None else TokenCipher(self.key).decrypt(value, provider=self.provider, account="x")

    def refreshes(self) -> int:
        """Token endpoint calls after the code exchange."""
        return self.oauth.call_count(TOKEN) - len(self.codes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def qbo(sqlite_engine: Engine, clock: Clock) -> Iterator[Rig]:
    with OAuthSandbox("quickbooks", accounts=[REALM], clock=clock.seconds) as oauth:
        yield Rig("quickbooks", REALM, oauth, sqlite_engine, clock)


@pytest.fixture
def xero(sqlite_engine: Engine, clock: Clock) -> Iterator[Rig]:
    with OAuthSandbox("xero", accounts={TENANT: "Demo Org"}, clock=clock.seconds) as oauth:
        yield Rig("xero", TENANT, oauth, sqlite_engine, clock)


# --------------------------------------------------------------------------- at rest


def test_tokens_are_encrypted_at_rest_and_the_database_files_hold_none_in_clear_text(qbo: Rig, tmp_path: Path) -> None:
    qbo.connect()
    qbo.clock.advance(minutes=58)
    qbo.token()
    issued = qbo.oauth.refresh_tokens() + qbo.oauth.access_tokens() + qbo.codes + [qbo.oauth.client_secret]
    assert len(issued) == 6
    row = qbo.row()
    assert row["generation"] == 2
    for column in ("refresh_token", "previous_refresh_token", "access_token"):
        assert row[column] not in issued
    assert qbo.stored("refresh_token") == qbo.oauth.refresh_tokens()[-1]
    assert qbo.stored("previous_refresh_token") == qbo.oauth.refresh_tokens()[0]
    with qbo.engine.connect() as conn:
        dump = repr(conn.execute(text("SELECT * FROM oauth_tokens")).all())
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))  # the file and its WAL
    assert b"oauth_tokens" in raw
    for secret in issued:
        assert secret not in dump
        assert secret.encode() not in raw


def test_a_token_key_that_cannot_read_the_stored_tokens_says_which_setting_to_fix(qbo: Rig) -> None:
    qbo.connect()
    qbo.clock.advance(minutes=58)
    other = Fernet.generate_key().decode()
    with pytest.raises(ConfigError, match="HOURBRIDGE_TOKEN_KEY") as refused:
        qbo.token(store=TokenStore(qbo.engine, TokenCipher(other), now=qbo.clock))
    assert "hourbridge connect quickbooks" in refused.value.message
    assert qbo.refreshes() == 0
    with pytest.raises(ConfigError, match="HOURBRIDGE_TOKEN_KEY is not a valid Fernet key"):
        TokenCipher("not-a-key")
    with pytest.raises(ConfigError, match="HOURBRIDGE_TOKEN_KEY is not set"):
        token_cipher(Settings(token_key=None))


# --------------------------------------------------------------------------- rotation


def test_the_access_token_is_reused_until_it_nears_expiry_and_the_rotation_is_stored_before_it_is_used(
    qbo: Rig,
) -> None:
    first = qbo.connect()
    source = AccessTokenSource(qbo.store(), qbo.client(), "quickbooks", REALM, now=qbo.clock)
    assert source() == first.access_token
    qbo.clock.advance(minutes=54)
    assert source() == first.access_token
    assert qbo.refreshes() == 0
    qbo.clock.advance(minutes=2)  # 4 minutes left: inside the margin
    fresh = source()
    assert fresh != first.access_token
    assert qbo.refreshes() == 1
    # What was handed out is what the database holds, with the refresh token it came with.
    assert qbo.stored("access_token") == fresh
    assert qbo.stored("refresh_token") == qbo.oauth.refresh_tokens()[-1] != first.refresh_token
    assert qbo.row()["access_expires_at"].replace(tzinfo=UTC) == qbo.clock() + timedelta(hours=1)
    assert source() == fresh
    assert qbo.refreshes() == 1


def test_when_the_rotation_cannot_be_stored_the_new_access_token_is_not_handed_out(qbo: Rig) -> None:
    first = qbo.connect()
    qbo.clock.advance(minutes=58)

    def fail_commit(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE oauth_tokens SET generation"):
            raise RuntimeError("the database went away")

    event.listen(qbo.engine, "before_cursor_execute", fail_commit)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            qbo.token()
    finally:
        event.remove(qbo.engine, "before_cursor_execute", fail_commit)
    assert qbo.refreshes() == 1  # QuickBooks rotated ...
    row = qbo.row()
    assert row["generation"] == 1  # ... but nothing moved here, and the lease was let go
    assert row["refreshing_until"] is None
    assert qbo.stored("refresh_token") == first.refresh_token
    # QuickBooks keeps an older refresh token alive, so the next refresh with it works.
    fresh = qbo.token()
    assert fresh not in (first.access_token, qbo.oauth.access_tokens()[1])
    assert qbo.stored("access_token") == fresh


# --------------------------------------------------------------------------- one refresher


def test_two_threads_refreshing_at_once_make_exactly_one_token_call(qbo: Rig) -> None:
    first = qbo.connect()
    qbo.clock.advance(minutes=58)
    store, client = qbo.store(), qbo.client()
    barrier = threading.Barrier(2)
    got: list[str] = []

    def run() -> None:
        barrier.wait(timeout=10)
        got.append(store.access_token("quickbooks", REALM, client).token)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 2
    assert got[0] == got[1] != first.access_token
    assert qbo.refreshes() == 1
    assert qbo.row()["generation"] == 2


class PausedClient(OAuthClient):
    """Holds its refresh until released, so another process can arrive mid-refresh."""

    inside = threading.Event()
    release = threading.Event()

    def refresh(self, refresh_token: str) -> TokenSet:
        type(self).inside.set()
        assert type(self).release.wait(timeout=10)
        return super().refresh(refresh_token)


def two_processes_refresh_once(rig: Rig) -> None:
    """Process A is inside its refresh when process B needs a token: B waits and uses A's."""
    rig.connect()
    rig.clock.advance(minutes=58 if rig.provider == "quickbooks" else 28)

    class Paused(PausedClient):  # events of its own, fresh for this scenario
        inside = threading.Event()
        release = threading.Event()

    paused = Paused
    a_done = threading.Event()
    got: dict[str, str] = {}

    def process_a() -> None:
        try:
            got["a"] = rig.token(store=rig.store(), client=rig.client(paused))
        finally:
            a_done.set()

    def b_waits(_: float) -> None:
        # B found A's lease: let A finish, as B's poll would eventually see.
        paused.release.set()
        assert a_done.wait(timeout=10)

    a = threading.Thread(target=process_a)
    a.start()
    assert paused.inside.wait(timeout=10)
    got["b"] = rig.token(store=rig.store(sleep=b_waits))
    a.join(timeout=10)
    assert got["a"] == got["b"]
    assert rig.refreshes() == 1
    assert rig.row()["generation"] == 2
    assert rig.stored("access_token") == got["b"]


def test_a_second_process_waits_for_the_refresher_and_uses_its_token(xero: Rig) -> None:
    two_processes_refresh_once(xero)


def test_on_postgres_a_second_process_waits_for_the_refresher_and_uses_its_token(
    postgres_engine: Engine, clock: Clock
) -> None:
    with OAuthSandbox("xero", accounts={TENANT: "Demo Org"}, clock=clock.seconds) as oauth:
        two_processes_refresh_once(Rig("xero", TENANT, oauth, postgres_engine, clock))


def test_four_processes_racing_for_one_refresh_make_one_token_call(engine: Engine, clock: Clock) -> None:
    with OAuthSandbox("quickbooks", accounts=[REALM], clock=clock.seconds) as oauth:
        rig = Rig("quickbooks", REALM, oauth, engine, clock)
        rig.connect()
        clock.advance(minutes=58)
        barrier = threading.Barrier(4)
        got: list[str] = []

        def process() -> None:
            # Its own locks: to the others it is another process, met only through the database.
            store = rig.store(sleep=lambda _: os.sched_yield())
            barrier.wait(timeout=10)
            got.append(rig.token(store=store))

        threads = [threading.Thread(target=process) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(got) == 4
        assert len(set(got)) == 1
        assert rig.refreshes() == 1
        assert rig.row()["generation"] == 2


def test_a_refresher_that_died_holding_the_lease_is_taken_over_once_the_lease_runs_out(qbo: Rig) -> None:
    qbo.connect()
    qbo.clock.advance(minutes=56)
    with qbo.engine.begin() as conn:  # a process died mid-refresh: its lease is still there
        conn.execute(update(oauth_tokens).values(refreshing_until=qbo.clock() + timedelta(minutes=3)))
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        qbo.clock.advance(seconds=seconds)

    token = qbo.token(store=qbo.store(sleep=sleep, poll_seconds=10))
    assert sum(waited) == 180
    assert qbo.refreshes() == 1
    assert qbo.stored("access_token") == token


# --------------------------------------------------------------------------- crash mid-refresh


def test_a_lost_refresh_answer_is_retried_at_once_with_the_same_token_inside_xeros_grace(xero: Rig) -> None:
    xero.connect()
    xero.clock.advance(minutes=28)
    xero.oauth.drop_next_refresh()
    token = xero.token()
    assert xero.refreshes() == 2
    assert xero.stored("access_token") == token
    assert xero.stored("refresh_token") == xero.oauth.refresh_tokens()[-1]


def test_a_crash_after_xero_rotated_does_not_lose_the_connection_within_the_grace(xero: Rig) -> None:
    first = xero.connect()
    xero.clock.advance(minutes=28)
    xero.oauth.drop_next_refresh()
    xero.max_attempts = 1  # the process "dies" with the answer lost: nothing is retried in it
    with pytest.raises(TransientError):
        xero.token()
    assert len(xero.oauth.refresh_tokens()) == 2  # Xero rotated ...
    assert xero.stored("refresh_token") == first.refresh_token  # ... the store still has the old one
    assert xero.row()["generation"] == 1
    xero.clock.advance(minutes=20)  # the restarted process, still within Xero's 30 minutes
    token = xero.token()
    assert xero.stored("access_token") == token
    assert xero.stored("refresh_token") == xero.oauth.refresh_tokens()[-1]
    assert xero.row()["generation"] == 2


def test_after_xeros_grace_a_lost_rotation_means_reconnecting(xero: Rig) -> None:
    xero.connect()
    xero.clock.advance(minutes=28)
    xero.oauth.drop_next_refresh()
    xero.max_attempts = 1
    with pytest.raises(TransientError):
        xero.token()
    xero.clock.advance(minutes=31)
    with pytest.raises(ConfigError, match=r"reconnect with `hourbridge connect xero`"):
        xero.token()
    assert xero.row()["refreshing_until"] is None


def test_quickbooks_takes_the_old_refresh_token_days_after_a_lost_rotation(qbo: Rig) -> None:
    first = qbo.connect()
    qbo.clock.advance(minutes=58)
    qbo.oauth.drop_next_refresh()
    qbo.max_attempts = 1
    with pytest.raises(TransientError):
        qbo.token()
    qbo.clock.advance(days=3)
    token = qbo.token()
    assert qbo.stored("access_token") == token
    assert qbo.stored("previous_refresh_token") == first.refresh_token


def test_a_refused_current_refresh_token_is_retried_with_the_previous_one(xero: Rig) -> None:
    xero.connect()
    xero.clock.advance(minutes=28)
    xero.token()
    current = xero.stored("refresh_token")
    assert current is not None
    xero.oauth.revoke_refresh_token(current)
    xero.clock.advance(minutes=10)
    with capture_logs() as logs:
        token = xero.token(rejected=xero.stored("access_token"))
    assert xero.refreshes() == 3  # refused, then the previous token
    assert "oauth.retry_previous" in [e["event"] for e in logs]
    assert xero.stored("access_token") == token
    assert xero.row()["generation"] == 3


def test_a_refused_refresh_tells_the_admin_to_reconnect_and_keeps_the_row(qbo: Rig) -> None:
    qbo.connect()
    qbo.oauth.disconnect()
    qbo.clock.advance(minutes=58)
    with pytest.raises(ConfigError) as refused:
        qbo.token()
    assert "reconnect with `hourbridge connect quickbooks`" in refused.value.message
    row = qbo.row()
    assert row["refreshing_until"] is None
    assert row["generation"] == 1


# --------------------------------------------------------------------------- what the run uses


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))


def qbo_settings(rig: Rig, **extra: Any) -> Settings:
    return Settings(
        token_key=SecretStr(rig.key),
        quickbooks={
            "realm_id": REALM,
            "client_id": rig.oauth.client_id,
            "client_secret": rig.oauth.client_secret,
            "authorize_url": rig.oauth.authorize_url,
            "token_url": rig.oauth.token_url,
            **extra,
        },
    )


@pytest.mark.usefixtures("clean_env")
def test_access_token_source_is_none_without_an_oauth_client_and_refuses_an_unconnected_company(qbo: Rig) -> None:
    assert access_token_source(Settings(quickbooks={"realm_id": REALM}), qbo.engine, "quickbooks") is None
    assert access_token_source(Settings(), qbo.engine, "xero") is None
    with pytest.raises(ConfigError, match=r"company 9130350000000001 is not connected: run `hourbridge connect"):
        access_token_source(qbo_settings(qbo), qbo.engine, "quickbooks")
    settings = Settings(quickbooks={"realm_id": REALM, "client_id": "abc"})
    with pytest.raises(ConfigError, match="HOURBRIDGE_QUICKBOOKS__CLIENT_SECRET"):
        access_token_source(settings, qbo.engine, "quickbooks")


@pytest.mark.usefixtures("clean_env")
def test_a_sink_with_the_token_source_refreshes_after_a_401_and_repeats_the_request(qbo: Rig) -> None:
    qbo.clock.now = datetime.now(UTC)  # access_token_source keeps the real time
    qbo.connect()
    source = access_token_source(qbo_settings(qbo), qbo.engine, "quickbooks")
    assert callable(source)
    with QuickBooksSandbox(realm_id=REALM, oauth=qbo.oauth) as company:
        config = QuickBooksConfig(realm_id=REALM, base_url=company.server.root_url)
        limiter = RateLimiter(1_000_000, clock=FakeClock())
        with QuickBooksSink(config, token=source, limiter=limiter, batch_limiter=limiter, sleep=no_sleep) as sink:
            sink.check()
            assert qbo.refreshes() == 0
            qbo.oauth.revoke_access_tokens()  # QuickBooks stops taking the token before its hour is up
            sink.check()
        assert company.call_count(COMPANY_INFO) == 3  # ok, 401, the same request again
    assert qbo.refreshes() == 1
    assert qbo.row()["generation"] == 2


# --------------------------------------------------------------------------- secrets and the emulator


def test_no_token_or_client_secret_appears_in_logs_or_errors(xero: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    browsed = xero.browse()  # the browser is not hourbridge: its own request logs are not ours
    caplog.clear()
    with capture_logs() as logs:
        xero.finish(*browsed)
        xero.clock.advance(minutes=28)
        xero.oauth.drop_next_refresh()
        xero.token()
        xero.oauth.disconnect()
        xero.clock.advance(minutes=28)
        with pytest.raises(ConfigError) as refused:
            xero.token()
        messages.append(refused.value.message)
        with pytest.raises(ConfigError) as wrong:
            wrong_app = dataclasses.replace(xero.app, client_secret="wrong-secret-value")
            OAuthClient(wrong_app, sleep=no_sleep).refresh("rt-made-up-token")
        messages.append(wrong.value.message)
    assert {"oauth.token", "oauth.refreshed", "http.retry"} <= {e["event"] for e in logs}
    text_seen = repr(logs) + caplog.text + " ".join(messages)
    secrets = xero.oauth.refresh_tokens() + xero.oauth.access_tokens() + xero.codes
    secrets += [xero.oauth.client_secret, "wrong-secret-value", "rt-made-up-token", xero.key]
    assert len(secrets) == 11  # 3 refresh and 3 access tokens, the code, 4 more
    for secret in secrets:
        assert secret not in text_seen
    assert "check HOURBRIDGE_XERO__CLIENT_ID and HOURBRIDGE_XERO__CLIENT_SECRET" in messages[1]


def test_the_emulator_checks_the_client_the_code_and_xeros_offline_access(xero: Rig) -> None:
    client = xero.client()
    state = new_state()
    answer = httpx.get(client.authorization_url(state))
    callback = client.parse_callback(answer.headers["location"], state=state)
    assert callback.account is None  # Xero names tenants through /connections, not the callback
    with pytest.raises(ConfigError, match="does not belong to this connect attempt"):
        client.parse_callback(answer.headers["location"], state=new_state())
    tokens = client.exchange_code(callback.code)
    assert tokens.refresh_token is not None and tokens.scope == "offline_access"
    with pytest.raises(ConfigError, match="authorization code"):
        client.exchange_code(callback.code)  # used once already
    # Without offline_access Xero hands out no refresh token, and nothing can be stored.
    narrow = OAuthClient(dataclasses.replace(xero.app, scopes=("projects",)), sleep=no_sleep)
    state = new_state()
    answer = httpx.get(narrow.authorization_url(state))
    tokens = narrow.exchange_code(narrow.parse_callback(answer.headers["location"], state=state).code)
    assert tokens.refresh_token is None
    with pytest.raises(ConfigError, match="gave no refresh token"):
        xero.store().save("xero", TENANT, tokens, obtained_at=xero.clock(), by="admin")


def test_quickbooks_redirects_with_the_realm_and_a_declined_authorization_is_reported(qbo: Rig) -> None:
    client = qbo.client()
    state = new_state()
    location = httpx.get(client.authorization_url(state)).headers["location"]
    assert location.startswith(REDIRECT + "?")
    assert client.parse_callback(location, state=state).account == REALM
    qbo.oauth.deny_next_authorization()
    location = httpx.get(client.authorization_url(state)).headers["location"]
    with pytest.raises(ConfigError, match="access was not allowed"):
        client.parse_callback(location, state=state)
