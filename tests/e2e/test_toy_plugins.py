"""A toy source and sink registered only here flow through settings, mappings, sync, report, deliver, reconcile."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field
from sqlalchemy import create_engine, select

from connectors.base import SinkPlugin, SourcePlugin, register_sink, register_source, unregister
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, Window
from sync.run.factory import no_source_message
from sync.settings import describe_settings, load_settings
from sync.store.tables import entries
from tests.fakes import MemorySink

from .conftest import run_cli

AS_OF = "2026-11-21T09:00:00"


class ToyConfig(BaseModel):
    """The toy tracker's settings: a JSON file of rows."""

    model_config = {"extra": "forbid"}

    rows_file: Path = Field(description="JSON list of time rows the toy tracker serves.")
    account: str = Field(default="toy-1", description="The one account the toy tracker has.")


class ToySource:
    """A tracker that serves the rows of a JSON file, with containers of its own kind ("sheet")."""

    name: ClassVar[str] = "toy"

    def __init__(self, config: ToyConfig) -> None:
        self.config = config

    def check(self) -> None:
        return None

    def scopes(self) -> Iterable[Scope]:
        return [Scope("toy", self.config.account, "Toy")]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        for row in json.loads(self.config.rows_file.read_text(encoding="utf-8")):
            day = date.fromisoformat(row["date"])
            if day in window:
                yield TimeEntry(
                    source="toy",
                    account=scope.account,
                    external_id=row["id"],
                    work_date=day,
                    duration_seconds=row["seconds"],
                    person=Person(row["person"], row["person"].title(), f"{row['person']}@example.test"),
                    task=TaskRef("t-" + row["id"], row.get("task", "Work")),
                    containers=(Container("sheet", row["sheet"], row["sheet"]),),
                )

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class ToyLedgerConfig(BaseModel):
    """The toy accounting ledger's settings."""

    model_config = {"extra": "forbid"}

    book: str = Field(description="The book the toy ledger writes to.")
    granularity: str = Field(default="entry", description="Lines delivered (entry, day or period).")


class ToyLedgerSink(MemorySink):
    """The toy accounting ledger: a sink in memory under its own name."""

    name: ClassVar[str] = "toyledger"


TOY_SINK = ToyLedgerSink()

MAPPINGS = """\
version: 1
codes:
  ALPHA: {name: Alpha work, client: Alpha Inc, cost_center: CC-1, billable: true}
rules:
  - {id: alpha-sheet, priority: 10, code: ALPHA, match: {source: toy, sheet: Alpha}}
"""


@pytest.fixture
def toy_registered() -> Iterator[None]:
    register_source(
        SourcePlugin(
            name="toy",
            label="Toy tracker",
            factory=ToySource,
            config=ToyConfig,
            containers=("sheet",),
            gate="none",
            key_setting="ROWS_FILE",
        )
    )
    register_sink(
        SinkPlugin(name="toyledger", label="Toy ledger", factory=lambda config, token: TOY_SINK, config=ToyLedgerConfig)
    )
    TOY_SINK.records.clear()
    try:
        yield
    finally:
        unregister("toy")
        unregister("toyledger")


@pytest.fixture
def toy_env(toy_registered: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    rows = [
        {"id": "r1", "date": "2026-11-02", "seconds": 3600, "person": "ada", "sheet": "Alpha"},
        {"id": "r2", "date": "2026-11-03", "seconds": 1800, "person": "ada", "sheet": "Alpha"},
        {"id": "r3", "date": "2026-11-03", "seconds": 900, "person": "bob", "sheet": "Beta"},
    ]
    (tmp_path / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "mappings.yaml").write_text(MAPPINGS, encoding="utf-8")
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("HOURBRIDGE_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HOURBRIDGE_START_DATE", "2026-10-15")
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(tmp_path / "mappings.yaml"))
    monkeypatch.setenv("HOURBRIDGE_TOY__ROWS_FILE", str(tmp_path / "rows.json"))
    monkeypatch.setenv("HOURBRIDGE_TOYLEDGER__BOOK", "main")
    monkeypatch.setenv("HOURBRIDGE_LOG_FORMAT", "json")
    return tmp_path


def test_settings_carry_the_toy_sections(toy_env: Path) -> None:
    settings = load_settings()
    assert settings.enabled_sources() == ["toy"]
    assert settings.enabled_sinks() == ["toyledger"]
    config = settings.source_config("toy")
    assert isinstance(config, ToyConfig) and config.rows_file == toy_env / "rows.json"
    assert settings.delivery.gate("toy") == "none"
    names = {row[0] for row in describe_settings()}
    assert {"HOURBRIDGE_TOY__ROWS_FILE", "HOURBRIDGE_TOYLEDGER__BOOK", "HOURBRIDGE_DELIVERY__TOY_GATE"} <= names
    assert "HOURBRIDGE_TOY__ROWS_FILE" in no_source_message()


def test_mappings_check_knows_the_toy_vocabulary(toy_env: Path) -> None:
    code, output = run_cli("mappings", "check", str(toy_env / "mappings.yaml"))
    assert code == 0, output
    typo = toy_env / "typo.yaml"
    typo.write_text(MAPPINGS.replace("sheet: Alpha", "shet: Alpha"), encoding="utf-8")
    code, output = run_cli("mappings", "check", str(typo))
    assert code != 0
    assert "did you mean 'sheet'" in output


def test_toy_source_and_sink_flow_through_sync_report_deliver_and_reconcile(toy_env: Path) -> None:
    code, output = run_cli("sync", "--as-of", AS_OF)
    assert code == 0, output
    engine = create_engine(f"sqlite:///{toy_env / 'state.db'}")
    with engine.connect() as conn:
        rows = conn.execute(select(entries.c.external_id, entries.c.code, entries.c.source).order_by("external_id"))
        ledger = [tuple(row) for row in rows]
    engine.dispose()
    assert ledger == [("r1", "ALPHA", "toy"), ("r2", "ALPHA", "toy"), ("r3", None, "toy")]

    delivered: list[Any] = TOY_SINK.lines()
    assert sorted((line.code, line.seconds, line.payee) for line in delivered) == [
        ("ALPHA", 1800, "Ada"),
        ("ALPHA", 3600, "Ada"),
    ]
    code, output = run_cli("deliver")
    assert code == 0, output
    assert len(TOY_SINK.lines()) == 2  # already in the desired state: nothing new

    code, output = run_cli("report", "--period", "2026-11")
    assert code == 0, output
    report = json.loads(next((toy_env / "out").rglob("*2026-11*.json")).read_text(encoding="utf-8"))
    assert "ALPHA" in json.dumps(report)

    code, output = run_cli("reconcile", "--period", "2026-11", "--json")
    result = json.loads(output[output.index("{") :])
    assert code == 0, output
    assert result["ok"] is True and result["sinks"] == ["toyledger"] and result["sources_checked"] is True
    alpha = next(row for row in result["rows"] if row["code"] == "ALPHA")
    assert alpha["source_seconds"] == alpha["ledger_seconds"] == 5400
    assert alpha["sinks"]["toyledger"] == {"expected_minutes": 90, "minutes": 90}
