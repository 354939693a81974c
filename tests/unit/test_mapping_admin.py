"""Mapping administration on SQLite and PostgreSQL: precedence, apply, diff, preview, explain, the unmapped queue."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog
import yaml
from sqlalchemy import Engine, func, select

from connectors.errors import ConfigError
from connectors.model import Container, Person, TaskRef, TimeEntry, Window
from mappings.loader import MappingDocumentError, load_document
from sync.admin import preview as admin_preview
from sync.admin import revisions as admin_revisions
from sync.admin import unmapped as admin_unmapped
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period, build_report
from sync.reporting.output import write_report
from sync.run.context import RunContext
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.remap import remap
from sync.settings import Settings
from sync.store import ledger, revisions
from sync.store.db import make_engine
from sync.store.runs import start_run
from sync.store.tables import entries, mapping_revisions

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DOCUMENT = """\
version: 1
codes:
  WEB: {name: Website, client: Northwind, cost_center: CC-1, billable: true}
  APP: {name: Mobile app, client: Northwind, cost_center: CC-1, billable: true}
people:
  - {contractor: Zoë Müller, email: zoe@example.com}
rules:
  - id: code-field
    priority: 200
    code_from_custom_field: Project code
  - id: web
    priority: 100
    code: WEB
    match: {project: Website}
"""


def make_entry(
    external_id: str,
    *,
    minutes: int = 30,
    project: str | None = "Website",
    task: str = "Build",
    fields: tuple[tuple[str, str], ...] = (),
    person: str = "u1",
) -> TimeEntry:
    containers: tuple[Container, ...] = (Container("workspace", "ws1", "Acme"),)
    if project is not None:
        containers += (Container("project", f"p-{project}", project),)
    return TimeEntry(
        source="asana",
        account="ws1",
        external_id=external_id,
        work_date=date(2026, 11, 5),
        duration_seconds=minutes * 60,
        person=Person(person, "Zoë Müller", "zoe@example.com"),
        task=TaskRef(f"t-{task}", task),
        containers=containers,
        custom_fields=fields,
    )


LEDGER = [
    make_entry("web-1", minutes=60),
    make_entry("web-2"),
    make_entry("disc-1", minutes=90, project="Discovery", person="u2"),
    make_entry("disc-2", project="Discovery"),
    make_entry("ops-1", minutes=20, project="Internal", fields=(("Project code", "OPS-9"),)),
    make_entry("loose-1", minutes=10, project=None, task="Admin [misc]*"),
]


def ingest(engine: Engine, batch: list[TimeEntry]) -> None:
    with engine.begin() as conn:
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", Window(date(2026, 11, 1), date(2026, 11, 20)), run_id, NOW)
        writer.add(batch)
        writer.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class MappingRun:
    """The mapping chosen as a run chooses it (validated at once), then the remap and report stages on it."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.mapping = load_mapping(settings, engine)
        self.context = RunContext.create(settings, engine, as_of=NOW, clock=lambda: NOW)

    def apply_mappings(self) -> int:
        return remap(self.context, adopt_mapping(self.context, self.mapping).bound).mapped

    def report(self, period: Period, folder: Path) -> None:
        lines = read_report_lines(self.engine, period, drop_descriptions=self.settings.drop_descriptions)
        write_report(build_report(period, lines), folder, self.settings.report_formats)


def runner(engine: Engine, mappings_file: Path) -> MappingRun:
    return MappingRun(Settings(database_url="sqlite://", mappings_file=mappings_file), engine)


def stored(engine: Engine) -> dict[str, tuple[str | None, str | None, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(entries.c.external_id, entries.c.code, entries.c.rule_id, entries.c.mapping_revision)
        ).all()
    return {row.external_id: (row.code, row.rule_id, row.mapping_revision) for row in rows}


def revision_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(mapping_revisions)).scalar_one())


@pytest.fixture
def mapped(engine: Engine, tmp_path: Path) -> Path:
    """The ledger above, mapped by a run that applied DOCUMENT from a file (revision 1)."""
    ingest(engine, LEDGER)
    path = write(tmp_path / "rules.yaml", DOCUMENT)
    runner(engine, path).apply_mappings()
    return path


# --------------------------------------------------------------------------- which document a run uses


def test_an_existing_file_wins_and_is_stored_by_the_run_with_its_run_number(engine: Engine, tmp_path: Path) -> None:
    ingest(engine, LEDGER)
    path = write(tmp_path / "rules.yaml", DOCUMENT)
    run = runner(engine, path)
    assert run.mapping.file == path and run.mapping.revision is None
    structlog.contextvars.bind_contextvars(run_id=7)
    try:
        assert run.apply_mappings() == len(LEDGER)
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
    with engine.connect() as conn:
        current = revisions.current(conn)
    assert current is not None and current.id == 1
    assert current.info.comment == f"applied by run 7 from {path}"
    assert current.yaml_text == DOCUMENT
    assert stored(engine)["web-1"] == ("WEB", "web", 1)
    assert stored(engine)["disc-1"] == (None, None, 1)


def test_an_unchanged_file_maps_nothing_again_and_stores_no_revision(engine: Engine, mapped: Path) -> None:
    assert runner(engine, mapped).apply_mappings() == 0
    assert revision_count(engine) == 1


def test_a_changed_file_becomes_a_revision_and_remaps_every_open_entry(engine: Engine, mapped: Path) -> None:
    write(mapped, DOCUMENT + "  - {id: disc, priority: 100, code: APP, match: {project: Discovery}}\n")
    assert runner(engine, mapped).apply_mappings() == len(LEDGER)
    assert revision_count(engine) == 2
    after = stored(engine)
    assert after["disc-1"] == ("APP", "disc", 2)
    assert after["web-1"] == ("WEB", "web", 2)


def test_a_set_but_missing_file_is_an_error_not_a_fallback(engine: Engine, mapped: Path, tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", mappings_file=tmp_path / "typo.yaml")
    with pytest.raises(ConfigError, match=r"HOURBRIDGE_MAPPINGS_FILE names .*typo.yaml.*unset"):
        admin_revisions.choose_mapping(settings, engine)


def test_without_a_file_the_current_revision_is_used(
    engine: Engine, mapped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOURBRIDGE_MAPPINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # the default mappings.yaml does not exist here
    settings = Settings(database_url="sqlite://")
    active = admin_revisions.choose_mapping(settings, engine)
    assert (active.file, active.revision) == (None, 1)
    run = MappingRun(settings, engine)
    assert run.apply_mappings() == 0
    assert revision_count(engine) == 1


def test_the_default_file_in_the_working_directory_counts_as_the_setting(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOURBRIDGE_MAPPINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "mappings.yaml", DOCUMENT)
    active = admin_revisions.choose_mapping(Settings(database_url="sqlite://"), engine)
    assert active.file == Path("mappings.yaml")


def test_with_neither_the_error_says_how_to_provide_one_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOURBRIDGE_MAPPINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "state.db"
    settings = Settings(database_url=f"sqlite:///{database}")
    with pytest.raises(ConfigError, match=r"hourbridge mappings apply FILE.*HOURBRIDGE_MAPPINGS_FILE"):
        MappingRun(settings, make_engine(settings.database_url))
    assert not database.exists()


def test_an_invalid_file_stops_the_run_before_anything_is_written(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", DOCUMENT.replace("match: {project: Website}", "match: {projct: Website}"))
    with pytest.raises(MappingDocumentError, match=r"line 14.*projct"):
        runner(engine, path)
    assert revision_count(engine) == 0


# --------------------------------------------------------------------------- apply, export, diff


def test_apply_stores_only_changed_content_and_reports_the_changes(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "rules.yaml", DOCUMENT)
    first = admin_revisions.apply_file(engine, path, author="alice", comment="start", now=NOW)
    assert (first.created, first.revision.id, first.diff) == (True, 1, None)
    assert first.summary == "2 codes, 1 people, 2 rules"
    # Comments and layout do not change the content.
    write(path, "# reviewed\n" + DOCUMENT)
    again = admin_revisions.apply_file(engine, path, author="bob", comment="", now=NOW)
    assert (again.created, again.revision.id, again.revision.author) == (False, 1, "alice")
    write(path, DOCUMENT.replace("priority: 100", "priority: 150"))
    second = admin_revisions.apply_file(engine, path, author="bob", comment="raise web", now=NOW)
    assert second.created and second.revision.id == 2
    assert second.diff is not None
    assert [c.as_dict() for c in second.diff.changes] == [
        {"part": "rule", "key": "web", "change": "changed", "fields": ["priority"]}
    ]
    assert admin_revisions.export(engine, 1) == DOCUMENT
    assert admin_revisions.export(engine) == DOCUMENT.replace("priority: 100", "priority: 150")


def test_apply_refuses_an_invalid_document_with_its_line_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "rules.yaml", DOCUMENT.replace("code: WEB", "code: WBE"))
    with pytest.raises(MappingDocumentError) as raised:
        admin_revisions.apply_file(engine, path, author="alice", comment="", now=NOW)
    assert "line 13" in raised.value.message and "did you mean 'WEB'" in raised.value.message
    assert revision_count(engine) == 0


def test_apply_refuses_what_mappings_check_calls_an_error(engine: Engine, tmp_path: Path) -> None:
    overlapping = DOCUMENT.replace(
        "  APP: {name: Mobile app, client: Northwind, cost_center: CC-1, billable: true}\n",
        "  APP:\n"
        "    {name: Mobile app, client: Northwind, cost_center: CC-1, billable: true,\n"
        '     rates: [{rate: "1", currency: USD, effective_from: 2026-01-01},\n'
        '             {rate: "2", currency: USD, effective_from: 2026-06-01}]}\n',
    )
    path = write(tmp_path / "rules.yaml", overlapping)
    with pytest.raises(MappingDocumentError, match="overlap"):
        admin_revisions.apply_file(engine, path, author="alice", comment="", now=NOW)
    assert revision_count(engine) == 0


def test_unknown_revision_numbers_name_the_range(engine: Engine, mapped: Path) -> None:
    with pytest.raises(ConfigError, match="no mapping revision 5; revisions run from 1 to 1"):
        admin_revisions.export(engine, 5)


def test_diff_names_codes_people_and_rules_by_id_and_shows_the_text(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "rules.yaml", DOCUMENT)
    admin_revisions.apply_file(engine, path, author="alice", comment="", now=NOW)
    changed = (
        DOCUMENT.replace("APP: {name: Mobile app", "APP: {name: Mobile apps")
        .replace(
            "  - {contractor: Zoë Müller, email: zoe@example.com}\n", "  - {contractor: Kwame, email: k@example.com}\n"
        )
        .replace("match: {project: Website}", "match: {project: [Website, Web]}")
        + "  - {id: disc, priority: 100, code: APP, match: {project: Discovery}}\n"
    ).replace("  WEB: {name: Website, client: Northwind, cost_center: CC-1, billable: true}\n", "")
    changed = changed.replace("code: WEB", "code: APP")
    write(path, changed)
    admin_revisions.apply_file(engine, path, author="alice", comment="", now=NOW)
    result = admin_revisions.diff(engine, 1, 2)
    assert [(c.part, c.key, c.change, c.fields) for c in result.changes] == [
        ("code", "WEB", "removed", ()),
        ("code", "APP", "changed", ("name",)),
        ("person", "Zoë Müller", "removed", ()),
        ("person", "Kwame", "added", ()),
        ("rule", "web", "changed", ("code", "match.project")),
        ("rule", "disc", "added", ()),
    ]
    assert result.text.startswith("--- revision 1\n+++ revision 2\n")
    assert "+  - {id: disc" in result.text
    assert json.loads(json.dumps(result.as_dict()))["new"] == 2


# --------------------------------------------------------------------------- preview


def test_preview_counts_moves_newly_mapped_and_unmapped_and_writes_nothing(
    engine: Engine, mapped: Path, tmp_path: Path
) -> None:
    draft = write(
        tmp_path / "draft.yaml",
        DOCUMENT.replace("match: {project: Website}", "match: {project: Discovery}")
        + "  - {id: ops, priority: 50, code: APP, match: {project: Internal}}\n",
    )
    before = stored(engine)
    result = admin_preview.preview(engine, draft, Period.month("2026-11"))
    moves = {(m.before, m.after): (m.kind, m.entries, m.seconds) for m in result.moves}
    assert moves == {
        ("WEB", None): ("newly unmapped", 2, 90 * 60),
        (None, "WEB"): ("newly mapped", 2, 120 * 60),
        (None, "APP"): ("newly mapped", 1, 20 * 60),
    }
    assert [m.seconds for m in result.moves] == sorted((m.seconds for m in result.moves), reverse=True)
    assert (result.against, result.entries, result.changed_entries) == (1, len(LEDGER), 5)
    assert stored(engine) == before and revision_count(engine) == 1
    assert admin_preview.preview(engine, draft, Period.month("2026-10")).entries == 0


def test_preview_sees_a_move_between_codes_and_a_rule_change_within_one(
    engine: Engine, mapped: Path, tmp_path: Path
) -> None:
    draft = write(
        tmp_path / "draft.yaml",
        DOCUMENT + "  - {id: web-build, priority: 150, code: APP, match: {project: Website, task_name: Build}}\n"
        "  - {id: disc, priority: 100, code: WEB, match: {project: Discovery, person: u2}}\n",
    )
    result = admin_preview.preview(engine, draft, None)
    assert {(m.before, m.after, m.kind, m.entries) for m in result.moves} == {
        ("WEB", "APP", "moved", 2),
        (None, "WEB", "newly mapped", 1),
    }
    same_code = write(tmp_path / "same.yaml", DOCUMENT.replace("id: web", "id: website"))
    assert admin_preview.preview(engine, same_code, None).rule_changes == 2


# --------------------------------------------------------------------------- explain


def test_explain_by_key_or_unique_id_names_the_rule_the_near_misses_and_the_revision(
    engine: Engine, mapped: Path
) -> None:
    by_key = admin_preview.explain(engine, "asana:ws1:disc-1")
    by_id = admin_preview.explain(engine, "disc-1")
    assert by_key.ref == by_id.ref == "asana:ws1:disc-1"
    assert by_key.stored_revision == 1 and by_key.against == "revision 1"
    assert by_key.stored() == "unmapped (no_rule_matched; revision 1)"
    assert by_key.explanation.winner is None
    assert ("project", "Discovery") in by_key.fields()
    web = admin_preview.explain(engine, "web-1")
    assert (web.explanation.winner, web.stored()) == ("web", "WEB by rule 'web' (revision 1)")


def test_explain_against_a_draft_document_lists_near_misses_with_their_lines(
    engine: Engine, mapped: Path, tmp_path: Path
) -> None:
    draft = write(
        tmp_path / "draft.yaml",
        DOCUMENT
        + "  - {id: disc-kwame, priority: 100, code: APP, match: {project: Discovery, person: k@example.com}}\n",
    )
    result = admin_preview.explain(engine, "disc-2", draft)
    assert result.explanation.winner is None and result.against_revision is None
    assert result.against == str(draft)
    (miss,) = result.explanation.near_misses
    assert (miss.rule_id, miss.key, miss.line) == ("disc-kwame", "person", 15)
    moved = write(tmp_path / "moved.yaml", DOCUMENT.replace("match: {project: Website}", "match: {project: Discovery}"))
    assert admin_preview.explain(engine, "disc-2", moved).explanation.winner == "web"


def test_explain_refuses_unknown_and_ambiguous_entries(engine: Engine, mapped: Path) -> None:
    with pytest.raises(ConfigError, match=r"no entry 'nope'.*source:account:external_id"):
        admin_preview.explain(engine, "nope")
    with engine.begin() as conn:
        run_id = start_run(conn, command="test", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws2", Window(date(2026, 11, 1), date(2026, 11, 20)), run_id, NOW)
        writer.add([dataclasses.replace(make_entry("web-1"), account="ws2", content_hash="")])
        writer.close()
    with pytest.raises(ConfigError, match=r"several entries.*asana:ws1:web-1.*asana:ws2:web-1"):
        admin_preview.explain(engine, "web-1")
    assert admin_preview.explain(engine, "asana:ws2:web-1").ref == "asana:ws2:web-1"


# --------------------------------------------------------------------------- the unmapped queue


def test_unmapped_groups_by_what_is_missing_largest_first(engine: Engine, mapped: Path) -> None:
    groups = admin_unmapped.unmapped_queue(engine, Period.month("2026-11"))
    assert [(g.reason, g.key, g.value, g.entries, g.seconds, g.people) for g in groups] == [
        ("no_rule_matched", "project", "Discovery", 2, 120 * 60, 1),
        ("custom_field_code_unknown", "custom_field", "OPS-9", 1, 20 * 60, 1),
        ("no_rule_matched", "task_name", "Admin [misc]*", 1, 10 * 60, 1),
    ]
    discovery = groups[0]
    assert discovery.rule == {
        "id": "asana-discovery",
        "priority": 100,
        "code": "TODO-CODE",
        "note": "suggested for 2 unmapped entries (2.00 h) in 2026-11",
        "match": {"source": "asana", "project": "Discovery"},
    }
    assert discovery.examples == ("asana:ws1:disc-1", "asana:ws1:disc-2")
    assert "add code 'OPS-9'" in groups[1].hint
    assert groups[1].rule is not None and groups[1].rule["match"]["custom_field"] == {"Project code": "OPS-9"}
    assert admin_unmapped.unmapped_queue(engine, Period.month("2026-10")) == []


def test_every_suggested_rule_maps_its_group_once_given_a_code(engine: Engine, mapped: Path, tmp_path: Path) -> None:
    groups = admin_unmapped.unmapped_queue(engine, None)
    rules = "".join(
        "  " + line + "\n" for group in groups for line in group.suggestion().replace("TODO-CODE", "APP").splitlines()
    )
    path = write(tmp_path / "with-suggestions.yaml", DOCUMENT + rules)
    run = runner(engine, path)
    run.apply_mappings()
    assert all(code == "APP" for key, (code, _, _) in stored(engine).items() if not key.startswith("web"))
    assert admin_unmapped.unmapped_queue(engine, None) == []


def test_entries_not_mapped_yet_are_queued_as_such(engine: Engine, mapped: Path) -> None:
    ingest(engine, [*LEDGER, make_entry("late-1", project="Later")])
    (group,) = [g for g in admin_unmapped.unmapped_queue(engine, None) if g.value == "Later"]
    assert group.reason == "not_mapped_yet" and "next `hourbridge sync`" in group.hint


def test_suggest_appends_a_commented_block_that_keeps_the_file_valid_and_works_uncommented(
    engine: Engine, mapped: Path
) -> None:
    before = load_document(mapped.read_text(encoding="utf-8"))
    groups = admin_unmapped.unmapped_queue(engine, None)
    written = admin_unmapped.write_suggestions(mapped, groups, period=None, today=date(2026, 11, 20))
    assert (written.rules, written.appendable) == (3, True)
    text = mapped.read_text(encoding="utf-8")
    assert text.startswith(DOCUMENT)
    assert load_document(text) == before  # comments only: the same document
    assert list(mapped.parent.glob(".rules.yaml.*")) == []  # no temporary file left behind
    uncommented = "\n".join(
        line[2:] if line.startswith("#   ") or line.startswith("#     ") else line for line in text.splitlines()
    ).replace("TODO-CODE", "APP")
    document = load_document(uncommented)
    assert [rule.id for rule in document.rules][-3:] == [
        "asana-discovery",
        "asana-ops-9",
        "asana-admin-misc",
    ]
    # A second run appends again; uncommenting both blocks must not repeat a rule id.
    again = admin_unmapped.write_suggestions(mapped, groups, period=None, today=date(2026, 11, 20))
    assert again.rules == 3
    ids = [line.split("id: ")[1] for line in mapped.read_text(encoding="utf-8").splitlines() if "- id: asana-" in line]
    assert ids == [*ids[:3], "asana-discovery-2", "asana-ops-9-2", "asana-admin-misc-2"]


def test_suggest_into_a_document_whose_rules_do_not_end_it_says_to_move_them(
    engine: Engine, mapped: Path, tmp_path: Path
) -> None:
    reordered = write(
        tmp_path / "reordered.yaml",
        "version: 1\nrules:\n  - {id: web, priority: 100, code: WEB, match: {project: Website}}\n"
        "codes:\n  WEB: {name: Website, client: Northwind, cost_center: CC-1, billable: true}\n",
    )
    groups = admin_unmapped.unmapped_queue(engine, None)
    written = admin_unmapped.write_suggestions(reordered, groups, period=None, today=date(2026, 11, 20))
    assert not written.appendable
    assert "Move the rules you keep under the document's 'rules:' list" in reordered.read_text(encoding="utf-8")


def test_suggest_refuses_an_invalid_file_and_leaves_it_alone(engine: Engine, mapped: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "version: 2\n")
    with pytest.raises(MappingDocumentError, match="line 1"):
        admin_unmapped.write_suggestions(
            bad, admin_unmapped.unmapped_queue(engine, None), period=None, today=NOW.date()
        )
    assert bad.read_text(encoding="utf-8") == "version: 2\n"


def test_suggestion_snippets_are_yaml_list_items(engine: Engine, mapped: Path) -> None:
    for group in admin_unmapped.unmapped_queue(engine, None):
        (rule,) = yaml.safe_load(group.suggestion())
        assert rule == group.rule


# --------------------------------------------------------------------------- reports


def test_a_report_names_codes_as_the_revision_that_mapped_the_entry(
    engine: Engine, mapped: Path, tmp_path: Path
) -> None:
    write(mapped, DOCUMENT.replace("{name: Website,", "{name: Website (renamed),"))
    before_run = runner(engine, mapped)  # the new file is loaded but not applied yet
    entries_csv = tmp_path / "out" / "entries-2026-11.csv"
    before_run.report(Period.month("2026-11"), tmp_path / "out")
    assert ",Website," in entries_csv.read_text(encoding="utf-8")
    assert "Website (renamed)" not in entries_csv.read_text(encoding="utf-8")
    before_run.apply_mappings()
    before_run.report(Period.month("2026-11"), tmp_path / "out")
    assert "Website (renamed)" in entries_csv.read_text(encoding="utf-8")
