"""The worker imports the inbox as a job of its own each round (PostgreSQL, in-process worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.settings import Settings
from sync.store.tables import entries, runs

from .test_worker_postgres import enqueue, jobs, pg_url, prepare_store

__all__ = ["pg_url"]  # the fixture, imported to be used here


@pytest.mark.postgres
@pytest.mark.e2e
def test_a_worker_round_imports_the_inbox_and_rejects_a_bad_file(
    pg_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "week.csv").write_text(
        "date,contractor_email,hours,description,project_code\n"
        "2026-11-02,ada@example.com,1.5,Design,NWT-APP\n2026-11-03,ada@example.com,2,Build,NWT-APP\n",
        encoding="utf-8",
    )
    (inbox / "bad.csv").write_text("date,contractor_email,hours\n2026-11-02,ada@example.com,1\n", encoding="utf-8")
    settings = Settings(
        database_url=pg_url,
        mappings_file=EXAMPLE_MAPPINGS,
        output_dir=tmp_path / "out",
        inbox_dir=inbox,
        inbox_settle_seconds=0,
    )
    worker_app = prepare_store(settings, request)
    assert enqueue(worker_app) == ["inbox"]
    assert enqueue(worker_app) == []  # one inbox job waits at a time
    worker_app.run(once=True)
    engine = worker_app.engine
    with engine.connect() as conn:
        live = conn.execute(
            select(func.count(), func.sum(entries.c.duration_seconds)).where(
                entries.c.source == "timesheet", entries.c.deleted_at.is_(None), entries.c.code == "NWT-APP"
            )
        ).one()
        statuses = [r.status for r in conn.execute(select(runs.c.status).where(runs.c.command == "worker"))]
    assert tuple(live) == (2, 3.5 * 3600)
    assert statuses == ["partial"]  # one file imported, one rejected
    assert (inbox / "processed" / "week.csv").exists()
    assert "the column(s) description" in (inbox / "rejected" / "bad.csv.errors.txt").read_text(encoding="utf-8")
    assert {job["task_name"] for job in jobs(engine)} >= {"hourbridge.import_inbox", "hourbridge.remap"}
