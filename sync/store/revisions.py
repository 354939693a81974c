"""Mapping revision reads and writes: the append-only document history and per-entry mapping results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.errors import ConfigError, TransientError
from sync.store.tables import MAPPING_COLUMNS, entries, mapping_revisions

# How often a writer that lost the race for the next revision re-reads and tries again.
_APPEND_ATTEMPTS = 3


class AnyParent:
    """The parent argument's default: append after whatever revision is current."""


ANY_PARENT = AnyParent()


class StaleParent(ConfigError):
    """The document was edited from a revision that is no longer the current one: applying it could undo a change."""

    def __init__(self, expected: int | None, current: RevisionInfo | None) -> None:
        edited = f"revision {expected}" if expected is not None else "an empty store"
        since = (
            "no revision is stored any more"
            if current is None
            else f"revision {current.id} was applied since (by {current.author}: {current.comment or 'no comment'})"
        )
        super().__init__(
            f"the document was edited from {edited}, but {since}; nothing was stored. Reload the current "
            "revision, make the change again, preview it and apply"
        )
        self.expected = expected
        self.current = current


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """One stored revision without its texts: what `mappings history` lists."""

    id: int
    parent_id: int | None
    created_at: datetime
    author: str
    comment: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Revision:
    """One stored revision with the document's canonical JSON and the YAML text it was applied from."""

    info: RevisionInfo
    canonical_json: str
    yaml_text: str

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def content_hash(self) -> str:
        return self.info.content_hash


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of offering a document: the revision now current, and whether it was written just now."""

    revision: Revision
    created: bool


_INFO_COLUMNS = (
    mapping_revisions.c.id,
    mapping_revisions.c.parent_id,
    mapping_revisions.c.created_at,
    mapping_revisions.c.author,
    mapping_revisions.c.comment,
    mapping_revisions.c.content_hash,
)


def _info(row: Any) -> RevisionInfo:
    return RevisionInfo(row.id, row.parent_id, row.created_at, row.author, row.comment, row.content_hash)


def _revision(row: Any) -> Revision:
    return Revision(_info(row), row.canonical_json, row.yaml_text)


def current(conn: Connection) -> Revision | None:
    """The newest revision, or None when no document was ever applied."""
    row = conn.execute(select(mapping_revisions).order_by(mapping_revisions.c.id.desc()).limit(1)).first()
    return None if row is None else _revision(row)


def get(conn: Connection, revision_id: int) -> Revision | None:
    row = conn.execute(select(mapping_revisions).where(mapping_revisions.c.id == revision_id)).first()
    return None if row is None else _revision(row)


def history(conn: Connection, *, limit: int | None = None) -> list[RevisionInfo]:
    """Revisions newest first (texts left out)."""
    query = select(*_INFO_COLUMNS).order_by(mapping_revisions.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_info(row) for row in conn.execute(query)]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(mapping_revisions)).scalar_one())


def append(
    engine: Engine,
    *,
    content_hash: str,
    canonical_json: str,
    yaml_text: str,
    author: str,
    comment: str,
    now: datetime,
    parent: int | AnyParent | None = ANY_PARENT,
) -> Appended:
    """Store a new revision unless the current one has the same content; safe when several writers race.

    With ``parent`` (the revision the document was edited from; None = edited when none existed), a
    document whose parent is no longer current raises StaleParent and stores nothing: two admins
    editing the same revision cannot silently undo each other's change. The unique ``parent_id``
    makes the check hold under a race too (the loser re-reads and finds a newer current revision).

    Each attempt runs in its own transaction: on PostgreSQL a failed INSERT spoils the transaction it
    runs in, and SQLite's driver does not offer dependable savepoints.
    """
    for _ in range(_APPEND_ATTEMPTS):
        try:
            with engine.begin() as conn:
                latest = current(conn)
                if latest is not None and latest.content_hash == content_hash:
                    return Appended(latest, created=False)
                if not isinstance(parent, AnyParent) and (None if latest is None else latest.id) != parent:
                    raise StaleParent(parent, None if latest is None else latest.info)
                values = {
                    "parent_id": None if latest is None else latest.id,
                    "created_at": now,
                    "author": author,
                    "comment": comment,
                    "content_hash": content_hash,
                    "canonical_json": canonical_json,
                    "yaml_text": yaml_text,
                }
                inserted = conn.execute(insert(mapping_revisions).values(values))
                new_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
                return Appended(Revision(_info_from(new_id, values), canonical_json, yaml_text), created=True)
        except IntegrityError:
            # Another writer appended after the same parent first; read its revision and try again.
            continue
    raise TransientError(
        f"could not store the mapping revision: {_APPEND_ATTEMPTS} other writers appended revisions meanwhile; "
        "run the command again"
    )


def _info_from(new_id: int, values: dict[str, Any]) -> RevisionInfo:
    return RevisionInfo(
        new_id, values["parent_id"], values["created_at"], values["author"], values["comment"], values["content_hash"]
    )


# --------------------------------------------------------------------------- entry results


def entries_to_map(
    conn: Connection,
    revision_id: int,
    *,
    closed_through: date | None = None,
    after_id: int = 0,
    limit: int = 2000,
) -> list[Any]:
    """Live entries whose stored result is missing, outdated by an edit, or made by another revision.

    Entries dated on or before ``closed_through`` keep the result of the revision that mapped them
    (a closed period is never re-mapped silently); an entry there that was never mapped, or whose
    content changed, is still mapped.
    """
    outdated = entries.c.mapping_hash.is_(None) | entries.c.mapping_revision.is_(None)
    other_revision = entries.c.mapping_revision != revision_id
    if closed_through is not None:
        other_revision = other_revision & (entries.c.work_date > closed_through)
    return list(
        conn.execute(
            select(entries.c.id, entries.c.payload, entries.c.content_hash)
            .where(entries.c.id > after_id, entries.c.deleted_at.is_(None), outdated | other_revision)
            .order_by(entries.c.id)
            .limit(limit)
        ).all()
    )


def store_mappings(conn: Connection, revision_id: int, mapping_hash: str, results: Sequence[dict[str, Any]]) -> int:
    """Write mapping results (dicts with ``id`` and the ledger's MAPPING_COLUMNS) made by one revision."""
    if not results:
        return 0
    conn.execute(
        update(entries)
        .where(entries.c.id == bindparam("b_id"))
        .values(
            {name: bindparam(f"b_{name}") for name in MAPPING_COLUMNS}
            | {"mapping_hash": mapping_hash, "mapping_revision": revision_id}
        ),
        [{"b_id": r["id"]} | {f"b_{name}": r[name] for name in MAPPING_COLUMNS} for r in results],
    )
    return len(results)
