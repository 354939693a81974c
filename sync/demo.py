"""`hourbridge demo`: the real sync, through the real SDK, against the local sandbox APIs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

import mappings
from connectors.asana import AsanaConfig
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import generate_dataset
from sync.report import format_hours
from sync.runner import Runner
from sync.settings import Settings
from sync.store import ledger

EXAMPLE_MAPPINGS = Path(mappings.__file__).parent / "examples" / "demo.yaml"


@dataclass(frozen=True, slots=True)
class DemoSummary:
    window: str
    sandbox_entries: int
    sandbox_minutes: int
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
        return self.sandbox_minutes * 60 == self.ledger_seconds == self.report_seconds

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("work dates", self.window),
            ("sandbox entries", f"{self.sandbox_entries:,}"),
            ("sandbox minutes", f"{self.sandbox_minutes:,}"),
            ("ledger minutes", f"{self.ledger_seconds // 60:,}"),
            ("report minutes", f"{self.report_seconds // 60:,}"),
            ("report hours", format_hours(self.report_seconds)),
            ("unmapped (held, reported)", f"{self.unmapped_entries} entries, {format_hours(self.unmapped_seconds)} h"),
            ("Asana API calls", f"{self.api_calls:,}"),
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
    """Start the sandbox on 127.0.0.1, sync it into a fresh SQLite ledger, write and reconcile reports."""
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    dataset = generate_dataset(seed, anchor=as_of.date(), entries=entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "demo.db"
    for suffix in ("", "-wal", "-shm"):  # the demo always starts from an empty ledger
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    with AsanaSandbox(dataset) as sandbox:
        settings = Settings(
            database_url=f"sqlite:///{database}",
            mappings_file=EXAMPLE_MAPPINGS,
            output_dir=out_dir,
            start_date=dataset.start,
            asana=AsanaConfig(token=SecretStr(sandbox.token), base_url=sandbox.base_url),
        )
        runner = Runner(settings, as_of=as_of, progress=progress)
        try:
            result = runner.sync()
        finally:
            runner.close()
        sandbox_minutes = sandbox.total_minutes()
        sandbox_entries = len(dataset.entries)
    with runner.engine.connect() as conn:
        totals = ledger.ledger_totals(conn)
    runner.engine.dispose()
    report_seconds = sum(r.totals.seconds for r in result.reports)
    return DemoSummary(
        window=f"{dataset.start} .. {dataset.anchor}",
        sandbox_entries=sandbox_entries,
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
