"""Preview a draft mapping document over the ledger, and explain which rule maps one stored entry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from connectors.errors import ConfigError
from connectors.model import TimeEntry
from mappings.engine import Explanation, Mapped
from mappings.schema import current_vocabulary
from sync.admin.revisions import LoadedDocument, get_revision, read_document, revision_document
from sync.reporting.model import Period, format_hours
from sync.store import revisions
from sync.store.tables import entries

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
    return preview_document(engine, read_document(path), period)


def preview_document(engine: Engine, draft: LoadedDocument, period: Period | None) -> Preview:
    """Match the period's live entries with the current revision and with the validated ``draft``."""
    with engine.connect() as conn:
        stored = revisions.current(conn)
        current = None if stored is None else revision_document(stored)
        tally: dict[tuple[str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
        total_entries = total_seconds = rule_changes = 0
        for row in live_rows(conn, period):
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


def live_rows(conn: Connection, period: Period | None, *, unmapped_only: bool = False) -> Iterator[Any]:
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
    if source in current_vocabulary().sources and account and external_id:
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
