"""`hourbridge connect quickbooks|xero`: the first OAuth authorization, on a local callback, stored encrypted."""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
import webbrowser
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from connectors.errors import ConfigError, HourbridgeError, PayloadError
from connectors.oauth import (
    PROVIDER_NAMES,
    Callback,
    OAuthClient,
    ProviderFacts,
    TokenSet,
    new_state,
    oauth_app,
    provider_facts,
)
from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import say as _say
from sync.settings import Settings

DEFAULT_BIND = "127.0.0.1"
UNSET_ID = "(not set)"
"""Stands in for the realm or tenant id while connecting: connect is how an admin learns it."""
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
PORTALS = {"quickbooks": "developer.intuit.com (Keys & credentials)", "xero": "developer.xero.com (My Apps)"}


def open_browser(url: str) -> bool:
    """Open ``url`` in the admin's browser (tests replace this with a scripted browser)."""
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _id_field(facts: ProviderFacts) -> str:
    return facts.account_setting.removeprefix(facts.env_prefix).lower()


def _load(provider: str | None) -> tuple[Settings, str | None]:
    """Settings, and the configured realm/tenant id (None when unset: connect is how an admin learns it)."""
    from sync.cli.shared import command_settings as _settings

    try:
        settings = _settings()
    except ConfigError as first:
        if provider is None:
            raise
        try:
            settings = _settings(**{provider: {_id_field(provider_facts(provider)): UNSET_ID}})
        except ConfigError:
            raise first from None
        return settings, None
    if provider is None:
        return settings, None
    config = getattr(settings, provider)
    configured = getattr(config, _id_field(provider_facts(provider))) if config is not None else None
    return settings, configured


# --------------------------------------------------------------------------- the local callback


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def _bind_address(value: str) -> str:
    """``--bind``: an IP address of this machine (a host name would hide which interface listens)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise typer.BadParameter(
            f"expected an IP address such as 127.0.0.1 or 0.0.0.0 (every interface), got {value!r}",
            param_hint="--bind",
        ) from None


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class CallbackServer:
    """Answers the vendor's redirect on the loopback interface; the first address it is called at is kept."""

    def __init__(self, redirect_uri: str, *, port: int | None = None, bind: str = DEFAULT_BIND) -> None:
        parts = urlsplit(redirect_uri)
        self._parts = parts
        self._path = parts.path or "/"
        self._answers: queue.Queue[str] = queue.Queue(maxsize=1)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != owner._path:
                    self._page(404, "Not the hourbridge callback.")
                    return
                try:
                    owner._answers.put_nowait(self.path)
                except queue.Full:
                    self._page(409, "hourbridge already has an answer; return to the terminal.")
                    return
                self._page(200, "hourbridge has the answer. You can close this tab and return to the terminal.")

            def _page(self, status: int, text: str) -> None:
                body = f"<!doctype html><title>hourbridge</title><p>{text}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the query string holds the authorization code: never logged

        bind_port = (parts.port or 80) if port is None else port
        server_class = _IPv6Server if _is_ipv6(bind) else ThreadingHTTPServer
        self._httpd = server_class((bind, bind_port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="connect-callback", daemon=True)

    @property
    def redirect_uri(self) -> str:
        """The redirect URI with the port actually bound (the same as the setting's unless overridden)."""
        port = int(self._httpd.server_address[1])
        netloc = f"{self._parts.hostname}:{port}"
        return urlunsplit((self._parts.scheme, netloc, self._path, "", ""))

    def wait(self, timeout: float) -> str | None:
        """The callback's full address (path and query), or None after ``timeout`` seconds."""
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


# --------------------------------------------------------------------------- choosing the account


def _account(
    facts: ProviderFacts, client: OAuthClient, callback: Callback, tokens: TokenSet, configured: str | None
) -> str:
    """The realm (QuickBooks) or tenant (Xero) the new connection is stored under."""
    if facts.name == "quickbooks":
        if callback.account is None:
            raise PayloadError("QuickBooks redirected back without a realmId (the company id)")
        if configured is not None and callback.account != configured:
            raise ConfigError(
                f"you connected QuickBooks company {callback.account}, but {facts.account_setting} is {configured}: "
                f"nothing was stored. Run `hourbridge connect quickbooks` again and choose company {configured}, "
                f"or set {facts.account_setting}={callback.account}"
            )
        return callback.account
    tenants = client.connections(tokens.access_token)
    listing = "; ".join(f"{t.tenant_id} ({t.name or t.tenant_type})" for t in tenants)
    if configured is not None:
        if any(t.tenant_id == configured for t in tenants):
            return configured
        raise ConfigError(
            f"{facts.account_setting} is {configured}, but this connection reaches only: {listing or 'nothing'}. "
            f"Nothing was stored; allow that organisation when you run `hourbridge connect xero` again, "
            f"or set {facts.account_setting} to one of those"
        )
    if len(tenants) == 1:
        return tenants[0].tenant_id
    if not tenants:
        raise ConfigError(
            "the connection reaches no Xero organisation: allow one when you run `hourbridge connect xero`"
        )
    raise ConfigError(
        f"the connection reaches several Xero organisations: {listing}. Nothing was stored; set "
        f"{facts.account_setting} to the one hourbridge delivers to and run `hourbridge connect xero` again"
    )


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- commands


def _status(settings: Settings) -> None:
    from sync.admin.oauth import stored_connections
    from sync.store.db import make_engine, require_current

    engine = make_engine(settings.database_url, file_mode=settings.file_permissions)
    require_current(engine)
    connections = stored_connections(engine)  # decrypts nothing, so no key is needed
    if not connections:
        _say("no stored connections: run `hourbridge connect quickbooks|xero`")
        return
    _say("OAuth connections (tokens stored encrypted):")
    for c in connections:
        _say(
            f"{c.provider} {c.account}: connected {_when(c.connected_at)} by {c.connected_by}; "
            f"last refresh {_when(c.refreshed_at) or 'none yet'}; access token until {_when(c.access_expires_at)}; "
            f"refresh token until {_when(c.refresh_expires_at) or 'unknown'}"
        )


def _print_new_key(facts: ProviderFacts) -> None:
    from sync.admin.oauth import KEY_SETTING, new_token_key

    _say(
        f"{KEY_SETTING} is not set, so nothing can be stored. A new key (keep it secret, and keep it: the stored "
        f"tokens cannot be read without it):\n\n    {KEY_SETTING}={new_token_key()}\n\n"
        f"Set it wherever hourbridge runs (an environment variable, or the file '{KEY_SETTING.lower()}' in "
        f"HOURBRIDGE_SECRETS_DIR), then run `hourbridge connect {facts.name}` again."
    )


def _paste_answer(client: OAuthClient, state: str, redirect_uri: str, *, browser: bool) -> tuple[str, str]:
    """The admin opens the address anywhere and pastes back the address the browser was sent to."""
    facts = client.provider
    url = client.authorization_url(state, redirect_uri=redirect_uri)
    _say(f"Open this address in any browser, sign in to {facts.vendor} and allow access:\n\n{url}\n")
    if browser:
        open_browser(url)
    _say(
        f"{facts.vendor} then sends the browser to {redirect_uri}?code=…; that page may fail to load "
        "(nothing answers there), which is expected: copy the whole address from the address bar."
    )
    answer = typer.prompt("Paste the whole address the browser was sent to", hide_input=True)
    return str(answer).strip(), redirect_uri


def _browser_answer(
    client: OAuthClient,
    state: str,
    redirect_uri: str,
    *,
    port: int | None,
    bind: str,
    paste: bool,
    browser: bool,
    timeout: int,
) -> tuple[str, str]:
    """(the address the browser came back to, the redirect URI used) after the admin allowed access."""
    facts = client.provider
    parts = urlsplit(redirect_uri)
    if paste or parts.hostname not in LOOPBACK_HOSTS:
        # Apps whose registered redirect is not this machine (Intuit production keys need HTTPS), and
        # machines the admin's browser cannot reach (a headless server, a container without a
        # published port): the browser lands on the redirect with the code in its address.
        return _paste_answer(client, state, redirect_uri, browser=browser)
    if parts.scheme != "http":
        raise ConfigError(
            f"{facts.setting('redirect_uri')} points at this machine, so it must start with http:// "
            "(the local callback speaks plain HTTP), or use --paste"
        )
    try:
        server = CallbackServer(redirect_uri, port=port, bind=bind)
    except OSError as exc:
        raise ConfigError(
            f"cannot answer the callback on {bind} port {port if port is not None else parts.port or 80} "
            f"({exc.strerror or exc}): choose another --port or --bind, or use --paste"
        ) from None
    with server:
        redirect_uri = server.redirect_uri
        url = client.authorization_url(state, redirect_uri=redirect_uri)
        _say(f"Open this address, sign in to {facts.vendor} and allow access:\n\n{url}\n")
        if browser:
            open_browser(url)
        where = "" if bind == DEFAULT_BIND else f" (listening on {bind})"
        _say(f"waiting up to {timeout} s for {facts.vendor} to send the browser back to {redirect_uri}{where} …")
        answer = server.wait(timeout)
    if answer is None:
        raise HourbridgeError(
            f"no answer came back within {timeout} s: nothing was stored; run `hourbridge connect {facts.name}` "
            "again (--timeout gives more time; --paste when this machine's browser callback is out of reach)"
        )
    return answer, redirect_uri


@_admin_errors
def connect(
    provider: Annotated[str | None, typer.Argument(help="quickbooks or xero.", show_default=False)] = None,
    status: Annotated[bool, typer.Option("--status", help="List the stored connections (no secrets).")] = False,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Answer the callback on this port instead of the redirect URI's (0 = any free port).",
        ),
    ] = None,
    bind: Annotated[
        str,
        typer.Option(
            callback=_bind_address,
            help="Address the callback listens on; 0.0.0.0 in a container whose port is published "
            "(docker run -p 8765:8765).",
        ),
    ] = DEFAULT_BIND,
    paste: Annotated[
        bool,
        typer.Option(
            "--paste",
            help="No local callback: open the address in any browser, then paste the address it was sent to "
            "(headless servers).",
        ),
    ] = False,
    browser: Annotated[bool, typer.Option(help="Open the authorization address in a browser.")] = True,
    timeout: Annotated[int, typer.Option(min=1, help="Seconds to wait for the browser to come back.")] = 300,
    by: Annotated[str | None, typer.Option(help="Who connects (default: $USER, else the OS user).")] = None,
) -> None:
    """Connect QuickBooks or Xero once in a browser; the tokens are stored encrypted and refresh themselves."""
    if provider is not None and provider not in PROVIDER_NAMES:
        raise typer.BadParameter(f"expected quickbooks or xero, got {provider!r}", param_hint="PROVIDER")
    settings, configured = _load(provider)
    if status:
        _status(settings)
        return
    if provider is None:
        raise typer.BadParameter("name what to connect: quickbooks or xero (or --status)", param_hint="PROVIDER")
    facts = provider_facts(provider)
    app = oauth_app(facts.name, getattr(settings, provider))
    if app is None:
        raise ConfigError(
            f"set {facts.setting('client_id')} and {facts.setting('client_secret')} to your app's keys from "
            f"{PORTALS[provider]} first, and register {facts.setting('redirect_uri')} "
            f"(default http://localhost:8765/callback) as its redirect URI"
        )
    if settings.token_key is None or not settings.token_key.get_secret_value().strip():
        _print_new_key(facts)
        raise typer.Exit(2)

    from sync.admin.oauth import TokenStore, token_cipher
    from sync.admin.revisions import default_author
    from sync.store.db import make_engine, upgrade

    cipher = token_cipher(settings)  # a bad key fails here, before the browser round trip
    engine = make_engine(settings.database_url, file_mode=settings.file_permissions)
    upgrade(engine)
    client = OAuthClient(app)
    state = new_state()
    answer, redirect_uri = _browser_answer(
        client, state, app.redirect_uri, port=port, bind=bind, paste=paste, browser=browser, timeout=timeout
    )
    callback = client.parse_callback(answer, state=state)
    obtained_at = datetime.now(UTC)
    tokens = client.exchange_code(callback.code, redirect_uri=redirect_uri)
    account = _account(facts, client, callback, tokens, configured)
    connection = TokenStore(engine, cipher).save(
        facts.name, account, tokens, obtained_at=obtained_at, by=by or default_author()
    )
    scope = f" (scope: {connection.scope})" if connection.scope else ""
    _say(
        f"connected {facts.vendor} {facts.account_what} {account}{scope}. The tokens are stored encrypted and "
        "refresh themselves; runs deliver with them from now on."
    )
    if configured is None:
        _say(f"Set {facts.account_setting}={account} so runs deliver to it.")


def register(app: typer.Typer) -> None:
    """Add `connect` to the `hourbridge` app."""
    app.command("connect")(connect)
