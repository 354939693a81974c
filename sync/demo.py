"""`hourbridge demo`: the real sync, through the real SDK, against the local sandbox APIs."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

import mappings
from connectors.asana import AsanaConfig
from connectors.clickup import ClickUpConfig
from connectors.monday import MondayConfig
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from connectors.sandbox.monday import MondaySandbox
from sync.report import format_hours
from sync.runner import Runner
from sync.settings import Settings
from sync.store import ledger

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

    @property
    def reconciled(self) -> bool:
        return sum(self.sandbox_minutes.values()) * 60 == self.ledger_seconds == self.report_seconds

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("work dates", self.window),
            *((f"{tool} sandbox minutes", f"{minutes:,}") for tool, minutes in self.sandbox_minutes.items()),
            ("all sandboxes, minutes", f"{sum(self.sandbox_minutes.values()):,}"),
            ("ledger entries", f"{self.ledger_entries:,}"),
            ("ledger minutes", f"{self.ledger_seconds // 60:,}"),
            ("report minutes", f"{self.report_seconds // 60:,}"),
            ("report hours", format_hours(self.report_seconds)),
            ("unmapped (held, reported)", f"{self.unmapped_entries} entries, {format_hours(self.unmapped_seconds)} h"),
            ("API calls (all tools)", f"{self.api_calls:,}"),
            ("database", str(self.database)),
        ]


def run_demo(
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    seed: int = 7,
    entries: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> DemoSummary:
    """Start the three sandboxes on 127.0.0.1, sync them into a fresh SQLite ledger, report, reconcile."""
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    # The data set ends yesterday, so no session starts after `as_of` in any time zone, and the
    # first run reaches one day before it, so sessions filed under the previous UTC day are pulled.
    dataset = generate_dataset(seed, anchor=as_of.date() - timedelta(days=1), entries=entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "demo.db"
    for suffix in ("", "-wal", "-shm"):  # the demo always starts from an empty ledger
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    asana_projects, clickup_projects, monday_projects = split_projects(dataset)
    with ExitStack() as stack:
        asana = stack.enter_context(AsanaSandbox(dataset, projects=asana_projects))
        clickup = stack.enter_context(ClickUpSandbox(dataset, projects=clickup_projects))
        monday = stack.enter_context(MondaySandbox(dataset, projects=monday_projects))
        settings = Settings(
            database_url=f"sqlite:///{database}",
            mappings_file=EXAMPLE_MAPPINGS,
            output_dir=out_dir,
            start_date=dataset.start - timedelta(days=1),
            asana=AsanaConfig(token=SecretStr(asana.token), base_url=asana.base_url),
            clickup=ClickUpConfig(token=SecretStr(clickup.token), base_url=clickup.base_url, plan="enterprise"),
            monday=MondayConfig(token=SecretStr(monday.token), base_url=monday.base_url),
        )
        runner = Runner(settings, as_of=as_of, progress=progress)
        try:
            result = runner.sync()
        finally:
            runner.close()
        sandbox_minutes = {
            "Asana": asana.total_minutes(),
            "ClickUp": clickup.total_minutes(),
            "monday.com": monday.total_minutes(),
        }
    with runner.engine.connect() as conn:
        totals = ledger.ledger_totals(conn)
    runner.engine.dispose()
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
        files=tuple(path for r in result.reports for path in r.files),
        database=database,
    )


def split_projects(dataset: Dataset) -> tuple[list[str], list[str], list[str]]:
    """Spread the data set's projects over the three tools, as teams of one agency would be."""
    ids = [project.id for project in dataset.projects]
    return ids[0::3], ids[1::3], ids[2::3]
