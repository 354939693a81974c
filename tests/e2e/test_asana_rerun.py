"""A sync against a compact Asana list: the first run reads details once per entry, an unchanged re-run none."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from connectors.sandbox import asana as routes
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from sync.store.tables import entry_versions

from .conftest import run_cli

AS_OF = "2026-11-20T18:00:00Z"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    # Small: the compact list's first sync reads every entry once.
    return generate_dataset(11, anchor=date(2026, 11, 20), days=45, entries=600)


@pytest.fixture(autouse=True)
def _mappings(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(MAPPINGS))


def _versions(tmp: Path) -> int:
    engine = create_engine(f"sqlite:///{tmp / 'state.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(entry_versions)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("rich", [False, True])
def test_unchanged_rerun_makes_no_detail_calls(
    sandbox_env: Path, sandbox: AsanaSandbox, dataset: Dataset, rich: bool
) -> None:
    sandbox.set_list_full_fields(rich)
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-reports")
    assert code == 0, output
    first_gets = sandbox.call_count(routes.ENTRIES_GET)
    assert first_gets == (0 if rich else len(dataset.entries))
    versions = _versions(sandbox_env)
    sandbox.server.reset_counts()
    code, output = run_cli("sync", "--as-of", AS_OF, "--no-reports")
    assert code == 0, output
    assert sandbox.call_count(routes.ENTRIES_GET) == 0
    assert sandbox.call_count(routes.WORKSPACE_USERS_LIST) == 0
    assert sandbox.call_count(routes.TASKS_LIST) == 0
    assert _versions(sandbox_env) == versions  # nothing written: the reused entries are the stored ones
    listing = sandbox.call_count(routes.ENTRIES_LIST)
    assert sandbox.call_count() <= listing + 2  # the workspace listing, and timesheets for a compact list


def test_a_moved_timesheet_reaches_the_ledger(sandbox_env: Path, sandbox: AsanaSandbox, dataset: Dataset) -> None:
    assert run_cli("sync", "--as-of", AS_OF, "--no-reports")[0] == 0
    entry = dataset.entries[-1]
    status = "REJECTED" if entry.approval_status == "APPROVED" else "APPROVED"
    sandbox.set_timesheet_status(sandbox.user_gid(entry.person_id), entry.work_date, status)
    versions = _versions(sandbox_env)
    sandbox.server.reset_counts()
    assert run_cli("sync", "--as-of", AS_OF, "--no-reports")[0] == 0
    changed = _versions(sandbox_env) - versions
    # Each entry of that timesheet is read again (billability with it) and stored with the new status.
    assert changed > 0
    assert changed == sandbox.call_count(routes.ENTRIES_GET)
