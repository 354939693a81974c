"""Tests for the emulators' HTTP server and its middleware (werkzeug underneath), over real loopback sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from connectors.sandbox._http import DropConnection, Request, Response, json_response
from connectors.sandbox._middleware import AnnouncedQuota, Guard, InFlightLimit, RateLimiter
from connectors.sandbox._server import SandboxServer
from tests.fakes import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def _echo(request: Request) -> Response:
    return json_response({"params": request.params, "q": request.arg("q"), "route": request.route})


def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


def test_server_routes_params_and_methods(capfd: pytest.CaptureFixture[str]) -> None:
    server = SandboxServer(base_path="/v9")
    server.route("GET", "/items/<item_id>/parts/<part>", _echo, name="parts")
    server.route("GET", "/boom", _boom)
    with server, httpx.Client(base_url=server.base_url) as http:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v9")
        body = http.get("/items/42/parts/x%20y", params={"q": "é"}).json()
        assert body == {"params": {"item_id": "42", "part": "x y"}, "q": "é", "route": "parts"}
        assert http.post("/items/42/parts/1").status_code == 405
        assert http.get("/items/42").status_code == 404
        crashed = http.get("/boom")
        assert crashed.status_code == 500
        assert "handler bug" in crashed.text
        assert server.call_count("parts") == 1  # the 405 matched no route
        assert server.call_count("GET /boom") == 1
    assert not server.running
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_server_stop_closes_keep_alive_connections() -> None:
    server = SandboxServer()
    server.route("GET", "/ping", lambda request: json_response({"ok": True}))
    with httpx.Client() as http:
        server.start()
        url = server.base_url + "/ping"
        assert http.get(url).json() == {"ok": True}
        server.stop()
        with pytest.raises(httpx.TransportError):
            http.get(url)
    server.stop()  # idempotent


def test_server_fault_with_custom_body_and_reset() -> None:
    server = SandboxServer()
    server.route("GET", "/ping", lambda request: json_response({"ok": True}), name="ping")
    with server, httpx.Client(base_url=server.base_url) as http:
        server.fail_next("ping", 1, 502, body=b"<html>bad gateway</html>")
        failed = http.get("/ping")
        assert (failed.status_code, failed.text) == (502, "<html>bad gateway</html>")
        assert http.get("/ping").status_code == 200
        server.fail_next("ping", 5, 500)
        server.clear_faults()
        assert http.get("/ping").status_code == 200
        server.reset_counts()
        assert server.call_count() == 0


def test_rate_limiter_sliding_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, count_rejected=False)
    assert limiter.check("a") is None
    clock.advance(10)
    assert limiter.check("a") is None
    assert limiter.check("b") is None  # keys are independent
    assert limiter.check("a") == 50
    clock.advance(50)
    assert limiter.check("a") is None  # the first hit aged out
    assert limiter.check("a") == 10
    clock.advance(0.5)
    assert limiter.check("a") == 10  # whole seconds, rounded up
    limiter.set_limit(None)
    assert all(limiter.check("a") is None for _ in range(100))
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0)


def test_rejected_requests_count_against_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.check("t") is None
    clock.advance(59)
    assert limiter.check("t") == 1
    clock.advance(1)
    # The first hit has aged out, but the rejected one at t=59 still fills the window.
    assert limiter.check("t") == 59


# -- werkzeug underneath: what clients see must not change -----------------------------------------


@pytest.fixture
def ping() -> Iterator[SandboxServer]:
    server = SandboxServer(base_path="/api")
    server.route("GET", "/ping", lambda request: json_response({"ok": True}), name="ping")
    server.route("POST", "/", lambda request: json_response({"echo": request.json_body()}), name="root")
    with server:
        yield server


def test_status_line_server_header_and_slashes(ping: SandboxServer) -> None:
    with httpx.Client(base_url=ping.root_url) as http:
        ok = http.get("/api/ping")
        assert (ok.status_code, ok.reason_phrase, ok.headers["server"]) == (200, "OK", "hourbridge-sandbox/1")
        assert ok.headers["content-type"] == "application/json; charset=utf-8"
        assert http.get("/api/ping/").json() == {"ok": True}  # a trailing slash is optional
        assert http.post("/api", json={"a": 1}).json() == {"echo": {"a": 1}}  # so is the root route's
        missing = http.get("/api//ping")  # merged slashes are not redirected
        assert (missing.status_code, missing.reason_phrase) == (404, "Not Found")
        assert missing.json() == {"error": {"status": 404, "message": "No matching route for GET /api//ping"}}
        head = http.head("/api/ping")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "11")
    assert ping.call_count("ping") == 3  # the 404 matched no route


def test_fault_status_keeps_the_standard_reason_phrase(ping: SandboxServer) -> None:
    ping.fail_next("ping", 1, 429, {"Retry-After": "3"})
    with httpx.Client(base_url=ping.base_url) as http:
        refused = http.get("/ping")
    assert (refused.status_code, refused.reason_phrase, refused.headers["retry-after"]) == (
        429,
        "Too Many Requests",
        "3",
    )
    assert refused.json() == {"error": {"status": 429, "message": "Injected fault on ping"}}


def test_a_dropped_answer_closes_the_connection_and_the_server_carries_on() -> None:
    drops = [True]

    def write(request: Request) -> Response:
        if drops and drops.pop():
            raise DropConnection("the write landed, the answer is lost")
        return json_response({"stored": True})

    server = SandboxServer()
    server.route("POST", "/write", write, name="write")
    with server, httpx.Client(base_url=server.base_url, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/write", json={})
        assert http.post("/write", json={}).json() == {"stored": True}
        assert server.call_count("write") == 2


def test_rate_limit_middleware_counts_its_refusals() -> None:
    clock = FakeClock()
    server = SandboxServer(clock=clock, rate_limit_per_minute=1)
    server.route("GET", "/ping", lambda request: json_response({"ok": True}), name="ping")
    with server, httpx.Client(base_url=server.base_url) as http:
        assert http.get("/ping").status_code == 200
        limited = http.get("/ping")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "60")
        clock.advance(120)
        assert http.get("/ping").status_code == 200
    assert (server.call_count("ping"), server.rate_limited_count) == (3, 1)
    server.reset_counts()
    assert (server.call_count(), server.rate_limited_count) == (0, 0)


# -- vendor layers: credential check, announced quota, in-flight cap ---------------------------------


def test_guard_answers_before_the_quota_is_spent() -> None:
    spent: list[str] = []

    def take(request: Request) -> tuple[bool, dict[str, str]]:
        spent.append(request.headers.get("authorization", ""))
        return len(spent) <= 1, {"X-Left": str(max(0, 1 - len(spent)))}

    def check(request: Request) -> Response | None:
        ok = request.headers.get("authorization") == "good"
        return None if ok else json_response({"error": "bad token"}, 401)

    quota: list[AnnouncedQuota] = []

    def limit(app: WSGIApplication) -> WSGIApplication:
        quota.append(AnnouncedQuota(app, take, lambda headers: json_response({"error": "slow"}, 429, headers)))
        return quota[0]

    server = SandboxServer(inner=(lambda app: Guard(app, check), limit))
    server.route("GET", "/ping", lambda request: json_response({"ok": True}, headers={"X-Left": "mine"}))
    server.route("GET", "/plain", lambda request: json_response({"ok": True}))
    with server, httpx.Client(base_url=server.base_url) as http:
        assert http.get("/ping", headers={"Authorization": "bad"}).status_code == 401
        assert spent == []  # the refused credential spent nothing
        first = http.get("/plain", headers={"Authorization": "good"})
        assert (first.status_code, first.headers["x-left"]) == (200, "0")  # announced on the answer
        second = http.get("/ping", headers={"Authorization": "good"})
        assert (second.status_code, second.headers["x-left"]) == (429, "0")
    assert quota[0].limited == 1


def test_a_handler_header_wins_over_the_announced_quota() -> None:
    server = SandboxServer(
        inner=(lambda app: AnnouncedQuota(app, lambda request: (True, {"X-Left": "9"}), lambda h: Response()),)
    )
    server.route("GET", "/ping", lambda request: json_response({"ok": True}, headers={"X-Left": "mine"}))
    with server, httpx.Client(base_url=server.base_url) as http:
        assert http.get("/ping").headers.get_list("x-left") == ["mine"]


def test_in_flight_limit_refuses_beyond_the_cap_and_frees_on_return() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(request: Request) -> Response:
        entered.set()
        release.wait(5)
        return json_response({"ok": True})

    server = SandboxServer(
        wrap=lambda app: InFlightLimit(
            app, 1, key=lambda request: request.headers.get("x-tenant", ""), refuse=lambda key: json_response(key, 429)
        )
    )
    server.route("GET", "/slow", slow, name="slow")
    server.route("GET", "/ping", lambda request: json_response({"ok": True}), name="ping")
    with server, httpx.Client(base_url=server.base_url, timeout=5) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.get, "/slow", headers={"X-Tenant": "t1"})
        assert entered.wait(5)
        busy = http.get("/ping", headers={"X-Tenant": "t1"})
        assert (busy.status_code, busy.json()) == (429, "t1")
        assert http.get("/ping", headers={"X-Tenant": "t2"}).status_code == 200  # keys are independent
        release.set()
        assert pending.result().status_code == 200
        assert http.get("/ping", headers={"X-Tenant": "t1"}).status_code == 200
    assert server.call_count("ping") == 2  # the refusal came before routing, so it is not a call


def _posted(body: bytes, query: str = "") -> Request:
    from werkzeug.test import EnvironBuilder

    return Request(EnvironBuilder(method="POST", path="/x", query_string=query, data=body).get_environ())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The body is not JSON"),
        (b"[1, 2]", "The body must be a JSON object"),
        (b'{"start": 1, "zeta": 2, "alpha": 3}', "Unknown field(s): alpha, zeta"),
    ],
)
def test_an_emulator_refuses_a_body_that_is_not_an_object_of_known_fields(body: bytes, message: str) -> None:
    from connectors.sandbox._http import Refused, json_object

    with pytest.raises(Refused) as caught:
        json_object(_posted(body), {"start", "end"})
    assert (caught.value.status, caught.value.message) == (400, message)
    assert json_object(_posted(b'{"start": 1}'), {"start", "end"}) == {"start": 1}


def test_an_emulator_refuses_unknown_parameters_with_its_vendors_status() -> None:
    from connectors.sandbox._http import Refused, refuse_unknown

    request = _posted(b"", "page=1&zz=1&aa=2")
    refuse_unknown(request.args, {"page", "zz", "aa"}, "parameter")
    with pytest.raises(Refused) as caught:
        refuse_unknown(request.args, {"page"}, "parameter", status=422)
    assert (caught.value.status, caught.value.message) == (422, "Unknown parameter(s): aa, zz")
