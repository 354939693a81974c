"""The run's stages: typed errors with tracebacks in the log, one mapping path, report lines from stored revisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from structlog.testing import capture_logs

from connectors.errors import Action, TransientError
from connectors.model import Scope, TimeEntry, Window
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period
from sync.run.context import RunContext, RunError, recorded_run
from sync.run.ingest import ingest
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.pipeline import run_sync
from sync.run.remap import remap
from sync.settings import Settings
from sync.store import ledger
from sync.store.db import make_engine, upgrade
from sync.store.tables import MAPPING_COLUMNS, entries, runs
from tests.fakes import ListSource
from tests.unit.test_mapping_admin import DOCUMENT, LEDGER

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(date(2026, 11, 1), date(2026, 11, 20))


class FailingSource(ListSource):
    """Lists its scope, then every fetch fails the way a vendor outage does."""

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        raise TransientError("Asana answered 503 three times; the next run retries")
        yield  # pragma: no cover  (a generator, like every source's fetch)


def settings_for(tmp_path: Path, **more: object) -> Settings:
    (tmp_path / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    return Settings(
        database_url="sqlite://",
        mappings_file=tmp_path / "rules.yaml",
        output_dir=tmp_path / "out",
        start_date=date(2026, 11, 1),
        **more,  # type: ignore[arg-type]
    )


def test_a_failed_window_is_a_typed_run_error_stored_in_the_old_shape_with_its_traceback_logged(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    settings = settings_for(tmp_path)
    with capture_logs() as logs:
        result = run_sync(
            settings,
            sources={"asana": FailingSource()},
            engine=sqlite_engine,
            as_of=NOW,
            clock=lambda: NOW,
            write_reports=False,
            deliver_to_sinks=False,
        )
    (error,) = result.errors
    assert error == RunError(
        "scope",
        "asana",
        Window(date(2026, 11, 1), date(2026, 11, 14)),
        Action.TRANSIENT,
        "Asana answered 503 three times; the next run retries",
        account="ws1",
    )
    assert result.status == "failed" and result.scopes[0].error == error.message
    with sqlite_engine.connect() as conn:
        stored = conn.execute(select(runs.c.errors).where(runs.c.id == result.run_id)).scalar_one()
    assert stored == [
        {
            "source": "asana",
            "account": "ws1",
            "window": ["2026-11-01", "2026-11-14"],
            "error": "Asana answered 503 three times; the next run retries",
            "action": "transient",
        }
    ]
    (failed,) = [event for event in logs if event["event"] == "scope.failed"]
    assert failed["exc_info"] is True and failed["log_level"] == "error"


def test_a_sink_that_cannot_be_built_and_the_run_itself_keep_their_stored_keys() -> None:
    sink = RunError.of("sink", None, TransientError("QuickBooks is down"))
    run = RunError.of("run", None, TransientError("the database went away"))
    assert sink.as_dict() == {"sink": None, "error": "QuickBooks is down", "action": "transient"}
    assert run.as_dict() == {"source": None, "account": None, "error": "the database went away", "action": "transient"}
    assert RunError("sink", "xero", None, Action.CONFIG, "refused", failed=2, unknown=0).as_dict() == {
        "sink": "xero",
        "error": "refused",
        "action": "config",
        "failed": 2,
        "unknown": 0,
    }


def mapping_rows(engine: Engine) -> dict[str, tuple[object, ...]]:
    columns = [entries.c[name] for name in (*MAPPING_COLUMNS, "mapping_hash", "mapping_revision")]
    with engine.connect() as conn:
        rows = conn.execute(select(entries.c.external_id, *columns)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_ingest_and_remap_write_the_same_mapping_columns(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    source = ListSource()
    source.entries = {entry.external_id: entry for entry in LEDGER}
    written: list[dict[str, tuple[object, ...]]] = []
    for map_on_ingest in (True, False):
        engine = make_engine(f"sqlite:///{tmp_path / f'ledger-{map_on_ingest}.db'}")
        upgrade(engine)
        context = RunContext.create(settings, engine, as_of=NOW, clock=lambda: NOW)
        with recorded_run(context, "test") as run:
            mapping = adopt_mapping(run, load_mapping(settings, engine))
            if map_on_ingest:
                ingest(run, source, Scope("asana", "ws1", "Acme"), mapping.bound)
                assert remap(run, mapping.bound).mapped == 0  # already mapped by this revision
            else:
                assert run.run_id is not None
                with engine.begin() as conn:
                    writer = ledger.WindowIngest(conn, "asana", "ws1", WINDOW, run.run_id, NOW)
                    writer.add(LEDGER)
                    writer.close()
                assert remap(run, mapping.bound).mapped == len(LEDGER)
        written.append(mapping_rows(engine))
        engine.dispose()
    assert written[0] == written[1]
    assert written[0]["web-1"][0] == "WEB" and written[0]["disc-1"][0] is None


def test_report_lines_name_codes_from_the_stored_revision_with_no_mapping_document(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    settings = settings_for(tmp_path)
    source = ListSource()
    source.entries = {entry.external_id: entry for entry in LEDGER}
    run_sync(settings, sources={"asana": source}, engine=sqlite_engine, as_of=NOW, clock=lambda: NOW)
    # The document goes away (or breaks): reading the ledger does not need it.
    (tmp_path / "rules.yaml").write_text("codes: [this is not a mapping document\n", encoding="utf-8")
    lines = read_report_lines(sqlite_engine, Period.month("2026-11"), drop_descriptions=False)
    names = {line.external_id: line.code_name for line in lines}
    assert names["web-1"] == "Website" and names["disc-1"] is None


def test_ingest_outside_a_recorded_run_is_refused(tmp_path: Path, sqlite_engine: Engine) -> None:
    settings = settings_for(tmp_path)
    context = RunContext.create(settings, sqlite_engine, as_of=NOW)
    mapping = adopt_mapping(context, load_mapping(settings, sqlite_engine))
    with pytest.raises(ValueError, match="recorded_run"):
        ingest(context, ListSource(), Scope("asana", "ws1", "Acme"), mapping.bound)
