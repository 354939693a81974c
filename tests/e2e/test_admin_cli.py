"""Errors and signals an admin can act on, through the real CLI: settings, preflight, health and the worker."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from connectors.sandbox.asana import AsanaSandbox
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.store.db import make_engine, upgrade
from sync.store.tables import outbox

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"


@pytest.fixture
def env(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    return sandbox_env


# --------------------------------------------------------------------------- item 12: settings


@pytest.mark.parametrize("value", ['["1200', "1200,1300", "[1200, 1300]"])
def test_a_malformed_list_exits_2_naming_the_variable_and_the_form(
    env: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HOURBRIDGE_ASANA__WORKSPACES", value)
    for command in (["sync", "--as-of", AS_OF], ["status"], ["config", "--effective"]):
        code, output = run_cli(*command)
        assert code == 2, output
        assert "HOURBRIDGE_ASANA__WORKSPACES" in output and '\'["1200000000000001"' in output
        assert "Traceback" not in output and "SettingsError" not in output
    assert not (env / "state.db").exists()


def test_unknown_variables_warn_with_did_you_mean_at_every_command(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_LOOKBAK_DAYS", "10")
    monkeypatch.setenv("HOURBRIDGE_ASANA_TOKEN", "x")
    for command in (["db", "upgrade"], ["status"], ["config"], ["mappings", "check", str(EXAMPLE_MAPPINGS)]):
        code, output = run_cli(*command)
        assert code == 0, output
        assert "HOURBRIDGE_LOOKBAK_DAYS is not a setting" in output
        assert "did you mean HOURBRIDGE_LOOKBACK_DAYS?" in output
        assert "did you mean HOURBRIDGE_ASANA__TOKEN?" in output
    monkeypatch.delenv("HOURBRIDGE_LOOKBAK_DAYS")
    monkeypatch.delenv("HOURBRIDGE_ASANA_TOKEN")
    code, output = run_cli("status")
    assert code == 0 and "not a setting" not in output


def test_config_effective_shows_values_masked_and_what_is_on(env: Path, sandbox: AsanaSandbox) -> None:
    code, output = run_cli("config", "--effective", "--json")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["settings"]["HOURBRIDGE_ASANA__TOKEN"] == {"value": "***", "origin": "environment"}
    assert shown["settings"]["HOURBRIDGE_LOOKBACK_DAYS"] == {"value": "35", "origin": "default"}
    assert shown["sources on"] == ["asana"] and shown["sinks on"] == []
    assert sandbox.token not in output
    code, output = run_cli("config", "--effective")
    assert code == 0 and "sources on: asana" in output and "sinks off: " in output and sandbox.token not in output


def test_config_shows_required_settings_as_required(env: Path) -> None:
    code, output = run_cli("config")
    assert code == 0
    assert "required" in output and "Undefined" not in output


# --------------------------------------------------------------------------- item 13: preflight


def test_a_sqlite_path_in_a_missing_folder_exits_2_and_creates_nothing(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{env / 'typo' / 'state.db'}")
    for command in (["sync", "--as-of", AS_OF], ["db", "upgrade"], ["status"], ["deliver"]):
        code, output = run_cli(*command)
        assert code == 2, output
        assert "HOURBRIDGE_DATABASE_URL" in output and "does not exist" in output
    assert not (env / "typo").exists()


def test_read_commands_never_create_a_ledger_and_deliver_refuses_a_new_one(env: Path) -> None:
    for command in (["status"], ["deliver"], ["report", "--period", "2026-11"]):
        code, output = run_cli(*command)
        assert code == 2, output
        assert "no ledger at" in output and "HOURBRIDGE_DATABASE_URL" in output
    assert not (env / "state.db").exists()
    code, output = run_cli("db", "upgrade")
    assert code == 0 and "new ledger created at" in output
    code, output = run_cli("deliver")
    assert code == 2 and "never synced" in output and "HOURBRIDGE_DATABASE_URL" in output


def test_the_first_sync_says_it_created_a_new_ledger(env: Path) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0 and "new ledger created at" in output and str(env / "state.db") in output
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0 and "new ledger" not in output


def test_an_output_folder_that_cannot_be_written_stops_the_sync_before_it_writes(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (env / "blocker").write_text("a file where the folder's parent should be", encoding="utf-8")
    monkeypatch.setenv("HOURBRIDGE_OUTPUT_DIR", str(env / "blocker" / "out"))
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 2 and "HOURBRIDGE_OUTPUT_DIR" in output and "not a folder" in output
    assert not (env / "state.db").exists()
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-reports")
    assert code == 0, output
    code, output = run_cli("report", "--period", "2026-11", "--out", str(env / "blocker" / "reports"))
    assert code == 2 and "--out" in output and "not a folder" in output


def _missing_driver_url() -> str:
    for module, url in (("MySQLdb", "mysql://u@127.0.0.1/db"), ("psycopg2", "postgresql+psycopg2://u@127.0.0.1/db")):
        if importlib.util.find_spec(module) is None:
            return url
    pytest.skip("every driver this test could ask for is installed")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgres://hb:pw@127.0.0.1/hourbridge", "postgresql+psycopg://"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", "cannot be used"),
        ("missing-driver", "not installed"),
        ("not a url", "not a valid database URL"),
    ],
)
def test_database_url_errors_exit_2_naming_the_setting(
    env: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", _missing_driver_url() if url == "missing-driver" else url)
    for command in (["sync", "--as-of", AS_OF], ["db", "upgrade"], ["status"]):
        code, output = run_cli(*command)
        assert code == 2, output
        assert "HOURBRIDGE_DATABASE_URL" in output and says in output
        assert "Traceback" not in output and ":pw@" not in output


# --------------------------------------------------------------------------- item 15: alerting


def _outbox_row(sink: str, line: str, state: str, at: datetime, error: str | None = None) -> dict[str, object]:
    return {
        "idempotency_key": str(uuid.uuid4()),
        "sink": sink,
        "line_key": line,
        "version": 1 if state != "ok" else 2,
        "kind": "create",
        "line": {},
        "content_hash": "h",
        "period": "2026-11",
        "state": state,
        "attempts": 1,
        "created_at": at,
        "sent_at": at,
        "done_at": None if state in ("unknown", "sending") else at,
        "error": error,
    }


def test_health_fails_while_writes_stay_refused_or_unanswered_past_the_threshold(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{env / 'state.db'}")
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(outbox),
            [
                _outbox_row("quickbooks", "a", "failed", now - timedelta(hours=3), "Customer inactive"),
                _outbox_row("quickbooks", "b", "unknown", now - timedelta(hours=3)),
                _outbox_row("xero", "c", "failed", now - timedelta(minutes=10), "fresh failure"),
                # Failed, then delivered by a later op: healthy.
                _outbox_row("xero", "d", "failed", now - timedelta(hours=5), "old failure"),
                _outbox_row("xero", "d", "ok", now - timedelta(hours=4)),
            ],
        )
    engine.dispose()
    code, output = run_cli("health", "--json")
    assert code == 1, output
    report = json.loads(output)
    assert [s["sink"] for s in report["sinks"]] == ["quickbooks"]
    assert report["sinks"][0]["failed"] == 1 and report["sinks"][0]["unknown"] == 1
    [reason] = report["reasons"]
    assert "HOURBRIDGE_HEALTH_DELIVERY_MINUTES" in reason and "Customer inactive" in reason
    monkeypatch.setenv("HOURBRIDGE_HEALTH_DELIVERY_MINUTES", "600")
    code, output = run_cli("health")
    assert code == 0 and "healthy" in output


POSTGRES_URL = __import__("os").environ.get("HOURBRIDGE_TEST_POSTGRES_URL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    schema = f"a_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_worker_once_exits_1_when_a_job_failed(env: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    from sync.ops.worker import DELIVER_TASK, QUEUE, WorkerApp
    from sync.settings import load_settings

    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOURBRIDGE_WORKER_RETRY_ATTEMPTS", "0")
    assert run_cli("db", "upgrade")[0] == 0
    assert run_cli("db", "queue-upgrade")[0] == 0
    code, output = run_cli("worker", "--once")
    assert code == 0, output  # nothing queued, nothing failed
    # A delivery job for a sink that is not configured fails (as a real sink's outage would).
    worker_app = WorkerApp(load_settings(), periodic=False)
    with worker_app.app.open():
        worker_app.app.configure_task(DELIVER_TASK, queue=QUEUE).defer(sink="quickbooks")
    worker_app.engine.dispose()
    code, output = run_cli("worker", "--once")
    assert code == 1, output
    assert "1 job(s) failed" in output and "hourbridge.deliver" in output and "quickbooks" in output
