"""Loading mapping YAML: valid documents load, every problem is named with its line and path."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from connectors.errors import Action, ConfigError, HourbridgeError
from mappings.loader import MappingDocumentError, Problem, load_document, validate_references
from mappings.schema import MappingDocument, json_schema, json_schema_text

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
DEMO = MAPPINGS / "examples" / "demo.yaml"
SCHEMA_FILE = MAPPINGS / "schema" / "mapping-document.schema.json"

CODES = """\
version: 1
codes:
  NWT-WEB:
    name: Northwind website
    client: Northwind Traders
    cost_center: CC-100
    billable: true
"""


def doc(text: str) -> str:
    return textwrap.dedent(text)


def problems_of(text: str) -> tuple[Problem, ...]:
    with pytest.raises(MappingDocumentError) as caught:
        load_document(text)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_demo_document_loads_with_every_part() -> None:
    loaded = load_document(DEMO.read_text(encoding="utf-8"), filename="demo.yaml")
    assert loaded.version == 1
    assert loaded.codes["NWT-WEB"].rates[1].rate == Decimal("95.00")
    assert loaded.codes["NWT-WEB"].quickbooks is not None
    assert loaded.codes["NWT-WEB"].quickbooks.class_ == "Web"
    assert loaded.people[0].contractor == "Zoë Müller"
    assert loaded.people[0].ids == ["asana:1201000000000001"]
    assert loaded.rules[0].code_from_custom_field == "Project code"
    assert loaded.line_of("rules[0]") > loaded.line_of("people[0]") > loaded.line_of("codes.NWT-WEB") > 0


def test_minimal_document_and_lines_of_each_path() -> None:
    text = CODES + doc(
        """\
        rules:
          - id: web
            priority: 100
            code: NWT-WEB
            match:
              project: Northwind Website
        """
    )
    loaded = load_document(text)
    assert loaded.rules[0].match.containers()["project"] == ["Northwind Website"]
    assert loaded.lines["codes.NWT-WEB"] == 3
    assert loaded.lines["rules[0]"] == 9
    assert loaded.lines["rules[0].match.project"] == 13
    assert loaded.line_of("rules[0].match.tag") == 12  # not written: its nearest written parent


def test_unknown_key_message_names_file_line_and_path() -> None:
    text = CODES + doc(
        """\
        rules:
          - id: web
            priority: 100
            code: NWT-WEB
            match:
              projct: Northwind Website
        """
    )
    with pytest.raises(MappingDocumentError) as caught:
        load_document(text, filename="rules.yaml")
    assert str(caught.value) == (
        "rules.yaml line 13 (rules[0].match.projct): unknown key 'projct'; did you mean 'project'?"
    )
    assert caught.value.problems == (
        Problem(13, "rules[0].match.projct", "unknown key 'projct'; did you mean 'project'?"),
    )


def test_error_is_a_config_error_an_admin_fixes() -> None:
    with pytest.raises(ConfigError) as caught:
        load_document("version: 1\nrules: 3\n")
    assert isinstance(caught.value, HourbridgeError)
    assert caught.value.action is Action.CONFIG
    assert "line 2 (rules)" in caught.value.message


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = CODES + doc(
        """\
            billabel: true
        people:
          - contractor: Zoë Müller
            email: not-an-email
        rules:
          - id: web
            priority: "100"
            code: NWT-WBE
            match: {task_name: "Design [x", source: asanna}
          - id: web
            priority: 5
            code: NWT-WEB
        """
    )
    problems = problems_of(text)
    assert [(p.line, p.path) for p in problems] == [
        (8, "codes.NWT-WEB.billabel"),
        (11, "people[0].email"),
        (14, "rules[0].priority"),
        (15, "rules[0].code"),
        (16, "rules[0].match.source"),
        (16, "rules[0].match.task_name"),
        (17, "rules[1].id"),
    ]
    messages = {p.path: p.message for p in problems}
    assert messages["rules[0].priority"] == "priority must be a whole number, got '100'"
    assert messages["rules[0].code"] == "rule 'web' names unknown code 'NWT-WBE'; did you mean 'NWT-WEB'?"
    assert "unknown source 'asanna'" in messages["rules[0].match.source"]
    assert "unbalanced '['" in messages["rules[0].match.task_name"]
    assert messages["rules[1].id"] == (
        "duplicate rule id 'web', already used by rules[0] (line 13); give each rule its own id"
    )
    assert messages["people[0].email"] == "'not-an-email' is not an email address"


def test_yaml_syntax_error_has_its_line() -> None:
    problem = only_problem("version: 1\nrules:\n  - id: [web\n    priority: 1\n")
    assert problem.path == ""
    assert problem.line == 4
    assert problem.message.startswith("the YAML cannot be read:")


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    text = CODES + doc(
        """\
        rules:
          - id: web
            priority: 100
            code: NWT-WEB
            priority: 50
        """
    )
    problem = only_problem(text)
    assert (problem.line, problem.path) == (12, "rules[0].priority")
    assert problem.message == "duplicate key 'priority' (first written on line 10); keep one of them"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", "priority must be a whole number, got 1.5"),
        ("true", "priority must be a whole number, got True"),
        ("high", "priority must be a whole number, got 'high'"),
    ],
)
def test_priority_must_be_an_integer(value: str, expected: str) -> None:
    problem = only_problem(CODES + f"rules:\n  - {{id: web, priority: {value}, code: NWT-WEB}}\n")
    assert (problem.path, problem.message) == ("rules[0].priority", expected)


@pytest.mark.parametrize("glob", ["Design [x", "[", "[!", "a[]"])
def test_unbalanced_glob_is_an_error(glob: str) -> None:
    problem = only_problem(
        CODES + f'rules:\n  - {{id: web, priority: 1, code: NWT-WEB, match: {{task_name: "{glob}"}}}}\n'
    )
    assert problem.path == "rules[0].match.task_name"
    assert "unbalanced '['" in problem.message


@pytest.mark.parametrize("glob", ["Design *", "[[]draft]*", "[]]x", "[!]]x", "release-?", "*[0-9]"])
def test_balanced_globs_load(glob: str) -> None:
    loaded = load_document(
        CODES + f'rules:\n  - {{id: web, priority: 1, code: NWT-WEB, match: {{task_name: "{glob}"}}}}\n'
    )
    assert loaded.rules[0].match.task_name == [glob]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{id: web, priority: 1}", "give exactly one of 'code' or 'code_from_custom_field'"),
        (
            "{id: web, priority: 1, code: NWT-WEB, code_from_custom_field: Project code}",
            "give exactly one of 'code' or 'code_from_custom_field'",
        ),
        (
            "{id: web, priority: 1, code: NWT-WEB, effective_from: 2026-02-01, effective_to: 2026-01-01}",
            "effective_to 2026-01-01 is before effective_from 2026-02-01",
        ),
    ],
)
def test_rule_level_problems_point_at_the_rule(rule: str, message: str) -> None:
    problem = only_problem(CODES + f"rules:\n  - {rule}\n")
    assert (problem.line, problem.path, problem.message) == (9, "rules[0]", message)


def test_missing_required_keys_point_at_their_parent() -> None:
    problems = problems_of("version: 1\nrules:\n  - code: X\n    match: {}\n")
    by_path = {p.path: p for p in problems}
    assert by_path["rules[0].id"].message == "missing required key 'id'"
    assert by_path["rules[0].id"].line == 3
    assert by_path["rules[0].priority"].line == 3


def test_money_is_decimal_and_floats_are_refused() -> None:
    rates = "    rates: [{rate: %s, currency: USD, effective_from: 2026-01-01}]\n"
    loaded = load_document(CODES + rates % '"95.10"')
    assert loaded.codes["NWT-WEB"].rates[0].rate == Decimal("95.10")
    assert str(loaded.codes["NWT-WEB"].rates[0].rate) == "95.10"
    assert load_document(CODES + rates % "95").codes["NWT-WEB"].rates[0].rate == Decimal(95)
    problem = only_problem(CODES + rates % "95.10")
    assert problem.path == "codes.NWT-WEB.rates[0].rate"
    assert 'write the amount in quotes, like "95.00"' in problem.message
    assert "not an amount" in only_problem(CODES + rates % '"ninety"').message
    assert only_problem(CODES + rates % '"-1"').path == "codes.NWT-WEB.rates[0].rate"


def test_currency_and_dates_say_what_is_expected() -> None:
    bad_currency = only_problem(CODES + "    rates: [{rate: '1', currency: usd, effective_from: 2026-01-01}]\n")
    assert bad_currency.message == "currency must be a 3-letter code in capitals like USD, got 'usd'"
    bad_date = only_problem(CODES + "    active_from: 2026-13-01\n")
    assert (bad_date.line, bad_date.path) == (8, "codes.NWT-WEB.active_from")
    assert "not a valid date" in bad_date.message
    text_date = only_problem(CODES + "    active_from: soon\n")
    assert text_date.message == "active_from must be a date like 2026-01-31, got 'soon'"


def test_unquoted_ids_become_text_and_yes_no_words_are_refused() -> None:
    loaded = load_document(CODES + "rules:\n  - {id: web, priority: 1, code: NWT-WEB, match: {project: 1200001}}\n")
    assert loaded.rules[0].match.containers()["project"] == ["1200001"]
    problem = only_problem(CODES + "rules:\n  - {id: web, priority: 1, code: NWT-WEB, match: {tag: yes}}\n")
    assert problem.path == "rules[0].match.tag"
    assert "write the text in quotes" in problem.message


def test_values_may_be_one_text_or_a_list_but_not_empty() -> None:
    loaded = load_document(
        CODES + "rules:\n  - {id: web, priority: 1, code: NWT-WEB, match: {tag: [a, b], custom_field: {F: x}}}\n"
    )
    assert loaded.rules[0].match.tag == ["a", "b"]
    assert loaded.rules[0].match.custom_field == {"F": ["x"]}
    problem = only_problem(CODES + "rules:\n  - {id: web, priority: 1, code: NWT-WEB, match: {tag: []}}\n")
    assert "at least one value" in problem.message
    problem = only_problem(CODES + "rules:\n  - {id: web, priority: 1, code: NWT-WEB, match: {tag: '  '}}\n")
    assert (problem.path, problem.message) == ("rules[0].match.tag[0]", "must not be empty")


def test_people_problems() -> None:
    text = CODES + doc(
        """\
        people:
          - contractor: Zoë Müller
            email: zoe@example.com
            ids: ["asana:1", "jira:2", "3"]
          - contractor: Someone Else
            email: ZOE@example.com
            ids: ["asana:1"]
          - contractor: Nobody
        """
    )
    problems = problems_of(text)
    messages = {p.path: p.message for p in problems}
    assert "unknown source 'jira'" in messages["people[0].ids[1]"]
    assert 'write it as "source:id"' in messages["people[0].ids[2]"]
    assert messages["people[1].email"].startswith("email 'ZOE@example.com' is already given to people[0] (line 9)")
    assert messages["people[1].ids[0]"].startswith("id 'asana:1' is already given to people[0]")
    assert messages["people[2]"] == "contractor 'Nobody' needs an email or at least one id to be matched"


def test_codes_that_differ_only_by_case_are_an_error() -> None:
    text = CODES + "  nwt-web: {name: x, client: y, cost_center: z, billable: false}\n"
    problem = only_problem(text)
    assert (problem.line, problem.path) == (8, "codes.nwt-web")
    assert "only by case" in problem.message


def test_rule_code_matches_catalog_ignoring_case() -> None:
    loaded = load_document(CODES + "rules:\n  - {id: web, priority: 1, code: nwt-web}\n")
    assert loaded.rules[0].code == "nwt-web"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the document is empty; start it with 'version: 1'"),
        ("# only a comment\n", 1, "the document is empty; start it with 'version: 1'"),
        ("- a\n- b\n", 1, "the document must be a mapping with version, codes, people, rules"),
        ("version: 2\n", 1, "version must be 1, the document version this hourbridge reads (got 2)"),
        ("codes: {}\n", 1, "missing required key 'version'"),
    ],
)
def test_document_level_problems(text: str, line: int, message: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.message) == (line, message)


def test_unsafe_tags_are_refused_not_constructed() -> None:
    problem = only_problem("version: 1\nrules: !!python/object/apply:os.system ['true']\n")
    assert problem.line == 2
    assert "unsupported YAML tag" in problem.message or "cannot read this value" in problem.message
    problem = only_problem("version: 1\ncodes: {A: !!python/name:os.system ''}\n")
    assert problem.path == "codes.A"


def test_alias_loops_and_huge_expansions_are_refused() -> None:
    assert "contains itself" in problems_of("version: 1\nrules: &r [*r]\n")[0].message
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [{', '.join([f'*{previous}'] * 10)}]\n"
    assert any("too many values" in p.message for p in problems_of(bomb))


def test_merge_keys_supply_defaults_and_explicit_keys_win() -> None:
    text = doc(
        """\
        version: 1
        codes:
          NWT-WEB: &base {name: Web, client: Northwind, cost_center: CC-1, billable: true}
          NWT-APP:
            <<: *base
            name: App
        """
    )
    loaded = load_document(text)
    assert loaded.codes["NWT-APP"].name == "App"
    assert loaded.codes["NWT-APP"].client == "Northwind"


def test_equality_and_hash_ignore_layout_comments_and_lines() -> None:
    compact = load_document(CODES + "rules: [{id: web, priority: 1, code: NWT-WEB, match: {tag: x}}]\n")
    spread = load_document(
        "# comment\n\n"
        + CODES
        + "rules:\n  - id: web\n    code: NWT-WEB\n    priority: 1\n    match:\n      tag: [x]\n"
    )
    assert compact.lines != spread.lines
    assert compact == spread
    assert hash(compact) == hash(spread)
    assert compact.canonical_json() == spread.canonical_json()
    changed = load_document(CODES + "rules: [{id: web, priority: 2, code: NWT-WEB, match: {tag: x}}]\n")
    assert compact != changed


def test_validate_references_catches_documents_built_in_code() -> None:
    built = MappingDocument.model_validate(
        {"version": 1, "codes": {}, "rules": [{"id": "r", "priority": 1, "code": "GONE"}]}
    )
    with pytest.raises(MappingDocumentError) as caught:
        validate_references(built)
    assert caught.value.problems[0].path == "rules[0].code"
    assert "unknown code 'GONE'" in caught.value.problems[0].message


def test_published_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "mappings/schema/mapping-document.schema.json is stale; regenerate it from mappings.schema.json_schema_text()"
    )
    assert json_schema_text() == json_schema_text()
    assert json_schema_text().endswith("}\n")


class _DatesAsText(yaml.SafeLoader):
    """YAML as an editor's schema validator sees it: dates are text."""


_DatesAsText.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _as_editor_sees(text: str) -> Any:
    return yaml.load(text, Loader=_DatesAsText)  # noqa: S506 - a SafeLoader subclass


def test_demo_validates_against_the_published_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(_as_editor_sees(DEMO.read_text(encoding="utf-8")))


def test_published_schema_rejects_typos_too() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    errors = list(
        validator.iter_errors(
            _as_editor_sees(CODES + "rules: [{id: web, priority: 1, code: NWT-WEB, match: {projct: x}}]\n")
        )
    )
    assert errors
    assert any("projct" in error.message for error in errors)
