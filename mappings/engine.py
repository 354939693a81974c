"""Compile a mapping document into an indexed matcher that gives every time entry a code or a reason."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from operator import attrgetter
from typing import Any, TypeVar

from connectors.model import TimeEntry
from mappings.loader import validate_references
from mappings.schema import Code, MappingDocument, PersonMapping, Rule, join_path, normalize_name

# Entry attributes a rule can test exactly; each is a set of normalized values per entry. The
# container kinds of the document's vocabulary (project, list, board...) follow from _FIXED_COUNT on.
SOURCE, WORKSPACE, TAG, PERSON, FIELD, FIELD_SET, BILLABLE = range(7)
# Not a rule key: the literal start of a rule's task-name globs, used only to find candidate rules.
TASK_PREFIX = 7
_FIXED_COUNT = 8
# Longest glob prefix indexed; longer prefixes are cut, the glob itself still decides.
_PREFIX_CAP = 8
_ATTR_LABELS = (
    "source",
    "workspace",
    "tag",
    "person",
    "custom_field",
    "code_from_custom_field",
    "billable",
    "task_name",
)
# Container kinds that name the top of a tool's tree; `workspace` matches them as well as entry.account.
_WORKSPACE_KINDS = frozenset({"workspace", "team", "account"})
# Among equally selective keys, index by the one most likely to split rules finely (the container
# kinds go after PERSON, innermost first: see ``_preference``).
_PREFERENCE_HEAD = (FIELD, PERSON)
_PREFERENCE_TAIL = (TASK_PREFIX, TAG, FIELD_SET, WORKSPACE, SOURCE, BILLABLE)
# Containers are keyed by their plain fields: hashing three strings in C beats the dataclass __hash__.
_CONTAINER_FIELDS = attrgetter("kind", "id", "name")
_EMPTY: frozenset[Any] = frozenset()
_TRUE: frozenset[Any] = frozenset((True,))
_FALSE: frozenset[Any] = frozenset((False,))
_NO_FIELDS: dict[str, str] = {}
# Normalized names repeat across entries (same projects, people, tags); bound the memo so memory stays flat.
_MEMO_LIMIT = 200_000

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Mapped:
    """An entry that a rule gave a code."""

    code: str
    rule_id: str
    contractor: str
    client: str
    cost_center: str
    billable: bool
    code_name: str


@dataclass(frozen=True, slots=True)
class Unmapped:
    """An entry no rule could give a code; ``reason`` is a stable key, ``detail`` says what to fix."""

    reason: str
    contractor: str
    detail: str


MatchResult = Mapped | Unmapped


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A rule that almost applied to an entry, and the key that stopped it."""

    rule_id: str
    priority: int
    line: int
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an entry got its result: the deciding rule and the rules that nearly applied."""

    result: MatchResult
    winner: str | None
    near_misses: tuple[NearMiss, ...]

    def describe(self) -> str:
        if isinstance(self.result, Mapped):
            lines = [f"mapped to {self.result.code} by rule {self.result.rule_id!r}"]
        else:
            lines = [f"unmapped ({self.result.reason}): {self.result.detail}"]
        for miss in self.near_misses:
            where = f" (line {miss.line})" if miss.line else ""
            lines.append(f"  rule {miss.rule_id!r}{where}, priority {miss.priority}: {miss.key}: {miss.reason}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Check:
    attr: int
    values: frozenset[Any]
    label: str
    wanted: tuple[str, ...]
    field: str = ""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule ready for matching: exact checks as value sets, globs as one regex, dates as dates."""

    rank: int
    index: int
    rule: Rule
    checks: tuple[_Check, ...]
    index_keys: tuple[_Check, ...]
    fast_checks: tuple[tuple[int, frozenset[Any]], ...]
    primary: int | None
    glob: Callable[[str], object] | None
    globs: tuple[str, ...]
    code: str | None
    code_field: str | None
    effective_from: date | None
    effective_to: date | None
    line: int

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def priority(self) -> int:
        return self.rule.priority


# An entry's normalized attribute values and candidate rules, computed once per match:
# (attribute sets, candidate ranks, task name, custom fields by normalized name, contractor, location).
# A plain tuple, because building an object per entry is a measurable share of the matching time.
_Features = tuple[list[frozenset[Any]], tuple[int, ...], str, dict[str, str], str, "_Location"]


class _Location:
    """The normalized source, workspace and containers of entries logged in one place."""

    __slots__ = ("candidates", "sets", "source", "unmapped", "where")

    def __init__(
        self, source: str, sets: tuple[frozenset[Any], ...], candidates: tuple[int, ...], where: str | None
    ) -> None:
        self.source = source
        self.sets = sets
        self.candidates = candidates
        self.where = where
        # "No rule matches <here>" results by contractor; identical values, so one instance serves all.
        self.unmapped: dict[str, Unmapped] = {}


class Matcher:
    """Maps time entries to codes with the rules of one document; pure and safe to share between threads."""

    def __init__(self, doc: MappingDocument) -> None:
        self.document = doc
        vocabulary = doc.vocabulary
        # Container kind -> attribute number, after the fixed attributes.
        self._container_attrs = {kind: _FIXED_COUNT + i for i, kind in enumerate(vocabulary.container_keys)}
        self._attr_count = _FIXED_COUNT + len(self._container_attrs)
        self._labels = _ATTR_LABELS + vocabulary.container_keys
        self._location_attrs = (SOURCE, WORKSPACE, *self._container_attrs.values())
        preference = (
            *_PREFERENCE_HEAD,
            *(self._container_attrs[kind] for kind in vocabulary.innermost_first()),
            *_PREFERENCE_TAIL,
        )
        self.document_hash = hashlib.sha256(doc.canonical_json().encode("utf-8")).hexdigest()
        self._codes: dict[str, Code] = dict(doc.codes)
        self._code_keys = {normalize_name(key): key for key in doc.codes}
        self._people_by_id: dict[str, PersonMapping] = {}
        self._people_by_bare_id: dict[str, list[PersonMapping]] = {}
        self._people_by_email: dict[str, PersonMapping] = {}
        self._people_by_name: dict[str, PersonMapping] = {}
        for person in doc.people:
            for ident in person.ids:
                source, _, rest = ident.partition(":")
                self._people_by_id.setdefault(f"{normalize_name(source)}:{normalize_name(rest)}", person)
                self._people_by_bare_id.setdefault(normalize_name(rest), []).append(person)
            if person.email is not None:
                self._people_by_email.setdefault(normalize_name(person.email), person)
            self._people_by_name.setdefault(normalize_name(person.contractor), person)
        order = sorted(range(len(doc.rules)), key=lambda i: (-doc.rules[i].priority, i))
        compiled = tuple(self._compile(rank, index, doc.rules[index]) for rank, index in enumerate(order))
        self.rules, self._index, residual = _build_index(compiled, preference, self._attr_count)
        self._residual = tuple(residual)
        self._billable_candidates = {flag: self._lookup(((BILLABLE, frozenset((flag,))),)) for flag in (True, False)}
        self._prefix_lengths = tuple(sorted({len(prefix) for prefix in self._index[TASK_PREFIX]}))
        self._names: dict[str, str] = {}
        self._people_memo: dict[tuple[str, str, str | None, str], tuple[str, frozenset[str], tuple[int, ...]]] = {}
        self._locations: dict[tuple[str, str, tuple[tuple[str, str, str], ...]], _Location] = {}
        self._tag_memo: dict[tuple[str, ...], tuple[frozenset[Any], tuple[int, ...]]] = {}
        self._field_memo: dict[
            tuple[tuple[str, str], ...], tuple[dict[str, str], frozenset[Any], frozenset[Any], tuple[int, ...]]
        ] = {}
        self._task_memo: dict[str, tuple[str, frozenset[str], tuple[int, ...]]] = {}
        self._mapped_memo: dict[tuple[int, str, str, bool], Mapped] = {}

    # -- public -------------------------------------------------------------------------------

    def match(self, entry: TimeEntry) -> MatchResult:
        """The code for ``entry`` (Mapped) or why there is none (Unmapped); never raises."""
        try:
            return self._match(entry)
        except Exception as exc:  # a malformed entry must become a reported line, not stop a run
            return Unmapped("entry_unreadable", _safe_name(entry), f"the entry could not be read: {exc!r}")

    def match_many(self, entries: Iterable[TimeEntry]) -> list[MatchResult]:
        """``match`` for each entry, in the same order."""
        match = self.match
        return [match(entry) for entry in entries]

    def candidates(self, entry: TimeEntry) -> list[CompiledRule]:
        """The rules the index offers for ``entry``, in priority order (a superset of those that match)."""
        return [self.rules[rank] for rank in self._features(entry)[1]]

    def indexed_under(self, pairs: Iterable[tuple[int, frozenset[Any]]]) -> tuple[int, ...]:
        """Ranks of rules indexed under any of these (attribute, values), plus unindexed rules; for analysis."""
        return tuple(sorted(set(self._lookup(pairs)) | set(self._residual)))

    def explain(self, entry: TimeEntry, *, limit: int = 20) -> Explanation:
        """The result for ``entry``, the rule that decided it, and up to ``limit`` near misses."""
        result = self.match(entry)
        try:
            sets, _, task_name, fields, _, _ = self._features(entry)
        except Exception:  # same guard as match(): the result already says the entry is unreadable
            return Explanation(result, None, ())
        winner: str | None = None
        # (keys that failed, rank, miss): the closest calls first, then by priority order.
        misses: list[tuple[int, int, NearMiss]] = []
        for rule in self.rules:
            failures = [
                (check.label, self._why_not(entry, check))
                for check in rule.checks
                if sets[check.attr].isdisjoint(check.values)
            ]
            keys = len(rule.checks) + (1 if rule.glob is not None else 0)
            if rule.glob is not None and not rule.glob(task_name):
                failures.append(("task_name", f"task name {_task_name(entry)!r} does not match {_quote(rule.globs)}"))
            if failures:
                if len(failures) < keys:
                    key, reason = failures[0]
                    if len(failures) > 1:
                        reason += f" (and {len(failures) - 1} more key(s) failed)"
                    misses.append((len(failures), rule.rank, NearMiss(rule.id, rule.priority, rule.line, key, reason)))
                continue
            problem = self._date_problem(rule, entry.work_date)
            if problem is None and rule.code is None and self._field_code(rule, fields) is None:
                problem = ("code_from_custom_field", self._unknown_code(rule, fields))
            if problem is not None:
                misses.append((0, rule.rank, NearMiss(rule.id, rule.priority, rule.line, problem[0], problem[1])))
            elif winner is None:
                winner = rule.id
            else:
                reason = f"also matches, but {winner!r} ranks first"
                misses.append((0, rule.rank, NearMiss(rule.id, rule.priority, rule.line, "priority", reason)))
        misses.sort(key=lambda item: (item[0], item[1]))
        return Explanation(result, winner, tuple(miss for _, _, miss in misses[: max(0, limit)]))

    # -- matching -----------------------------------------------------------------------------

    def _match(self, entry: TimeEntry) -> MatchResult:
        sets, candidates, task_name, fields, contractor, location = self._features(entry)
        rules = self.rules
        first_failure: tuple[str, str] | None = None
        for rank in candidates:
            rule = rules[rank]
            for attr, values in rule.fast_checks:
                if sets[attr].isdisjoint(values):
                    break
            else:
                if rule.glob is not None and not rule.glob(task_name):
                    continue
                if rule.effective_from is not None or rule.effective_to is not None:
                    problem = self._date_problem(rule, entry.work_date)
                    if problem is not None:
                        first_failure = first_failure or ("rule_not_effective", problem[1])
                        continue
                code_key = rule.code
                if code_key is None:
                    code_key = self._field_code(rule, fields)
                    if code_key is None:
                        first_failure = first_failure or (
                            "custom_field_code_unknown",
                            self._unknown_code(rule, fields),
                        )
                        continue
                return self._result(rule, code_key, contractor, entry)
        if first_failure is not None:
            return Unmapped(first_failure[0], contractor, first_failure[1])
        if location.where is None:
            return Unmapped("no_rule_matched", contractor, f"no rule matches {_where(entry)}")
        unmapped = location.unmapped.get(contractor)
        if unmapped is None:
            unmapped = Unmapped("no_rule_matched", contractor, f"no rule matches {location.where}")
            _remember(location.unmapped, contractor, unmapped)
        return unmapped

    def _result(self, rule: CompiledRule, code_key: str, contractor: str, entry: TimeEntry) -> MatchResult:
        code = self._codes[code_key]
        work_date = entry.work_date
        if (code.active_from is not None and work_date < code.active_from) or (
            code.active_to is not None and work_date > code.active_to
        ):
            return Unmapped(
                "code_inactive",
                contractor,
                f"rule {rule.id!r} gives code {code_key!r}, which is {_active_span(code)} "
                f"(work date {work_date}); adjust the code's active dates or the rule",
            )
        billable = code.billable if entry.billable is None else bool(entry.billable)
        memo_key = (rule.rank, code_key, contractor, billable)
        mapped = self._mapped_memo.get(memo_key)
        if mapped is None:
            mapped = Mapped(code_key, rule.id, contractor, code.client, code.cost_center, billable, code.name)
            _remember(self._mapped_memo, memo_key, mapped)
        return mapped

    def _field_code(self, rule: CompiledRule, fields: dict[str, str]) -> str | None:
        value = fields.get(rule.code_field or "")
        return None if value is None else self._code_keys.get(self._name(value))

    def _date_problem(self, rule: CompiledRule, day: date) -> tuple[str, str] | None:
        if rule.effective_from is not None and day < rule.effective_from:
            return (
                "effective_from",
                f"rule {rule.id!r} matches but takes effect on {rule.effective_from} (work date {day})",
            )
        if rule.effective_to is not None and day > rule.effective_to:
            return ("effective_to", f"rule {rule.id!r} matches but ended on {rule.effective_to} (work date {day})")
        return None

    def _unknown_code(self, rule: CompiledRule, fields: dict[str, str]) -> str:
        value = fields.get(rule.code_field or "", "")
        return (
            f"rule {rule.id!r} takes the code from custom field {rule.rule.code_from_custom_field!r}, whose value "
            f"{value!r} is not a code in the catalog; fix the task's field or add the code"
        )

    # -- entry features -----------------------------------------------------------------------
    # Entries repeat their places, tags, fields, tasks and people. Each part is normalized and looked
    # up in the index once, then memoized, so a typical entry costs a handful of dict lookups.

    def _features(self, entry: TimeEntry) -> _Features:
        location_key = (entry.source, entry.account, tuple(map(_CONTAINER_FIELDS, entry.containers)))
        location = self._locations.get(location_key)
        if location is None:
            location = _remember(self._locations, location_key, self._location(entry))
        sets = list(location.sets)
        found = location.candidates
        several = False
        person = entry.person
        person_key = (location.source, person.id, person.email, person.name)
        known_person = self._people_memo.get(person_key)
        if known_person is None:
            known_person = _remember(self._people_memo, person_key, self._person(location.source, entry))
        contractor, sets[PERSON], extra = known_person
        if extra:
            found, several = (found + extra, True) if found else (extra, several)
        tags = entry.tags
        if tags:
            known_tags = self._tag_memo.get(tags)
            if known_tags is None:
                tag_set = frozenset(self._name(tag) for tag in tags)
                known_tags = _remember(self._tag_memo, tags, (tag_set, self._lookup(((TAG, tag_set),))))
            sets[TAG], extra = known_tags
            if extra:
                found, several = (found + extra, True) if found else (extra, several)
        fields = _NO_FIELDS
        custom_fields = entry.custom_fields
        if custom_fields:
            known_fields = self._field_memo.get(custom_fields)
            if known_fields is None:
                known_fields = _remember(self._field_memo, custom_fields, self._fields(custom_fields))
            fields, sets[FIELD], sets[FIELD_SET], extra = known_fields
            if extra:
                found, several = (found + extra, True) if found else (extra, several)
        billable = entry.billable
        if billable is not None:
            sets[BILLABLE] = _TRUE if billable else _FALSE
            extra = self._billable_candidates[bool(billable)]
            if extra:
                found, several = (found + extra, True) if found else (extra, several)
        task = entry.task
        task_name = ""
        if task is not None and task.name:
            known_task = self._task_memo.get(task.name)
            if known_task is None:
                known_task = _remember(self._task_memo, task.name, self._task(task.name))
            task_name, sets[TASK_PREFIX], extra = known_task
            if extra:
                found, several = (found + extra, True) if found else (extra, several)
        if self._residual:
            found, several = (found + self._residual, True) if found else (self._residual, several)
        if several:
            # Each part's candidates are unique and sorted; parts index different keys, so no rule repeats.
            found = tuple(sorted(found))
        return (sets, found, task_name, fields, contractor, location)

    def _lookup(self, pairs: Iterable[tuple[int, frozenset[Any]]]) -> tuple[int, ...]:
        """Ranks of the rules indexed under any of these (attribute, values), sorted, each once."""
        found: set[int] = set()
        for attr, values in pairs:
            buckets = self._index[attr]
            if buckets:
                for value in values:
                    found.update(buckets.get(value, ()))
        return tuple(sorted(found))

    def _name(self, text: str) -> str:
        normalized = self._names.get(text)
        if normalized is None:
            normalized = _remember(self._names, text, normalize_name(text if isinstance(text, str) else str(text)))
        return normalized

    def _location(self, entry: TimeEntry) -> _Location:
        name = self._name
        sets: list[frozenset[Any]] = [_EMPTY] * self._attr_count
        source = name(entry.source)
        sets[SOURCE] = frozenset((source,))
        workspace = {name(entry.account)}
        by_attr: dict[int, set[str]] = {}
        for container in entry.containers:
            attr = self._container_attrs.get(container.kind)
            if attr is None:
                if container.kind not in _WORKSPACE_KINDS:
                    continue
                values = workspace
            else:
                values = by_attr.setdefault(attr, set())
            values.add(name(container.id))
            if container.name:
                values.add(name(container.name))
        sets[WORKSPACE] = frozenset(workspace)
        for attr, values in by_attr.items():
            sets[attr] = frozenset(values)
        candidates = self._lookup((attr, sets[attr]) for attr in self._location_attrs)
        places = [c for c in entry.containers if c.kind not in _WORKSPACE_KINDS]
        return _Location(source, tuple(sets), candidates, _where(entry) if places else None)

    def _fields(
        self, custom_fields: tuple[tuple[str, str], ...]
    ) -> tuple[dict[str, str], frozenset[Any], frozenset[Any], tuple[int, ...]]:
        fields: dict[str, str] = {}
        pairs: set[tuple[str, str]] = set()
        for field_name, value in custom_fields:
            if value:
                key = self._name(field_name)
                # Two names that differ only by case: any value matches a rule, the first one names a code.
                fields.setdefault(key, value)
                pairs.add((key, self._name(value)))
        names = frozenset(fields)
        frozen = frozenset(pairs)
        return fields, frozen, names, self._lookup(((FIELD, frozen), (FIELD_SET, names)))

    def _task(self, raw_name: str) -> tuple[str, frozenset[str], tuple[int, ...]]:
        task_name = self._name(raw_name)
        prefixes = frozenset(task_name[:size] for size in self._prefix_lengths if len(task_name) >= size)
        return task_name, prefixes, self._lookup(((TASK_PREFIX, prefixes),))

    def _person(self, source: str, entry: TimeEntry) -> tuple[str, frozenset[str], tuple[int, ...]]:
        person = entry.person
        ident = self._name(person.id)
        email = self._name(person.email) if person.email else ""
        mapping = self._people_by_id.get(f"{source}:{ident}")
        if mapping is None and email:
            mapping = self._people_by_email.get(email)
        contractor = mapping.contractor if mapping is not None else (person.name or person.id)
        keys = {f"id:{source}:{ident}", f"id:{ident}", f"contractor:{self._name(contractor)}"}
        if email:
            keys.add(f"email:{email}")
        person_keys = frozenset(keys)
        return contractor, person_keys, self._lookup(((PERSON, person_keys),))

    def _person_value_keys(self, value: str) -> set[str]:
        normalized = normalize_name(value)
        keys = {f"id:{normalized}", f"contractor:{normalized}"}
        if "@" in normalized:
            keys.add(f"email:{normalized}")
        # A rule may name a person by any of their identities; it then matches all of them.
        mappings = [
            self._people_by_name.get(normalized),
            self._people_by_email.get(normalized),
            self._people_by_id.get(normalized),
        ]
        # A bare id names whoever carries it in any tool.
        mappings.extend(person for key, person in self._people_by_id.items() if key.partition(":")[2] == normalized)
        for mapping in mappings:
            if mapping is not None:
                keys.add(f"contractor:{normalize_name(mapping.contractor)}")
        return keys

    # -- compiling ----------------------------------------------------------------------------

    def _compile(self, rank: int, index: int, rule: Rule) -> CompiledRule:
        match = rule.match
        checks: list[_Check] = []

        def add(attr: int, label: str, wanted: list[str], values: Iterable[Any], field: str = "") -> None:
            checks.append(_Check(attr, frozenset(values), label, tuple(wanted), field))

        if match.source is not None:
            add(SOURCE, "source", match.source, (normalize_name(v) for v in match.source))
        if match.workspace is not None:
            add(WORKSPACE, "workspace", match.workspace, (normalize_name(v) for v in match.workspace))
        for kind, wanted in match.containers().items():
            add(self._container_attrs[kind], kind, wanted, (normalize_name(v) for v in wanted))
        if match.tag is not None:
            add(TAG, "tag", match.tag, (normalize_name(v) for v in match.tag))
        if match.person is not None:
            person_keys: set[str] = set()
            for value in match.person:
                person_keys |= self._person_value_keys(value)
            add(PERSON, "person", match.person, person_keys)
        for field_name, wanted in (match.custom_field or {}).items():
            key = normalize_name(field_name)
            add(
                FIELD,
                join_path("custom_field", field_name),
                wanted,
                ((key, normalize_name(v)) for v in wanted),
                field_name,
            )
        if rule.code_from_custom_field is not None:
            field_key = normalize_name(rule.code_from_custom_field)
            add(
                FIELD_SET,
                "code_from_custom_field",
                [rule.code_from_custom_field],
                [field_key],
                rule.code_from_custom_field,
            )
        if match.billable is not None:
            add(BILLABLE, "billable", [str(match.billable).lower()], [match.billable])
        globs = tuple(match.task_name or ())
        glob: Callable[[str], object] | None = None
        index_keys: list[_Check] = []
        if globs:
            normalized = [normalize_name(g) for g in globs]
            pattern = "|".join(f"(?:{fnmatch.translate(g)})" for g in normalized)
            glob = re.compile(pattern).match
            prefixes = {_literal_prefix(g)[:_PREFIX_CAP] for g in normalized}
            if "" not in prefixes:
                index_keys.append(_Check(TASK_PREFIX, frozenset(prefixes), "task_name", globs))
        code = None
        if rule.code is not None:
            code = self._code_keys.get(normalize_name(rule.code))
            if code is None:  # validate_references ran first, so this is unreachable for real documents
                raise KeyError(rule.code)
        return CompiledRule(
            rank=rank,
            index=index,
            rule=rule,
            checks=tuple(checks),
            index_keys=tuple(index_keys),
            fast_checks=(),
            primary=None,
            glob=glob,
            globs=globs,
            code=code,
            code_field=None if rule.code_from_custom_field is None else normalize_name(rule.code_from_custom_field),
            effective_from=rule.effective_from,
            effective_to=rule.effective_to,
            line=self.document.line_of(join_path("rules", index)),
        )

    def _why_not(self, entry: TimeEntry, check: _Check) -> str:
        wanted = _quote(check.wanted)
        attr = check.attr
        if attr == SOURCE:
            have = repr(entry.source)
        elif attr == WORKSPACE:
            names = [entry.account] + [c.name or c.id for c in entry.containers if c.kind in _WORKSPACE_KINDS]
            have = _quote(names)
        elif attr >= _FIXED_COUNT:
            kind = self._labels[attr]
            found = [c.name or c.id for c in entry.containers if c.kind == kind]
            have = _quote(found) if found else f"no {kind}"
        elif attr == TAG:
            have = _quote(entry.tags) if entry.tags else "no tag"
        elif attr == PERSON:
            have = f"{entry.person.name or entry.person.id!r}" + (
                f" <{entry.person.email}>" if entry.person.email else ""
            )
        elif attr in (FIELD, FIELD_SET):
            wanted_key = normalize_name(check.field)
            value = next((v for k, v in entry.custom_fields if normalize_name(k) == wanted_key and v), None)
            if attr == FIELD_SET:
                return f"custom field {check.field!r} is empty on this task"
            have = "empty" if value is None else repr(value)
            return f"custom field {check.field!r} is {have}; rule wants {wanted}"
        else:
            have = "unknown" if entry.billable is None else str(entry.billable).lower()
        return f"{check.label} is {have}; rule wants {wanted}"


def compile_rules(doc: MappingDocument) -> Matcher:
    """An indexed matcher for ``doc``; raises MappingDocumentError when its rules name unknown codes."""
    validate_references(doc)
    return Matcher(doc)


def _build_index(
    rules: tuple[CompiledRule, ...], order: tuple[int, ...], attr_count: int
) -> tuple[tuple[CompiledRule, ...], list[dict[Any, list[int]]], list[int]]:
    """Index each rule by its most selective exact key, so an entry only visits rules that can match."""
    mentions: dict[tuple[int, Any], int] = {}
    for rule in rules:
        for check in rule.checks + rule.index_keys:
            for value in check.values:
                mentions[(check.attr, value)] = mentions.get((check.attr, value), 0) + 1
    preference = {attr: position for position, attr in enumerate(order)}
    index: list[dict[Any, list[int]]] = [{} for _ in range(attr_count)]
    residual: list[int] = []
    indexed: list[CompiledRule] = []
    for rule in rules:
        if not rule.checks and not rule.index_keys:
            residual.append(rule.rank)
            indexed.append(rule)
            continue
        # The cost of a key is how many rules share its values: the bucket sizes an entry would visit.
        best = min(
            rule.checks + rule.index_keys,
            key=lambda check: (sum(mentions[(check.attr, v)] for v in check.values), preference[check.attr]),
        )
        for value in best.values:
            index[best.attr].setdefault(value, []).append(rule.rank)
        rest = tuple((check.attr, check.values) for check in rule.checks if check is not best)
        indexed.append(replace(rule, fast_checks=rest, primary=best.attr))
    return tuple(indexed), index, residual


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    """Store ``value`` in a memo that is emptied when full, so memory stays bounded on endless input."""
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value


def _literal_prefix(glob: str) -> str:
    """The text every name matching ``glob`` starts with."""
    for position, char in enumerate(glob):
        if char in "*?[":
            return glob[:position]
    return glob


def _where(entry: TimeEntry) -> str:
    """Where an entry was logged, for an admin: "project 'Internal Ops' (asana workspace Acme)"."""
    workspace = next((c.name or c.id for c in entry.containers if c.kind in _WORKSPACE_KINDS), entry.account)
    places = [f"{c.kind} {(c.name or c.id)!r}" for c in entry.containers if c.kind not in _WORKSPACE_KINDS]
    if not places and entry.task is not None:
        places = [f"task {(entry.task.name or entry.task.id)!r}"]
    if not places:
        places = ["this entry"]
    return f"{', '.join(places)} ({entry.source} workspace {workspace})"


def _active_span(code: Code) -> str:
    if code.active_from is not None and code.active_to is not None:
        return f"active from {code.active_from} to {code.active_to}"
    if code.active_from is not None:
        return f"active from {code.active_from}"
    return f"active until {code.active_to}"


def _quote(values: Iterable[str]) -> str:
    return " or ".join(repr(v) for v in values) or "nothing"


def _task_name(entry: TimeEntry) -> str:
    return entry.task.name if entry.task is not None else ""


def _safe_name(entry: object) -> str:
    person = getattr(entry, "person", None)
    name = getattr(person, "name", None) or getattr(person, "id", None)
    return name if isinstance(name, str) else ""
