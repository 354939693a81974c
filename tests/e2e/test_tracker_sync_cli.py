"""`hourbridge sync` with a contractor's tracker (Harvest, Toggl Track, Clockify) configured through the environment."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.sandbox.clockify import ClockifySandbox
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.harvest import HarvestSandbox
from connectors.sandbox.toggl import TogglSandbox
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.store.db import make_engine
from sync.store.tables import entries, entry_versions

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"


def _harvest(stack: ExitStack, dataset: Dataset) -> tuple[dict[str, str], Callable[[date, date], set[str]], Any]:
    sandbox = stack.enter_context(HarvestSandbox(dataset))
    env = {
        "HOURBRIDGE_HARVEST__TOKEN": sandbox.token,
        "HOURBRIDGE_HARVEST__ACCOUNT_ID": sandbox.account_id,
        "HOURBRIDGE_HARVEST__CONTACT_EMAIL": "ops@example.com",
        "HOURBRIDGE_HARVEST__BASE_URL": sandbox.base_url,
    }
    return env, lambda a, b: {str(i) for i in sandbox.entry_ids(a, b)}, sandbox


def _toggl(stack: ExitStack, dataset: Dataset) -> tuple[dict[str, str], Callable[[date, date], set[str]], Any]:
    sandbox = stack.enter_context(TogglSandbox(dataset))
    member = sandbox.user_id(dataset.contractors[1].id)
    env = {
        "HOURBRIDGE_TOGGL__TOKEN": sandbox.member_token,
        "HOURBRIDGE_TOGGL__FEED": "me",
        "HOURBRIDGE_TOGGL__BASE_URL": sandbox.base_url,
    }
    return env, lambda a, b: {str(i) for i in sandbox.entry_ids(a, b, user=member)}, sandbox


def _clockify(stack: ExitStack, dataset: Dataset) -> tuple[dict[str, str], Callable[[date, date], set[str]], Any]:
    sandbox = stack.enter_context(ClockifySandbox(dataset))
    env = {
        "HOURBRIDGE_CLOCKIFY__TOKEN": sandbox.token,
        "HOURBRIDGE_CLOCKIFY__BASE_URL": sandbox.api_url,
        "HOURBRIDGE_CLOCKIFY__REPORTS_URL": sandbox.reports_url,
    }
    return env, lambda a, b: sandbox.entry_ids(a, b), sandbox


TRACKERS = {"harvest": _harvest, "toggl": _toggl, "clockify": _clockify}


@pytest.fixture(params=sorted(TRACKERS))
def tracker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dataset: Dataset
) -> Iterator[tuple[str, Callable[[date, date], set[str]], Any, Path]]:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("HOURBRIDGE_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HOURBRIDGE_START_DATE", dataset.start.isoformat())
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    with ExitStack() as stack:
        env, expected, sandbox = TRACKERS[request.param](stack, dataset)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield request.param, expected, sandbox, tmp_path


def ledger_state(tmp_path: Path, source: str) -> tuple[set[str], int]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            live = conn.execute(
                select(entries.c.external_id).where(entries.c.source == source, entries.c.deleted_at.is_(None))
            )
            count = conn.execute(select(func.count()).select_from(entry_versions)).scalar_one()
            return {r[0] for r in live}, int(count)
    finally:
        engine.dispose()


def test_sync_reads_the_tracker_once_and_a_deletion_becomes_a_tombstone(
    tracker: tuple[str, Callable[[date, date], set[str]], Any, Path],
) -> None:
    source, expected, sandbox, tmp_path = tracker
    dataset: Dataset = sandbox.dataset
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    live, versions = ledger_state(tmp_path, source)
    assert live == expected(dataset.start, dataset.anchor) and versions == len(live) > 0

    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert ledger_state(tmp_path, source) == (live, versions)  # a re-run writes nothing

    # A recent entry: a later run re-reads only its look-back window, where the deletion shows.
    gone = min(expected(dataset.anchor - timedelta(days=2), dataset.anchor))
    sandbox.delete_entry(int(gone) if source != "clockify" else gone)
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert ledger_state(tmp_path, source)[0] == live - {gone}

    code, output = run_cli("report", "--period", "2026-11")
    assert code == 0, output
    report = json.loads((tmp_path / "out" / "hours-2026-11.json").read_text())
    assert gone not in {line["external_id"] for line in report["entries"]}
    assert {line["source"] for line in report["entries"]} == {source}

    # The tracker is read again for the month like a PM tool: every row agrees to the second.
    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["sources_checked"] is True and result["rows"]
    assert all(row["source_seconds"] == row["ledger_seconds"] for row in result["rows"]), result["rows"]
