"""SIGTERM and SIGINT during `hourbridge sync` in a real process: the run is recorded as interrupted, exit 143/130."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from sync.store import ledger
from sync.store.db import make_engine
from sync.store.tables import entries, runs

from ._slow_source import MAPPINGS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-20T18:00:00+00:00"
START = date(2026, 10, 12)  # 40 days before the as-of: three chunks of at most 14 days
TIMEOUT = 60.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT)
        yield server


def start_sync(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    (tmp_path / "mappings.yaml").write_text(MAPPINGS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOURBRIDGE_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "HOURBRIDGE_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "HOURBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "HOURBRIDGE_OUTPUT_DIR": str(tmp_path / "out"),
        "HOURBRIDGE_MAPPINGS_FILE": str(tmp_path / "mappings.yaml"),
        "HOURBRIDGE_START_DATE": START.isoformat(),
        "HOURBRIDGE_SLOW__PORT": str(port),
        "HOURBRIDGE_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "tests.e2e._slow_source", "sync", "--as-of", AS_OF]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(proc: subprocess.Popen[bytes], text: str) -> str:
    """stderr up to the line containing ``text`` (waiting on the pipe, never sleeping)."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, remaining))
        chunk = os.read(proc.stderr.fileno(), 65536) if ready else b""
        if not chunk:
            proc.kill()
            raise AssertionError(f"{text!r} never came; stderr so far:\n{seen.decode()}")
        seen += chunk
    return seen.decode()


def ledger_state(tmp_path: Path) -> tuple[str, int, object]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            status = conn.execute(sql_select(runs.c.status).order_by(runs.c.id.desc())).scalar_one()
            count = conn.execute(sql_select(func.count()).select_from(entries)).scalar_one()
            cursors = ledger.all_cursors(conn)
    finally:
        engine.dispose()
    return status, int(count), cursors[0]["scanned_through"] if cursors else None


def test_sigterm_finishes_the_window_records_interrupted_and_exits_143(tmp_path: Path, listener: socket.socket) -> None:
    proc = start_sync(tmp_path, listener.getsockname()[1])
    conn, _ = listener.accept()  # the second window has started and waits
    with conn:
        assert conn.recv(16) == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        before = read_until(proc, "stopping (SIGTERM)")
        conn.sendall(b"go")
    _, err = proc.communicate(timeout=TIMEOUT)
    stderr = before + err.decode()
    assert proc.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted by SIGTERM")]
    assert len(lines) == 1 and "recorded as interrupted" in lines[0], stderr
    status, count, cursor = ledger_state(tmp_path)
    # The window in progress (the second 14 days) finished and committed; the third never started.
    assert status == "interrupted"
    assert count == 28 and str(cursor) == "2026-11-08"
    assert "Traceback" not in stderr


def test_a_second_sigint_abandons_the_window_and_exits_130(tmp_path: Path, listener: socket.socket) -> None:
    proc = start_sync(tmp_path, listener.getsockname()[1])
    conn, _ = listener.accept()
    with conn:
        assert conn.recv(16) == b"ready\n"
        proc.send_signal(signal.SIGINT)
        before = read_until(proc, "stopping (SIGINT)")
        proc.send_signal(signal.SIGINT)
        before += read_until(proc, "abandoning the current window")
        conn.sendall(b"go")
    _, err = proc.communicate(timeout=TIMEOUT)
    stderr = before + err.decode()
    assert proc.returncode == 130, stderr
    assert sum(line.startswith("interrupted by SIGINT") for line in stderr.splitlines()) == 1, stderr
    status, count, cursor = ledger_state(tmp_path)
    # Only the first window is kept: the one in progress was rolled back.
    assert status == "interrupted"
    assert count == 14 and str(cursor) == "2026-10-25"
    assert "Traceback" not in stderr
