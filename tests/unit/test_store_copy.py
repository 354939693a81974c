"""`db copy` moves every table of a ledger SQLite ⇄ PostgreSQL, verified; migrations serialize across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text
from typer.testing import CliRunner

from sync.cli.app import app
from sync.delivery import periods
from sync.run.pipeline import run_sync
from sync.settings import DeliverySettings, QuickBooksSettings, Settings
from sync.store import console as console_store
from sync.store import invoices
from sync.store.copy import copy_ledger, tables
from sync.store.db import current_revision, head_revision, make_engine, upgrade
from sync.store.tables import outbox, runs
from tests.conftest import POSTGRES_URL
from tests.fakes import Crash, ListSource, MemorySink

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]

DOCUMENT = """\
version: 1
codes:
  WEB: {name: Website, client: Northwind, cost_center: CC-1, billable: true, quickbooks: {customer: Northwind}}
people:
  - {contractor: Zoë Müller, email: zoe@example.com, quickbooks_vendor: Zoë Müller}
rules:
  - {id: web, priority: 1, code: WEB, match: {project: Website}}
"""


def postgres_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (skipped without HOURBRIDGE_TEST_POSTGRES_URL)."""
    if not POSTGRES_URL:
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    yield name
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def full_ledger(tmp: Path) -> Engine:
    """A SQLite ledger with a row in every table: entries and versions, a revision, runs, cursors,
    delivered lines, an outbox with an open op, a closed period and its event, a token, and an invoice check."""
    (tmp / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
    upgrade(engine)
    source, sink = ListSource(), MemorySink()
    source.put("e1", 30, date(2026, 10, 3))
    source.put("e2", 45, date(2026, 11, 4))
    settings = Settings(
        database_url="sqlite://",
        mappings_file=tmp / "rules.yaml",
        output_dir=tmp / "out",
        start_date=date(2026, 9, 1),
        lookback_days=120,
        quickbooks=QuickBooksSettings(realm_id="1"),
        delivery=DeliverySettings.with_gates(asana="none"),
    )
    run_sync(
        settings, sources={"asana": source}, sinks={"quickbooks": sink}, engine=engine, as_of=AS_OF, write_reports=False
    )
    periods.close(engine, "2026-10", by="finance", reason="month end", now=AS_OF)
    source.put("e3", 20, date(2026, 11, 5))
    sink.crash_after_commit = True
    with pytest.raises(Crash):
        run_sync(
            settings,
            sources={"asana": source},
            sinks={"quickbooks": sink},
            engine=engine,
            as_of=AS_OF,
            write_reports=False,
        )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO oauth_tokens (provider, account, generation, refresh_token, connected_at, connected_by)"
                " VALUES ('quickbooks', '1', 1, 'encrypted', :at, 'admin')"
            ),
            {"at": AS_OF},
        )
        invoices.save_check(
            conn,
            period="2026-11",
            checked_at=AS_OF,
            contractor=None,
            bills_checked=1,
            result={"contractors": []},
            findings=[
                {
                    "kind": "over_billed",
                    "contractor": "Zoë Müller",
                    "code": "WEB",
                    "bill": "quickbooks:1",
                    "billed_seconds": 3600,
                    "logged_seconds": 1800,
                    "detail": "WEB: 1.00 h billed, 0.50 h logged",
                }
            ],
        )
        # The console's token and a session of it (only hashes of their secrets are stored).
        console_store.new_token(conn, label="Ada", role="admin", by="admin", now=AS_OF)
        console_store.open_session(
            conn, identity="Ada (token 1)", role="admin", method="token", now=AS_OF, lifetime=timedelta(hours=8)
        )
        # A failed sign-in counted against its client address.
        console_store.count_sign_in(conn, "203.0.113.7", AS_OF, timedelta(minutes=15))
        empty = [t.name for t in tables() if not conn.execute(select(func.count()).select_from(t)).scalar_one()]
    assert empty == []  # the copy is exercised on every table
    return engine


def test_copy_sqlite_to_postgres_and_back_keeps_every_row(tmp_path: Path, schema: str) -> None:
    source = full_ledger(tmp_path)
    target = make_engine(postgres_url(schema))
    there = copy_ledger(source, target, batch=2)
    assert all(t.ok for t in there) and {t.table for t in there} == {t.name for t in tables()}
    assert current_revision(target) == head_revision()
    back = make_engine(f"sqlite:///{tmp_path / 'back.db'}")
    again = copy_ledger(target, back, batch=3)
    assert [(t.table, t.source_rows) for t in again] == [(t.table, t.source_rows) for t in there]
    assert all(t.ok for t in again)
    with source.connect() as a, back.connect() as b:
        assert (
            a.execute(select(outbox).order_by(outbox.c.id)).all()
            == b.execute(select(outbox).order_by(outbox.c.id)).all()
        )
    # The copy goes on from the copied ids: the next run gets the next id, not a clash.
    with target.begin() as conn:
        highest = conn.execute(select(func.max(runs.c.id))).scalar_one()
        new = conn.execute(
            insert(runs)
            .values(command="sync", status="ok", as_of=AS_OF, started_at=AS_OF, counts={}, errors=[])
            .returning(runs.c.id)
        ).scalar_one()
    assert new == highest + 1
    for engine in (source, target, back):
        engine.dispose()


def test_copy_refuses_a_target_that_holds_rows(tmp_path: Path) -> None:
    source = full_ledger(tmp_path)
    target = make_engine(f"sqlite:///{tmp_path / 'busy.db'}")
    copy_ledger(source, target)
    env = {**os.environ, "HOURBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    result = CliRunner().invoke(app, ["db", "copy", "--to", f"sqlite:///{tmp_path / 'busy.db'}"], env=env)
    assert result.exit_code == 2
    assert "the target database is not empty" in result.output and "entries (3 rows)" in result.output
    fresh = CliRunner().invoke(
        app, ["db", "copy", "--to", f"sqlite:///{tmp_path / 'fresh.db'}", "--batch", "1"], env=env
    )
    assert fresh.exit_code == 0, fresh.output
    assert "every table verified" in fresh.output
    source.dispose()
    target.dispose()


MIGRATE = """
import sys, time
from pathlib import Path
from sync.store.db import make_engine, upgrade
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
upgrade(make_engine(sys.argv[1]))
print("migrated")
"""


def migrate_at_once(url: str, tmp: Path, processes: int = 3) -> list[subprocess.CompletedProcess[str]]:
    """Start ``processes`` migrations of ``url`` that all begin at the same moment (a file they wait for)."""
    go = tmp / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url, str(go)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    go.touch()
    done = []
    for process in started:
        stdout, stderr = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def test_processes_migrating_a_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for result in migrate_at_once(url, tmp_path):
        assert result.returncode == 0 and "migrated" in result.stdout, result.stderr
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_processes_migrating_a_fresh_postgres_database_at_once_all_succeed(tmp_path: Path, schema: str) -> None:
    url = postgres_url(schema)
    for result in migrate_at_once(url, tmp_path):
        assert result.returncode == 0 and "migrated" in result.stdout, result.stderr
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
