"""The matcher: which rule wins, what an entry maps to, and why an entry stays unmapped."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from connectors.model import Container, Person, TaskRef, TimeEntry
from mappings.engine import Explanation, Mapped, Matcher, Unmapped, compile_rules
from mappings.loader import MappingDocumentError, load_document
from mappings.schema import MappingDocument

CODES: dict[str, Any] = {
    "NWT-WEB": {"name": "Northwind website", "client": "Northwind Traders", "cost_center": "CC-100", "billable": True},
    "NWT-APP": {"name": "Northwind app", "client": "Northwind Traders", "cost_center": "CC-101", "billable": True},
    "GLX-ERP": {"name": "Globex ERP", "client": "Globex", "cost_center": "CC-200", "billable": False},
    "OLD": {
        "name": "Retired",
        "client": "Globex",
        "cost_center": "CC-201",
        "billable": True,
        "active_from": "2025-01-01",
        "active_to": "2025-12-31",
    },
}
PEOPLE: list[dict[str, Any]] = [
    {"contractor": "Zoë Müller", "email": "zoe@example.com", "ids": ["asana:1200001", "clickup:8412"]},
    {"contractor": "Liam O'Connor", "email": "Liam@Example.com"},
]


def matcher(*rules: dict[str, Any], people: list[dict[str, Any]] | None = None) -> Matcher:
    numbered = [{"id": f"r{i}", "priority": 100, **rule} for i, rule in enumerate(rules)]
    document = MappingDocument.model_validate(
        {"version": 1, "codes": CODES, "people": PEOPLE if people is None else people, "rules": numbered}
    )
    return compile_rules(document)


def entry(
    *,
    source: str = "asana",
    account: str = "900",
    project: str | None = "Northwind Website",
    project_id: str = "p-1",
    containers: tuple[Container, ...] | None = None,
    person: Person | None = None,
    task: str = "Design homepage",
    tags: tuple[str, ...] = (),
    fields: tuple[tuple[str, str], ...] = (),
    billable: bool | None = None,
    day: date = date(2026, 3, 2),
    seconds: int = 3600,
) -> TimeEntry:
    if containers is None:
        containers = (Container("workspace", account, "Acme"),)
        if project is not None:
            containers += (Container("project", project_id, project),)
    return TimeEntry(
        source=source,
        account=account,
        external_id="e-1",
        work_date=day,
        duration_seconds=seconds,
        person=person or Person("1200001", "Zoe M.", "zoe@example.com"),
        task=TaskRef("t-1", task),
        containers=containers,
        tags=tags,
        custom_fields=fields,
        billable=billable,
    )


def mapped(result: Mapped | Unmapped) -> Mapped:
    assert isinstance(result, Mapped), result
    return result


def unmapped(result: Mapped | Unmapped) -> Unmapped:
    assert isinstance(result, Unmapped), result
    return result


def test_project_rule_maps_with_code_details() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Northwind Website"}})
    assert m.match(entry()) == Mapped(
        code="NWT-WEB",
        rule_id="r0",
        contractor="Zoë Müller",
        client="Northwind Traders",
        cost_center="CC-100",
        billable=True,
        code_name="Northwind website",
    )


@pytest.mark.parametrize("written", ["northwind website", "  NORTHWIND WEBSITE ", "p-1", "Northwind Website"])
def test_names_match_exactly_ignoring_case_and_surrounding_space(written: str) -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": written}})
    assert mapped(m.match(entry())).code == "NWT-WEB"


@pytest.mark.parametrize("other", ["Northwind", "Northwind Website 2", "Northwind  Website"])
def test_names_do_not_match_partially(other: str) -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": other}})
    assert unmapped(m.match(entry())).reason == "no_rule_matched"


def test_unicode_names_compare_after_normalization() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Łódź Café"}})
    decomposed = "Łódź Cafe\u0301"
    assert mapped(m.match(entry(project=decomposed))).code == "NWT-WEB"


def test_higher_priority_wins_and_ties_go_to_the_first_written() -> None:
    m = matcher(
        {"priority": 10, "code": "GLX-ERP", "match": {"source": "asana"}},
        {"priority": 50, "code": "NWT-WEB", "match": {"project": "Northwind Website"}},
        {"priority": 50, "code": "NWT-APP", "match": {"tag": "billable"}},
    )
    assert mapped(m.match(entry(tags=("billable",)))).rule_id == "r1"
    assert mapped(m.match(entry(project="Other", tags=("billable",)))).rule_id == "r2"
    assert mapped(m.match(entry(project="Other"))).rule_id == "r0"


def test_all_keys_must_match_and_values_in_a_list_are_alternatives() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": ["Other", "Northwind Website"], "tag": ["x", "billable"]}})
    assert mapped(m.match(entry(tags=("billable",)))).code == "NWT-WEB"
    assert unmapped(m.match(entry(tags=("internal",)))).reason == "no_rule_matched"
    assert unmapped(m.match(entry(project="Third", tags=("billable",)))).reason == "no_rule_matched"


def test_custom_field_keys_and_values() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"custom_field": {"Project code": "NWT-WEB", "Phase": ["a", "b"]}}})
    assert mapped(m.match(entry(fields=(("Phase", "B"), ("project code", "nwt-web"))))).code == "NWT-WEB"
    assert unmapped(m.match(entry(fields=(("Project code", "NWT-WEB"),)))).reason == "no_rule_matched"
    assert unmapped(m.match(entry(fields=(("Phase", "a"), ("Project code", "X"))))).reason == "no_rule_matched"


def test_code_from_custom_field() -> None:
    m = matcher(
        {"priority": 200, "code_from_custom_field": "Project code"},
        {"priority": 100, "code": "NWT-WEB", "match": {"project": "Northwind Website"}},
    )
    by_field = mapped(m.match(entry(fields=(("Project code", " nwt-app "),))))
    assert (by_field.code, by_field.rule_id, by_field.cost_center) == ("NWT-APP", "r0", "CC-101")
    # An unknown value makes the rule step aside; the project rule still applies.
    assert mapped(m.match(entry(fields=(("Project code", "NOPE"),)))).rule_id == "r1"
    assert mapped(m.match(entry())).rule_id == "r1"
    result = unmapped(m.match(entry(project="Internal Ops", fields=(("Project code", "NOPE"),))))
    assert result.reason == "custom_field_code_unknown"
    assert "custom field 'Project code'" in result.detail
    assert "'NOPE'" in result.detail
    assert "r0" in result.detail


def test_unmapped_detail_says_where_the_entry_was_logged() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Northwind Website"}})
    result = unmapped(m.match(entry(project="Internal Ops")))
    assert result == Unmapped(
        reason="no_rule_matched",
        contractor="Zoë Müller",
        detail="no rule matches project 'Internal Ops' (asana workspace Acme)",
    )
    bare = unmapped(m.match(entry(containers=())))
    assert bare.detail == "no rule matches task 'Design homepage' (asana workspace 900)"


def test_effective_dates_are_checked_against_the_work_date() -> None:
    m = matcher(
        {
            "priority": 200,
            "code": "NWT-APP",
            "effective_from": "2026-03-01",
            "effective_to": "2026-03-31",
            "match": {"project": "Northwind Website"},
        },
    )
    assert mapped(m.match(entry(day=date(2026, 3, 1)))).code == "NWT-APP"
    assert mapped(m.match(entry(day=date(2026, 3, 31)))).code == "NWT-APP"
    before = unmapped(m.match(entry(day=date(2026, 2, 28))))
    assert before.reason == "rule_not_effective"
    assert "takes effect on 2026-03-01" in before.detail
    after = unmapped(m.match(entry(day=date(2026, 4, 1))))
    assert "ended on 2026-03-31" in after.detail


def test_a_rule_out_of_its_dates_lets_the_next_rule_apply() -> None:
    m = matcher(
        {"priority": 200, "code": "NWT-APP", "effective_from": "2026-03-01", "match": {"project": "Northwind Website"}},
        {"priority": 100, "code": "NWT-WEB", "match": {"project": "Northwind Website"}},
    )
    assert mapped(m.match(entry(day=date(2026, 2, 1)))).code == "NWT-WEB"
    assert mapped(m.match(entry(day=date(2026, 3, 1)))).code == "NWT-APP"


def test_inactive_code_leaves_the_entry_unmapped_with_the_reason() -> None:
    m = matcher({"code": "OLD", "match": {"project": "Northwind Website"}})
    assert mapped(m.match(entry(day=date(2025, 6, 1)))).code == "OLD"
    result = unmapped(m.match(entry(day=date(2026, 1, 1))))
    assert result.reason == "code_inactive"
    assert "active from 2025-01-01 to 2025-12-31" in result.detail
    assert "r0" in result.detail


@pytest.mark.parametrize(("flag", "expected"), [(True, True), (False, False), (None, False)])
def test_billable_comes_from_the_entry_else_the_code_default(flag: bool | None, expected: bool) -> None:
    m = matcher({"code": "GLX-ERP", "match": {"project": "Northwind Website"}})
    assert mapped(m.match(entry(billable=flag))).billable is expected


def test_billable_key_matches_the_entry_flag() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"billable": False}})
    assert mapped(m.match(entry(billable=False))).code == "NWT-WEB"
    assert unmapped(m.match(entry(billable=True))).reason == "no_rule_matched"
    assert unmapped(m.match(entry(billable=None))).reason == "no_rule_matched"


@pytest.mark.parametrize(
    ("person", "contractor"),
    [
        (Person("8412", "Zoe from ClickUp", None), "Zoë Müller"),  # clickup:8412, by id
        (Person("777", "Liam", "LIAM@example.COM"), "Liam O'Connor"),  # by email, any case
        (Person("1200001", "Someone", "liam@example.com"), "Liam O'Connor"),  # id of another source
        (Person("555", "Ada Tool-Name", "ada@example.com"), "Ada Tool-Name"),  # unknown: the tool's name
        (Person("555", "", None), "555"),  # no name: the id
    ],
)
def test_contractor_resolution(person: Person, contractor: str) -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Northwind Website"}})
    assert mapped(m.match(entry(source="clickup", person=person))).contractor == contractor


def test_id_wins_over_email_when_they_disagree() -> None:
    m = matcher({"code": "NWT-WEB"})
    result = m.match(entry(person=Person("1200001", "x", "liam@example.com")))
    assert mapped(result).contractor == "Zoë Müller"


@pytest.mark.parametrize(
    "written", ["Zoë Müller", "zoe@example.com", "asana:1200001", "1200001", "clickup:8412", "ZOË MÜLLER"]
)
def test_person_key_accepts_any_identity_of_the_contractor(written: str) -> None:
    m = matcher({"code": "NWT-WEB", "match": {"person": written}})
    by_asana_id = entry(person=Person("1200001", "Zoe", None))
    by_email = entry(source="monday", person=Person("42", "Z", "ZOE@example.com"))
    assert mapped(m.match(by_asana_id)).code == "NWT-WEB"
    assert mapped(m.match(by_email)).code == "NWT-WEB"
    assert unmapped(m.match(entry(person=Person("9", "Liam", "liam@example.com")))).reason == "no_rule_matched"


def test_person_key_with_a_source_id_is_specific_to_that_source() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"person": "asana:1200001"}}, people=[])
    assert mapped(m.match(entry(person=Person("1200001")))).code == "NWT-WEB"
    assert unmapped(m.match(entry(source="clickup", person=Person("1200001")))).reason == "no_rule_matched"


def test_task_name_globs_are_case_insensitive_and_anchored() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"task_name": ["Design *", "qa-??"]}})
    assert mapped(m.match(entry(task="design homepage"))).code == "NWT-WEB"
    assert mapped(m.match(entry(task="QA-12"))).code == "NWT-WEB"
    assert unmapped(m.match(entry(task="Redesign homepage"))).reason == "no_rule_matched"
    assert unmapped(m.match(entry(task="qa-123"))).reason == "no_rule_matched"


def test_glob_brackets_and_regex_characters() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"task_name": "[[]draft] (v1.0)*"}})
    assert mapped(m.match(entry(task="[Draft] (v1.0) spec"))).code == "NWT-WEB"
    assert unmapped(m.match(entry(task="[Draft] (v1x0) spec"))).reason == "no_rule_matched"


def test_workspace_matches_account_id_or_workspace_container() -> None:
    for written in ("900", "Acme", "acme"):
        m = matcher({"code": "NWT-WEB", "match": {"workspace": written}})
        assert mapped(m.match(entry())).code == "NWT-WEB"
    m = matcher({"code": "NWT-WEB", "match": {"workspace": "Other"}})
    assert unmapped(m.match(entry())).reason == "no_rule_matched"


def test_clickup_and_monday_containers() -> None:
    clickup = entry(
        source="clickup",
        containers=(
            Container("space", "s1", "Northwind Traders"),
            Container("folder", "f1", "Web"),
            Container("list", "l1", "Website relaunch"),
        ),
    )
    monday = entry(source="monday", containers=(Container("board", "b1", "ERP"), Container("group", "g1", "Dev")))
    m = matcher(
        {
            "code": "NWT-WEB",
            "match": {"source": "clickup", "space": "Northwind Traders", "folder": "web", "list": "l1"},
        },
        {"code": "GLX-ERP", "match": {"board": "ERP", "group": ["Ops", "Dev"]}},
    )
    assert mapped(m.match(clickup)).code == "NWT-WEB"
    assert mapped(m.match(monday)).code == "GLX-ERP"
    assert unmapped(m.match(entry())).reason == "no_rule_matched"


def test_a_rule_without_match_keys_matches_everything() -> None:
    m = matcher({"priority": 1, "code": "NWT-WEB"})
    assert mapped(m.match(entry(project=None, task=""))).code == "NWT-WEB"


def test_match_many_keeps_order() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Northwind Website"}})
    results = m.match_many([entry(), entry(project="Nope"), entry()])
    assert [type(result).__name__ for result in results] == ["Mapped", "Unmapped", "Mapped"]


def test_results_are_frozen_slotted_values() -> None:
    result = mapped(matcher({"code": "NWT-WEB"}).match(entry()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.code = "X"  # type: ignore[misc]  # deliberate: the frozen result must refuse the write
    assert not hasattr(result, "__dict__")
    assert not hasattr(Unmapped("a", "b", "c"), "__dict__")


def test_match_never_raises_on_malformed_entries() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"task_name": "x*", "project": "Northwind Website"}})
    broken_task = dataclasses.replace(entry(), task=TaskRef("t", None))  # type: ignore[arg-type]  # deliberately malformed
    assert isinstance(m.match(broken_task), Unmapped)
    result = m.match("not an entry")  # type: ignore[arg-type]  # deliberately not an entry
    assert unmapped(result).reason == "entry_unreadable"
    weird = entry(project="\x00\U0010ffff" * 1000, tags=("",), fields=(("", "x"),), task="é" * 100_000)
    assert isinstance(m.match(weird), Unmapped)


def test_compile_rules_refuses_unknown_codes() -> None:
    document = MappingDocument.model_validate(
        {"version": 1, "codes": {}, "rules": [{"id": "r", "priority": 1, "code": "GONE"}]}
    )
    with pytest.raises(MappingDocumentError, match="unknown code 'GONE'"):
        compile_rules(document)


def test_document_hash_follows_content_not_layout() -> None:
    text = (
        "version: 1\ncodes:\n  A: {name: a, client: c, cost_center: x, billable: true}\n"
        "rules: [{id: r, priority: 1, code: A}]\n"
    )
    first = compile_rules(load_document(text))
    again = compile_rules(load_document("# a comment\n" + text.replace("{id: r, priority: 1", "{priority: 1, id: r")))
    changed = compile_rules(load_document(text.replace("priority: 1", "priority: 2")))
    assert len(first.document_hash) == 64
    assert first.document_hash == again.document_hash
    assert first.document_hash != changed.document_hash


def test_only_candidate_rules_are_examined() -> None:
    rules: list[dict[str, Any]] = [{"code": "NWT-WEB", "match": {"project": f"Project {n}"}} for n in range(2000)]
    rules.append({"priority": 1, "code": "NWT-APP", "match": {"task_name": "*"}})
    rules.append({"priority": 5, "code": "NWT-APP", "match": {"task_name": "Design *"}})
    m = matcher(*rules)
    candidates = m.candidates(entry(project="Project 1234"))
    assert [rule.id for rule in candidates] == ["r1234", "r2001", "r2000"]
    assert mapped(m.match(entry(project="Project 1234"))).rule_id == "r1234"
    assert mapped(m.match(entry(project="Project 99999"))).rule_id == "r2001"


def test_explain_names_the_winner_and_near_misses() -> None:
    m = matcher(
        {"priority": 300, "code": "NWT-APP", "match": {"project": "Northwind Website", "tag": "urgent"}},
        {"priority": 250, "code": "NWT-APP", "effective_from": "2027-01-01", "match": {"project": "Northwind Website"}},
        {"priority": 200, "code": "NWT-WEB", "match": {"project": "Northwind Website"}},
        {"priority": 100, "code": "GLX-ERP", "match": {"source": "asana"}},
        {"priority": 50, "code": "GLX-ERP", "match": {"project": "Elsewhere"}},
    )
    explanation = m.explain(entry(tags=("billable",)))
    assert isinstance(explanation, Explanation)
    assert explanation.winner == "r2"
    assert mapped(explanation.result).rule_id == "r2"
    misses = {miss.rule_id: miss for miss in explanation.near_misses}
    assert misses["r0"].key == "tag"
    assert misses["r0"].reason == "tag is 'billable'; rule wants 'urgent'"
    assert misses["r1"].key == "effective_from"
    assert misses["r3"].key == "priority"
    assert "r4" not in misses  # nothing of it matched: not a near miss
    text = explanation.describe()
    assert text.startswith("mapped to NWT-WEB by rule 'r2'")
    assert "rule 'r0'" in text


def test_explain_of_an_unmapped_entry() -> None:
    m = matcher({"code": "NWT-WEB", "match": {"project": "Northwind Website", "source": "asana"}})
    explanation = m.explain(entry(project="Internal Ops"))
    assert explanation.winner is None
    assert unmapped(explanation.result).reason == "no_rule_matched"
    assert [(miss.rule_id, miss.key) for miss in explanation.near_misses] == [("r0", "project")]
    assert "project is 'Internal Ops'; rule wants 'Northwind Website'" in explanation.near_misses[0].reason
