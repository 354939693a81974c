"""Snapshot coverage: an upload of (person, dates) slices tombstones only inside those slices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, func, select

from connectors.base import SourcePlugin, fetch_coverage, register_source, unregister
from connectors.model import Coverage, Person, Scope, Slice, TimeEntry, Window
from sync.store import ledger
from sync.store.runs import start_run
from sync.store.tables import entries, entry_versions

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
WINDOW = Window(date(2026, 10, 1), date(2026, 11, 30))


def row(ident: str, person: str, day: date, seconds: int = 3600) -> TimeEntry:
    return TimeEntry("upload", "acct", ident, day, seconds, Person(person, person.title()))


class UploadSource:
    """A timesheet upload: complete only for the (person, dates) slices it names."""

    name: ClassVar[str] = "upload"

    def __init__(self, rows: list[TimeEntry], slices: list[Slice]) -> None:
        self.rows, self.slices = rows, slices

    def check(self) -> None:
        return None

    def scopes(self) -> list[Scope]:
        return [Scope("upload", "acct")]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        yield from (entry for entry in self.rows if entry.work_date in window)

    def covered(self, scope: Scope, window: Window) -> Coverage:
        return Coverage.snapshot(self.slices)

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class UploadConfig(BaseModel):
    """No settings: the rows come with the test."""


@pytest.fixture(autouse=True)
def upload_registered() -> Iterator[None]:
    # Built from settings an upload has no rows; the tests hand theirs to UploadSource directly.
    register_source(
        SourcePlugin(
            name="upload",
            label="Upload",
            factory=lambda config: UploadSource([], []),
            config=UploadConfig,
            coverage="snapshot",
        )
    )
    yield
    unregister("upload")


def ingest(engine: Engine, source: UploadSource, run_id: int = 1) -> ledger.IngestCounts:
    scope = Scope("upload", "acct")
    with engine.begin() as conn:
        run = start_run(conn, command="sync", as_of=NOW, now=NOW)
        step = ledger.WindowIngest(conn, "upload", "acct", WINDOW, run, NOW)
        step.add(list(source.fetch(scope, WINDOW)))
        return step.close(fetch_coverage(source, scope, WINDOW))


def live(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(entries.c.external_id).where(entries.c.deleted_at.is_(None)))
        return {r[0] for r in rows}


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entry_versions)).scalar_one())


ADA_NOV = Slice("ada", date(2026, 11, 1), date(2026, 11, 15))
OCTOBER = [row("oct-ada", "ada", date(2026, 10, 20)), row("oct-bob", "bob", date(2026, 10, 21))]
BOB_NOV = [row("nov-bob", "bob", date(2026, 11, 5))]
ADA_UPLOAD = [row("a1", "ada", date(2026, 11, 3)), row("a2", "ada", date(2026, 11, 4))]


def test_an_upload_never_tombstones_october_or_another_person(engine: Engine) -> None:
    earlier = UploadSource(
        OCTOBER + BOB_NOV,
        [Slice("ada", date(2026, 10, 1), date(2026, 10, 31)), Slice("bob", date(2026, 10, 1), date(2026, 11, 30))],
    )
    ingest(engine, earlier)
    assert live(engine) == {"oct-ada", "oct-bob", "nov-bob"}

    counts = ingest(engine, UploadSource(ADA_UPLOAD, [ADA_NOV]))
    assert counts.deleted == 0 and counts.created == 2
    assert live(engine) == {"oct-ada", "oct-bob", "nov-bob", "a1", "a2"}


def test_a_reupload_replaces_its_slice_and_an_unchanged_one_writes_nothing(engine: Engine) -> None:
    ingest(engine, UploadSource(OCTOBER + BOB_NOV, [Slice("bob", date(2026, 10, 1), date(2026, 11, 30))]))
    ingest(engine, UploadSource(ADA_UPLOAD, [ADA_NOV]))

    counts = ingest(engine, UploadSource(ADA_UPLOAD[:1], [ADA_NOV]))  # a2 removed from the sheet
    assert counts.deleted == 1
    assert live(engine) == {"oct-ada", "oct-bob", "nov-bob", "a1"}

    before = versions(engine)
    counts = ingest(engine, UploadSource(ADA_UPLOAD[:1], [ADA_NOV]))
    assert (counts.created, counts.updated, counts.deleted) == (0, 0, 0)
    assert versions(engine) == before


def test_a_window_source_still_tombstones_the_whole_window(engine: Engine) -> None:
    with engine.begin() as conn:
        run = start_run(conn, command="sync", as_of=NOW, now=NOW)
        step = ledger.WindowIngest(conn, "upload", "acct", WINDOW, run, NOW)
        step.add(OCTOBER + BOB_NOV)
        step.close()
    with engine.begin() as conn:
        step = ledger.WindowIngest(conn, "upload", "acct", WINDOW, run, NOW)
        step.add(BOB_NOV)
        counts = step.close(Coverage.complete_window())
    assert counts.deleted == 2
    assert live(engine) == {"nov-bob"}
