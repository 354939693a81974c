"""A lost, new or restored ledger never duplicates what a sink holds: it adopts the records under our markers."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text

from connectors.files.sink import FileSink
from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import TIME_CREATE, XeroSandbox
from sync.run.context import RunContext
from sync.run.factory import build_sinks
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.pipeline import run_sync
from sync.run.reconcile import reconcile_month
from sync.settings import DeliverySettings, QuickBooksSettings, Settings, XeroSettings
from sync.store.copy import copy_ledger
from sync.store.db import make_engine, upgrade
from sync.store.tables import outbox
from tests.conftest import POSTGRES_URL
from tests.fakes import ListSource

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MONTHS = ("2026-10", "2026-11")

DOCUMENT = """\
version: 1
codes:
  WEB:
    name: Website
    client: Northwind
    cost_center: CC-1
    billable: true
    rates: [{rate: "95.00", currency: USD, effective_from: 2020-01-01}]
    quickbooks: {customer: Northwind, item: Hours, class: CC-1}
    xero: {account: "200", project: Website build, task: Development}
people:
  - contractor: Zoë Müller
    email: zoe@example.com
    quickbooks_vendor: Zoë Müller
    xero_contact: Zoë Müller Ltd
  - contractor: Liam O'Connor
    email: liam@example.com
    quickbooks_vendor: Liam O'Connor
    xero_contact: Liam O'Connor
rules:
  - {id: web, priority: 1, code: WEB, match: {project: Website}}
"""

SINKS = ["quickbooks", "xero-projects", "xero-bills", "files"]


class Company:
    """One accounting company (an emulator, or a folder) that every ledger of a test delivers to."""

    def __init__(self, kind: str, tmp: Path, stack: ExitStack) -> None:
        self.kind = kind
        self.tmp = tmp
        self.sink_name = kind.split("-")[0]
        if kind == "quickbooks":
            self.qbo = stack.enter_context(
                QuickBooksSandbox(
                    vendors=["Zoë Müller", "Liam O'Connor"], customers=["Northwind"], items=["Hours"], classes=["CC-1"]
                )
            )
        elif kind.startswith("xero"):
            self.xero = stack.enter_context(
                XeroSandbox(
                    projects={"Website build": ["Development"]},
                    users=["Zoë Müller Ltd", "Liam O'Connor"],
                    contacts=["Zoë Müller Ltd", "Liam O'Connor"],
                    accounts=["200"],
                    tracking={"Cost center": ["CC-1"]},
                    rate_limit_per_minute=None,
                )
            )
        self.folder = tmp / "books"

    def settings(self, tmp: Path) -> Settings:
        extra: dict[str, Any] = {}
        if self.kind == "quickbooks":
            extra["quickbooks"] = QuickBooksSettings(
                realm_id=self.qbo.realm_id,
                base_url=self.qbo.server.root_url,
                access_token=SecretStr(self.qbo.token),
                granularity="entry",
            )
        elif self.kind.startswith("xero"):
            extra["xero"] = XeroSettings(
                tenant_id=self.xero.tenant_id,
                mode=self.kind.split("-")[1],
                projects_base_url=self.xero.projects_url,
                accounting_base_url=self.xero.accounting_url,
                access_token=SecretStr(self.xero.token),
                tracking_categories=["Cost center"],
                rate_limit_per_minute=10_000,
                granularity="entry" if self.kind == "xero-projects" else None,
            )
        (tmp / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
        return Settings(
            database_url="sqlite://",
            mappings_file=tmp / "rules.yaml",
            output_dir=tmp / "out",
            start_date=date(2026, 10, 1),
            lookback_days=60,
            delivery=DeliverySettings.with_gates(asana="none"),
            **extra,
        )

    def creates(self) -> int:
        """Records created so far (write calls that can create; bills: their line items)."""
        if self.kind == "quickbooks":
            return len(self.qbo.time_activities())
        if self.kind == "xero-projects":
            return self.xero.call_count(TIME_CREATE)
        if self.kind == "xero-bills":
            return sum(len(bill.get("LineItems") or []) for bill in self.xero.invoices())
        # Rows of the month files, headers left out.
        return sum(len(path.read_text(encoding="utf-8").splitlines()) - 1 for path in self.folder.glob("*.csv"))

    def records(self) -> int:
        if self.kind == "quickbooks":
            return len(self.qbo.time_activities())
        if self.kind == "xero-projects":
            return len(self.xero.time_entries())
        return self.creates()


def deliver(company: Company, engine: Engine, source: ListSource, tmp: Path) -> tuple[Any, list[Any]]:
    """One sync of ``source`` into ledger ``engine``, delivered to ``company``; then every month reconciled."""
    settings = company.settings(tmp)
    if company.kind == "files":
        sinks: dict[str, Any] = {"files": FileSink(company.folder, clock=lambda: AS_OF)}
    else:
        sinks = dict(build_sinks(settings, engine))
    try:
        result = run_sync(
            settings,
            sources={"asana": source},
            sinks=sinks,
            engine=engine,
            as_of=AS_OF,
            clock=lambda: AS_OF,
            write_reports=False,
        )
        context = RunContext.create(settings, engine, as_of=AS_OF)
        mapping = adopt_mapping(context, load_mapping(settings, engine))
        reconciled = [reconcile_month(context, month, mapping, sources={}, sinks=sinks) for month in MONTHS]
    finally:
        for sink in sinks.values():
            sink.close()
    return result.deliveries[company.sink_name], reconciled


@pytest.fixture(params=["sqlite", "postgres"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Engine]]:
    """Fresh, migrated ledgers on one database kind (PostgreSQL: one schema each); ``new(name)`` makes one."""
    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    made: list[Engine] = []
    schemas: list[str] = []

    def new(name: str) -> Engine:
        if request.param == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        else:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            schemas.append(schema)
            admin = make_engine(str(POSTGRES_URL))
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            admin.dispose()
            engine = make_engine(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
        upgrade(engine)
        made.append(engine)
        return engine

    yield new
    for engine in made:
        engine.dispose()
    if schemas:
        admin = make_engine(str(POSTGRES_URL))
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def people_time(source: ListSource) -> None:
    source.put("e1", 30, date(2026, 10, 14))
    source.put("e2", 45, date(2026, 11, 3))
    source.put("e3", 20, date(2026, 11, 4), person="u2")
    source.put("e4", 60, date(2026, 11, 5))


@pytest.mark.parametrize("kind", SINKS)
def test_new_and_restored_ledgers_adopt_instead_of_creating(
    kind: str, tmp_path: Path, ledgers: Callable[[str], Engine]
) -> None:
    with ExitStack() as stack:
        company = Company(kind, tmp_path, stack)
        source = ListSource()
        people_time(source)
        a = ledgers("a")
        # Bills hold one line per person and month (3 lines, then 2 updates); the others one per entry or day
        # (4 lines, then 1 create and 1 update).
        lines, held, changed = (3, 3, 2) if kind == "xero-bills" else (4, 5, 1)
        first, reconciled = deliver(company, a, source, tmp_path)
        assert first.ok == lines and first.failed == 0, first.errors
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
        # The copy is taken here, before A's last delivery; then A delivers a new entry and an edit.
        before_last = ledgers("copy")
        copy_ledger(a, before_last)
        source.put("e5", 15, date(2026, 11, 6), person="u2")
        source.put("e2", 50, date(2026, 11, 3))
        last, reconciled = deliver(company, a, source, tmp_path)
        assert (last.ok, last.adopted) == (2, 0), last.errors
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
        created = company.creates()
        assert company.records() == held

        # An empty ledger B, against the same company: everything adopted, nothing created. A record A
        # wrote at a later version than B's first is rewritten once (its content cannot be read back).
        fresh, reconciled = deliver(company, ledgers("b"), source, tmp_path)
        assert (fresh.adopted, fresh.failed) == (held, 0), fresh.errors
        assert fresh.sent == changed
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
        assert company.creates() == created and company.records() == held
        # The copy taken before A's last delivery: what that delivery created or changed is adopted.
        restored, reconciled = deliver(company, before_last, source, tmp_path)
        assert (restored.adopted, restored.failed) == (2, 0), restored.errors
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
        assert company.creates() == created and company.records() == held
        # Nothing more on the next run; a third ledger adopts the same way.
        assert deliver(company, before_last, source, tmp_path)[0].sent == 0
        again, reconciled = deliver(company, ledgers("c"), source, tmp_path)
        assert (again.adopted, again.sent) == (held, changed) and company.creates() == created
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]


def test_a_line_adopted_at_another_version_is_updated_to_the_desired_content(
    tmp_path: Path, ledgers: Callable[[str], Engine]
) -> None:
    with ExitStack() as stack:
        company = Company("quickbooks", tmp_path, stack)
        source = ListSource()
        source.put("e1", 30, date(2026, 11, 3))
        a = ledgers("a")
        deliver(company, a, source, tmp_path)
        source.put("e1", 40, date(2026, 11, 3))
        deliver(company, a, source, tmp_path)  # A's record now carries the key of version 2
        source.put("e1", 55, date(2026, 11, 3))  # ...and B sees a later edit A never delivered
        result, reconciled = deliver(company, ledgers("b"), source, tmp_path)
        assert (result.adopted, result.ok, result.failed) == (1, 1, 0), result.errors
        assert [(r["Hours"], r["Minutes"]) for r in company.qbo.time_activities()] == [(0, 55)]
        assert all(r.ok for r in reconciled), [r.differences for r in reconciled]
        with a.connect() as conn:
            assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 2


def test_copy_file_of_a_sqlite_ledger_adopts_too(tmp_path: Path) -> None:
    """The plainest restore: yesterday's SQLite file copied back over today's."""
    with ExitStack() as stack:
        company = Company("files", tmp_path, stack)
        source = ListSource()
        people_time(source)
        a = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
        upgrade(a)
        deliver(company, a, source, tmp_path)
        a.dispose()
        shutil.copy(tmp_path / "a.db", tmp_path / "yesterday.db")
        a = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
        source.put("e5", 15, date(2026, 11, 6), person="u2")
        deliver(company, a, source, tmp_path)
        a.dispose()
        created = company.creates()
        restored = make_engine(f"sqlite:///{tmp_path / 'yesterday.db'}")
        result, reconciled = deliver(company, restored, source, tmp_path)
        restored.dispose()
        assert result.adopted == 1 and company.creates() == created == 5
        assert all(r.ok for r in reconciled)
