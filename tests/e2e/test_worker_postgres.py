"""Three `hourbridge worker` processes, ten scopes, injected faults and a killed worker: every entry once.

Ten scopes: the settings hold one configuration per tool and the sandboxes serve fixed account ids
(one ClickUp team, one monday account, at most two Asana workspaces), so ten real scopes come from
ten sandbox instances (4 Asana, 3 ClickUp, 3 monday.com), each with its own token and one project of
one shared data set. ``HOURBRIDGE_SOURCE_FACTORY`` points the workers at ``make_sources`` below,
which builds the real connectors and files each instance under its own account id (as ten customer
accounts would be), so every instance has its own ledger key space and cursor.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from connectors.asana import AsanaConfig
from connectors.base import Source
from connectors.clickup import ClickUpConfig
from connectors.model import Scope, TimeEntry, Window
from connectors.monday import MondayConfig
from connectors.sandbox import asana as asana_routes
from connectors.sandbox import clickup as clickup_routes
from connectors.sandbox import monday as monday_routes
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from connectors.sandbox.monday import MondaySandbox
from sync.admin.revisions import read_document
from sync.cli.app import app
from sync.ops.demo import EXAMPLE_MAPPINGS, quickbooks_sandbox
from sync.ops.worker import DELIVER_TASK, PULL_TASK, REPORT_TASK, WorkerApp
from sync.settings import DeliverySettings, QuickBooksSettings, Settings
from sync.store.db import make_engine, upgrade
from sync.store.invoices import invoice_summary
from sync.store.tables import cursors, delivered_lines, entries, entry_versions, outbox, runs

POSTGRES_URL = os.environ.get("HOURBRIDGE_TEST_POSTGRES_URL")
ROOT = Path(__file__).resolve().parents[2]
SANDBOXES_ENV = "HOURBRIDGE_TEST_SANDBOXES"
KINDS = ["asana"] * 4 + ["clickup"] * 3 + ["monday"] * 3
DEADLINE = 75.0  # seconds for the whole multi-process scenario (the brief allows 90)

# --------------------------------------------------------------------------- the source factory


class AccountPerInstance:
    """A real connector whose scopes are filed under ``<account>-<label>``: one account per instance."""

    name: ClassVar[str] = "account-per-instance"

    def __init__(self, inner: Source, label: str) -> None:
        self._inner = inner
        self._label = label
        self._original: dict[str, Scope] = {}

    def check(self) -> None:
        self._inner.check()

    def scopes(self) -> Iterable[Scope]:
        found = []
        for scope in self._inner.scopes():
            relabelled = replace(scope, account=f"{scope.account}-{self._label}")
            self._original[relabelled.account] = scope
            found.append(relabelled)
        return found

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        for entry in self._inner.fetch(self._original[scope.account], window):
            yield replace(entry, account=scope.account, content_hash="")  # the hash covers the account

    def stats(self) -> dict[str, int]:
        return self._inner.stats()

    def close(self) -> None:
        self._inner.close()


def make_sources(settings: Settings) -> dict[str, Source]:
    """HOURBRIDGE_SOURCE_FACTORY target: the ten sandbox instances listed in HOURBRIDGE_TEST_SANDBOXES."""
    from connectors.asana import AsanaSource
    from connectors.clickup import ClickUpSource
    from connectors.monday import MondaySource

    sources: dict[str, Source] = {}
    for spec in json.loads(Path(os.environ[SANDBOXES_ENV]).read_text(encoding="utf-8")):
        token = SecretStr(spec["token"])
        inner: Source
        if spec["kind"] == "asana":
            inner = AsanaSource(AsanaConfig(token=token, base_url=spec["base_url"], max_attempts=3))
        elif spec["kind"] == "clickup":
            inner = ClickUpSource(
                ClickUpConfig(token=token, base_url=spec["base_url"], plan="enterprise", max_attempts=3)
            )
        else:
            inner = MondaySource(MondayConfig(token=token, base_url=spec["base_url"], max_attempts=3))
        sources[spec["label"]] = AccountPerInstance(inner, spec["label"])
    return sources


# --------------------------------------------------------------------------- fixtures


@dataclass
class Instance:
    kind: str
    label: str
    sandbox: AsanaSandbox | ClickUpSandbox | MondaySandbox
    minutes: int


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema for the ledger and the job queue, reached through search_path in the URL."""
    if not POSTGRES_URL:
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    schema = f"w_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def dataset() -> Dataset:
    # The data set ends yesterday, so every entry is inside the workers' first window.
    return generate_dataset(11, anchor=datetime.now(UTC).date() - timedelta(days=1), days=30)


@pytest.fixture
def instances(dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Instance]]:
    assert len(dataset.projects) >= len(KINDS)
    with ExitStack() as stack:
        found: list[Instance] = []
        specs = []
        for i, kind in enumerate(KINDS):
            label = f"{kind}{i}"
            projects = [dataset.projects[i].id]
            token = f"token-{label}"
            sandbox: AsanaSandbox | ClickUpSandbox | MondaySandbox
            if kind == "asana":
                sandbox = AsanaSandbox(dataset, token=token, projects=projects)
            elif kind == "clickup":
                sandbox = ClickUpSandbox(dataset, token=token, projects=projects)
            else:
                sandbox = MondaySandbox(dataset, token=token, projects=projects)
            stack.enter_context(sandbox)
            found.append(Instance(kind, label, sandbox, sandbox.total_minutes()))
            specs.append({"kind": kind, "label": label, "token": token, "base_url": sandbox.base_url})
        path = tmp_path / "sandboxes.json"
        path.write_text(json.dumps(specs), encoding="utf-8")
        monkeypatch.setenv(SANDBOXES_ENV, str(path))
        yield found


def settings_for(url: str, dataset: Dataset, tmp_path: Path, **more: Any) -> Settings:
    return Settings(
        **more,
        database_url=url,
        mappings_file=EXAMPLE_MAPPINGS,
        output_dir=tmp_path / "out",
        start_date=dataset.start - timedelta(days=1),
        source_factory="tests.e2e.test_worker_postgres:make_sources",
        worker_stalled_seconds=4,
        worker_retry_seconds=1,
        worker_shutdown_seconds=10,
    )


def worker_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOURBRIDGE_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            SANDBOXES_ENV: os.environ[SANDBOXES_ENV],
            "HOURBRIDGE_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "HOURBRIDGE_DATABASE_URL": settings.database_url,
            "HOURBRIDGE_MAPPINGS_FILE": str(settings.mappings_file),
            "HOURBRIDGE_OUTPUT_DIR": str(settings.output_dir),
            "HOURBRIDGE_START_DATE": str(settings.start_date),
            "HOURBRIDGE_SOURCE_FACTORY": str(settings.source_factory),
            "HOURBRIDGE_WORKER_STALLED_SECONDS": str(settings.worker_stalled_seconds),
            "HOURBRIDGE_WORKER_RETRY_SECONDS": str(settings.worker_retry_seconds),
            "HOURBRIDGE_WORKER_SHUTDOWN_SECONDS": str(settings.worker_shutdown_seconds),
            "HOURBRIDGE_LOG_FORMAT": "json",
            # The test queues every round itself. A real cron would also fire at start-up when the
            # last slot (e.g. hh:00 or hh:30) passed minutes ago, and its extra round would make the
            # job counts depend on the time of day; 29 February has no recent slot.
            "HOURBRIDGE_SCHEDULE": "0 0 29 2 *",
        }
    )
    qbo = settings.sink_config("quickbooks")
    if qbo is not None:
        assert isinstance(qbo, QuickBooksSettings)
        env.update(
            {
                "HOURBRIDGE_QUICKBOOKS__REALM_ID": qbo.realm_id,
                "HOURBRIDGE_QUICKBOOKS__BASE_URL": qbo.base_url,
                "HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN": qbo.access_token.get_secret_value() if qbo.access_token else "",
                "HOURBRIDGE_QUICKBOOKS__RATE_LIMIT_PER_MINUTE": str(qbo.rate_limit_per_minute),
                "HOURBRIDGE_QUICKBOOKS__MAX_BATCHES_PER_MINUTE": str(qbo.max_batches_per_minute),
                "HOURBRIDGE_DELIVERY__ASANA_GATE": settings.delivery.gate("asana"),
                "HOURBRIDGE_DELIVERY__CLICKUP_GATE": settings.delivery.gate("clickup"),
                "HOURBRIDGE_DELIVERY__MONDAY_GATE": settings.delivery.gate("monday"),
            }
        )
    return env


def prepare_store(settings: Settings, request: pytest.FixtureRequest) -> WorkerApp:
    engine = make_engine(settings.database_url)
    request.addfinalizer(engine.dispose)  # also when an assertion fails midway
    upgrade(engine)
    worker_app = WorkerApp(settings, engine=engine, periodic=False)

    async def apply() -> bool:
        async with worker_app.app.open_async():
            return await worker_app.apply_schema()

    assert asyncio.run(apply()) is True
    assert asyncio.run(apply()) is False  # idempotent: a second migration Job is harmless
    return worker_app


def enqueue(worker_app: WorkerApp) -> list[str]:
    async def defer() -> list[str]:
        async with worker_app.app.open_async():
            return await worker_app.enqueue_pulls()

    return asyncio.run(defer())


def jobs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, task_name, lock, status::text AS status, attempts FROM procrastinate_jobs")
        )
        return [dict(row._mapping) for row in rows]


def wait_for(what: str, condition: Callable[[], bool], deadline: float) -> None:
    """Bounded polling of real worker processes (the only waiting this test does)."""
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written
    return events


# --------------------------------------------------------------------------- the scenario


@pytest.mark.postgres
@pytest.mark.e2e
def test_three_workers_ten_scopes_faults_and_a_killed_worker_ingest_every_entry_once(
    pg_url: str, dataset: Dataset, instances: list[Instance], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    deadline = time.monotonic() + DEADLINE
    settings = settings_for(pg_url, dataset, tmp_path)
    worker_app = prepare_store(settings, request)
    engine = worker_app.engine

    locks = enqueue(worker_app)
    assert len(locks) == 10
    assert enqueue(worker_app) == []  # queueing locks: a second round does not pile up behind the first

    # Faults, injected after the enqueue so only the workers meet them.
    # Bursts the connectors' own retries absorb (429 with Retry-After, 503):
    for inst in instances:
        route = {
            "asana": asana_routes.ENTRIES_LIST,
            "clickup": clickup_routes.TIME_ENTRIES_LIST,
            "monday": monday_routes.GRAPHQL,
        }[inst.kind]
        inst.sandbox.server.fail_next(route, 1, 429, {"Retry-After": "1"})
        inst.sandbox.server.fail_next(route, 1, 503)
    # A burst longer than the connector's 3 attempts: the run records the error, the job fails and
    # procrastinate retries it. Ten answers outlast one job attempt however the window is chunked
    # (each attempt spends 3 per listing call), and are spent well within the job's retries.
    instances[5].sandbox.server.fail_next(clickup_routes.TIME_ENTRIES_LIST, 10, 503)
    # The victim's scope stalls on a long Retry-After, so its worker is surely mid-job when killed.
    victim = instances[0]
    victim.sandbox.server.fail_next(asana_routes.ENTRIES_LIST, 1, 429, {"Retry-After": "30"})

    env = worker_env(settings, tmp_path)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    files = ExitStack()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sync.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=files.enter_context(log.open("w", encoding="utf-8")),
        )
        for log in logs
    ]
    try:
        victim_account = f"-{victim.label}"  # AccountPerInstance files the victim's scope under this suffix

        def holder() -> int | None:
            for i, log in enumerate(logs):
                for event_ in log_events(log):
                    if event_.get("event") == "scope.start" and str(event_.get("account", "")).endswith(victim_account):
                        return i
            return None

        wait_for("a worker to start the victim's scope", lambda: holder() is not None, deadline)
        killed = holder()
        assert killed is not None
        procs[killed].send_signal(signal.SIGKILL)  # no shutdown, no cleanup: a lost node
        procs[killed].wait(timeout=10)

        def all_done() -> bool:
            current = jobs(engine)
            pulls = [j for j in current if j["task_name"] == PULL_TASK]
            return (
                len(pulls) == 10
                and all(j["status"] == "succeeded" for j in pulls)
                and not any(j["status"] in ("todo", "doing") for j in current)
                and any(j["task_name"] == REPORT_TASK and j["status"] == "succeeded" for j in current)
            )

        wait_for("every job to succeed", all_done, deadline)

        # Graceful shutdown of the survivors (SIGTERM, as Kubernetes and systemd send it).
        for i, proc in enumerate(procs):
            if i != killed:
                proc.send_signal(signal.SIGTERM)
        for i, proc in enumerate(procs):
            if i != killed:
                assert proc.wait(timeout=20) == 0, logs[i].read_text(encoding="utf-8")[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        files.close()

    final = {j["lock"]: j for j in jobs(engine) if j["task_name"] == PULL_TASK}
    # The killed worker's job was retried as stalled; the long burst's job by the retry strategy.
    victim_job = next(job for lock, job in final.items() if lock.startswith(f"pull:{victim.label}:"))
    assert victim_job["attempts"] >= 1
    burst_job = next(job for lock, job in final.items() if lock.startswith(f"pull:{instances[5].label}:"))
    assert burst_job["attempts"] >= 1

    expected_minutes = sum(inst.minutes for inst in instances)
    with engine.connect() as conn:
        n_entries = conn.execute(select(func.count()).select_from(entries)).scalar_one()
        n_versions = conn.execute(select(func.count()).select_from(entry_versions)).scalar_one()
        duplicates = conn.execute(
            select(entries.c.source, entries.c.account, entries.c.external_id)
            .group_by(entries.c.source, entries.c.account, entries.c.external_id)
            .having(func.count() > 1)
        ).all()
        seconds = conn.execute(select(func.coalesce(func.sum(entries.c.duration_seconds), 0))).scalar_one()
        accounts = conn.execute(select(func.count()).select_from(cursors)).scalar_one()
        max_version = conn.execute(select(func.max(entries.c.version))).scalar_one()
        statuses = [row.status for row in conn.execute(select(runs.c.status))]
    # Exactly once: every sandbox minute is in the ledger once, under one key, in one version.
    assert duplicates == []
    assert seconds == expected_minutes * 60
    assert n_versions == n_entries
    assert max_version == 1
    assert accounts == 10
    assert n_entries >= 10 * 5
    # The killed worker's run can never be finished by anyone; it stays "running", nothing else does.
    assert statuses.count("running") <= 1
    assert "failed" in statuses or "partial" in statuses  # the long burst was recorded, then healed
    assert list((tmp_path / "out").glob("hours-*.csv"))


@pytest.mark.postgres
@pytest.mark.e2e
def test_worker_once_drains_the_queue_delivers_and_exits(
    pg_url: str, dataset: Dataset, instances: list[Instance], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = read_document(EXAMPLE_MAPPINGS).document
    with quickbooks_sandbox(dataset, document, rate_limit_per_minute=None, batches_per_minute=None) as qbo:
        settings = settings_for(
            pg_url,
            dataset,
            tmp_path,
            quickbooks=QuickBooksSettings(
                realm_id=qbo.realm_id,
                base_url=qbo.server.root_url,
                access_token=SecretStr(qbo.token),
                rate_limit_per_minute=1_000_000,
                max_batches_per_minute=1_000_000,
            ),
            delivery=DeliverySettings.with_gates(asana="none", clickup="none", monday="none"),
        )
        worker_app = prepare_store(settings, request)
        assert len(enqueue(worker_app)) == 10
        done = subprocess.run(
            [sys.executable, "-m", "sync.cli", "worker", "--once"],
            cwd=ROOT,
            env=worker_env(settings, tmp_path),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        current = jobs(worker_app.engine)
        assert {j["status"] for j in current} == {"succeeded"}
        assert sum(j["task_name"] == PULL_TASK for j in current) == 10
        assert sum(j["task_name"] == DELIVER_TASK for j in current) >= 1
        with worker_app.engine.connect() as conn:
            seconds = conn.execute(select(func.coalesce(func.sum(entries.c.duration_seconds), 0))).scalar_one()
            lines = conn.execute(
                select(func.count()).select_from(delivered_lines).where(delivered_lines.c.deleted.is_(False))
            ).scalar_one()
            states = set(conn.execute(select(outbox.c.state).distinct()).scalars())
        assert seconds == sum(inst.minutes for inst in instances) * 60
        # Every line the ledger implies is in QuickBooks once, and every op has its receipt.
        assert lines > 0 and len(qbo.time_activities()) == lines
        assert states == {"ok"}
        # After delivering, the worker checked the open months' contractors' bills (none sent yet).
        with worker_app.engine.connect() as conn:
            checked = {check["period"] for check in invoice_summary(conn)}
        assert checked and all(check.startswith("2026-") for check in checked)


def test_worker_refuses_sqlite_and_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    result = CliRunner().invoke(app, ["worker", "--once"])
    assert result.exit_code == 2
    assert "HOURBRIDGE_DATABASE_URL" in result.output
    assert "hourbridge schedule" in result.output
