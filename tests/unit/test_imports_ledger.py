"""Imports into the ledger: snapshots of (contractor, dates) slices, all or nothing, the inbox, the registry."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.base import source_plugin, vocabulary
from connectors.imports import ImportOptions
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.run.context import RunContext
from sync.run.imports import FilesRejected, ImportRun, InboxResult, import_inbox, inbox_files, run_import
from sync.run.mapping import adopt_mapping, load_mapping
from sync.settings import Settings
from sync.store import ledger
from sync.store.tables import entries

HEADER = "date,contractor_email,hours,description,project_code\n"


def sheet(folder: Path, name: str, *rows: str) -> Path:
    path = folder / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def settings_for(engine: Engine, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(database_url=str(engine.url), mappings_file=EXAMPLE_MAPPINGS, output_dir=tmp_path / "out", **extra)


def do_import(engine: Engine, tmp_path: Path, *paths: Path, dry_run: bool = False) -> ImportRun:
    return run_import(
        settings_for(engine, tmp_path), list(paths), options=ImportOptions(), dry_run=dry_run, engine=engine
    )


def live(engine: Engine) -> dict[tuple[str, str, date], int]:
    """(person, description, date) -> seconds of the live entries."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(entries.c.person_id, entries.c.payload, entries.c.work_date, entries.c.duration_seconds).where(
                entries.c.deleted_at.is_(None)
            )
        ).all()
    return {(r.person_id, r.payload["description"], r.work_date): r.duration_seconds for r in rows}


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return ledger.version_count(conn)


ADA = [
    "2026-11-02,ada@example.com,1,Design,NWT-APP",
    "2026-11-03,ada@example.com,2,Build,NWT-APP",
    "2026-11-03,ada@example.com,2,Build,NWT-APP",  # two identical rows: two entries
    "2026-11-04,ada@example.com,3,Test,GLX-ERP",
]


def test_importing_the_same_file_twice_writes_nothing_the_second_time(engine: Engine, tmp_path: Path) -> None:
    path = sheet(tmp_path, "ada.csv", *ADA)
    first = do_import(engine, tmp_path, path)
    assert first.files[0].counts.created == 4 and first.versions_written == 4
    before = versions(engine)
    again = do_import(engine, tmp_path, path)
    assert again.versions_written == 0 and again.files[0].counts.unchanged == 4
    assert versions(engine) == before
    with engine.connect() as conn:
        assert ledger.ledger_totals(conn)["seconds"] == 8 * 3600


def test_a_corrected_file_versions_exactly_what_changed(engine: Engine, tmp_path: Path) -> None:
    do_import(engine, tmp_path, sheet(tmp_path, "ada.csv", *ADA))
    bob = sheet(tmp_path, "bob.csv", "2026-11-03,bob@example.com,5,Build,NWT-APP")
    do_import(engine, tmp_path, bob)
    october = sheet(tmp_path, "oct.csv", "2026-10-30,ada@example.com,4,Old,NWT-APP")
    do_import(engine, tmp_path, october)
    with engine.connect() as conn:
        ids = {r.external_id: r.version for r in conn.execute(select(entries.c.external_id, entries.c.version))}
    before = versions(engine)

    corrected = sheet(
        tmp_path,
        "ada-corrected.csv",
        "2026-11-02,ada@example.com,1.5,Design,NWT-APP",  # hours changed: a new version of the same entry
        "2026-11-03,ada@example.com,2,Build,NWT-APP",  # one of the two identical rows removed
        "2026-11-04,ada@example.com,3,Test,GLX-ERP",  # unchanged
        "2026-11-04,ada@example.com,1,Review,GLX-ERP",  # new
    )
    counts = do_import(engine, tmp_path, corrected).files[0].counts
    assert (counts.created, counts.updated, counts.deleted, counts.unchanged) == (1, 1, 1, 2)
    assert versions(engine) == before + 3
    with engine.connect() as conn:
        after = {r.external_id: r.version for r in conn.execute(select(entries.c.external_id, entries.c.version))}
    assert len(set(after) - set(ids)) == 1  # only the review is a new entry
    assert sorted(after[i] - ids[i] for i in ids) == [0, 0, 0, 0, 1, 1]  # the edit and the tombstone
    state = live(engine)
    assert state[("ada@example.com", "Design", date(2026, 11, 2))] == 5400
    assert state[("bob@example.com", "Build", date(2026, 11, 3))] == 5 * 3600  # another person: untouched
    assert state[("ada@example.com", "Old", date(2026, 10, 30))] == 4 * 3600  # outside the slice: untouched


def test_an_invalid_row_writes_nothing_of_any_file_and_names_the_line(engine: Engine, tmp_path: Path) -> None:
    good = sheet(tmp_path, "good.csv", *ADA)
    bad = sheet(tmp_path, "bad.csv", ADA[0], "2026-11-31,ada@example.com,1,Oops,NWT-APP", ADA[3])
    before = versions(engine)
    with pytest.raises(FilesRejected) as caught:
        do_import(engine, tmp_path, good, bad)
    [rejected] = caught.value.rejected
    assert rejected.file == "bad.csv"
    assert [str(p) for p in rejected.problems] == ["line 3, column 'date' (A): '2026-11-31' is not a real date"]
    assert versions(engine) == before and live(engine) == {}


def test_a_dry_run_counts_what_would_change_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = sheet(tmp_path, "ada.csv", *ADA)
    dry = do_import(engine, tmp_path, path, dry_run=True)
    assert dry.run_id is None and dry.files[0].counts.created == 4
    assert versions(engine) == 0 and live(engine) == {}


def test_imported_entries_are_mapped_as_they_are_written(engine: Engine, tmp_path: Path) -> None:
    do_import(engine, tmp_path, sheet(tmp_path, "ada.csv", *ADA, "2026-11-05,ada@example.com,1,Misc,NOPE-1"))
    with engine.connect() as conn:
        rows = conn.execute(select(entries.c.code, entries.c.unmapped_reason, entries.c.rule_id)).all()
    codes = sorted((r.code or "", r.unmapped_reason or "") for r in rows)
    assert codes == [
        ("", "custom_field_code_unknown"),
        ("GLX-ERP", ""),
        ("NWT-APP", ""),
        ("NWT-APP", ""),
        ("NWT-APP", ""),
    ]


# --------------------------------------------------------------------------- the inbox


def inbox_settings(engine: Engine, tmp_path: Path) -> Settings:
    return settings_for(engine, tmp_path, inbox_dir=tmp_path / "inbox", inbox_settle_seconds=0)


def run_inbox(engine: Engine, settings: Settings) -> InboxResult:
    from sync.run.context import recorded_run

    context = RunContext.create(settings, engine)
    with recorded_run(context, "sync") as run:
        return import_inbox(run, adopt_mapping(run, load_mapping(settings, engine)).bound)


def test_the_inbox_imports_then_moves_files_and_rejects_with_what_to_fix(engine: Engine, tmp_path: Path) -> None:
    settings = inbox_settings(engine, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sheet(inbox, "ada.csv", *ADA)
    sheet(inbox, "bad.csv", "2026-11-03,bob@example.com,x,Build,NWT-APP")
    harvest = inbox / "kim@example.com"
    harvest.mkdir()
    (harvest / "harvest.csv").write_text(
        'Date,Project,Notes,Hours,First Name,Last Name\n2026-11-03,Shop,Work,"1,5",Kim,Ko\n', encoding="utf-8"
    )
    (inbox / "partial.csv.part").write_text("still copying", encoding="utf-8")
    result = run_inbox(engine, settings)
    assert sorted(r.file.path.name for r in result.imported) == ["ada.csv", "harvest.csv"]
    assert [path.name for path, _ in result.rejected] == ["bad.csv"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["ada.csv", "harvest.csv"]
    errors = (inbox / "rejected" / "bad.csv.errors.txt").read_text(encoding="utf-8")
    assert "line 2, column 'hours' (C): 'x' is not a number" in errors
    assert (inbox / "rejected" / "bad.csv").exists() and not (inbox / "bad.csv").exists()
    assert (inbox / "partial.csv.part").exists()  # a copy in progress is left alone
    assert result.errors and "bad.csv rejected" in result.errors[0].message
    state = live(engine)
    assert state[("kim@example.com", "Work", date(2026, 11, 3))] == 5400  # the folder names the contractor
    assert ("bob@example.com", "Build", date(2026, 11, 3)) not in state

    # The same file dropped again writes nothing and lands beside the first copy.
    sheet(inbox, "ada.csv", *ADA)
    before = versions(engine)
    again = run_inbox(engine, settings)
    assert again.imported[0].counts.versions_written == 0 and versions(engine) == before
    assert len(list((inbox / "processed").glob("ada*.csv"))) == 2


def test_files_still_being_written_wait_for_the_next_pass(tmp_path: Path) -> None:
    sheet(tmp_path, "new.csv", *ADA)
    old = sheet(tmp_path, "old.csv", *ADA)
    stamp = old.stat().st_mtime - 120
    os.utime(old, (stamp, stamp))
    found = inbox_files(tmp_path, settle_seconds=60)
    assert [path.name for path, _ in found] == ["old.csv"]


# --------------------------------------------------------------------------- the registry


def test_the_four_formats_are_registered_snapshot_sources_with_client_and_project() -> None:
    for name in ("clockify_export", "toggl_export", "harvest_export", "timesheet"):
        plugin = source_plugin(name)
        assert plugin.coverage == "snapshot" and plugin.containers == ("client", "project")
    assert {"clockify_export", "timesheet"} <= set(vocabulary().sources)


def test_rules_statements_unmapped_suggest_explain_and_preview_see_imported_time(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    from sync.admin.preview import explain, preview
    from sync.admin.unmapped import unmapped_queue
    from sync.reporting.lines import read_report_lines
    from sync.reporting.model import Period
    from sync.reporting.statements import build_statements

    engine = sqlite_engine
    clockify = tmp_path / "clockify.csv"
    clockify.write_text(
        "Project,Client,Description,Task,User,Email,Billable,Start Date,Start Time,End Date,End Time,Duration (h)\n"
        "Initech – DevOps retainer,Initech,Deploy,Ops,Priya Raman,priya.raman@example.org,Yes,11/13/2026,"
        "09:00 AM,11/13/2026,10:00 AM,01:00:00\n"
        "Side project,Someone,Other,Ops,Priya Raman,priya.raman@example.org,Yes,11/13/2026,"
        "11:00 AM,11/13/2026,11:30 AM,00:30:00\n",
        encoding="utf-8",
    )
    settings = settings_for(engine, tmp_path)
    run_import(settings, [clockify], options=ImportOptions.of(timezone="UTC"), engine=engine)
    period = Period.month("2026-11")

    [statement] = build_statements(period, read_report_lines(engine, period, drop_descriptions=False))
    assert statement.contractor == "Priya Raman" and statement.total.seconds == 5400
    assert statement.not_yet_coded.seconds == 1800

    [group] = unmapped_queue(engine, period)
    assert group.source == "clockify_export" and group.seconds == 1800
    assert group.rule is not None and group.rule["match"] == {"source": "clockify_export", "project": "Side project"}

    with engine.connect() as conn:
        key = conn.execute(select(entries.c.external_id).where(entries.c.code == "INI-OPS")).scalar_one()
    explained = explain(engine, f"clockify_export:files:{key}")
    assert explained.stored_code == "INI-OPS" and explained.stored_rule == "ini-ops"

    draft = tmp_path / "draft.yaml"
    draft.write_text(
        EXAMPLE_MAPPINGS.read_text(encoding="utf-8")
        + "  - {id: side, priority: 100, code: INI-OPS, match: {source: clockify_export, project: Side project}}\n",
        encoding="utf-8",
    )
    moved = preview(engine, draft, period)
    assert [(m.before, m.after, m.entries, m.seconds) for m in moved.moves] == [(None, "INI-OPS", 1, 1800)]


def test_sync_with_only_an_inbox_imports_and_health_expects_no_files(sqlite_engine: Engine, tmp_path: Path) -> None:
    from sync.ops.health import source_health
    from sync.run.pipeline import run_sync

    settings = inbox_settings(sqlite_engine, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sheet(inbox, "ada.csv", *ADA)
    sheet(inbox, "bad.csv", "2026-11-03,bob@example.com,x,Build,NWT-APP")
    result = run_sync(settings, sources={}, sinks={}, engine=sqlite_engine, write_reports=False)
    assert result.status == "partial"  # one file imported, one rejected
    assert [(s.source, s.name, s.counts.created) for s in result.scopes] == [("timesheet", "ada.csv", 4)]
    assert "bad.csv rejected and moved to rejected/" in result.errors[0].message
    assert source_health(sqlite_engine) == []  # neither the files nor the rejection are a source's health
    with pytest.raises(Exception, match="HOURBRIDGE_INBOX_DIR"):
        run_sync(settings_for(sqlite_engine, tmp_path), sources={}, sinks={}, engine=sqlite_engine)
    missing = settings_for(sqlite_engine, tmp_path, inbox_dir=tmp_path / "no-such-inbox")
    result = run_sync(missing, sources={}, sinks={}, engine=sqlite_engine, write_reports=False)
    assert result.status == "failed" and "is not a folder" in result.errors[0].message


def test_a_declared_period_empties_days_the_file_no_longer_has(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path)
    week = ImportOptions.of(period=("2026-11-02", "2026-11-06"), contractor="ada@example.com")
    run_import(settings, [sheet(tmp_path, "week.csv", *ADA)], options=week, engine=engine)
    shorter = sheet(tmp_path, "week-2.csv", ADA[0])  # only Monday is left: Tuesday and Thursday are emptied
    counts = run_import(settings, [shorter], options=week, engine=engine).files[0].counts
    assert (counts.unchanged, counts.deleted) == (1, 3)
    # A header alone with --contractor: the contractor did no work that week.
    counts = run_import(settings, [sheet(tmp_path, "none.csv")], options=week, engine=engine).files[0].counts
    assert counts.deleted == 1 and live(engine) == {}
    outside = sheet(tmp_path, "late.csv", "2026-11-09,ada@example.com,1,Late,NWT-APP")
    with pytest.raises(FilesRejected) as caught:
        run_import(settings, [outside], options=week, engine=engine)
    assert [str(p) for p in caught.value.rejected[0].problems] == [
        "line 2: dated 2026-11-09, outside --from 2026-11-02 --to 2026-11-06"
    ]
