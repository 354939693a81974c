"""Tracker feeds in the ledger: an account-wide read tombstones anyone's deleted time, a per-user read only its own."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from connectors.base import Source, fetch_coverage
from connectors.model import Scope, Window
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.toggl import TogglSandbox
from sync.store import ledger
from sync.store.runs import start_run
from sync.store.tables import entries
from tests.fakes import FakeClock

from .makers_toggl import toggl_source

NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)


def ingest(engine: Engine, source: Source, window: Window) -> ledger.IngestCounts:
    scope: Scope = next(iter(source.scopes()))
    with engine.begin() as conn:
        run = start_run(conn, command="sync", as_of=NOW, now=NOW)
        step = ledger.WindowIngest(conn, scope.source, scope.account, window, run, NOW)
        step.add(list(source.fetch(scope, window)))
        return step.close(fetch_coverage(source, scope, window))


def live(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(entries.c.external_id).where(entries.c.deleted_at.is_(None)))}


def test_a_per_user_feed_tombstones_only_its_own_time(engine: Engine, dataset: Dataset) -> None:
    window = dataset.window
    clock = FakeClock()
    admin, member = dataset.contractors[0].id, dataset.contractors[1].id
    with TogglSandbox(dataset, clock=clock) as sandbox:
        with toggl_source(sandbox, clock) as everyone:
            ingest(engine, everyone, window)
        stored = live(engine)
        assert stored == {str(i) for i in sandbox.entry_ids(window.start, window.end)}
        mine = min(sandbox.entry_ids(window.start, window.end, user=sandbox.user_id(member)))
        theirs = min(sandbox.entry_ids(window.start, window.end, user=sandbox.user_id(admin)))
        sandbox.delete_entry(mine)
        sandbox.delete_entry(theirs)
        # The member's own feed sees only their time: their deletion lands, the admin's cannot.
        with toggl_source(sandbox, clock, token=sandbox.member_token, feed="me") as own:
            counts = ingest(engine, own, window)
        assert live(engine) == stored - {str(mine)}
        assert counts.deleted == 1
        # The workspace feed covers everyone: the admin's deletion lands now.
        with toggl_source(sandbox, clock) as everyone:
            ingest(engine, everyone, window)
        assert live(engine) == stored - {str(mine), str(theirs)}
