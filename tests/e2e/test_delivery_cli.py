"""End to end: `hourbridge sync` delivering to the QuickBooks emulator: once, through edits, crashes, closed months."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from connectors.delivery import marked_keys
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.quickbooks import BATCH, TIME_ACTIVITY, QuickBooksSandbox, _Fault
from sync.admin.revisions import read_document
from sync.ops.demo import EXAMPLE_MAPPINGS, quickbooks_sandbox
from sync.store.tables import entries, outbox

from .conftest import run_cli

AS_OF = "2026-11-21T09:00:00"


class PausingQuickBooks(QuickBooksSandbox):
    """Stores a write, then holds its answer until the test lets go (so the client can be killed first);
    or refuses the next ``refuse_next`` TimeActivities it is sent, as QuickBooks refuses an invalid one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_next = False
        self.refuse_next = 0
        self.committed = threading.Event()
        self.release = threading.Event()

    def _validate(self, body: Any) -> None:
        super()._validate(body)
        if self.refuse_next:
            self.refuse_next -= 1
            raise _Fault(400, "6000", "A business validation error has occurred", "Customer is inactive")

    def _committed(self, request_id: str | None, response: Any) -> Any:
        answer = super()._committed(request_id, response)
        if self.pause_next:
            self.pause_next = False
            self.committed.set()
            self.release.wait(120)
        return answer


@pytest.fixture
def qbo(dataset: Dataset) -> Iterator[PausingQuickBooks]:
    document = read_document(EXAMPLE_MAPPINGS).document
    # QuickBooks' real limits (500 items and 40 batches a minute) would make each run take a minute.
    sandbox = quickbooks_sandbox(
        dataset, document, PausingQuickBooks, rate_limit_per_minute=None, batches_per_minute=None
    )
    assert isinstance(sandbox, PausingQuickBooks)
    with sandbox as running:
        yield running
        running.release.set()


@pytest.fixture
def env(sandbox_env: Path, qbo: PausingQuickBooks, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__REALM_ID", qbo.realm_id)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__BASE_URL", qbo.server.root_url)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN", qbo.token)
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__GRANULARITY", "entry")
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__RATE_LIMIT_PER_MINUTE", "1000000")
    monkeypatch.setenv("HOURBRIDGE_QUICKBOOKS__MAX_BATCHES_PER_MINUTE", "1000000")
    monkeypatch.setenv("HOURBRIDGE_DELIVERY__ASANA_GATE", "none")
    return sandbox_env


def engine_of(tmp: Path) -> Any:
    return create_engine(f"sqlite:///{tmp / 'state.db'}")


def mapped_live(tmp: Path) -> tuple[int, int]:
    engine = engine_of(tmp)
    with engine.connect() as conn:
        mapped = conn.execute(
            select(func.count()).where(entries.c.deleted_at.is_(None), entries.c.code.is_not(None))
        ).scalar_one()
        unmapped = conn.execute(
            select(func.count()).where(entries.c.deleted_at.is_(None), entries.c.code.is_(None))
        ).scalar_one()
    engine.dispose()
    return int(mapped), int(unmapped)


def line_keys_held(qbo: QuickBooksSandbox, tmp: Path) -> list[str]:
    """The outbox line each QuickBooks record was written for (through the key in its Description)."""
    engine = engine_of(tmp)
    with engine.connect() as conn:
        owners = dict(conn.execute(select(outbox.c.idempotency_key, outbox.c.line_key)).all())
    engine.dispose()
    keys: list[str] = []
    for activity in qbo.time_activities():
        marked = marked_keys(activity.get("Description"))
        assert len(marked) == 1, activity
        keys.append(owners[marked[0]])
    return keys


def writes(qbo: QuickBooksSandbox) -> int:
    return qbo.call_count(BATCH) + qbo.call_count(TIME_ACTIVITY)


def test_sync_delivers_each_mapped_entry_once_and_follows_edits(
    env: Path, qbo: PausingQuickBooks, sandbox: AsanaSandbox, dataset: Dataset
) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    mapped, unmapped = mapped_live(env)
    assert mapped > 100 and unmapped > 0  # the demo document leaves two projects unmapped on purpose
    held = line_keys_held(qbo, env)
    assert len(held) == len(set(held)) == mapped
    # Twice: nothing new is sent, nothing is duplicated.
    before = writes(qbo)
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert writes(qbo) == before and len(qbo.time_activities()) == mapped
    # An edit in the PM tool becomes an update of the same record; a deletion, a delete.
    gids = sandbox.entry_gids(date(2026, 11, 10), date(2026, 11, 19))
    mapped_gids = [g for g in gids if _record_for(qbo, env, g) is not None]
    edited, deleted = mapped_gids[0], mapped_gids[1]
    edited_record = _record_for(qbo, env, edited)
    assert edited_record is not None
    edited_id = edited_record["Id"]
    sandbox.edit_entry(edited, duration_minutes=77)
    sandbox.delete_entry(deleted)
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    record = _record_for(qbo, env, edited)
    assert record is not None and record["Id"] == edited_id
    assert (record["Hours"], record["Minutes"]) == (1, 17)
    assert _record_for(qbo, env, deleted) is None
    assert len(qbo.time_activities()) == mapped - 1
    code, output = run_cli("reconcile", "--period", "2026-11")
    assert code == 0, output
    assert "2026-11 reconciles" in output


def _record_for(qbo: QuickBooksSandbox, tmp: Path, gid: str) -> dict[str, Any] | None:
    engine = engine_of(tmp)
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.idempotency_key).where(outbox.c.line_key.like(f"entry:%:{gid}"))).scalars()
        keys = set(rows)
    engine.dispose()
    for activity in qbo.time_activities():
        if set(marked_keys(activity.get("Description"))) & keys:
            return activity
    return None


def test_a_change_in_a_closed_month_becomes_an_adjustment(
    env: Path, qbo: PausingQuickBooks, sandbox: AsanaSandbox
) -> None:
    assert run_cli("sync", "--as-of", AS_OF)[0] == 0
    october = [a for a in qbo.time_activities() if a["TxnDate"].startswith("2026-10")]
    assert october
    code, output = run_cli("periods", "close", "2026-10", "--by", "finance")
    assert code == 0 and "2026-10 closed" in output
    # Inside the next run's look-back window (35 days before the cursor), so the edit is seen.
    gid = next(g for g in sandbox.entry_gids(date(2026, 10, 20), date(2026, 10, 31)) if _record_for(qbo, env, g))
    original = _record_for(qbo, env, gid)
    assert original is not None
    minutes = original["Hours"] * 60 + original["Minutes"]
    sandbox.edit_entry(gid, duration_minutes=minutes + 30)
    assert run_cli("sync", "--as-of", AS_OF)[0] == 0
    # The closed month's records are untouched; the 30 minutes arrive dated in the first open month.
    assert [a for a in qbo.time_activities() if a["TxnDate"].startswith("2026-10")] == october
    adjustments = [a for a in qbo.time_activities() if "Adjustment of 2026-10" in a.get("Description", "")]
    assert [(a["TxnDate"], a["Hours"], a["Minutes"]) for a in adjustments] == [("2026-11-01", 0, 30)]
    code, output = run_cli("periods", "reopen", "2026-10")
    assert code == 2 and "needs a reason" in output
    code, output = run_cli("periods", "list", "--json")
    assert code == 0 and '"closed": [\n    "2026-10"\n  ]' in output


def test_killed_between_send_and_receipt_the_next_run_creates_no_duplicate(env: Path, qbo: PausingQuickBooks) -> None:
    qbo.pause_next = True
    process = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "sync", "--as-of", AS_OF],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert qbo.committed.wait(180), "the sync never wrote to QuickBooks"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        qbo.release.set()
        if process.poll() is None:
            process.kill()
    landed = len(qbo.time_activities())
    assert landed > 0  # the first batch is in QuickBooks, its receipt never recorded
    engine = engine_of(env)
    with engine.connect() as conn:
        states = dict(conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())
    engine.dispose()
    assert states.get("sending", 0) >= landed and "ok" not in states
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    mapped, _ = mapped_live(env)
    held = line_keys_held(qbo, env)
    assert len(held) == len(set(held)) == mapped  # every line once: nothing lost, nothing doubled


def test_deliver_dry_run_sends_nothing_then_deliver_sends_the_plan(env: Path, qbo: PausingQuickBooks) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-deliver")
    assert code == 0, output
    assert qbo.time_activities() == [] and writes(qbo) == 0
    code, output = run_cli("deliver", "--dry-run", "--month", "2026-11")
    assert code == 0, output
    assert "ops planned (dry run, nothing sent)" in output
    assert writes(qbo) == 0
    code, output = run_cli("deliver", "--month", "2026-11")
    assert code == 0, output
    november = [a for a in qbo.time_activities() if a["TxnDate"].startswith("2026-11")]
    assert november and len(november) == len(qbo.time_activities())
    code, output = run_cli("status", "--json")
    assert code == 0
    assert f'"lines": {len(november)}' in output


def test_deliver_exits_1_naming_the_sink_when_a_line_is_refused_and_0_once_it_lands(
    env: Path, qbo: PausingQuickBooks
) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-deliver")
    assert code == 0, output
    qbo.refuse_next = 1
    code, output = run_cli("deliver", "--period", "2026-11")
    assert code == 1, output
    assert "deliver: quickbooks: 1 line failed (refused by the sink)" in output
    assert "`hourbridge status` lists the failed lines" in output
    # The other lines were delivered; only the refused one is missing.
    landed = len(qbo.time_activities())
    assert landed > 0
    code, output = run_cli("status")
    assert code == 0 and "Customer is inactive" in output, output
    # The next deliver sends the refused line again under a new key; QuickBooks takes it now.
    code, output = run_cli("deliver", "--period", "2026-11")
    assert code == 0, output
    assert "deliver:" not in output
    assert len(qbo.time_activities()) == landed + 1
    held = line_keys_held(qbo, env)
    assert len(held) == len(set(held))  # nothing delivered twice
    code, output = run_cli("reconcile", "--period", "2026-11", "--no-sources")
    assert code == 0, output


def test_periods_close_refuses_a_month_that_does_not_reconcile_unless_forced_with_a_reason(
    env: Path, qbo: PausingQuickBooks
) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-deliver")
    assert code == 0, output
    # Nothing delivered: every October line is a difference between the ledger and QuickBooks.
    code, output = run_cli("periods", "close", "2026-10", "--by", "finance")
    assert code == 1, output
    assert "2026-10 does not reconcile (" in output and "nothing was closed" in output
    assert "`hourbridge reconcile --period 2026-10` lists them" in output
    assert "quickbooks" in output and "--force" in output
    code, output = run_cli("periods", "list", "--json")
    assert code == 0 and json.loads(output)["closed"] == []

    code, output = run_cli("periods", "close", "2026-10", "--force")
    assert code == 2 and "needs a reason" in output, output
    code, output = run_cli(
        "periods", "close", "2026-10", "--force", "--reason", "booked by hand in October", "--by", "finance"
    )
    assert code == 0, output
    assert "2026-10 closed over" in output
    listed = json.loads(run_cli("periods", "list", "--json")[1])
    assert listed["closed"] == ["2026-10"]
    (event,) = listed["history"]
    assert (event["action"], event["by"]) == ("close", "finance")
    assert event["reason"].startswith("forced over ") and event["reason"].endswith(": booked by hand in October")

    # Delivered, November reconciles and closes without --force; closing it again changes nothing.
    code, output = run_cli("deliver", "--period", "2026-11")
    assert code == 0, output
    code, output = run_cli("periods", "close", "--period", "2026-11", "--by", "finance")
    assert code == 0 and "2026-11 closed; later changes" in output, output
    code, output = run_cli("periods", "close", "2026-11")
    assert code == 0 and "2026-11 was already closed" in output, output
    history = json.loads(run_cli("periods", "list", "--json")[1])["history"]
    assert [(e["month"], e["reason"]) for e in history[1:]] == [("2026-11", "")]
