"""`hourbridge health`: reachable and migrated, and every source's last success within N schedule intervals."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from sync.cli.app import app
from sync.ops.health import check_health, schedule_interval
from sync.settings import Settings
from sync.store.db import make_engine, upgrade
from sync.store.runs import finish_run, start_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record_run(engine: Engine, finished: datetime, scopes: list[str], errors: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        run_id = start_run(conn, command="worker", as_of=finished, now=finished)
        counts: dict[str, Any] = {"scopes": {scope: {} for scope in scopes}}
        status = "ok" if not errors else "partial"
        finish_run(conn, run_id, status=status, counts=counts, errors=errors, now=finished)


def settings(engine: Engine) -> Settings:
    return Settings(database_url=str(engine.url), schedule="*/30 * * * *", health_max_intervals=3)


def test_schedule_interval_is_the_gap_between_firings() -> None:
    assert schedule_interval("*/30 * * * *", NOW) == timedelta(minutes=30)
    assert schedule_interval("0 3 * * *", NOW) == timedelta(days=1)


def test_a_fresh_store_is_healthy(sqlite_engine: Engine) -> None:
    report = check_health(settings(sqlite_engine), sqlite_engine, now=NOW)
    assert report.ok, report.reasons
    assert report.max_age_seconds == 3 * 30 * 60


def test_recent_success_of_every_source_is_healthy(sqlite_engine: Engine) -> None:
    record_run(sqlite_engine, NOW - timedelta(minutes=80), ["asana:1"], [])
    record_run(sqlite_engine, NOW - timedelta(minutes=10), ["clickup:9"], [])
    report = check_health(settings(sqlite_engine), sqlite_engine, now=NOW)
    assert report.ok, report.reasons
    assert [s.source for s in report.sources] == ["asana", "clickup"]


def test_a_source_failing_for_longer_than_n_intervals_is_unhealthy(sqlite_engine: Engine) -> None:
    record_run(sqlite_engine, NOW - timedelta(hours=3), ["asana:1", "clickup:9"], [])
    for minutes in (60, 30, 5):
        error = {"source": "clickup", "account": "9", "error": "ClickUp answered HTTP 401", "action": "config"}
        record_run(sqlite_engine, NOW - timedelta(minutes=minutes), ["asana:1", "clickup:9"], [error])
    report = check_health(settings(sqlite_engine), sqlite_engine, now=NOW)
    assert not report.ok
    assert len(report.reasons) == 1
    assert report.reasons[0].startswith("clickup: no successful run within 3x")
    assert "HOURBRIDGE_SCHEDULE" in report.reasons[0] and "HTTP 401" in report.reasons[0]


def test_an_unmigrated_store_is_unhealthy_and_names_the_fix(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    report = check_health(settings(engine), engine, now=NOW)
    engine.dispose()
    assert not report.ok and "hourbridge db upgrade" in report.reasons[0]


def test_an_unreachable_database_is_unhealthy_and_names_the_setting(tmp_path: Path) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    report = check_health(settings(engine), engine, now=NOW)
    engine.dispose()
    assert not report.ok and "HOURBRIDGE_DATABASE_URL" in report.reasons[0]


def test_the_command_exits_0_when_healthy_and_1_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    database = tmp_path / "state.db"
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{database}")
    result = CliRunner().invoke(app, ["health"])
    assert result.exit_code == 1 and "hourbridge db upgrade" in result.output
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    stale = datetime.now(UTC) - timedelta(days=2)
    record_run(engine, stale, ["asana:1"], [])
    engine.dispose()
    assert CliRunner().invoke(app, ["health", "--database-only"]).exit_code == 0
    result = CliRunner().invoke(app, ["health", "--json"])
    assert result.exit_code == 1
    assert '"ok": false' in result.output and "asana: no successful run" in result.output
