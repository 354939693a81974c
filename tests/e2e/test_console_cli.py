"""`hourbridge console`: tokens are printed once, stored hashed, listed without secrets, revoked; the server serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from sync.cli.app import app
from sync.console.app import create_app
from sync.settings import load_settings
from sync.store.db import make_engine
from sync.store.tables import console_tokens
from tests.console_fixtures import csrf_of


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return tmp_path / "state.db"


def test_new_token_is_printed_once_and_signs_in(store: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["console", "--new-token", "--label", "Ada"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("hbc_") and "token 1 for Ada (admin)" in made.output
    engine = make_engine(f"sqlite:///{store}")
    with engine.connect() as conn:
        stored = conn.execute(select(console_tokens.c.token_hash, console_tokens.c.role)).one()
    assert secret not in stored.token_hash and stored.role == "admin"

    listed = runner.invoke(app, ["console", "--tokens"])
    assert listed.exit_code == 0 and "Ada" in listed.output and secret not in listed.output

    with TestClient(create_app(load_settings(), engine)) as client:
        page = client.get("/login")
        signed = client.post("/login", data={"token": secret, "csrf_token": csrf_of(page.text)})
        assert signed.status_code == 200 and "Ada (token 1)" in signed.text

    assert runner.invoke(app, ["console", "--revoke-token", "1"]).exit_code == 0
    again = runner.invoke(app, ["console", "--revoke-token", "1"])
    assert again.exit_code == 2 and "no live console token 1" in again.output
    with TestClient(create_app(load_settings(), engine)) as client:
        page = client.get("/login")
        assert client.post("/login", data={"token": secret, "csrf_token": csrf_of(page.text)}).status_code == 401
    engine.dispose()


def test_read_only_tokens(store: Path) -> None:
    made = CliRunner().invoke(app, ["console", "--new-token", "--read-only", "--label", "Vic"])
    assert made.exit_code == 0 and "(viewer)" in made.output


def test_the_console_command_serves_the_probe_and_the_sign_in_page(store: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "console", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("the console did not start") from None
                time.sleep(0.2)
        assert health.status_code == 200 and health.text == "ok\n"
        login = httpx.get(f"http://127.0.0.1:{port}/", timeout=5, follow_redirects=True)
        assert login.status_code == 200 and "Admin token" in login.text
    finally:
        server.terminate()
        server.wait(timeout=10)
