"""`hourbridge connect` against the OAuth emulators, with httpx playing the admin's browser."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from cryptography.fernet import Fernet
from sqlalchemy import select

from connectors._ratelimit import RateLimiter
from connectors.quickbooks import QuickBooksSink
from connectors.sandbox.oauth import TOKEN, OAuthSandbox
from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox
from sync.admin.oauth import TokenCipher, access_token_source
from sync.cli import connect as cli_connect
from sync.settings import QuickBooksSettings, load_settings
from sync.store.db import make_engine
from sync.store.tables import oauth_tokens
from tests.fakes import FakeClock

from .conftest import run_cli

pytestmark = pytest.mark.e2e

REALM = "9130350000000001"
TENANTS = {"b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10": "Demo Org", "0c9e2f6a-1111-4a7b-9c3d-5e6f7a8b9c0d": "Other Org"}
KEY = Fernet.generate_key().decode()


class Browser:
    """Opens the authorization address and follows the vendor's redirect to the local callback."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.pages: list[httpx.Response] = []
        self.state_override: str | None = None

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        answer = httpx.get(url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        if self.state_override is not None:  # a forged or stale redirect
            location = location.replace("state=", f"state={self.state_override}&was=")
        self.pages.append(httpx.get(location))
        return True


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Browser:
    fake = Browser()
    monkeypatch.setattr(cli_connect, "open_browser", fake)
    return fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("HOURBRIDGE_LOG_FORMAT", "json")
    monkeypatch.setenv("HOURBRIDGE_TOKEN_KEY", KEY)
    return tmp_path


@pytest.fixture
def qbo_oauth(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthSandbox]:
    with OAuthSandbox("quickbooks", accounts=[REALM]) as oauth:
        for name, value in {
            "CLIENT_ID": oauth.client_id,
            "CLIENT_SECRET": oauth.client_secret,
            "AUTHORIZE_URL": oauth.authorize_url,
            "TOKEN_URL": oauth.token_url,
            "REDIRECT_URI": "http://127.0.0.1:8765/callback",
        }.items():
            monkeypatch.setenv(f"HOURBRIDGE_QUICKBOOKS__{name}", value)
        yield oauth


@pytest.fixture
def xero_oauth(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OAuthSandbox, XeroSandbox]]:
    with OAuthSandbox("xero", accounts=TENANTS) as oauth, XeroSandbox(oauth=oauth) as api:
        for name, value in {
            "CLIENT_ID": oauth.client_id,
            "CLIENT_SECRET": oauth.client_secret,
            "AUTHORIZE_URL": oauth.authorize_url,
            "TOKEN_URL": oauth.token_url,
            "CONNECTIONS_URL": api.server.root_url + "/connections",
            "REDIRECT_URI": "http://127.0.0.1:8765/callback",
        }.items():
            monkeypatch.setenv(f"HOURBRIDGE_XERO__{name}", value)
        yield oauth, api


def stored_rows(env: Path) -> list[dict[str, object]]:
    engine = make_engine(f"sqlite:///{env / 'state.db'}")
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(oauth_tokens)).all()]
    finally:
        engine.dispose()


def test_connect_quickbooks_stores_the_company_encrypted_and_a_run_can_deliver_with_it(
    qbo_oauth: OAuthSandbox, browser: Browser, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run_cli("connect", "quickbooks", "--port", "0", "--by", "ops@example.com")
    assert code == 0, output
    assert len(browser.opened) == 1 and browser.opened[0] in output
    assert browser.pages[0].status_code == 200 and "return to the terminal" in browser.pages[0].text
    assert f"connected QuickBooks company {REALM}" in output
    assert f"Set HOURBRIDGE_QUICKBOOKS__REALM_ID={REALM}" in output  # the realm was not configured yet
    (row,) = stored_rows(env)
    assert (row["provider"], row["account"], row["generation"], row["connected_by"]) == (
        "quickbooks",
        REALM,
        1,
        "ops@example.com",
    )
    issued = qbo_oauth.refresh_tokens() + qbo_oauth.access_tokens()
    assert len(issued) == 2
    for secret in issued:
        assert secret not in repr(row)
        assert secret not in output
    assert TokenCipher(KEY).decrypt(str(row["refresh_token"]), provider="quickbooks", account=REALM) == issued[0]

    # What a run does next: the sink gets its token from the stored connection.
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__REALM_ID", REALM)
    with QuickBooksSandbox(realm_id=REALM, oauth=qbo_oauth) as company:
        monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__BASE_URL", company.server.root_url)
        settings = load_settings()
        engine = make_engine(settings.database_url)
        source = access_token_source(settings, engine, "quickbooks")
        qbo = settings.sink_config("quickbooks")
        assert source is not None and isinstance(qbo, QuickBooksSettings)
        limiter = RateLimiter(1_000_000, clock=FakeClock())
        with QuickBooksSink(qbo, token=source, limiter=limiter, batch_limiter=limiter) as sink:
            sink.check()
        engine.dispose()

    code, output = run_cli("connect", "--status")
    assert code == 0, output
    assert "quickbooks" in output and REALM in output and "ops@example.com" in output
    for secret in qbo_oauth.refresh_tokens() + qbo_oauth.access_tokens():
        assert secret not in output


def test_connect_without_a_token_key_prints_a_new_one_and_stores_nothing(
    qbo_oauth: OAuthSandbox, browser: Browser, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOURBRIDGE_TOKEN_KEY")
    code, output = run_cli("connect", "quickbooks", "--port", "0")
    assert code == 2, output
    line = next(x.strip() for x in output.splitlines() if x.strip().startswith("HOURBRIDGE_TOKEN_KEY="))
    Fernet(line.removeprefix("HOURBRIDGE_TOKEN_KEY=").encode())  # a usable key
    assert "run `hourbridge connect quickbooks` again" in output
    assert browser.opened == []
    assert qbo_oauth.call_count() == 0
    assert not (env / "state.db").exists() or stored_rows(env) == []


def test_a_callback_with_another_state_is_refused_and_nothing_is_stored(
    qbo_oauth: OAuthSandbox, browser: Browser, env: Path
) -> None:
    browser.state_override = "forged"
    code, output = run_cli("connect", "quickbooks", "--port", "0")
    assert code == 2, output
    assert "does not belong to this connect attempt" in output
    assert qbo_oauth.call_count(TOKEN) == 0
    assert stored_rows(env) == []


def test_a_declined_authorization_stores_nothing(qbo_oauth: OAuthSandbox, browser: Browser, env: Path) -> None:
    qbo_oauth.deny_next_authorization()
    code, output = run_cli("connect", "quickbooks", "--port", "0")
    assert code == 2, output
    assert "access was not allowed" in output
    assert stored_rows(env) == []


def test_connect_xero_with_several_organisations_lists_them_until_the_tenant_is_set(
    xero_oauth: tuple[OAuthSandbox, XeroSandbox], browser: Browser, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oauth, _ = xero_oauth
    code, output = run_cli("connect", "xero", "--port", "0")
    assert code == 2, output
    assert "several Xero organisations" in output
    for tenant, name in TENANTS.items():
        assert tenant in output and name in output
    assert "HOURBRIDGE_XERO__TENANT_ID" in output
    assert stored_rows(env) == []

    tenant = next(iter(TENANTS))
    monkeypatch.setenv("HOURBRIDGE_XERO__TENANT_ID", tenant)
    code, output = run_cli("connect", "xero", "--port", "0")
    assert code == 0, output
    assert f"connected Xero organisation {tenant}" in output and "offline_access" in output
    (row,) = stored_rows(env)
    assert (row["provider"], row["account"]) == ("xero", tenant)
    assert oauth.refresh_tokens()[-1] not in repr(row)


def test_connect_with_a_redirect_elsewhere_takes_the_pasted_address(
    qbo_oauth: OAuthSandbox, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__REDIRECT_URI", "https://hourbridge.example.com/oauth-callback")
    landed: list[str] = []

    def browser(url: str) -> bool:
        landed.append(httpx.get(url).headers["location"])  # the page on the registered site is not ours
        return True

    monkeypatch.setattr(cli_connect, "open_browser", browser)
    monkeypatch.setattr(typer, "prompt", lambda *args, **kwargs: landed[0])  # the module connect prompts through
    code, output = run_cli("connect", "quickbooks")
    assert code == 0, output
    assert landed[0].startswith("https://hourbridge.example.com/oauth-callback?code=")
    assert f"connected QuickBooks company {REALM}" in output
    assert len(stored_rows(env)) == 1


def test_connect_needs_the_app_keys_first(env: Path) -> None:
    code, output = run_cli("connect", "xero")
    assert code == 2
    assert "HOURBRIDGE_XERO__CLIENT_ID" in output and "HOURBRIDGE_XERO__CLIENT_SECRET" in output
    code, output = run_cli("connect", "sage")
    assert code == 2
    assert "expected quickbooks or xero" in output


ALL_INTERFACES = "0.0.0.0"  # noqa: S104  (what an admin passes to --bind inside a container)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connect_paste_on_a_headless_machine_starts_no_callback_and_takes_the_pasted_address(
    qbo_oauth: OAuthSandbox, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__REDIRECT_URI", f"http://localhost:{port}/callback")
    landed: list[str] = []
    monkeypatch.setattr(cli_connect, "open_browser", lambda url: pytest.fail("--no-browser opens nothing"))

    def prompt(*args: object, **kwargs: object) -> str:
        # The admin opened the printed address on their own machine; the redirect to this (remote)
        # host's localhost leads nowhere, and nothing here listens for it either.
        printed = [line for line in captured.getvalue().splitlines() if line.startswith("http")]
        location = httpx.get(printed[0]).headers["location"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(location)
        landed.append(location)
        return f"  {location}\n"  # pasted with the stray whitespace of a terminal selection

    captured = io.StringIO()
    monkeypatch.setattr(cli_connect, "_say", lambda text: captured.write(text + "\n"))
    monkeypatch.setattr(typer, "prompt", prompt)
    code, output = run_cli("connect", "quickbooks", "--paste", "--no-browser")
    assert code == 0, output
    assert landed[0].startswith(f"http://localhost:{port}/callback?code=")
    assert "copy the whole address from the address bar" in captured.getvalue()
    assert f"connected QuickBooks company {REALM}" in captured.getvalue()
    assert len(stored_rows(env)) == 1


def test_connect_bind_listens_on_the_given_address_for_a_published_container_port(
    qbo_oauth: OAuthSandbox, browser: Browser, env: Path
) -> None:
    code, output = run_cli("connect", "quickbooks", "--bind", ALL_INTERFACES, "--port", "0")
    assert code == 0, output
    assert "listening on 0.0.0.0" in output
    assert browser.pages[0].status_code == 200  # reached through 127.0.0.1, as a published port would be
    assert len(stored_rows(env)) == 1


def test_callback_server_binds_the_address_it_is_given() -> None:
    with cli_connect.CallbackServer("http://localhost:8765/callback", port=0, bind=ALL_INTERFACES) as server:
        host, port = server._httpd.server_address[:2]
        assert (host, server.redirect_uri) == (ALL_INTERFACES, f"http://localhost:{port}/callback")
        assert httpx.get(f"http://127.0.0.1:{port}/callback?code=c&state=s").status_code == 200
        assert server.wait(1) == "/callback?code=c&state=s"
    with cli_connect.CallbackServer("http://localhost:8765/callback", port=0) as server:
        assert server._httpd.server_address[0] == "127.0.0.1"  # the default: loopback only


def test_connect_refuses_a_bind_that_is_not_an_address_and_a_busy_port(
    qbo_oauth: OAuthSandbox, browser: Browser, env: Path
) -> None:
    code, output = run_cli("connect", "quickbooks", "--bind", "my-laptop")
    assert code == 2
    assert "--bind" in output and ALL_INTERFACES in output
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, output = run_cli("connect", "quickbooks", "--port", str(busy.getsockname()[1]))
    assert code == 2, output
    assert "choose another --port or --bind, or use --paste" in output
    assert browser.opened == [] and stored_rows(env) == []
