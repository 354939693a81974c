"""A run killed mid-way is recorded as abandoned by the next run once its heartbeat is old; a live one is not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from sync.run.pipeline import run_sync
from sync.settings import Settings
from sync.store.runs import ABANDONED_AFTER
from sync.store.tables import runs
from tests.fakes import ListSource
from tests.unit.test_delivery import DOCUMENT

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_stale_running_runs_become_abandoned_and_heartbeats_keep_live_ones(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    with engine.begin() as conn:
        for started, beat in (
            (NOW - ABANDONED_AFTER - timedelta(minutes=1), None),  # killed long ago, never beat
            (NOW - timedelta(days=1), NOW - ABANDONED_AFTER - timedelta(seconds=1)),  # beat, then died
            (NOW - timedelta(days=1), NOW - timedelta(minutes=5)),  # a long run, still beating
        ):
            conn.execute(
                insert(runs).values(
                    command="sync", status="running", as_of=started, started_at=started, heartbeat_at=beat
                )
            )
    source = ListSource()
    source.put("e1", 30, date(2026, 11, 3))
    settings = Settings(database_url="sqlite://", mappings_file=tmp_path / "rules.yaml", start_date=date(2026, 11, 1))
    result = run_sync(
        settings, sources={"asana": source}, engine=engine, as_of=NOW, clock=lambda: NOW, write_reports=False
    )
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.id, runs.c.status, runs.c.heartbeat_at).order_by(runs.c.id)).all()
    assert [r.status for r in rows] == ["abandoned", "abandoned", "running", "ok"]
    assert rows[-1].id == result.run_id and rows[-1].heartbeat_at is not None  # the run beat as it went
