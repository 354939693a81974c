"""Mapping administration: which document runs use, apply, history, export, diff, preview, explain, unmapped."""

from __future__ import annotations

import difflib
import getpass
import json
import os
import re
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
import yaml
from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy.engine import make_url

from connectors.errors import ConfigError
from connectors.model import TimeEntry
from mappings.check import check_document
from mappings.engine import Explanation, Mapped, Matcher, compile_rules
from mappings.loader import MappingDocumentError, Problem, load_document
from mappings.schema import CONTAINER_KEYS, KNOWN_SOURCES, MappingDocument, normalize_name
from sync.reporting.model import Period, format_hours
from sync.settings import Settings
from sync.store import revisions
from sync.store.tables import entries, mapping_revisions

log = structlog.get_logger("hourbridge.mappings")

SETTING = "HOURBRIDGE_MAPPINGS_FILE"
# What a suggested rule carries until an admin chooses the real code.
PLACEHOLDER_CODE = "TODO-CODE"
SUGGESTION_PRIORITY = 100
# The container that stands for "the project" in each tool: the key a suggestion matches on first.
_PROJECT_KINDS = ("project", "list", "board")
_WORKSPACE_KINDS = frozenset({"workspace", "team", "account"})
_NOT_MAPPED_YET = "not_mapped_yet"
_COMMENTED_ID = re.compile(r"^#\s*-\s*id:\s*(\S+)\s*$", re.MULTILINE)


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A validated mapping document with its YAML text and compiled matcher; ``origin`` names it for messages."""

    text: str
    document: MappingDocument
    matcher: Matcher
    origin: str

    @property
    def content_hash(self) -> str:
        return self.matcher.document_hash

    def summary(self) -> str:
        doc = self.document
        return f"{len(doc.codes)} codes, {len(doc.people)} people, {len(doc.rules)} rules"


def parse_document(text: str, origin: str) -> LoadedDocument:
    """Validate ``text``: schema and references (by line), then `mappings check` errors; warnings pass."""
    document = load_document(text, filename=origin)
    matcher = compile_rules(document)
    errors = [finding for finding in check_document(document) if finding.level == "error"]
    if errors:
        raise MappingDocumentError([Problem(finding.line, "", finding.message) for finding in errors], filename=origin)
    return LoadedDocument(text, document, matcher, origin)


def read_document(path: Path) -> LoadedDocument:
    """Read and validate the mapping document at ``path``; any problem raises before anything is written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"mapping document {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a mapping document: name the YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8") from None
    return parse_document(text, str(path))


def revision_document(revision: revisions.Revision) -> LoadedDocument:
    """The stored revision as a document (read from its YAML text, so messages keep their line numbers)."""
    return parse_document(revision.yaml_text, f"revision {revision.id}")


def default_author() -> str:
    """Who applies a document when --author is not given: $USER, else the operating-system user."""
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors in containers without a passwd entry
        return "unknown"


# --------------------------------------------------------------------------- which document a run uses


@dataclass(frozen=True, slots=True)
class ActiveMapping:
    """The document a run maps with: the settings' file (applied by every run) or the stored revision."""

    loaded: LoadedDocument
    file: Path | None
    revision: int | None

    @property
    def document(self) -> MappingDocument:
        return self.loaded.document

    @property
    def matcher(self) -> Matcher:
        return self.loaded.matcher


def choose_mapping(settings: Settings, engine: Engine) -> ActiveMapping:
    """The precedence rule (README "The mapping document"); raises before anything is written.

    1. ``mappings_file`` names an existing file: every run applies it (stored as a new revision when
       its content changed). Set explicitly but missing: a ConfigError, because a typo in a GitOps
       path must not silently fall back to an older revision.
    2. Otherwise the database's current revision.
    3. Neither: a ConfigError that says how to provide one.
    """
    path = settings.mappings_file
    explicit = "mappings_file" in settings.model_fields_set
    if path.is_file():
        return ActiveMapping(read_document(path), file=path, revision=None)
    if explicit:
        raise ConfigError(
            f"{SETTING} names {path}, which is not an existing file: fix the path, or unset {SETTING} so "
            "runs use the database's current mapping revision (`hourbridge mappings apply FILE` stores one)"
        )
    stored = _stored_current(engine)
    if stored is None:
        raise ConfigError(
            f"no mapping document: run `hourbridge mappings apply FILE` to store one in the database, or set "
            f"{SETTING} to a file every run applies (the default, {path}, does not exist)"
        )
    return ActiveMapping(revision_document(stored), file=None, revision=stored.id)


def _stored_current(engine: Engine) -> revisions.Revision | None:
    """The current revision, without creating anything: a missing SQLite file or schema means none."""
    url = make_url(str(engine.url))
    database = url.database
    if url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:") and not Path(database).exists():
        return None
    with engine.connect() as conn:
        if not inspect(conn).has_table(mapping_revisions.name):
            return None
        return revisions.current(conn)


def adopt(engine: Engine, active: ActiveMapping, *, now: datetime) -> int:
    """The revision id a run maps with; the settings' file is stored as a new revision when it changed."""
    if active.revision is not None:
        return active.revision
    # The run id is bound to the logging context by Runner.sync; the worker's mapping job has none.
    run_id = structlog.contextvars.get_contextvars().get("run_id")
    by = f"by run {run_id} " if run_id is not None else ""
    appended = revisions.append(
        engine,
        content_hash=active.loaded.content_hash,
        canonical_json=active.document.canonical_json(),
        yaml_text=active.loaded.text,
        author=default_author(),
        comment=f"applied {by}from {active.file}",
        now=now,
    )
    if appended.created:
        log.info("mappings.revision_applied", revision=appended.revision.id, file=str(active.file))
    return appended.revision.id


# --------------------------------------------------------------------------- apply, history, export


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What `mappings apply` did: the revision now current, whether it is new, and what changed."""

    revision: revisions.RevisionInfo
    created: bool
    summary: str
    warnings: tuple[str, ...]
    diff: DocumentDiff | None


def apply_file(engine: Engine, path: Path, *, author: str, comment: str, now: datetime) -> ApplyOutcome:
    """Store the document at ``path`` as a new revision when its content differs from the current one."""
    loaded = read_document(path)
    warnings = tuple(
        f"line {finding.line}: {finding.message}" if finding.line else finding.message
        for finding in check_document(loaded.document)
        if finding.level == "warning"
    )
    with engine.connect() as conn:
        previous = revisions.current(conn)
    appended = revisions.append(
        engine,
        content_hash=loaded.content_hash,
        canonical_json=loaded.document.canonical_json(),
        yaml_text=loaded.text,
        author=author,
        comment=comment,
        now=now,
    )
    changes = None
    if appended.created and previous is not None:
        changes = diff_revisions(previous, appended.revision)
    return ApplyOutcome(appended.revision.info, appended.created, loaded.summary(), warnings, changes)


def history(engine: Engine, *, limit: int | None = None) -> list[revisions.RevisionInfo]:
    with engine.connect() as conn:
        return revisions.history(conn, limit=limit)


def get_revision(conn: Connection, revision_id: int | None) -> revisions.Revision:
    """Revision ``revision_id`` (None = the current one), or a ConfigError that says which exist."""
    found = revisions.current(conn) if revision_id is None else revisions.get(conn, revision_id)
    if found is not None:
        return found
    latest = revisions.current(conn)
    if latest is None:
        raise ConfigError("no mapping revision is stored yet: run `hourbridge mappings apply FILE` first")
    raise ConfigError(
        f"there is no mapping revision {revision_id}; revisions run from 1 to {latest.id} "
        "(see `hourbridge mappings history`)"
    )


def export(engine: Engine, revision_id: int | None = None) -> str:
    """The YAML text revision ``revision_id`` (default: current) was applied from, byte for byte."""
    with engine.connect() as conn:
        return get_revision(conn, revision_id).yaml_text


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


def diff(engine: Engine, old_id: int, new_id: int | None = None) -> DocumentDiff:
    """Revision ``old_id`` against ``new_id`` (default: the current revision)."""
    with engine.connect() as conn:
        old = get_revision(conn, old_id)
        new = get_revision(conn, new_id)
    return diff_revisions(old, new)


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


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True, slots=True)
class Move:
    """Entries whose code would change from ``before`` to ``after`` (None = unmapped)."""

    before: str | None
    after: str | None
    entries: int
    seconds: int

    @property
    def kind(self) -> str:
        if self.before is None:
            return "newly mapped"
        if self.after is None:
            return "newly unmapped"
        return "moved"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "from": self.before,
            "to": self.after,
            "entries": self.entries,
            "seconds": self.seconds,
            "hours": format_hours(self.seconds),
        }


@dataclass(frozen=True, slots=True)
class Preview:
    """What applying a document would change for the live entries of a period; nothing is written."""

    period: Period | None
    against: int | None
    entries: int
    seconds: int
    moves: tuple[Move, ...]
    rule_changes: int

    @property
    def changed_entries(self) -> int:
        return sum(move.entries for move in self.moves)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": None if self.period is None else self.period.label,
            "against_revision": self.against,
            "entries": self.entries,
            "seconds": self.seconds,
            "changed_entries": self.changed_entries,
            "same_code_other_rule": self.rule_changes,
            "moves": [move.as_dict() for move in self.moves],
        }


def preview(engine: Engine, path: Path, period: Period | None) -> Preview:
    """Match the period's live entries with the current revision and with the document at ``path``."""
    draft = read_document(path)
    with engine.connect() as conn:
        stored = revisions.current(conn)
        current = None if stored is None else revision_document(stored)
        tally: dict[tuple[str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
        total_entries = total_seconds = rule_changes = 0
        for row in _live_rows(conn, period):
            entry = TimeEntry.from_payload(row.payload, content_hash=row.content_hash)
            before = None if current is None else current.matcher.match(entry)
            after = draft.matcher.match(entry)
            total_entries += 1
            total_seconds += row.duration_seconds
            old_code = before.code if isinstance(before, Mapped) else None
            new_code = after.code if isinstance(after, Mapped) else None
            if old_code != new_code:
                bucket = tally[(old_code, new_code)]
                bucket[0] += 1
                bucket[1] += row.duration_seconds
            elif isinstance(before, Mapped) and isinstance(after, Mapped) and before.rule_id != after.rule_id:
                rule_changes += 1
    moves = sorted(
        (Move(old, new, count, seconds) for (old, new), (count, seconds) in tally.items()),
        key=lambda move: (-move.seconds, move.before or "", move.after or ""),
    )
    return Preview(
        period, None if stored is None else stored.id, total_entries, total_seconds, tuple(moves), rule_changes
    )


def _live_rows(conn: Connection, period: Period | None, *, unmapped_only: bool = False) -> Iterator[Any]:
    query = select(entries).where(entries.c.deleted_at.is_(None))
    if period is not None:
        query = query.where(entries.c.work_date >= period.start, entries.c.work_date <= period.end)
    if unmapped_only:
        query = query.where(entries.c.code.is_(None))
    yield from conn.execute(query.order_by(entries.c.id))


# --------------------------------------------------------------------------- explain


@dataclass(frozen=True, slots=True)
class EntryExplanation:
    """One ledger entry: its fields, what it is stored as (and by which revision), and why."""

    ref: str
    entry: TimeEntry
    deleted: bool
    stored_code: str | None
    stored_rule: str | None
    stored_reason: str | None
    stored_revision: int | None
    against: str
    against_revision: int | None
    explanation: Explanation

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) rows describing the entry, for a table."""
        entry = self.entry
        rows = [
            ("entry", self.ref + (" (deleted in the tool)" if self.deleted else "")),
            ("work date", entry.work_date.isoformat()),
            ("hours", format_hours(entry.duration_seconds)),
            ("person", _person(entry)),
            ("task", "" if entry.task is None else entry.task.name or entry.task.id),
        ]
        rows.extend((c.kind, c.name or c.id) for c in entry.containers)
        if entry.tags:
            rows.append(("tags", ", ".join(entry.tags)))
        rows.extend((f"custom field {name!r}", value) for name, value in entry.custom_fields)
        rows.append(("billable", "unknown" if entry.billable is None else str(entry.billable).lower()))
        return rows

    def stored(self) -> str:
        by = f"revision {self.stored_revision}" if self.stored_revision is not None else "no stored revision"
        if self.stored_code is not None:
            return f"{self.stored_code} by rule {self.stored_rule!r} ({by})"
        if self.stored_reason is not None:
            return f"unmapped ({self.stored_reason}; {by})"
        return "not mapped yet (the next run maps it)"


def explain(engine: Engine, ref: str, draft: Path | None = None) -> EntryExplanation:
    """Explain entry ``ref`` against the current revision, or against the document ``draft``."""
    with engine.connect() as conn:
        row = find_entry(conn, ref)
        if draft is not None:
            loaded, against_revision = read_document(draft), None
        else:
            stored = get_revision(conn, None)
            loaded, against_revision = revision_document(stored), stored.id
    entry = TimeEntry.from_payload(row.payload, content_hash=row.content_hash)
    return EntryExplanation(
        ref=f"{row.source}:{row.account}:{row.external_id}",
        entry=entry,
        deleted=row.deleted_at is not None,
        stored_code=row.code,
        stored_rule=row.rule_id,
        stored_reason=row.unmapped_reason,
        stored_revision=row.mapping_revision,
        against=loaded.origin,
        against_revision=against_revision,
        explanation=loaded.matcher.explain(entry),
    )


def find_entry(conn: Connection, ref: str) -> Any:
    """The entry ``source:account:external_id``, or the only entry with external id ``ref``."""
    ref = ref.strip()
    source, _, rest = ref.partition(":")
    account, _, external_id = rest.partition(":")
    if source in KNOWN_SOURCES and account and external_id:
        row = conn.execute(
            select(entries).where(
                entries.c.source == source, entries.c.account == account, entries.c.external_id == external_id
            )
        ).first()
        if row is not None:
            return row
    # monday.com ids contain a colon ("<item>:<session>"), so an unmatched key may still be a bare id.
    rows = conn.execute(select(entries).where(entries.c.external_id == ref).limit(6)).all()
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise ConfigError(
            f"no entry {ref!r} in the ledger: give source:account:external_id as the entries report lists it, "
            "e.g. asana:1200000000000001:1300000000000042"
        )
    keys = ", ".join(f"{r.source}:{r.account}:{r.external_id}" for r in rows[:5])
    raise ConfigError(f"{ref!r} is the id of several entries; give the whole key, one of: {keys}")


def _person(entry: TimeEntry) -> str:
    person = entry.person
    text = person.name or person.id
    if person.email:
        text += f" <{person.email}>"
    return f"{text} ({entry.source} id {person.id})"


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
        for row in _live_rows(conn, period, unmapped_only=True):
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
    matchable = [c for c in places if c.kind in CONTAINER_KEYS]
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
