"""Turn mapping YAML text into a validated document, or name every problem in it by line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connectors.errors import ConfigError
from connectors.model import Vocabulary
from mappings.schema import (
    Code,
    MappingDocument,
    PersonMapping,
    QuickBooksRefs,
    Rate,
    Rule,
    XeroRefs,
    document_model,
    join_path,
    nearest_line,
    normalize_name,
)

# libyaml's parser when PyYAML was built with it: the same node tree and marks, several times faster.
_SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
# Aliases can expand a short text into a huge tree ("billion laughs"); no real document comes close.
_MAX_NODES = 1_000_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing an admin must fix in the document: where, and what."""

    line: int
    path: str
    message: str

    def describe(self, filename: str) -> str:
        where = f"{filename} line {self.line}" if self.line else filename
        return f"{where} ({self.path}): {self.message}" if self.path else f"{where}: {self.message}"


class MappingDocumentError(ConfigError):
    """The mapping document cannot be used; ``problems`` lists every fix needed, by line."""

    def __init__(self, problems: Sequence[Problem], *, filename: str = "mappings.yaml") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.filename = filename
        super().__init__("\n".join(problem.describe(filename) for problem in self.problems))


def load_document(
    text: str, *, filename: str = "mappings.yaml", vocabulary: Vocabulary | None = None
) -> MappingDocument:
    """Parse and validate a mapping document; raise MappingDocumentError listing every problem.

    ``vocabulary`` names the sources and container keys it may use (default: the installed one).
    """
    model = document_model(vocabulary)
    try:
        root = yaml.compose(text, Loader=_SAFE_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "unreadable YAML"
        raise MappingDocumentError(
            [Problem(line, "", f"the YAML cannot be read: {reason}")], filename=filename
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(0, exc.position)) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        message = f"the YAML cannot be read: character U+{char:04X} is not allowed ({exc.reason})"
        raise MappingDocumentError([Problem(line, "", message)], filename=filename) from None
    except yaml.YAMLError as exc:
        raise MappingDocumentError([Problem(0, "", f"the YAML cannot be read: {exc}")], filename=filename) from None
    if root is None:
        raise MappingDocumentError(
            [Problem(1, "", "the document is empty; start it with 'version: 1'")], filename=filename
        )
    reader = _TreeReader()
    data = reader.read(root)
    problems = list(reader.problems)
    if not isinstance(data, dict):
        problems.append(Problem(_line(root), "", "the document must be a mapping with version, codes, people, rules"))
        raise MappingDocumentError(_sorted(problems), filename=filename)

    document: MappingDocument | None = None
    try:
        document = model.model_validate(data)
    except ValidationError as exc:
        # A value the reader already reported as unreadable would only be reported again as the wrong type.
        unreadable = {problem.path for problem in reader.problems}
        problems.extend(problem for problem in _translate(exc, reader.lines, model) if problem.path not in unreadable)
    problems.extend(
        Problem(nearest_line(reader.lines, path), path, message)
        for path, message in reference_problems(data, reader.lines)
    )
    if problems or document is None:
        raise MappingDocumentError(_sorted(problems), filename=filename)
    return document.with_lines(reader.lines)


def validate_references(doc: MappingDocument) -> None:
    """Raise MappingDocumentError when rules or people of ``doc`` contradict its catalog."""
    problems = [
        Problem(doc.line_of(path), path, message)
        for path, message in reference_problems(doc.model_dump(mode="json", by_alias=True), doc.lines)
    ]
    if problems:
        raise MappingDocumentError(_sorted(problems))


def reference_problems(data: Any, lines: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """(path, message) for each cross-reference problem in raw document data: unknown codes, duplicates."""
    where = _Where(lines or {})
    found: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return found
    codes = data.get("codes")
    known: dict[str, str] = {}
    if isinstance(codes, dict):
        for key in codes:
            if not isinstance(key, str | int) or isinstance(key, bool):
                continue
            normalized = normalize_name(str(key))
            if normalized in known and known[normalized] != str(key):
                found.append(
                    (
                        join_path("codes", key),
                        f"code {str(key)!r} differs from code {known[normalized]!r} only by case or spaces; "
                        "rename or merge them",
                    )
                )
            known.setdefault(normalized, str(key))
    found.extend(_rule_problems(data.get("rules"), known, where))
    found.extend(_people_problems(data.get("people"), where))
    return found


@dataclass(frozen=True, slots=True)
class _Where:
    lines: dict[str, int]

    def __call__(self, path: str) -> str:
        line = nearest_line(self.lines, path)
        return f"{path} (line {line})" if line else path


def _rule_problems(rules: Any, known: dict[str, str], where: _Where) -> Iterable[tuple[str, str]]:
    if not isinstance(rules, list):
        return
    first_seen: dict[str, str] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        path = join_path("rules", index)
        rule_id = rule.get("id")
        if isinstance(rule_id, str) and rule_id.strip():
            key = rule_id.strip()
            if key in first_seen:
                yield (
                    join_path(path, "id"),
                    f"duplicate rule id {key!r}, already used by {where(first_seen[key])}; give each rule its own id",
                )
            else:
                first_seen[key] = path
        code = rule.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        if isinstance(code, str) and code.strip() and normalize_name(code) not in known:
            hint = difflib.get_close_matches(code.strip(), list(known.values()), n=1, cutoff=0.6)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else "; add it under 'codes' or fix the rule"
            label = f"rule {rule_id!r}" if isinstance(rule_id, str) else "this rule"
            yield (join_path(path, "code"), f"{label} names unknown code {code.strip()!r}{suggestion}")


def _people_problems(people: Any, where: _Where) -> Iterable[tuple[str, str]]:
    if not isinstance(people, list):
        return
    emails: dict[str, str] = {}
    ids: dict[str, str] = {}
    for index, person in enumerate(people):
        if not isinstance(person, dict):
            continue
        path = join_path("people", index)
        email = person.get("email")
        if isinstance(email, str) and email.strip():
            key = normalize_name(email)
            if key in emails:
                yield (
                    join_path(path, "email"),
                    f"email {email.strip()!r} is already given to {where(emails[key])}; one email names one contractor",
                )
            else:
                emails[key] = path
        person_ids = person.get("ids")
        if isinstance(person_ids, list):
            for position, ident in enumerate(person_ids):
                if not isinstance(ident, str) or ":" not in ident:
                    continue
                source, _, rest = ident.partition(":")
                key = f"{normalize_name(source)}:{normalize_name(rest)}"
                if key in ids:
                    yield (
                        join_path(join_path(path, "ids"), position),
                        f"id {ident!r} is already given to {where(ids[key])}; one id names one contractor",
                    )
                else:
                    ids[key] = path


class _TreeReader:
    """Builds plain data from a composed YAML tree, recording each path's line and every problem."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def read(self, node: Node, path: str = "") -> Any:
        self._count += 1
        if self._count > _MAX_NODES:
            if self._count == _MAX_NODES + 1:
                self._problem(node, path, "the document expands to too many values; use fewer aliases")
            return None
        if id(node) in self._active:
            self._problem(node, path, "an alias refers to a value that contains itself; remove the loop")
            return None
        if not path:
            self.lines.setdefault("", _line(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if node.tag not in _PLAIN_TAGS:
            self._problem(node, path, f"unsupported YAML tag {node.tag!r}; write plain values")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    child = join_path(path, index)
                    self.lines.setdefault(child, _line(item))
                    items.append(self.read(item, child))
                return items
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            self._problem(node, path, "unsupported YAML value")  # pragma: no cover - composer emits only these
            return None
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: str) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self._problem(node, path, f"cannot read this value: {exc.problem}")
        except ValueError as exc:
            # PyYAML reads 2026-13-01 as a date and lets datetime reject it.
            self._problem(node, path, f"{node.value!r} is not a valid date or value ({exc})")
        return None

    def _mapping(self, node: MappingNode, path: str) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            key = self._scalar(key_node, path)
            try:
                hash(key)
            except TypeError:  # pragma: no cover - scalars are hashable
                self._problem(key_node, path, "a key must be plain text")
                continue
            child = join_path(path, key)
            if key in seen:
                self._problem(
                    key_node,
                    child,
                    f"duplicate key {key!r} (first written on line {seen[key]}); keep one of them",
                )
                continue
            seen[key] = _line(key_node)
            self.lines[child] = _line(key_node)
            result[key] = self.read(value_node, child)
        # YAML merge keys ("<<: *defaults") supply values the mapping does not set itself.
        return {**{k: v for k, v in merged.items() if k not in result}, **result}

    def _merge_sources(self, node: Node, path: str) -> dict[Any, Any]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                self._problem(source, path, "'<<' must name a mapping (an alias like *defaults)")
                continue
            value = self.read(source, path)
            if isinstance(value, dict):
                merged.update(value)
        return merged

    def _problem(self, node: Node, path: str, message: str) -> None:
        self.problems.append(Problem(_line(node), path, message))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda problem: (problem.line, problem.path))


def _keys_by_shape(model: type[MappingDocument]) -> dict[tuple[str, ...], list[str]]:
    """Keys each part of the document accepts, to suggest the intended key for a typo."""
    match = model.match_model.model_fields
    return _static_keys() | {("rules", "*", "match"): sorted(f.alias or n for n, f in match.items())}


def _static_keys() -> dict[tuple[str, ...], list[str]]:
    return {
        (): sorted(MappingDocument.model_fields),
        ("codes", "*"): sorted(f.alias or n for n, f in Code.model_fields.items()),
        ("codes", "*", "rates", "*"): sorted(f.alias or n for n, f in Rate.model_fields.items()),
        ("codes", "*", "quickbooks"): sorted(f.alias or n for n, f in QuickBooksRefs.model_fields.items()),
        ("codes", "*", "xero"): sorted(f.alias or n for n, f in XeroRefs.model_fields.items()),
        ("people", "*"): sorted(f.alias or n for n, f in PersonMapping.model_fields.items()),
        ("rules", "*"): sorted(f.alias or n for n, f in Rule.model_fields.items()),
    }


def _shape(loc: Sequence[int | str]) -> tuple[str, ...]:
    shape: list[str] = []
    for index, part in enumerate(loc):
        wildcard = isinstance(part, int) or (index == 1 and loc[0] == "codes")
        shape.append("*" if wildcard else str(part))
    return tuple(shape)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _translate(exc: ValidationError, lines: dict[str, int], model: type[MappingDocument]) -> list[Problem]:
    keys = _keys_by_shape(model)
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if part != "[key]"]
        path = ""
        for part in loc:
            path = join_path(path, part)
        kind = error["type"]
        value = error.get("input")
        field = str(loc[-1]) if loc and isinstance(loc[-1], str) else ""
        if kind == "extra_forbidden":
            allowed = keys.get(_shape(loc[:-1]), [])
            hint = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
            message = f"unknown key {field!r}" + (
                f"; did you mean {hint[0]!r}?" if hint else f"; allowed keys: {', '.join(allowed)}"
            )
        elif kind == "missing":
            message = f"missing required key {field!r}"
        elif kind in ("value_error", "assertion_error"):
            message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif kind == "string_type":
            message = f"expected text, got {_short(value)}"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message = f"{field} must be a whole number, got {_short(value)}"
        elif kind in ("bool_type", "bool_parsing"):
            message = f"{field} must be true or false, got {_short(value)}"
        elif kind.startswith("date_"):
            message = f"{field} must be a date like 2026-01-31, got {_short(value)}"
        elif kind == "literal_error" and field == "version":
            message = f"version must be 1, the document version this hourbridge reads (got {_short(value)})"
        elif kind == "string_pattern_mismatch" and field == "currency":
            message = f"currency must be a 3-letter code in capitals like USD, got {_short(value)}"
        elif kind == "string_pattern_mismatch" and field == "email":
            message = f"{_short(value)} is not an email address"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            message = f"{field or 'this'} must be a mapping of keys to values, got {_short(value)}"
        elif kind == "list_type":
            message = f"{field or 'this'} must be a list, got {_short(value)}"
        elif kind == "string_too_short":
            message = "must not be empty"
        else:
            message = f"{error['msg']} (got {_short(value)})"
        problems.append(Problem(nearest_line(lines, path), path, message))
    return problems
