"""Deliveries in the benchmark: the synced ledger sent to the QuickBooks and Xero emulators at their real limits.

Each sink gets its own copy of the ledger the first sync wrote (so one sink's outbox never decides
another's plan) and its own emulator, built as the demo builds them (``quickbooks_sandbox``,
``xero_sandbox``: every vendor, customer, item, class, contact and account the mapping document
names). `hourbridge deliver` runs twice in a child process, as an admin would run it: the first
delivery is timed against the emulator's rate bound, the second (nothing changed) must send nothing.
"""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connectors.sandbox import quickbooks as qbo_routes
from connectors.sandbox import xero as xero_routes
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox
from sync.admin.revisions import read_document
from sync.ops.admin import apply_and_remap, current_revision
from sync.ops.demo import COST_CENTER, EXAMPLE_MAPPINGS, payees, quickbooks_sandbox, xero_sandbox
from sync.settings import Settings
from sync.store.db import make_engine

# The vendors' documented limits (docs/api-facts: QuickBooks 500 requests a minute per realm, batch
# items counted one by one, and 40 batch calls a minute; Xero 60 calls a minute per tenant).
QUICKBOOKS_PER_MINUTE = 500
QUICKBOOKS_BATCHES_PER_MINUTE = 40
XERO_PER_MINUTE = 60
DELIVER_TIMEOUT_SECONDS = 3600
# Delivery gates off: the benchmark's data set is one look-back old, and what is measured is the
# sending, not which entries the gates hold back.
NO_GATES = {
    "HOURBRIDGE_DELIVERY__ASANA_GATE": "none",
    "HOURBRIDGE_DELIVERY__CLICKUP_GATE": "none",
    "HOURBRIDGE_DELIVERY__MONDAY_GATE": "none",
}


@dataclass(frozen=True, slots=True)
class Counts:
    """What one `hourbridge deliver` cost the emulator."""

    calls: int
    throttled: int
    writes: int
    quota_units: int
    """Units the emulator's minute limit let through: calls, QuickBooks batch items one by one."""
    batches: int


class SinkBench:
    """One accounting emulator at its vendor's limits (times the harness's rate scale)."""

    name: str
    sandbox: QuickBooksSandbox | XeroSandbox
    _throttled_at_reset = 0

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def counts(self) -> Counts:
        raise NotImplementedError

    def records(self) -> int:
        """Records the company holds (QuickBooks time activities, Xero bill lines)."""
        raise NotImplementedError

    def rate_bound_seconds(self, counts: Counts) -> tuple[float, str]:
        """Accepted calls ÷ allowed rate (the slower of the emulator's limits), and which limit it was."""
        raise NotImplementedError

    def prepare(self, ledger: Path) -> None:
        """Make the ledger copy ready for this sink, before anything is timed (nothing by default)."""

    def reset(self) -> None:
        self.sandbox.server.reset_counts()
        self._throttled_at_reset = self.sandbox.throttled_count
        self._reset_extra()

    def throttled(self) -> int:
        """429s since the last reset (the emulator's own limits, which its server does not count)."""
        return self.sandbox.throttled_count - self._throttled_at_reset

    def _reset_extra(self) -> None:
        return


class QuickBooksBench(SinkBench):
    name = "quickbooks"

    def __init__(self, dataset: Dataset, scale: float) -> None:
        document = read_document(EXAMPLE_MAPPINGS).document
        self.per_minute = max(1, round(QUICKBOOKS_PER_MINUTE * scale))
        self.batches_per_minute = max(1, round(QUICKBOOKS_BATCHES_PER_MINUTE * scale))
        self.sandbox = quickbooks_sandbox(
            dataset, document, rate_limit_per_minute=self.per_minute, batches_per_minute=self.batches_per_minute
        )
        self._units_at_reset = 0

    def _reset_extra(self) -> None:
        assert isinstance(self.sandbox, QuickBooksSandbox)
        self._units_at_reset = self.sandbox.units_accepted

    def env(self) -> dict[str, str]:
        qbo = self.sandbox
        assert isinstance(qbo, QuickBooksSandbox)
        return {
            "HOURBRIDGE_QUICKBOOKS__REALM_ID": qbo.realm_id,
            "HOURBRIDGE_QUICKBOOKS__BASE_URL": qbo.server.root_url,
            "HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN": qbo.token,
            "HOURBRIDGE_QUICKBOOKS__RATE_LIMIT_PER_MINUTE": str(self.per_minute),
            "HOURBRIDGE_QUICKBOOKS__MAX_BATCHES_PER_MINUTE": str(self.batches_per_minute),
        }

    def counts(self) -> Counts:
        server = self.sandbox.server
        throttled = self.throttled()
        batches = server.call_count(qbo_routes.BATCH)
        writes = batches + server.call_count(qbo_routes.TIME_ACTIVITY)
        calls = server.call_count()
        # Batch items count one by one against the 500 a minute; the emulator counts what it let through.
        assert isinstance(self.sandbox, QuickBooksSandbox)
        units = self.sandbox.units_accepted - self._units_at_reset
        return Counts(calls, throttled, writes, units, batches)

    def records(self) -> int:
        assert isinstance(self.sandbox, QuickBooksSandbox)
        return len(self.sandbox.time_activities())

    def rate_bound_seconds(self, counts: Counts) -> tuple[float, str]:
        # Only what the limit let through is in the bound (a 429 is time lost, not time owed).
        accepted_units = counts.quota_units
        by_units = accepted_units / self.per_minute * 60
        by_batches = counts.batches / self.batches_per_minute * 60
        if by_batches > by_units:
            return by_batches, f"{counts.batches} batch calls ÷ {self.batches_per_minute}/min"
        return by_units, f"{accepted_units} requests (batch items counted) ÷ {self.per_minute}/min"


class XeroBillsBench(SinkBench):
    name = "xero (bills)"

    def __init__(self, dataset: Dataset, scale: float) -> None:
        document = read_document(EXAMPLE_MAPPINGS).document
        self.per_minute = max(1, round(XERO_PER_MINUTE * scale))
        self.sandbox = xero_sandbox(dataset, document, rate_limit_per_minute=self.per_minute)

    def env(self) -> dict[str, str]:
        xero = self.sandbox
        assert isinstance(xero, XeroSandbox)
        return {
            "HOURBRIDGE_XERO__TENANT_ID": xero.tenant_id,
            "HOURBRIDGE_XERO__MODE": "bills",
            "HOURBRIDGE_XERO__PROJECTS_BASE_URL": xero.projects_url,
            "HOURBRIDGE_XERO__ACCOUNTING_BASE_URL": xero.accounting_url,
            "HOURBRIDGE_XERO__ACCESS_TOKEN": xero.token,
            "HOURBRIDGE_XERO__TRACKING_CATEGORIES": f'["{COST_CENTER}"]',
            "HOURBRIDGE_XERO__RATE_LIMIT_PER_MINUTE": str(self.per_minute),
        }

    def counts(self) -> Counts:
        server = self.sandbox.server
        calls = server.call_count()
        writes = sum(server.call_count(route) for route in xero_routes.WRITES)
        return Counts(calls, self.throttled(), writes, calls, 0)

    def records(self) -> int:
        assert isinstance(self.sandbox, XeroSandbox)
        return sum(len(bill.get("LineItems") or []) for bill in self.sandbox.invoices())

    def rate_bound_seconds(self, counts: Counts) -> tuple[float, str]:
        accepted = max(0, counts.calls - counts.throttled)
        return accepted / self.per_minute * 60, f"{accepted} calls ÷ {self.per_minute}/min"


# Xero project time: one POST per line at 60 a minute, and the Projects API takes at most 999 hours in
# one time entry. At day granularity this data set has about 1,000 lines per N (some 17 minutes
# each); at period granularity (one line per person and code a month) about 120 at 10,000 entries,
# but at 100,000 entries lines of over 999 hours, which the sink refuses. So the projects row is
# measured at period granularity, up to this many entries.
XERO_PROJECTS_MAX_ENTRIES = 20_000
XERO_PROJECT_TASK = "Development"


def projects_document(folder: Path) -> Path:
    """The demo's mapping document with every code booked to a Xero project (named after the code's name)."""
    document = yaml.safe_load(EXAMPLE_MAPPINGS.read_text(encoding="utf-8"))
    for code in document["codes"].values():
        code["xero"] = {**(code.get("xero") or {}), "project": code["name"], "task": XERO_PROJECT_TASK}
    path = folder / "xero-projects.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


class XeroProjectsBench(XeroBillsBench):
    """Xero as project time entries (the sink's default mode), one line per person, code and month."""

    name = "xero (projects)"

    def __init__(self, dataset: Dataset, scale: float) -> None:
        self.per_minute = max(1, round(XERO_PER_MINUTE * scale))
        self._folder = tempfile.TemporaryDirectory(prefix="hourbridge-bench-xero-")
        self.document = projects_document(Path(self._folder.name))
        document = read_document(self.document).document
        _, contacts = payees(dataset, document)
        # The project users are the contractors as the document names them for Xero.
        self.sandbox = xero_sandbox(
            dataset,
            document,
            rate_limit_per_minute=self.per_minute,
            projects={code.name: [XERO_PROJECT_TASK] for code in document.codes.values()},
            users=contacts,
        )

    def prepare(self, ledger: Path) -> None:
        # Lines carry the Xero references of the revision that mapped each entry, and only a sync
        # re-maps (a sync would also deliver): apply the projects document and re-map the copy here,
        # as the console's apply does, so the timed `deliver` sends project time entries.
        settings = Settings(database_url=f"sqlite:///{ledger}", mappings_file=ledger.with_suffix(".none"))
        engine = make_engine(settings.database_url)
        try:
            apply_and_remap(
                settings,
                engine,
                read_document(self.document),
                author="bench",
                comment="Xero projects",
                parent=None if (current := current_revision(engine)) is None else current.id,
                now=datetime.now(UTC),
            )
        finally:
            engine.dispose()

    def env(self) -> dict[str, str]:
        return super().env() | {
            "HOURBRIDGE_XERO__MODE": "projects",
            "HOURBRIDGE_XERO__GRANULARITY": "period",
            "HOURBRIDGE_MAPPINGS_FILE": str(self.document),
        }

    def records(self) -> int:
        assert isinstance(self.sandbox, XeroSandbox)
        return len(self.sandbox.time_entries())


def xero_projects(dataset: Dataset, scale: float) -> SinkBench | None:
    return XeroProjectsBench(dataset, scale) if len(dataset.entries) <= XERO_PROJECTS_MAX_ENTRIES else None


SINKS: tuple[Callable[[Dataset, float], SinkBench | None], ...] = (QuickBooksBench, XeroBillsBench, xero_projects)


def copy_ledger(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite ledger (its WAL included), through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def run_deliver(command: list[str], env: dict[str, str], log_path: Path) -> float:
    """One `hourbridge deliver` process; its wall time. A non-zero exit raises with the log's tail."""
    with log_path.open("wb") as log:
        started = time.perf_counter()
        completed = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=DELIVER_TIMEOUT_SECONDS, check=False
        )
        wall = time.perf_counter() - started
    if completed.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"`hourbridge deliver` exited with {completed.returncode}:\n{tail}")
    return wall


@contextmanager
def _running(bench: SinkBench) -> Iterator[SinkBench]:
    bench.sandbox.start()
    try:
        yield bench
    finally:
        bench.sandbox.stop()


def measure_deliveries(
    workdir: Path,
    env: dict[str, str],
    dataset: Dataset,
    *,
    scale: float,
    hourbridge: Path,
    step: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Deliver the ledger ``workdir/state.db`` to each sink's emulator twice; one row of figures per sink."""
    rows: list[dict[str, Any]] = []
    for factory in SINKS:
        bench = factory(dataset, scale)
        if bench is None:
            continue
        slug = bench.name.replace(" (", "-").rstrip(")")
        ledger_copy = workdir / f"deliver-{slug}.db"
        copy_ledger(workdir / "state.db", ledger_copy)
        bench.prepare(ledger_copy)
        with _running(bench):
            child_env = env | NO_GATES | bench.env() | {"HOURBRIDGE_DATABASE_URL": f"sqlite:///{ledger_copy}"}
            command = [str(hourbridge), "deliver"]
            step(f"deliver to the {bench.name} emulator ({len(dataset.entries):,} entries in the ledger)")
            bench.reset()
            wall = run_deliver(command, child_env, workdir / f"deliver-{slug}-first.log")
            first = bench.counts()
            records = bench.records()
            bound, bound_by = bench.rate_bound_seconds(first)
            step(f"deliver to the {bench.name} emulator again, nothing changed")
            bench.reset()
            again_wall = run_deliver(command, child_env, workdir / f"deliver-{slug}-again.log")
            again = bench.counts()
            rows.append(
                {
                    "sink": bench.name,
                    "records": records,
                    "first": {
                        "wall_seconds": round(wall, 2),
                        "calls": first.calls,
                        "writes": first.writes,
                        "throttled": first.throttled,
                        "quota_units": first.quota_units,
                        "rate_bound_seconds": round(bound, 2),
                        "rate_bound_by": bound_by,
                    },
                    "rerun": {
                        "wall_seconds": round(again_wall, 2),
                        "calls": again.calls,
                        "writes": again.writes,
                        "throttled": again.throttled,
                        "records_after": bench.records(),
                    },
                }
            )
    return rows
