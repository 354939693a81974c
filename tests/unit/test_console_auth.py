"""Console sign-in beyond local tokens: a trusted reverse proxy's header, and OpenID Connect against a fake provider."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Engine, select
from starlette.datastructures import Headers
from starlette.testclient import TestClient

from sync.console.app import create_app
from sync.console.auth import client_address, role_of, trusted_proxy
from sync.delivery import periods
from sync.settings import ConsoleSettings
from sync.store.tables import console_sessions
from tests.console_fixtures import NOW, Clock, console_settings, csrf_of, new_token, seed, try_sign_in

ISSUER = "https://id.example.test"
CLIENT_ID = "hourbridge-console"


@pytest.fixture(autouse=True)
def _no_mapping_file_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- roles and proxies


def test_roles_come_from_the_lists_and_star_admits_viewers() -> None:
    console = ConsoleSettings(admins=["Ada@Example.com"], viewers=["vic@example.com"])
    assert role_of(console, "ada@example.com") == "admin"
    assert role_of(console, "vic@example.com") == "viewer"
    assert role_of(console, "eve@example.com") is None
    assert role_of(ConsoleSettings(viewers=["*"]), "eve@example.com") == "viewer"


def test_only_configured_proxy_addresses_are_trusted() -> None:
    console = ConsoleSettings(trusted_proxies=["10.0.0.0/24", "192.168.1.7"])
    assert trusted_proxy(console, "10.0.0.9") and trusted_proxy(console, "192.168.1.7")
    assert not trusted_proxy(console, "10.0.1.9")
    assert not trusted_proxy(console, "testclient")
    assert not trusted_proxy(ConsoleSettings(), "10.0.0.9")


def test_a_proxy_network_that_is_not_an_address_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        ConsoleSettings(trusted_proxies=["proxy.local"])


@pytest.fixture
def proxied(engine: Engine, tmp_path: Path) -> Callable[[str], TestClient]:
    settings = console_settings(
        tmp_path, engine, trusted_proxies=["10.0.0.5"], admins=["ada@example.com"], viewers=["vic@example.com"]
    )
    seed(engine, settings)
    app = create_app(settings, engine, clock=Clock())
    return lambda address: TestClient(app, client=(address, 40000))


def test_the_proxy_header_signs_in_from_a_trusted_proxy(proxied: Callable[[str], TestClient]) -> None:
    with proxied("10.0.0.5") as client:
        page = client.get("/", headers={"X-Forwarded-User": "ada@example.com"})
        assert page.status_code == 200 and "ada@example.com" in page.text and "admin" in page.text
        # The header alone works for forms too (with the session's CSRF token), and the author is the proxy's user.
        closed = client.post(
            "/periods/close",
            data={"month": "2026-10", "csrf_token": csrf_of(page.text)},
            headers={"X-Forwarded-User": "ada@example.com"},
            follow_redirects=False,
        )
        assert closed.status_code == 303
        # Without the header the session is not good: the proxy must keep vouching.
        assert client.get("/", follow_redirects=False).status_code == 303


def test_the_proxy_header_from_anyone_else_is_ignored(proxied: Callable[[str], TestClient], engine: Engine) -> None:
    with proxied("10.0.0.6") as client:
        response = client.get("/", headers={"X-Forwarded-User": "ada@example.com"}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with engine.connect() as conn:
        assert conn.execute(select(console_sessions)).all() == []


def test_a_proxy_user_on_no_list_is_refused(proxied: Callable[[str], TestClient]) -> None:
    with proxied("10.0.0.5") as client:
        assert (
            client.get("/", headers={"X-Forwarded-User": "eve@example.com"}, follow_redirects=False).status_code == 303
        )


def test_a_proxy_viewer_is_read_only(proxied: Callable[[str], TestClient], engine: Engine) -> None:
    with proxied("10.0.0.5") as client:
        headers = {"X-Forwarded-User": "vic@example.com"}
        page = client.get("/periods", headers=headers)
        assert "read-only" in page.text
        refused = client.post(
            "/periods/close", data={"month": "2026-10", "csrf_token": csrf_of(page.text)}, headers=headers
        )
        assert refused.status_code == 403
    with engine.connect() as conn:
        assert periods.closed(conn).labels == frozenset()


def test_switching_the_proxy_user_does_not_keep_the_old_session(proxied: Callable[[str], TestClient]) -> None:
    with proxied("10.0.0.5") as client:
        client.get("/", headers={"X-Forwarded-User": "ada@example.com"})
        page = client.get("/", headers={"X-Forwarded-User": "vic@example.com"})
        assert "vic@example.com" in page.text and "read-only" in page.text


def forwarded(*values: str) -> Headers:
    return Headers(raw=[(b"x-forwarded-for", value.encode("ascii")) for value in values])


def test_the_client_address_is_forwarded_only_by_trusted_proxies() -> None:
    console = ConsoleSettings(trusted_proxies=["10.0.0.0/24"])
    # Read from the right past the trusted proxies: what the client itself wrote on the left is not believed.
    assert client_address(console, "10.0.0.5", forwarded("198.51.100.1, 203.0.113.7, 10.0.0.4")) == "203.0.113.7"
    assert client_address(console, "10.0.0.5", forwarded("198.51.100.1", "203.0.113.7")) == "203.0.113.7"
    assert client_address(console, "10.0.0.5", forwarded("203.0.113.7, not-an-address, 10.0.0.4")) == "10.0.0.4"
    assert client_address(console, "10.0.0.5", forwarded("10.0.0.3, 10.0.0.4")) == "10.0.0.3"
    assert client_address(console, "10.0.0.5", forwarded()) == "10.0.0.5"
    # From anyone else the header is ignored.
    assert client_address(console, "192.0.2.9", forwarded("203.0.113.7")) == "192.0.2.9"
    assert client_address(ConsoleSettings(), "10.0.0.5", forwarded("203.0.113.7")) == "10.0.0.5"


def test_the_sign_in_limit_counts_the_forwarded_address_only_from_a_trusted_proxy(
    proxied: Callable[[str], TestClient], engine: Engine
) -> None:
    token = new_token(engine)
    attacker, colleague = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    with proxied("10.0.0.5") as proxy, proxied("10.0.0.6") as direct:
        for _ in range(5):
            assert try_sign_in(proxy, "hbc_wrong", headers=attacker).status_code == 401
        assert try_sign_in(proxy, token, headers=attacker).status_code == 429
        # The proxy's other clients are counted apart from the one over the limit.
        assert try_sign_in(proxy, token, headers=colleague).status_code == 303
        # A peer that is no proxy is counted as itself: naming a limited address does not block it...
        assert try_sign_in(direct, token, headers=attacker).status_code == 303
        # ...and naming a new address with each try does not escape the limit.
        for n in range(5):
            assert try_sign_in(direct, "hbc_wrong", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code == 401
        assert try_sign_in(direct, token, headers={"X-Forwarded-For": "198.51.100.99"}).status_code == 429


# --------------------------------------------------------------------------- OpenID Connect


class FakeProvider:
    """An identity provider on httpx.MockTransport: discovery, token endpoint and keys; signs what a test asks."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.claims: dict[str, object] = {}
        self.codes: dict[str, str] = {}  # code -> nonce it was issued for
        self.token_requests: list[dict[str, list[str]]] = []
        self.auth_methods: list[str] | None = None  # None: not advertised (HTTP Basic, the default)

    def authorize(self, url: str, email: str, **overrides: object) -> str:
        """What the provider does when the user signs in: a code for the console's callback."""
        query = parse_qs(urlparse(url).query)
        code = f"code-{len(self.codes)}"
        self.codes[code] = query["nonce"][0]
        self.claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "user-1",
            "email": email,
            "nonce": query["nonce"][0],
            "iat": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 300,
            **overrides,
        }
        return f"/login/oidc/callback?code={code}&state={query['state'][0]}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    **({"token_endpoint_auth_methods_supported": self.auth_methods} if self.auth_methods else {}),
                },
            )
        if request.url.path == "/jwks":
            return httpx.Response(200, json=KeySet([self.key]).as_dict(private=False))
        if request.url.path == "/token":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:s3cret".encode()).decode()
            if self.auth_methods == ["client_secret_post"]:
                authenticated = form.get("client_secret") == ["s3cret"] and "Authorization" not in request.headers
            else:
                authenticated = request.headers.get("Authorization") == basic and "client_secret" not in form
            if form.get("code", [""])[0] not in self.codes or not authenticated:
                return httpx.Response(400, json={"error": "invalid_grant"})
            token = jwt.encode({"alg": "RS256", "kid": "k1"}, self.claims, self.key)
            return httpx.Response(200, json={"access_token": "at", "token_type": "Bearer", "id_token": token})
        return httpx.Response(404)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def oidc(engine: Engine, tmp_path: Path, provider: FakeProvider) -> Iterator[TestClient]:
    settings = console_settings(
        tmp_path,
        engine,
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret="s3cret",
        admins=["ada@example.com"],
    )
    seed(engine, settings)
    http = httpx.Client(transport=httpx.MockTransport(lambda request: provider.handle(request)))
    with TestClient(create_app(settings, engine, clock=Clock(), http=http)) as client:
        yield client


def _start(client: TestClient) -> str:
    response = client.get("/login/oidc", follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    return location


def test_oidc_signs_in_a_listed_admin(oidc: TestClient, provider: FakeProvider) -> None:
    assert "Sign in with your identity provider" in oidc.get("/login").text
    location = _start(oidc)
    assert parse_qs(urlparse(location).query)["redirect_uri"] == ["http://testserver/login/oidc/callback"]
    callback = oidc.get(provider.authorize(location, "ada@example.com"), follow_redirects=False)
    assert callback.status_code == 303, callback.text
    page = oidc.get("/")
    assert page.status_code == 200 and "ada@example.com" in page.text
    assert provider.token_requests[0]["grant_type"] == ["authorization_code"]


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "someone-else"}, "not valid"),
        ({"iss": "https://evil.example"}, "not valid"),
        ({"nonce": "replayed"}, "not valid"),
        ({"exp": int(NOW.timestamp()) - 60}, "not valid"),
    ],
)
def test_oidc_refuses_a_token_that_does_not_check(
    oidc: TestClient, provider: FakeProvider, overrides: dict[str, object], why: str
) -> None:
    location = _start(oidc)
    refused = oidc.get(provider.authorize(location, "ada@example.com", **overrides))
    assert refused.status_code == 401 and why in refused.text
    assert oidc.get("/", follow_redirects=False).status_code == 303


def test_oidc_refuses_a_forged_state_and_an_unlisted_user(oidc: TestClient, provider: FakeProvider) -> None:
    location = _start(oidc)
    callback = provider.authorize(location, "ada@example.com").replace("state=", "state=x")
    assert oidc.get(callback).status_code == 401
    location = _start(oidc)
    refused = oidc.get(provider.authorize(location, "eve@example.com"))
    assert refused.status_code == 401 and "may not use the console" in refused.text


def test_oidc_refuses_a_token_signed_by_another_key(oidc: TestClient, provider: FakeProvider) -> None:
    location = _start(oidc)
    callback = provider.authorize(location, "ada@example.com")
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # signs with a key the JWKS no longer has...
    real_handle = provider.handle
    old_jwks = KeySet([RSAKey.generate_key(2048, parameters={"kid": "k1"})]).as_dict(private=False)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, content=json.dumps(old_jwks))
        return real_handle(request)

    provider.handle = handle  # type: ignore[method-assign]
    refused = oidc.get(callback)
    assert refused.status_code == 401 and "ID token is not valid" in refused.text


def test_oidc_is_off_unless_configured(engine: Engine, tmp_path: Path) -> None:
    settings = console_settings(tmp_path, engine)
    with TestClient(create_app(settings, engine)) as client:
        assert "identity provider" not in client.get("/login").text
        assert client.get("/login/oidc").status_code == 404


def test_oidc_sends_the_secret_in_the_body_when_the_provider_offers_only_that(
    oidc: TestClient, provider: FakeProvider
) -> None:
    provider.auth_methods = ["client_secret_post"]
    location = _start(oidc)
    assert oidc.get(provider.authorize(location, "ada@example.com"), follow_redirects=False).status_code == 303
    assert provider.token_requests[0]["client_secret"] == ["s3cret"]
