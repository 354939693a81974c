"""Document review: overlapping rates are errors; unreachable and ambiguous rules are warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mappings.check import Finding, check_document
from mappings.loader import load_document
from mappings.schema import MappingDocument

DEMO = Path(__file__).resolve().parents[2] / "mappings" / "examples" / "demo.yaml"

HEAD = """\
version: 1
codes:
  WEB: {name: Web, client: Northwind, cost_center: CC-1, billable: true}
  APP: {name: App, client: Northwind, cost_center: CC-1, billable: true}
rules:
"""


def findings(rules_yaml: str) -> list[Finding]:
    return check_document(load_document(HEAD + rules_yaml))


def warnings_for(rules_yaml: str) -> dict[str | None, list[str]]:
    found: dict[str | None, list[str]] = {}
    for finding in findings(rules_yaml):
        assert finding.level == "warning"
        found.setdefault(finding.rule_id, []).append(finding.message)
    return found


def test_demo_document_is_clean() -> None:
    assert check_document(load_document(DEMO.read_text(encoding="utf-8"))) == []


def rates_document(rates: str) -> MappingDocument:
    return load_document(
        "version: 1\ncodes:\n  WEB:\n    name: Web\n    client: N\n    cost_center: C\n    billable: true\n"
        f"    rates:\n{rates}"
    )


def test_open_ended_rate_followed_by_another_is_an_overlap_error() -> None:
    doc = rates_document(
        "      - {rate: '90', currency: USD, effective_from: 2025-01-01}\n"
        "      - {rate: '95', currency: USD, effective_from: 2026-01-01}\n"
    )
    assert check_document(doc) == [
        Finding(
            "error",
            None,
            "code 'WEB': rates[1] (from 2026-01-01) overlaps rates[0] (from 2025-01-01, open-ended), so a work "
            "date would have two rates; set effective_to: 2025-12-31 on rates[0]",
            10,
        )
    ]


def test_closed_consecutive_rates_are_fine() -> None:
    doc = rates_document(
        "      - {rate: '95', currency: USD, effective_from: 2026-01-01}\n"
        "      - {rate: '90', currency: USD, effective_from: 2025-01-01, effective_to: 2025-12-31}\n"
    )
    assert check_document(doc) == []


def test_overlap_hidden_behind_a_short_rate_is_found() -> None:
    doc = rates_document(
        "      - {rate: '1', currency: USD, effective_from: 2025-01-01, effective_to: 2025-12-31}\n"
        "      - {rate: '2', currency: USD, effective_from: 2025-03-01, effective_to: 2025-03-31}\n"
        "      - {rate: '3', currency: USD, effective_from: 2025-06-01}\n"
    )
    found = check_document(doc)
    assert [finding.line for finding in found] == [10, 11]
    assert all(finding.level == "error" for finding in found)
    assert "rates[2] (from 2025-06-01) overlaps rates[0]" in found[1].message


def test_same_start_is_an_overlap() -> None:
    doc = rates_document(
        "      - {rate: '1', currency: USD, effective_from: 2025-01-01, effective_to: 2025-01-31}\n"
        "      - {rate: '2', currency: EUR, effective_from: 2025-01-01, effective_to: 2025-01-31}\n"
    )
    (finding,) = check_document(doc)
    assert "give rates[1] a later effective_from or remove one of them" in finding.message


def test_rule_shadowed_by_a_wider_higher_priority_rule() -> None:
    rules = (
        "  - {id: wide, priority: 200, code: WEB, match: {project: [A, B]}}\n"
        "  - {id: narrow, priority: 100, code: APP, match: {project: A, tag: billable}}\n"
    )
    found = findings(rules)
    assert found == [
        Finding(
            "warning",
            "narrow",
            "rule 'narrow' can never apply: rule 'wide' (line 6) matches every entry it matches and has a higher "
            "priority; remove 'narrow', narrow 'wide', or give 'narrow' a higher priority",
            7,
        )
    ]


def test_equal_priority_written_first_also_shadows() -> None:
    warnings = warnings_for(
        "  - {id: first, priority: 100, code: WEB, match: {project: A}}\n"
        "  - {id: second, priority: 100, code: APP, match: {project: a, tag: x}}\n"
    )
    assert list(warnings) == ["second"]
    assert "the same priority and is written first" in warnings["second"][0]


def test_narrower_rule_with_higher_priority_is_fine() -> None:
    assert (
        findings(
            "  - {id: narrow, priority: 200, code: APP, match: {project: A, tag: billable}}\n"
            "  - {id: wide, priority: 100, code: WEB, match: {project: A}}\n"
        )
        == []
    )


def test_catch_all_shadows_everything_below_it() -> None:
    warnings = warnings_for(
        "  - {id: all, priority: 500, code: WEB}\n"
        "  - {id: a, priority: 100, code: APP, match: {project: A}}\n"
        "  - {id: b, priority: 50, code: APP, match: {task_name: 'x*'}}\n"
    )
    assert sorted(str(rule_id) for rule_id in warnings) == ["a", "b"]


def test_shadow_needs_the_wider_dates_and_globs() -> None:
    assert (
        findings(
            "  - {id: wide, priority: 200, code: WEB, effective_from: 2026-01-01, match: {project: A}}\n"
            "  - {id: narrow, priority: 100, code: APP, match: {project: A}}\n"
        )
        == []
    )
    assert (
        findings(
            "  - {id: wide, priority: 200, code: WEB, match: {task_name: 'Design *'}}\n"
            "  - {id: narrow, priority: 100, code: APP, match: {task_name: 'Build *'}}\n"
        )
        == []
    )
    warnings = warnings_for(
        "  - {id: wide, priority: 200, code: WEB, match: {task_name: ['Design *', 'Build *']}}\n"
        "  - {id: narrow, priority: 100, code: APP, match: {task_name: 'design *', tag: x}}\n"
    )
    assert list(warnings) == ["narrow"]


def test_code_from_custom_field_never_shadows() -> None:
    assert (
        findings(
            "  - {id: field, priority: 200, code_from_custom_field: Project code}\n"
            "  - {id: project, priority: 100, code: WEB, match: {project: A}}\n"
        )
        == []
    )


def test_equal_priority_rules_that_can_meet_one_entry() -> None:
    warnings = warnings_for(
        "  - {id: by-project, priority: 100, code: WEB, match: {project: A}}\n"
        "  - {id: by-tag, priority: 100, code: APP, match: {tag: billable}}\n"
    )
    assert list(warnings) == ["by-tag"]
    message = warnings["by-tag"][0]
    assert "rules 'by-project' (line 6) and 'by-tag' have the same priority (100)" in message
    assert "'by-project' wins because it is written first" in message


@pytest.mark.parametrize(
    "rules",
    [
        # different values of the same key
        "  - {id: a, priority: 100, code: WEB, match: {project: A}}\n"
        "  - {id: b, priority: 100, code: APP, match: {project: B, tag: x}}\n",
        # an Asana project and a ClickUp list never meet in one entry
        "  - {id: a, priority: 100, code: WEB, match: {project: A}}\n"
        "  - {id: c, priority: 100, code: APP, match: {source: clickup, list: A}}\n",
        "  - {id: c, priority: 100, code: APP, match: {source: monday, tag: x}}\n"
        "  - {id: d, priority: 100, code: APP, match: {folder: B, tag: x}}\n",
        # effective periods that do not meet
        "  - {id: e, priority: 100, code: WEB, effective_to: 2025-12-31, match: {tag: y}}\n"
        "  - {id: f, priority: 100, code: APP, effective_from: 2026-01-01, match: {tag: y}}\n",
        # globs that cannot match one name
        "  - {id: g, priority: 100, code: APP, match: {tag: z, task_name: 'Design*'}}\n"
        "  - {id: h, priority: 100, code: APP, match: {tag: z, task_name: 'Build*'}}\n",
        "  - {id: g, priority: 100, code: APP, match: {tag: z, task_name: '* review'}}\n"
        "  - {id: h, priority: 100, code: APP, match: {tag: z, task_name: '* planning'}}\n",
        # different priorities
        "  - {id: i, priority: 100, code: WEB, match: {project: A}}\n"
        "  - {id: j, priority: 101, code: APP, match: {tag: x}}\n",
    ],
)
def test_equal_priority_rules_that_cannot_meet_are_fine(rules: str) -> None:
    assert findings(rules) == []


def test_globs_that_can_meet_are_reported() -> None:
    warnings = warnings_for(
        "  - {id: g, priority: 100, code: APP, match: {tag: z, task_name: 'Design*'}}\n"
        "  - {id: h, priority: 100, code: APP, match: {tag: z, task_name: 'Des*review'}}\n"
    )
    assert list(warnings) == ["h"]


def test_rule_effective_only_while_its_code_is_inactive() -> None:
    doc = load_document(
        "version: 1\ncodes:\n  OLD: {name: o, client: c, cost_center: x, billable: true, active_to: 2025-12-31}\n"
        "rules:\n  - {id: late, priority: 1, code: OLD, effective_from: 2026-01-01}\n"
    )
    (finding,) = check_document(doc)
    assert (finding.level, finding.rule_id, finding.line) == ("warning", "late", 5)
    assert "stays unmapped" in finding.message


def test_unknown_codes_in_a_document_built_in_code_are_errors() -> None:
    built = MappingDocument.model_validate(
        {
            "version": 1,
            "codes": {},
            "rules": [{"id": "r", "priority": 1, "code": "GONE"}, {"id": "s", "priority": 1, "code": "GONE"}],
        }
    )
    found = check_document(built)
    assert [finding.level for finding in found] == ["error", "error"]
    assert "unknown code 'GONE'" in found[0].message


def test_errors_come_before_warnings() -> None:
    doc: dict[str, Any] = {
        "version": 1,
        "codes": {
            "WEB": {
                "name": "w",
                "client": "c",
                "cost_center": "x",
                "billable": True,
                "rates": [
                    {"rate": "1", "currency": "USD", "effective_from": "2025-01-01"},
                    {"rate": "2", "currency": "USD", "effective_from": "2026-01-01"},
                ],
            }
        },
        "rules": [
            {"id": "all", "priority": 9, "code": "WEB"},
            {"id": "shadowed", "priority": 1, "code": "WEB", "match": {"tag": "x"}},
        ],
    }
    found = check_document(MappingDocument.model_validate(doc))
    assert [finding.level for finding in found] == ["error", "warning"]
    assert found[0].line == 0  # built in code: no YAML lines


def test_large_documents_are_checked_quickly() -> None:
    rules = "".join(
        f"  - {{id: r{n}, priority: {n % 3}, code: WEB, match: {{project: P{n}, tag: t{n % 7}}}}}\n"
        for n in range(3000)
    )
    assert findings(rules) == []
