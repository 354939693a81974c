"""`hourbridge sandbox`: the emulators in the foreground, and the printed settings pull from them."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from sync.store.tables import entries

from .conftest import run_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("asana", "clickup", "monday", "harvest", "toggl", "clockify")


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOURBRIDGE_")}
    # The checkout under test, not whichever copy the interpreter has installed.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), environment.get("PYTHONPATH"))))
    return subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "sandbox", *args],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until_ready(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:  # blocks until the sandbox prints; it exits on a failure
        lines.append(line.rstrip("\n"))
        if line.startswith("# ready"):
            return lines
    raise AssertionError("the sandbox ended before it was ready: " + "\n".join(lines))


def test_sandbox_prints_settings_that_pull_from_it_and_stops_on_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = _start(tmp_path, "--port", "0")
    try:
        lines = _until_ready(process)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export HOURBRIDGE_")
        )
        for key in list(os.environ):
            if key.startswith("HOURBRIDGE_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
        monkeypatch.setenv("HOURBRIDGE_LOG_FORMAT", "json")
        for name, value in exports.items():
            monkeypatch.setenv(name, shlex.split(value)[0])  # as a POSIX shell reads the quoted value
        assert exports["HOURBRIDGE_DATABASE_URL"] == f"sqlite:///{tmp_path / 'hourbridge-sandbox.db'}"

        code, output = run_cli("config", "--effective", "--json")
        assert code == 0, output
        for name in (*SOURCES, "quickbooks", "xero"):
            assert f'"{name}"' in output
        urls = [line.split()[2] for line in lines if line.startswith("#   ")]
        assert len(urls) == len(set(urls)) == 8  # one emulator each, on ports of their own

        code, output = run_cli("sync", "--no-deliver")
        assert code == 0, output
        for tool in ("asana", "clickup", "monday"):
            assert f"{tool}:Example Consulting" in output
        assert " h mapped, " in output
        assert (tmp_path / "hourbridge-sandbox.db").exists()
        # Time from every source it started.
        engine = create_engine(exports["HOURBRIDGE_DATABASE_URL"])
        with engine.connect() as conn:
            pulled: dict[str, int] = dict(
                conn.execute(
                    select(entries.c.source, func.count())
                    .where(entries.c.deleted_at.is_(None))
                    .group_by(entries.c.source)
                ).all()
            )
        engine.dispose()
        assert set(pulled) == set(SOURCES) and all(count > 0 for count in pulled.values()), pulled
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "# sandbox stopped (SIGINT)" in stdout


def test_sandbox_refuses_a_port_in_use(tmp_path: Path) -> None:
    first = _start(tmp_path, "--port", "0")
    try:
        lines = _until_ready(first)
        asana_url = next(line for line in lines if line.startswith("#   asana"))
        port = int(asana_url.split(":")[2].split("/")[0])
        second = _start(tmp_path, "--port", str(port))
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 2
        assert f"--port {port}" in stderr and "choose another base port" in stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
