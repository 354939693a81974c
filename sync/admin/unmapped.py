"""The unmapped queue: group unmapped entries by where they come from and write suggested rules for them."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from connectors.errors import ConfigError
from connectors.model import TimeEntry
from mappings.schema import MappingDocument, current_vocabulary, normalize_name
from sync.admin.preview import live_rows
from sync.admin.revisions import parse_document, read_document, revision_document
from sync.reporting.model import Period, format_hours
from sync.store import revisions

# What a suggested rule carries until an admin chooses the real code.
PLACEHOLDER_CODE = "TODO-CODE"
SUGGESTION_PRIORITY = 100
# The container that stands for "the project" in each tool: the key a suggestion matches on first.
_PROJECT_KINDS = ("project", "list", "board")
_WORKSPACE_KINDS = frozenset({"workspace", "team", "account"})
_NOT_MAPPED_YET = "not_mapped_yet"
_COMMENTED_ID = re.compile(r"^#\s*-\s*id:\s*(\S+)\s*$", re.MULTILINE)


# --------------------------------------------------------------------------- the unmapped queue


@dataclass(frozen=True, slots=True)
class UnmappedGroup:
    """Unmapped entries that miss the same thing, with a rule that would map them (when one would)."""

    source: str
    reason: str
    missing: str
    key: str
    value: str
    entries: int
    seconds: int
    people: int
    detail: str
    examples: tuple[str, ...]
    rule: dict[str, Any] | None
    hint: str

    def suggestion(self) -> str:
        """The suggested rule as a YAML list item, or '' when a rule is not the fix."""
        if self.rule is None:
            return ""
        return yaml.safe_dump([self.rule], sort_keys=False, allow_unicode=True, width=1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reason": self.reason,
            "missing": self.missing,
            "key": self.key,
            "value": self.value,
            "entries": self.entries,
            "seconds": self.seconds,
            "hours": format_hours(self.seconds),
            "people": self.people,
            "detail": self.detail,
            "examples": list(self.examples),
            "suggested_rule": self.rule,
            "hint": self.hint,
        }


@dataclass(slots=True)
class _Bucket:
    source: str
    reason: str
    missing: str
    key: str
    value: str
    field_name: str = ""
    entries: int = 0
    seconds: int = 0
    people: set[str] = field(default_factory=set)
    detail: str = ""
    examples: list[str] = field(default_factory=list)


def unmapped_queue(engine: Engine, period: Period | None) -> list[UnmappedGroup]:
    """Unmapped live entries grouped by what they miss, largest hours first, each with a suggested rule."""
    with engine.connect() as conn:
        stored = revisions.current(conn)
        document = None if stored is None else revision_document(stored).document
        buckets: dict[tuple[str, ...], _Bucket] = {}
        for row in live_rows(conn, period, unmapped_only=True):
            entry = TimeEntry.from_payload(row.payload, content_hash=row.content_hash)
            reason = row.unmapped_reason or _NOT_MAPPED_YET
            bucket_key, make = _group_of(entry, reason, row.unmapped_detail or "", document)
            bucket = buckets.get(bucket_key)
            if bucket is None:
                bucket = buckets[bucket_key] = make()
            bucket.entries += 1
            bucket.seconds += row.duration_seconds
            bucket.people.add(row.contractor or row.person_name or row.person_id)
            if len(bucket.examples) < 3:
                bucket.examples.append(f"{row.source}:{row.account}:{row.external_id}")
    taken = {rule.id for rule in document.rules} if document is not None else set()
    ordered = sorted(buckets.values(), key=lambda b: (-b.seconds, -b.entries, b.source, b.missing))
    return [_finish(bucket, taken, period) for bucket in ordered]


def _group_of(
    entry: TimeEntry, reason: str, detail: str, document: MappingDocument | None
) -> tuple[tuple[str, ...], Any]:
    """The grouping key of an unmapped entry, and a factory for its bucket."""
    source = entry.source
    if reason == "custom_field_code_unknown" and document is not None:
        wanted = {normalize_name(r.code_from_custom_field) for r in document.rules if r.code_from_custom_field}
        found = next(((k, v) for k, v in entry.custom_fields if v and normalize_name(k) in wanted), None)
        if found is not None:
            name, value = found
            missing = f"code {value!r} named by custom field {name!r} is not in the catalog"

            def by_field() -> _Bucket:
                return _Bucket(source, reason, missing, "custom_field", value, field_name=name, detail=detail)

            return (source, reason, "custom_field", normalize_name(name), normalize_name(value)), by_field
    if reason in ("no_rule_matched", _NOT_MAPPED_YET):
        kind, value, missing = _most_specific_key(entry)

        def by_place() -> _Bucket:
            return _Bucket(source, reason, missing, kind, value, detail=detail)

        return (source, reason, kind, normalize_name(value)), by_place

    # Inactive codes, rules outside their dates, unreadable entries: the detail names the rule or code to fix.
    def by_detail() -> _Bucket:
        return _Bucket(source, reason, detail or reason, "", "", detail=detail)

    return (source, reason, detail), by_detail


def _most_specific_key(entry: TimeEntry) -> tuple[str, str, str]:
    """(rule key, value, description) that best names where ``entry`` was logged."""
    places = [c for c in entry.containers if c.kind not in _WORKSPACE_KINDS]
    path = " / ".join(f"{c.kind} {(c.name or c.id)!r}" for c in places)
    for kind in _PROJECT_KINDS:
        container = entry.container(kind)
        if container is not None:
            return kind, container.name or container.id, path
    matchable = [c for c in places if c.kind in current_vocabulary().container_keys]
    if matchable:
        deepest = matchable[-1]
        return deepest.kind, deepest.name or deepest.id, path
    if entry.task is not None and entry.task.name:
        return "task_name", entry.task.name, f"task {entry.task.name!r} (no project)"
    person = entry.person.email or entry.person.id
    return "person", person, f"time of {entry.person.name or person} outside any project or task"


def _finish(bucket: _Bucket, taken: set[str], period: Period | None) -> UnmappedGroup:
    rule: dict[str, Any] | None = None
    hint = bucket.detail
    when = f" in {period.label}" if period is not None else ""
    note = f"suggested for {bucket.entries} unmapped entries ({format_hours(bucket.seconds)} h){when}"
    if bucket.key == "custom_field":
        rule = _rule(bucket, taken, {"custom_field": {bucket.field_name: bucket.value}}, note)
        hint = f"add code {bucket.value!r} under 'codes' (then nothing else is needed), or map the value with a rule"
    elif bucket.key == "task_name":
        rule = _rule(bucket, taken, {"task_name": _glob_literal(bucket.value)}, note)
        hint = "no project: match the task name (or ask people to log time in a project)"
    elif bucket.key:
        rule = _rule(bucket, taken, {bucket.key: bucket.value}, note)
        hint = f"choose the code for {bucket.missing}"
        if bucket.reason == _NOT_MAPPED_YET:
            hint = "not mapped yet: the next `hourbridge sync` maps it with the current revision"
    return UnmappedGroup(
        source=bucket.source,
        reason=bucket.reason,
        missing=bucket.missing,
        key=bucket.key,
        value=bucket.value,
        entries=bucket.entries,
        seconds=bucket.seconds,
        people=len(bucket.people),
        detail=bucket.detail,
        examples=tuple(bucket.examples),
        rule=rule,
        hint=hint,
    )


def _rule(bucket: _Bucket, taken: set[str], match: dict[str, Any], note: str) -> dict[str, Any]:
    rule_id = _unique_id(f"{bucket.source}-{bucket.value}", taken)
    return {
        "id": rule_id,
        "priority": SUGGESTION_PRIORITY,
        "code": PLACEHOLDER_CODE,
        "note": note,
        "match": {"source": bucket.source, **match},
    }


def _unique_id(text: str, taken: set[str]) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-") or "rule"
    candidate, number = base, 2
    while candidate in taken:
        candidate = f"{base}-{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _glob_literal(name: str) -> str:
    # Task names are matched as globs; bracket the glob characters so the name matches only itself.
    return "".join(f"[{char}]" if char in "*?[" else char for char in name)


# --------------------------------------------------------------------------- writing suggestions


@dataclass(frozen=True, slots=True)
class WrittenSuggestions:
    path: Path
    rules: int
    appendable: bool


def write_suggestions(
    path: Path, groups: Iterable[UnmappedGroup], *, period: Period | None, today: date
) -> WrittenSuggestions:
    """Append the suggested rules to ``path`` as a commented-out block; the document stays valid and unchanged.

    Suggestions stay comments because a code an admin has not chosen would either be unknown (the
    document becomes invalid and stops every run) or a guess (hours billed to the wrong client).
    """
    loaded = read_document(path)
    # Earlier suggestions still commented out count too: uncommenting both must not repeat an id.
    taken = {rule.id for rule in loaded.document.rules} | set(_COMMENTED_ID.findall(loaded.text))
    rules = [_renamed(group.rule, taken) for group in groups if group.rule is not None]
    if not rules:
        return WrittenSuggestions(path, 0, appendable=True)
    indent, appendable = _rules_indent(loaded.text)
    block = _suggestion_block(rules, indent, appendable, period, today)
    text = loaded.text if loaded.text.endswith("\n") or not loaded.text else loaded.text + "\n"
    result = text + block
    # The promise: the file still loads, and means exactly what it meant before.
    check = parse_document(result, str(path))
    if check.content_hash != loaded.content_hash:  # pragma: no cover - comments cannot change the value
        raise ConfigError(f"the suggestions would change {path}'s rules; nothing was written")
    _write_atomically(path, result)
    return WrittenSuggestions(path, len(rules), appendable)


def _renamed(rule: dict[str, Any], taken: set[str]) -> dict[str, Any]:
    # Ids are made unique against the file being written, which may differ from the stored revision.
    return {**rule, "id": _unique_id(str(rule["id"]), taken)}


def _rules_indent(text: str) -> tuple[int, bool]:
    """Column of the items of a block-style ``rules:`` list that ends the document, and whether there is one."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # pragma: no cover - the text was loaded already
        return 2, False
    if not isinstance(root, yaml.MappingNode) or not root.value:
        return 2, False
    last_key, last_value = root.value[-1]
    if not (isinstance(last_key, yaml.ScalarNode) and last_key.value == "rules"):
        return 2, False
    if not isinstance(last_value, yaml.SequenceNode) or last_value.flow_style or not last_value.value:
        return 2, False
    return int(last_value.start_mark.column), True


def _suggestion_block(
    rules: list[dict[str, Any]], indent: int, appendable: bool, period: Period | None, today: date
) -> str:
    scope = f"unmapped entries of {period.label}" if period is not None else "unmapped entries"
    lines = [
        "",
        f"# ---- suggested by `hourbridge mappings suggest` on {today.isoformat()} from the {scope} ----",
        f"# Each rule below is commented out. To use one: replace {PLACEHOLDER_CODE} with a code from 'codes',",
        "# remove the leading '# ' of its lines, then run `hourbridge mappings check` and `mappings apply`.",
    ]
    if not appendable:
        lines.append("# Move the rules you keep under the document's 'rules:' list (it does not end this file).")
    pad = " " * indent
    for rule in rules:
        item = yaml.safe_dump([rule], sort_keys=False, allow_unicode=True, width=1000)
        lines.extend(f"# {pad}{line}" for line in item.splitlines())
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: readers see the old file or the new one, never half of it."""
    folder = path.resolve().parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_rule(text: str, rule: dict[str, Any], origin: str) -> str:
    """``text`` with ``rule`` appended to its ``rules:`` list; the rest of the text is kept as is.

    The rule is added as text (comments and layout of the document survive); the result is not
    validated here, so the caller can show its errors at their lines (``parse_document``). A
    document whose ``rules:`` list does not end it, or is written inline, cannot take the rule this
    way: the ConfigError says to add it in the editor.
    """
    indent, appendable = _rules_indent(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    item = yaml.safe_dump([rule], sort_keys=False, allow_unicode=True, width=1000)
    if appendable:
        pad = " " * indent
        result = body + "".join(f"{pad}{line}\n" for line in item.splitlines())
    elif "rules" not in (yaml.safe_load(text) or {}):
        result = body + "rules:\n" + "".join(f"  {line}\n" for line in item.splitlines())
    else:
        raise ConfigError(
            f"{origin}: its 'rules:' list is not the last part of the document (or is written inline), so the rule "
            "cannot be added at its end: add it in the rule editor"
        )
    return result
