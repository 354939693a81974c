"""What changed between two mapping revisions: codes, people and rules added, removed or changed."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sync.store import revisions

# --------------------------------------------------------------------------- diff


@dataclass(frozen=True, slots=True)
class Change:
    """One code, person or rule that a newer revision added, removed or changed (``fields`` say where)."""

    part: str
    key: str
    change: str
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "key": self.key, "change": self.change, "fields": list(self.fields)}


@dataclass(frozen=True, slots=True)
class DocumentDiff:
    """Two revisions compared: changes by id, then a unified diff of their YAML texts."""

    old: int
    new: int
    changes: tuple[Change, ...]
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "changes": [change.as_dict() for change in self.changes],
            "text": self.text,
        }


def diff_revisions(old: revisions.Revision, new: revisions.Revision) -> DocumentDiff:
    before, after = json.loads(old.canonical_json), json.loads(new.canonical_json)
    changes = [
        *_keyed_changes("code", before.get("codes", {}), after.get("codes", {})),
        *_keyed_changes("person", _people_by_name(before), _people_by_name(after)),
        *_keyed_changes("rule", _rules_by_id(before), _rules_by_id(after)),
    ]
    for key in ("version",):
        if before.get(key) != after.get(key):
            changes.append(Change("document", key, "changed", (key,)))
    text = "".join(
        difflib.unified_diff(
            _lines(old.yaml_text),
            _lines(new.yaml_text),
            fromfile=f"revision {old.id}",
            tofile=f"revision {new.id}",
        )
    )
    return DocumentDiff(old.id, new.id, tuple(changes), text)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _people_by_name(data: dict[str, Any]) -> dict[str, Any]:
    # People have no id; the contractor's name is how admins refer to them (a repeat gets "#2").
    found: dict[str, Any] = {}
    for person in data.get("people", []):
        key = str(person.get("contractor"))
        number = 2
        while key in found:
            key = f"{person.get('contractor')} #{number}"
            number += 1
        found[key] = person
    return found


def _rules_by_id(data: dict[str, Any]) -> dict[str, Any]:
    return {str(rule.get("id")): rule for rule in data.get("rules", [])}


def _keyed_changes(part: str, before: dict[str, Any], after: dict[str, Any]) -> Iterator[Change]:
    for key in before:
        if key not in after:
            yield Change(part, key, "removed")
    for key, value in after.items():
        if key not in before:
            yield Change(part, key, "added")
        elif before[key] != value:
            yield Change(part, key, "changed", tuple(_differing(before[key], value)))


def _differing(old: Any, new: Any, prefix: str = "", depth: int = 2) -> Iterator[str]:
    """Dotted keys whose values differ, down to ``depth`` levels ("priority", "match.list")."""
    if depth == 0 or not isinstance(old, dict) or not isinstance(new, dict):
        yield prefix or "value"
        return
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _differing(old.get(key), new.get(key), name, depth - 1)
