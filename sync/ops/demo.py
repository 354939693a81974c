"""`hourbridge demo`: the real sync, through the real SDK, against the local sandbox APIs."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy import Engine, select

import mappings
from connectors.asana import AsanaConfig
from connectors.clickup import ClickUpConfig
from connectors.monday import MondayConfig
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from connectors.sandbox.exports import ZONE, write_exports
from connectors.sandbox.monday import MondaySandbox
from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox
from mappings.schema import MappingDocument, normalize_name
from sync.admin.revisions import read_document
from sync.delivery.outbox import DeliveryResult
from sync.delivery.reconcile import Reconciliation
from sync.invoices.stage import CheckedPeriod, check_period
from sync.ops.demo_bills import SeededBill, seed_bills
from sync.reporting.model import Period, format_hours, hours_that_add_up
from sync.run.context import RunContext
from sync.run.factory import build_sinks, build_sources
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.pipeline import RunResult, run_sync
from sync.run.reconcile import reconcile_month
from sync.settings import DeliverySettings, QuickBooksSettings, Settings, XeroSettings
from sync.store import ledger
from sync.store.db import make_engine
from sync.store.tables import entries as ledger_entries

_Clients = TypeVar("_Clients", bound=Mapping[str, Any])

EXAMPLE_MAPPINGS = Path(mappings.__file__).parent / "examples" / "demo.yaml"


@dataclass(frozen=True, slots=True)
class DemoSummary:
    window: str
    sandbox_minutes: dict[str, int]
    ledger_entries: int
    ledger_seconds: int
    report_seconds: int
    unmapped_entries: int
    unmapped_seconds: int
    api_calls: int
    files: tuple[Path, ...]
    database: Path
    deliveries: dict[str, DeliveryResult]
    reconciliations: tuple[Reconciliation, ...]
    sink_records: dict[str, int]
    example_entry: str | None = None  # source:account:external_id of an entry `mappings explain` can show
    seeded_bills: tuple[SeededBill, ...] = ()
    invoice_check: CheckedPeriod | None = None

    @property
    def reconciled(self) -> bool:
        return (
            sum(self.sandbox_minutes.values()) * 60 == self.ledger_seconds == self.report_seconds
            and all(r.ok for r in self.reconciliations)
            and not any(d.failed or d.unknown for d in self.deliveries.values())
        )

    def rows(self) -> list[tuple[str, str]]:
        # Rounded so that mapped + unmapped is the ledger's hours to the hundredth.
        _, (mapped, unmapped) = hours_that_add_up([self.ledger_seconds - self.unmapped_seconds, self.unmapped_seconds])
        return [
            ("work dates", self.window),
            *((f"{tool} sandbox minutes", f"{minutes:,}") for tool, minutes in self.sandbox_minutes.items()),
            ("all sandboxes, minutes", f"{sum(self.sandbox_minutes.values()):,}"),
            ("ledger entries", f"{self.ledger_entries:,}"),
            ("ledger minutes", f"{self.ledger_seconds // 60:,}"),
            ("report minutes", f"{self.report_seconds // 60:,}"),
            ("report hours", format_hours(self.report_seconds)),
            ("mapped", f"{self.ledger_entries - self.unmapped_entries} entries, {mapped} h"),
            ("unmapped (held, reported)", f"{self.unmapped_entries} entries, {unmapped} h"),
            ("API calls (all tools)", f"{self.api_calls:,}"),
            *(
                (f"{name}: lines delivered / records held", f"{d.ok:,} / {self.sink_records.get(name, 0):,}")
                for name, d in self.deliveries.items()
            ),
            *(
                (f"held from accounting: {reason}", f"{held.entries} entries, {format_hours(held.seconds)} h")
                for reason, held in sorted(next(iter(self.deliveries.values())).held.items())
                if self.deliveries and reason != "unmapped"
            ),
            *(
                (f"reconcile {r.period}", "sources = ledger = sinks" if r.ok else f"{len(r.differences)} differences")
                for r in self.reconciliations
            ),
            *self._invoice_rows(),
            ("database", str(self.database)),
        ]

    def _invoice_rows(self) -> list[tuple[str, str]]:
        if self.invoice_check is None:
            return []
        check = self.invoice_check.run.check
        label = self.invoice_check.run.period.label
        return [
            (f"invoice check {label}: bills checked", f"{check.bills_checked}"),
            (f"invoice check {label}: findings", f"{len(check.findings)}"),
        ]

    def explore(self) -> list[str]:
        """The commands that explore the demo's ledger, exactly as they run (with its database URL)."""
        env = f"HOURBRIDGE_DATABASE_URL={shlex.quote(database_url(self.database))}"
        draft = "my-mappings.yaml"
        lines = [
            "Explore the demo's ledger (the same commands work on your own ledger):",
            f"  {env} hourbridge unmapped    # time no rule maps yet, grouped, with a rule for each",
        ]
        if self.example_entry is not None:
            lines.append(
                f"  {env} hourbridge mappings explain {shlex.quote(self.example_entry)}"
                "    # which rule maps one entry, and why"
            )
        lines += [
            f"  cp {shlex.quote(str(EXAMPLE_MAPPINGS))} {draft}    # the demo's mapping document, to edit",
            f"  {env} hourbridge mappings preview {draft}    # what your edits would move between codes",
        ]
        return lines


def database_url(database: Path) -> str:
    """The SQLAlchemy URL of a SQLite ledger file, absolute so it works from any folder."""
    return f"sqlite:///{database.resolve()}"


def run_demo(
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    seed: int = 7,
    entries: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> DemoSummary:
    """Start the sandboxes on 127.0.0.1, sync into a fresh SQLite ledger, deliver, report, and reconcile."""
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    # The data set ends yesterday, so no session starts after `as_of` in any time zone, and the
    # first run reaches one day before it, so sessions filed under the previous UTC day are pulled.
    dataset = generate_dataset(seed, anchor=as_of.date() - timedelta(days=1), entries=entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "demo.db"
    for suffix in ("", "-wal", "-shm"):  # the demo always starts from an empty ledger
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    asana_projects, clickup_projects, monday_projects = split_projects(dataset)
    # Contractors who keep their own tracker or a timesheet: one file of each kind in the inbox,
    # imported by the same run.
    inbox = out_dir / "inbox"
    shutil.rmtree(inbox, ignore_errors=True)
    exports = write_exports(dataset, inbox, seed=seed)
    document = read_document(EXAMPLE_MAPPINGS).document
    with ExitStack() as stack:
        asana = stack.enter_context(AsanaSandbox(dataset, projects=asana_projects))
        clickup = stack.enter_context(ClickUpSandbox(dataset, projects=clickup_projects))
        monday = stack.enter_context(MondaySandbox(dataset, projects=monday_projects))
        qbo = stack.enter_context(quickbooks_sandbox(dataset, document))
        xero = stack.enter_context(xero_sandbox(dataset, document))
        settings = demo_settings(
            dataset, database, out_dir, asana=asana, clickup=clickup, monday=monday, qbo=qbo, xero=xero
        ).model_copy(update={"inbox_dir": inbox, "inbox_settle_seconds": 0, "import_timezone": ZONE.key})
        engine = make_engine(settings.database_url)
        result, reconciliations = sync_and_reconcile(settings, engine, as_of, progress)
        sandbox_minutes = {
            "Asana": asana.total_minutes(),
            "ClickUp": clickup.total_minutes(),
            "monday.com": monday.total_minutes(),
            **{EXPORT_LABELS[export.kind]: export.minutes for export in exports},
        }
        sink_records = {
            "quickbooks": len(qbo.time_activities()),
            "xero": sum(len(b.get("LineItems", [])) for b in xero.invoices()),
        }
        # The contractors' bills of the last full month, checked against the ledger (findings are
        # shown, never a failure of the demo: they are there on purpose).
        period = Period.month(f"{(as_of.replace(day=1) - timedelta(days=1)):%Y-%m}")
        seeded = seed_bills(engine, document, period, qbo, xero)
        with closing_all(build_sinks(settings, engine)) as sinks:
            checked = check_period(settings, engine, sinks, period, now=as_of)
    with engine.connect() as conn:
        totals = ledger.ledger_totals(conn)
        example = conn.execute(
            # An unmapped entry explains the most (the rules that nearly applied); else any live one.
            select(ledger_entries.c.source, ledger_entries.c.account, ledger_entries.c.external_id)
            .where(ledger_entries.c.deleted_at.is_(None))
            .order_by(ledger_entries.c.code.is_not(None), ledger_entries.c.id)
            .limit(1)
        ).first()
    engine.dispose()
    report_seconds = sum(r.totals.seconds for r in result.reports)
    return DemoSummary(
        window=f"{dataset.start} .. {dataset.anchor}",
        sandbox_minutes=sandbox_minutes,
        ledger_entries=totals["entries"],
        ledger_seconds=totals["seconds"],
        report_seconds=report_seconds,
        unmapped_entries=totals["unmapped_entries"],
        unmapped_seconds=totals["unmapped_seconds"],
        api_calls=sum(s.get("api_calls", 0) for s in result.api.values()),
        files=tuple(path for r in result.reports for path in r.files)
        + tuple(path for path in checked.files if path.name.startswith("invoice-check-")),
        database=database,
        deliveries=result.deliveries,
        reconciliations=reconciliations,
        sink_records=sink_records,
        example_entry=None if example is None else ":".join(example),
        seeded_bills=tuple(seeded),
        invoice_check=checked,
    )


def sync_and_reconcile(
    settings: Settings, engine: Engine, as_of: datetime, progress: Callable[[str, int], None] | None
) -> tuple[RunResult, tuple[Reconciliation, ...]]:
    """The sync pipeline, then every reported month reconciled against the same tools and sinks."""
    # Built here, not by the pipeline: the reconciliation after the run reads the same tools and sinks.
    with closing_all(build_sources(settings)) as sources, closing_all(build_sinks(settings, engine)) as sinks:
        result = run_sync(settings, sources=sources, sinks=sinks, engine=engine, as_of=as_of, progress=progress)
        context = RunContext.create(settings, engine, as_of=as_of)
        mapping = adopt_mapping(context, load_mapping(settings, engine))
        reconciliations = tuple(
            reconcile_month(context, p.label, mapping, sources=sources, sinks=sinks) for p in runner_months(result)
        )
    return result, reconciliations


def demo_settings(
    dataset: Dataset,
    database: Path,
    out_dir: Path,
    *,
    asana: AsanaSandbox,
    clickup: ClickUpSandbox,
    monday: MondaySandbox,
    qbo: QuickBooksSandbox,
    xero: XeroSandbox,
) -> Settings:
    """The settings of the demo's run: every tool and sink pointed at its sandbox on 127.0.0.1."""
    return Settings(
        database_url=database_url(database),
        mappings_file=EXAMPLE_MAPPINGS,
        output_dir=out_dir,
        start_date=dataset.start - timedelta(days=1),
        asana=AsanaConfig(token=SecretStr(asana.token), base_url=asana.base_url),
        clickup=ClickUpConfig(token=SecretStr(clickup.token), base_url=clickup.base_url, plan="enterprise"),
        monday=MondayConfig(token=SecretStr(monday.token), base_url=monday.base_url),
        quickbooks=QuickBooksSettings(
            realm_id=qbo.realm_id,
            base_url=qbo.server.root_url,
            access_token=SecretStr(qbo.token),
            granularity="day",
        ),
        xero=XeroSettings(
            tenant_id=xero.tenant_id,
            mode="bills",
            projects_base_url=xero.projects_url,
            accounting_base_url=xero.accounting_url,
            access_token=SecretStr(xero.token),
            tracking_categories=[COST_CENTER],
        ),
        # Asana time waits for its timesheet's approval; the other tools' time for two days.
        delivery=DeliverySettings.with_gates(asana="approved", clickup="settled", monday="settled"),
    )


COST_CENTER = "Cost center"
EXPORT_LABELS = {
    "clockify": "Clockify export",
    "toggl": "Toggl Track export",
    "harvest": "Harvest export",
    "timesheet": "timesheet",
}


@contextmanager
def closing_all(clients: _Clients) -> Iterator[_Clients]:
    """Close every source or sink of ``clients`` on the way out."""
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def runner_months(result: Any) -> list[Any]:
    return [r.period for r in result.reports]


def quickbooks_sandbox(
    dataset: Dataset, document: MappingDocument, kind: type[QuickBooksSandbox] = QuickBooksSandbox, **options: Any
) -> QuickBooksSandbox:
    """A QuickBooks company that knows every vendor, customer, item, class and department the document names."""
    vendors, _ = payees(dataset, document)
    refs = [c.quickbooks for c in document.codes.values() if c.quickbooks is not None]
    return kind(
        vendors=vendors,
        customers=sorted({r.customer for r in refs if r.customer}),
        items=sorted({r.item for r in refs if r.item}),
        # Codes naming neither a class nor a department book their cost center as the class.
        classes=sorted(
            {r.class_ for r in refs if r.class_}
            | {
                str(c.cost_center)
                for c in document.codes.values()
                if c.quickbooks is None or not (c.quickbooks.class_ or c.quickbooks.department)
            }
        ),
        departments=sorted({r.department for r in refs if r.department}),
        **options,
    )


def xero_sandbox(dataset: Dataset, document: MappingDocument, **options: Any) -> XeroSandbox:
    """A Xero organisation with the contractors as contacts, the document's accounts and cost centers."""
    _, contacts = payees(dataset, document)
    refs = [c.xero for c in document.codes.values() if c.xero is not None]
    return XeroSandbox(
        contacts=contacts,
        accounts=sorted({r.account for r in refs if r.account}),
        tracking={COST_CENTER: sorted({str(c.cost_center) for c in document.codes.values()})},
        **options,
    )


def payees(dataset: Dataset, document: MappingDocument) -> tuple[list[str], list[str]]:
    """The QuickBooks vendors and Xero contacts the demo's contractors are known by."""
    people = {normalize_name(p.email): p for p in document.people if p.email}
    vendors: set[str] = set()
    contacts: set[str] = set()
    for contractor in dataset.contractors:
        person = people.get(normalize_name(contractor.email))
        name = person.contractor if person is not None else contractor.name
        vendors.add((person.quickbooks_vendor if person is not None else None) or name)
        contacts.add((person.xero_contact if person is not None else None) or name)
    return sorted(vendors), sorted(contacts)


def split_projects(dataset: Dataset) -> tuple[list[str], list[str], list[str]]:
    """Spread the data set's projects over the three tools, as teams of one agency would be."""
    ids = [project.id for project in dataset.projects]
    return ids[0::3], ids[1::3], ids[2::3]
