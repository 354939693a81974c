"""Properties of the matcher on generated documents and entries, checked against a naive reference."""

from __future__ import annotations

import fnmatch
import unicodedata
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.model import Container, Person, TaskRef, TimeEntry
from mappings.engine import Mapped, Matcher, Unmapped, compile_rules
from mappings.schema import MappingDocument, Rule

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CODES: dict[str, Any] = {
    "NWT-WEB": {"name": "Web", "client": "Northwind", "cost_center": "CC-1", "billable": True},
    "NWT-APP": {
        "name": "App",
        "client": "Northwind",
        "cost_center": "CC-2",
        "billable": False,
        "active_from": "2026-02-01",
        "active_to": "2026-05-31",
    },
    "Łódź-1": {"name": "Łódź", "client": "Łódź Collective", "cost_center": "CC-3", "billable": True},
}
PEOPLE: list[dict[str, Any]] = [
    {"contractor": "Zoë Müller", "email": "zoe@example.com", "ids": ["asana:1", "clickup:8412"]},
    {"contractor": "Liam O'Connor", "email": "Liam@Example.com"},
]

# Small vocabularies so generated rules and entries actually meet; arbitrary text is mixed in too.
NAMES = ["Northwind Website", " northwind website", "Globex", "Łódź", "Cafe\u0301", "café", "p-1", "x"]
TAGS = ["billable", "Billable ", "internal", "ß"]
FIELD_NAMES = ["Project code", "project code", "Phase"]
FIELD_VALUES = ["NWT-WEB", "nwt-app", " łódź-1", "NOPE", "Design"]
PERSON_VALUES = ["Zoë Müller", "zoe@example.com", "asana:1", "8412", "liam@example.com", "Ada", "2"]
GLOBS = ["Design *", "*", "qa-??", "[[]x]*", "*home*", "d[a-e]sign*", "?"]
TASKS = ["Design homepage", "design", "QA-12", "", "[x] draft", "homework", "Dasign x"]
DAYS = [date(2026, 1, 15), date(2026, 2, 1), date(2026, 3, 10), date(2026, 5, 31), date(2026, 6, 1)]

text = st.text(max_size=12)
name = st.one_of(st.sampled_from(NAMES), text)


def _values(options: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(options), st.lists(st.sampled_from(options), min_size=1, max_size=3))


@st.composite
def rule_dicts(draw: st.DrawFn, index: int) -> dict[str, Any]:
    match: dict[str, Any] = {}
    keys = draw(
        st.sets(
            st.sampled_from(
                [
                    "source",
                    "workspace",
                    "project",
                    "list",
                    "board",
                    "tag",
                    "custom_field",
                    "person",
                    "task_name",
                    "billable",
                ]
            ),
            max_size=3,
        )
    )
    for key in sorted(keys):
        if key == "source":
            match[key] = draw(_values(["asana", "clickup", "monday"]))
        elif key in ("workspace", "project", "list", "board"):
            match[key] = draw(_values([*NAMES, "900", "Acme"]))
        elif key == "tag":
            match[key] = draw(_values(TAGS))
        elif key == "custom_field":
            match[key] = draw(
                st.dictionaries(st.sampled_from(FIELD_NAMES), _values(FIELD_VALUES), min_size=1, max_size=2)
            )
        elif key == "person":
            match[key] = draw(_values(PERSON_VALUES))
        elif key == "task_name":
            match[key] = draw(_values(GLOBS))
        else:
            match[key] = draw(st.booleans())
    rule: dict[str, Any] = {"id": f"r{index}", "priority": draw(st.integers(0, 3)), "match": match}
    if draw(st.booleans()):
        rule["code"] = draw(st.sampled_from([*CODES, "nwt-web"]))
    else:
        rule["code_from_custom_field"] = draw(st.sampled_from(FIELD_NAMES))
    start = draw(st.sampled_from(DAYS))
    if draw(st.integers(0, 3)) == 0:
        rule["effective_from"] = start
    if draw(st.integers(0, 3)) == 0:
        rule["effective_to"] = start + timedelta(days=draw(st.integers(0, 120)))
    return rule


@st.composite
def documents(draw: st.DrawFn, max_rules: int = 12) -> MappingDocument:
    count = draw(st.integers(0, max_rules))
    rules = [draw(rule_dicts(index)) for index in range(count)]
    return MappingDocument.model_validate({"version": 1, "codes": CODES, "people": PEOPLE, "rules": rules})


@st.composite
def entries(draw: st.DrawFn) -> TimeEntry:
    source = draw(st.sampled_from(["asana", "clickup", "monday", "Asana"]))
    account = draw(st.sampled_from(["900", "901", ""]))
    containers = [Container("workspace", account, draw(st.sampled_from(["Acme", "", "Other"])))]
    for kind in draw(st.lists(st.sampled_from(["project", "list", "board", "group", "team", "odd"]), max_size=3)):
        containers.append(Container(kind, draw(st.sampled_from(["p-1", "1", ""])), draw(name)))
    person = draw(
        st.one_of(
            st.sampled_from(
                [
                    Person("1", "Zoe", None),
                    Person("8412", "Z", None),
                    Person("77", "Liam", "LIAM@example.com"),
                    Person("2", "", None),
                    Person("1", "Ada", "liam@example.com"),
                ]
            ),
            st.builds(Person, id=text, name=text, email=st.none() | text),
        )
    )
    task = draw(st.one_of(st.none(), st.builds(TaskRef, id=text, name=st.one_of(st.sampled_from(TASKS), text))))
    fields = draw(
        st.lists(st.tuples(st.sampled_from(FIELD_NAMES) | text, st.sampled_from(FIELD_VALUES) | text), max_size=3)
    )
    return TimeEntry(
        source=source,
        account=account,
        external_id=draw(text),
        work_date=draw(st.sampled_from(DAYS) | st.dates()),
        duration_seconds=draw(st.integers(0, 10**15)),
        person=person,
        task=task,
        containers=tuple(containers),
        tags=tuple(draw(st.lists(st.sampled_from(TAGS) | text, max_size=3))),
        custom_fields=tuple(sorted(dict(fields).items())),
        billable=draw(st.none() | st.booleans()),
    )


# -- a naive reference: the documented semantics, one rule at a time, no index, no memo -------------------


def norm(value: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).strip().casefold())


def reference_contractor(doc: MappingDocument, entry: TimeEntry) -> str:
    person = entry.person
    for mapping in doc.people:
        if any(norm(ident) == norm(f"{entry.source}:{person.id}") for ident in mapping.ids):
            return mapping.contractor
    if person.email:
        for mapping in doc.people:
            if mapping.email is not None and norm(mapping.email) == norm(person.email):
                return mapping.contractor
    return person.name or person.id


def names_of(entry: TimeEntry, kinds: set[str]) -> set[str]:
    found = {norm(c.id) for c in entry.containers if c.kind in kinds}
    return found | {norm(c.name) for c in entry.containers if c.kind in kinds and c.name}


def person_matches(doc: MappingDocument, value: str, entry: TimeEntry, contractor: str) -> bool:
    wanted = norm(value)
    person = entry.person
    if wanted in (norm(f"{entry.source}:{person.id}"), norm(person.id), norm(contractor)):
        return True
    if person.email and wanted == norm(person.email):
        return True
    for mapping in doc.people:
        identities = {norm(mapping.contractor)} | {norm(i) for i in mapping.ids}
        identities |= {norm(i.partition(":")[2]) for i in mapping.ids}
        if mapping.email:
            identities.add(norm(mapping.email))
        if wanted in identities and norm(mapping.contractor) == norm(contractor):
            return True
    return False


def field_value(entry: TimeEntry, field: str) -> str | None:
    return next((v for k, v in entry.custom_fields if v and norm(k) == norm(field)), None)


def keys_match(doc: MappingDocument, rule: Rule, entry: TimeEntry, contractor: str) -> bool:
    m = rule.match
    tests: list[bool] = []
    if m.source is not None:
        tests.append(norm(entry.source) in {norm(v) for v in m.source})
    if m.workspace is not None:
        spaces = names_of(entry, {"workspace", "team", "account"}) | {norm(entry.account)}
        tests.append(any(norm(v) in spaces for v in m.workspace))
    for kind, wanted in m.containers().items():
        tests.append(any(norm(v) in names_of(entry, {kind}) for v in wanted))
    if m.tag is not None:
        tests.append(any(norm(v) == norm(t) for v in m.tag for t in entry.tags))
    if m.custom_field is not None:
        for field, wanted in m.custom_field.items():
            present = {norm(v) for k, v in entry.custom_fields if v and norm(k) == norm(field)}
            tests.append(any(norm(v) in present for v in wanted))
    if m.person is not None:
        tests.append(any(person_matches(doc, v, entry, contractor) for v in m.person))
    if m.task_name is not None:
        task_name = norm(entry.task.name) if entry.task is not None and entry.task.name else ""
        tests.append(any(fnmatch.fnmatchcase(task_name, norm(g)) for g in m.task_name))
    if m.billable is not None:
        tests.append(entry.billable is not None and entry.billable == m.billable)
    if rule.code_from_custom_field is not None:
        tests.append(field_value(entry, rule.code_from_custom_field) is not None)
    return all(tests)


def reference_match(doc: MappingDocument, entry: TimeEntry) -> Mapped | Unmapped:
    contractor = reference_contractor(doc, entry)
    catalog = {norm(key): key for key in doc.codes}
    failure: str | None = None
    ordered = sorted(enumerate(doc.rules), key=lambda item: (-item[1].priority, item[0]))
    for _, rule in ordered:
        if not keys_match(doc, rule, entry, contractor):
            continue
        if not rule.effective_on(entry.work_date):
            failure = failure or "rule_not_effective"
            continue
        written = rule.code if rule.code is not None else field_value(entry, rule.code_from_custom_field or "")
        code_key = catalog.get(norm(written or ""))
        if code_key is None:
            failure = failure or "custom_field_code_unknown"
            continue
        code = doc.codes[code_key]
        if not code.active_on(entry.work_date):
            return Unmapped("code_inactive", contractor, "")
        billable = code.billable if entry.billable is None else entry.billable
        return Mapped(code_key, rule.id, contractor, code.client, code.cost_center, billable, code.name)
    return Unmapped(failure or "no_rule_matched", contractor, "")


def comparable(result: Mapped | Unmapped) -> Mapped | tuple[str, str]:
    return result if isinstance(result, Mapped) else (result.reason, result.contractor)


# -- properties ---------------------------------------------------------------------------------------


@SETTINGS
@given(documents(), st.lists(entries(), max_size=25))
def test_every_entry_gets_exactly_one_result_and_seconds_are_conserved(
    doc: MappingDocument, batch: list[TimeEntry]
) -> None:
    results = compile_rules(doc).match_many(batch)
    assert len(results) == len(batch)
    assert all(isinstance(result, Mapped | Unmapped) for result in results)
    mapped_seconds = sum(e.duration_seconds for e, r in zip(batch, results, strict=True) if isinstance(r, Mapped))
    unmapped_seconds = sum(e.duration_seconds for e, r in zip(batch, results, strict=True) if isinstance(r, Unmapped))
    assert mapped_seconds + unmapped_seconds == sum(e.duration_seconds for e in batch)


@SETTINGS
@given(documents(), st.lists(entries(), max_size=25))
def test_indexed_matcher_agrees_with_the_naive_reference(doc: MappingDocument, batch: list[TimeEntry]) -> None:
    matcher = compile_rules(doc)
    for entry in batch:
        assert comparable(matcher.match(entry)) == comparable(reference_match(doc, entry)), entry


@SETTINGS
@given(documents(), st.lists(entries(), max_size=25), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_entry_order(doc: MappingDocument, batch: list[TimeEntry], rng: Any) -> None:
    expected = compile_rules(doc).match_many(batch)
    order = list(range(len(batch)))
    rng.shuffle(order)
    # A fresh matcher and a warm one (memos filled in another order) give the same answers.
    for matcher in (compile_rules(doc), compile_rules(doc)):
        matcher.match_many(list(reversed(batch)))
        shuffled = matcher.match_many([batch[i] for i in order])
        assert [shuffled[order.index(i)] for i in range(len(batch))] == expected


@SETTINGS
@given(documents(), rule_dicts(999), st.lists(entries(), max_size=25))
def test_a_lower_priority_rule_never_changes_a_mapped_entry(
    doc: MappingDocument, extra: dict[str, Any], batch: list[TimeEntry]
) -> None:
    lowest = min((rule.priority for rule in doc.rules), default=0)
    extra = {**extra, "priority": lowest - 1}
    data = doc.model_dump(mode="json", by_alias=True)
    data["rules"].append(extra)
    wider = compile_rules(MappingDocument.model_validate(data))
    before = compile_rules(doc).match_many(batch)
    after = wider.match_many(batch)
    for old, new in zip(before, after, strict=True):
        if isinstance(old, Mapped):
            assert new == old


@settings(max_examples=60, deadline=None)
@given(
    documents(max_rules=4),
    st.builds(
        TimeEntry,
        source=st.text(),
        account=st.text(),
        external_id=st.text(),
        work_date=st.dates(),
        duration_seconds=st.integers(0, 2**63),
        person=st.builds(Person, id=st.text(), name=st.text(), email=st.none() | st.text()),
        task=st.none() | st.builds(TaskRef, id=st.text(), name=st.text(max_size=5000)),
        containers=st.lists(st.builds(Container, kind=st.text(), id=st.text(), name=st.text())).map(tuple),
        tags=st.lists(st.text()).map(tuple),
        custom_fields=st.lists(st.tuples(st.text(), st.text())).map(tuple),
        billable=st.none() | st.booleans(),
    ),
)
def test_no_exception_for_any_entry_data(doc: MappingDocument, entry: TimeEntry) -> None:
    matcher = compile_rules(doc)
    result = matcher.match(entry)
    assert isinstance(result, Mapped | Unmapped)
    assert matcher.match(entry) == result
    explanation = matcher.explain(entry)
    assert explanation.result == result
    if isinstance(result, Mapped):
        assert explanation.winner == result.rule_id


@SETTINGS
@given(documents())
def test_candidates_contain_every_rule_that_matches(doc: MappingDocument) -> None:
    matcher: Matcher = compile_rules(doc)
    probe = TimeEntry(
        source="asana",
        account="900",
        external_id="x",
        work_date=date(2026, 3, 10),
        duration_seconds=1,
        person=Person("1", "Zoe", "zoe@example.com"),
        task=TaskRef("t", "Design homepage"),
        containers=(Container("workspace", "900", "Acme"), Container("project", "p-1", "Northwind Website")),
        tags=("billable",),
        custom_fields=(("Project code", "NWT-WEB"),),
        billable=True,
    )
    offered = {rule.id for rule in matcher.candidates(probe)}
    contractor = reference_contractor(doc, probe)
    for rule in doc.rules:
        if keys_match(doc, rule, probe, contractor):
            assert rule.id in offered
