"""SQLAlchemy Core tables of the state store (the Alembic migrations create exactly these)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class RawJSON(str):
    """JSON text that is already encoded (a TimeEntry's canonical JSON): written as is."""

    __slots__ = ()


class PayloadJSON(TypeDecorator[Any]):
    """A JSON column that also takes ``RawJSON`` text without encoding it a second time.

    Entries carry the canonical JSON their content hash was taken over; writing that text into the
    entry and its version saves two encodings per entry on the ingest path. Reads are plain JSON.
    """

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        encode = self.impl_instance.bind_processor(dialect)
        if dialect.name != "sqlite":
            # Other drivers wrap the value for their own JSON adapters: hand them the object.
            def decoded(value: Any) -> Any:
                value = json.loads(value) if isinstance(value, RawJSON) else value
                return encode(value) if encode else value

            return decoded

        def passthrough(value: Any) -> Any:
            if isinstance(value, RawJSON):
                return str(value)
            return encode(value) if encode else value

        return passthrough


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # running | ok | partial | failed
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("counts", JSON, nullable=False, default=dict),
    Column("errors", JSON, nullable=False, default=list),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("account", String(128), primary_key=True),
    # Every work date up to and including this one was completely scanned at least once.
    Column("scanned_through", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("account", String(128), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("work_date", Date, nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("person_id", String(128), nullable=False),
    Column("person_name", String(256), nullable=False),
    Column("payload", PayloadJSON, nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Result of the mapping document whose hash is mapping_hash (NULL = not mapped yet or changed).
    Column("mapping_hash", String(64)),
    Column("code", String(128)),
    Column("rule_id", String(128)),
    Column("contractor", String(256)),
    Column("client", String(256)),
    Column("cost_center", String(128)),
    Column("billable", Boolean),
    Column("unmapped_reason", String(64)),
    Column("unmapped_detail", Text),
    UniqueConstraint("source", "account", "external_id", name="uq_entries_key"),
    Index("ix_entries_scope_date", "source", "account", "work_date"),
    Index("ix_entries_work_date", "work_date"),
    Index("ix_entries_mapping_hash", "mapping_hash"),
)

entry_versions = Table(
    "entry_versions",
    metadata,
    Column("entry_id", ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("change", String(16), nullable=False),  # created | updated | deleted | restored
    Column("content_hash", String(64), nullable=False),
    Column("work_date", Date, nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("payload", PayloadJSON, nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# --------------------------------------------------------------------------- mapping revisions

# Append-only: every mapping document ever applied, who applied it, when and why. The current
# revision is the one with the highest id; nothing is ever updated or deleted.
mapping_revisions = Table(
    "mapping_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The revision this one replaced. UNIQUE keeps history linear: when two workers apply at the
    # same moment, one insert fails and that worker adopts the other's revision instead.
    Column("parent_id", Integer, ForeignKey("mapping_revisions.id"), unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("author", String(256), nullable=False),
    Column("comment", Text, nullable=False),
    # sha256 of canonical_json; equal to entries.mapping_hash of the entries this revision mapped.
    Column("content_hash", String(64), nullable=False),
    Column("canonical_json", Text, nullable=False),
    Column("yaml_text", Text, nullable=False),
    Index("ix_mapping_revisions_content_hash", "content_hash"),
)

# Which revision produced an entry's stored mapping (NULL = not mapped under a stored revision yet).
# Appended here rather than written into `entries` above so the 0001 table definition stays as it was.
entries.append_column(Column("mapping_revision", Integer, ForeignKey("mapping_revisions.id")))
Index("ix_entries_mapping_revision", entries.c.mapping_revision)
