"""The sandbox's traffic recorder keeps both sides of every exchange, and changes neither."""

from __future__ import annotations

import httpx
import pytest

from connectors.sandbox._http import DropConnection, Request, Response, json_response
from connectors.sandbox._recording import recording
from connectors.sandbox._server import SandboxServer


def echo(request: Request) -> Response:
    return json_response({"got": request.json_body(), "q": request.arg("q")}, 201, {"X-Seen": "yes"})


def drop(_: Request) -> Response:
    raise DropConnection


@pytest.fixture
def server() -> SandboxServer:
    built = SandboxServer(base_path="/api")
    built.route("POST", "/echo", echo, name="echo")
    built.route("GET", "/drop", drop, name="drop")
    return built


def test_nothing_is_kept_outside_a_recording_and_answers_are_the_same_inside(server: SandboxServer) -> None:
    with server, httpx.Client(base_url=server.base_url) as client:
        outside = client.post("/echo", params={"q": "a b"}, json={"n": 1})
        with recording() as traffic:
            inside = client.post("/echo", params={"q": "a b"}, json={"n": 1}, headers={"X-Trace": "t1"})
        after = client.post("/echo", json={"n": 2})
    assert (inside.status_code, inside.content, inside.headers["x-seen"]) == (
        outside.status_code,
        outside.content,
        outside.headers["x-seen"],
    )
    assert after.status_code == 201
    [kept] = traffic.exchanges
    assert (kept.route, kept.method, kept.path, kept.query) == ("echo", "POST", "/api/echo", "q=a+b")
    assert kept.request_body == b'{"n":1}' and kept.request_header("x-trace") == "t1"
    assert kept.request_header("content-type") == "application/json"
    assert (kept.status, kept.response_body, kept.response_header("X-Seen")) == (201, inside.content, "yes")
    assert kept.label == "POST /api/echo?q=a+b -> 201"


def test_a_dropped_answer_is_kept_with_status_zero_and_routing_errors_as_answered(server: SandboxServer) -> None:
    with server, httpx.Client(base_url=server.base_url) as client, recording() as traffic:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/drop")
        missing = client.get("/nowhere")
    dropped, not_found = traffic.exchanges
    assert (dropped.route, dropped.status, dropped.response_body) == ("drop", 0, b"")
    assert (not_found.route, not_found.status, not_found.response_body) == ("", 404, missing.content)


def test_two_recordings_each_see_the_exchanges_made_while_they_are_open(server: SandboxServer) -> None:
    with server, httpx.Client(base_url=server.base_url) as client, recording() as outer:
        client.post("/echo", json=1)
        with recording() as inner:
            client.post("/echo", json=2)
    assert [e.request_body for e in outer] == [b"1", b"2"]
    assert [e.request_body for e in inner] == [b"2"]
