"""The real `hourbridge mappings …` and `unmapped` commands against a ledger synced from the Asana sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.store.db import make_engine
from sync.store.tables import entries, mapping_revisions

from .conftest import run_cli

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-20T18:00:00+00:00"
DEMO = EXAMPLE_MAPPINGS.read_text(encoding="utf-8")
# The demo leaves this Asana project unmapped on purpose; mapping it is the admin's change below.
DISCOVERY_RULE = (
    "  - {id: glx-discovery, priority: 100, code: GLX-ERP, "
    "match: {source: asana, project: Globex Corporation – Discovery workshop}}\n"
)


@pytest.fixture
def env(sandbox_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(sandbox_env)  # no mappings.yaml here: the default setting names nothing
    monkeypatch.setenv("USER", "alice")
    return sandbox_env


def hourbridge(*args: str) -> tuple[int, str]:
    return run_cli(*args)


def revisions_by_entry(tmp_path: Path) -> dict[str, int | None]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(entries.c.external_id, entries.c.mapping_revision)).all()
            return {row.external_id: row.mapping_revision for row in rows}
    finally:
        engine.dispose()


def revision_count(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            return len(conn.execute(select(mapping_revisions.c.id)).all())
    finally:
        engine.dispose()


def test_gitops_file_then_admin_revisions_through_the_cli(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1. GitOps: the setting names the demo document; the first run stores it as revision 1.
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 0, output
    code, output = hourbridge("mappings", "history", "--json")
    assert code == 0, output
    (first,) = json.loads(output)
    assert first["revision"] == 1 and first["author"] == "alice"
    assert first["comment"] == f"applied by run 1 from {EXAMPLE_MAPPINGS}"
    assert set(revisions_by_entry(env).values()) == {1}
    code, output = hourbridge("mappings", "export")
    assert code == 0 and output == DEMO

    # 2. Hand over to `mappings apply`: unset the setting; runs now use the database's revision.
    monkeypatch.delenv("HOURBRIDGE_MAPPINGS_FILE")
    draft = env / "rules.yaml"
    draft.write_text(DEMO + DISCOVERY_RULE, encoding="utf-8")
    code, output = hourbridge("mappings", "preview", str(draft), "--json")
    assert code == 0, output
    preview = json.loads(output)
    assert preview["against_revision"] == 1
    assert [(m["kind"], m["from"], m["to"]) for m in preview["moves"]] == [("newly mapped", None, "GLX-ERP")]
    assert preview["moves"][0]["entries"] > 0
    assert revision_count(env) == 1  # preview writes nothing

    code, output = hourbridge("mappings", "apply", str(draft), "--comment", "Discovery is ERP work")
    assert code == 0, output
    assert "revision 2 stored" in output and "glx-discovery" in output
    code, output = hourbridge("mappings", "apply", str(draft), "--comment", "again")
    assert code == 0 and "unchanged, still revision 2" in output
    code, output = hourbridge("mappings", "history", "--json")
    assert code == 0, output
    assert [(r["revision"], r["parent"], r["comment"]) for r in json.loads(output)] == [
        (2, 1, "Discovery is ERP work"),
        (1, None, f"applied by run 1 from {EXAMPLE_MAPPINGS}"),
    ]
    code, output = hourbridge("mappings", "history")
    assert code == 0 and "Mapping revisions" in output and "(current)" in output

    code, output = hourbridge("mappings", "diff", "1", "2", "--json")
    assert code == 0, output
    diff = json.loads(output)
    assert diff["changes"] == [{"part": "rule", "key": "glx-discovery", "change": "added", "fields": []}]
    assert "+  - {id: glx-discovery" in diff["text"]
    code, output = hourbridge("mappings", "diff", "1", "2")
    assert code == 0 and "glx-discovery" in output and "--- revision 1" in output

    # 3. The next run re-maps every open entry with revision 2 and stores nothing new.
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 0, output
    assert set(revisions_by_entry(env).values()) == {2}
    assert revision_count(env) == 2
    code, output = hourbridge("unmapped", "--json")
    assert code == 0, output
    assert all("Discovery workshop" not in group["value"] for group in json.loads(output))

    code, output = hourbridge("mappings", "export", "1")
    assert code == 0 and output == DEMO


def test_unmapped_explain_and_suggest(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    assert hourbridge("sync", "--as-of", AS_OF)[0] == 0
    code, output = hourbridge("unmapped", "--period", "2026-11", "--json")
    assert code == 0, output
    groups = json.loads(output)
    assert groups and [g["seconds"] for g in groups] == sorted((g["seconds"] for g in groups), reverse=True)
    top = groups[0]
    assert top["suggested_rule"]["code"] == "TODO-CODE"
    assert top["suggested_rule"]["match"] == {"source": "asana", "project": top["value"]}
    code, output = hourbridge("unmapped", "--period", "2026-11")
    assert code == 0 and "TODO-CODE" in output and top["value"] in output

    example = top["examples"][0]
    code, output = hourbridge("mappings", "explain", example)
    assert code == 0, output
    assert "revision 1" in output and "no_rule_matched" in output
    bare_id = example.rsplit(":", 1)[1]
    code, output = hourbridge("mappings", "explain", bare_id)
    assert code == 0 and example in output
    code, output = hourbridge("mappings", "explain", "does-not-exist")
    assert code == 2 and "source:account:external_id" in output

    document = env / "rules.yaml"
    document.write_text(DEMO, encoding="utf-8")
    code, output = hourbridge("mappings", "suggest", "--period", "2026-11", "--write", str(document))
    assert code == 0, output
    assert "appended" in output
    text = document.read_text(encoding="utf-8")
    assert text.startswith(DEMO) and "#   - id: asana-" in text
    code, output = hourbridge("mappings", "check", str(document))
    assert code == 0, output


def test_invalid_apply_names_the_line_and_stores_nothing(env: Path) -> None:
    bad = env / "bad.yaml"
    bad.write_text(DEMO.replace("code: NWT-APP, match", "code: NWT-AP, match"), encoding="utf-8")
    code, output = hourbridge("mappings", "apply", str(bad))
    assert code == 2
    line = next(n for n, text in enumerate(DEMO.splitlines(), 1) if "code: NWT-APP, match" in text)
    assert f"line {line}" in output and "NWT-AP" in output and "did you mean 'NWT-APP'" in output
    assert not (env / "state.db").exists()


def test_without_document_or_revision_sync_says_what_to_do(env: Path) -> None:
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 2
    assert "hourbridge mappings apply FILE" in output and "HOURBRIDGE_MAPPINGS_FILE" in output
    assert not (env / "state.db").exists()


def test_a_mistyped_gitops_path_stops_the_run(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(env / "mapings.yaml"))
    code, output = hourbridge("sync", "--as-of", AS_OF)
    assert code == 2
    assert "HOURBRIDGE_MAPPINGS_FILE names" in output and "mapings.yaml" in output


def test_apply_warns_when_the_setting_would_replace_the_revision(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_MAPPINGS_FILE", str(EXAMPLE_MAPPINGS))
    draft = env / "rules.yaml"
    draft.write_text(DEMO + DISCOVERY_RULE, encoding="utf-8")
    code, output = hourbridge("mappings", "apply", str(draft), "--author", "bob")
    assert code == 0, output
    assert "revision 1 stored" in output and "by bob" in output
    assert "every run applies" in output


def test_read_commands_on_an_empty_store(env: Path) -> None:
    assert hourbridge("db", "upgrade")[0] == 0
    code, output = hourbridge("mappings", "history")
    assert code == 0 and "no mapping revision is stored yet" in output
    code, output = hourbridge("mappings", "export")
    assert code == 2 and "hourbridge mappings apply FILE" in output
    code, output = hourbridge("unmapped")
    assert code == 0 and "nothing unmapped" in output
