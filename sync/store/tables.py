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

# The columns one mapping result fills in an entry (beside mapping_hash and mapping_revision).
MAPPING_COLUMNS = (
    "code",
    "rule_id",
    "contractor",
    "client",
    "cost_center",
    "billable",
    "unmapped_reason",
    "unmapped_detail",
)

# --------------------------------------------------------------------------- OAuth connections

# One row per connected accounting company (QuickBooks realm, Xero tenant). Tokens are stored
# encrypted with HOURBRIDGE_TOKEN_KEY; ``generation`` grows with every rotation so two refreshers
# can never both write (compare-and-swap), and ``previous_refresh_token`` keeps the token just
# replaced, for the vendor's grace period after a refresh whose answer was lost.
oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("account", String(128), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("refresh_token", Text, nullable=False),
    Column("previous_refresh_token", Text),
    Column("access_token", Text),
    Column("access_expires_at", DateTime(timezone=True)),
    Column("refresh_expires_at", DateTime(timezone=True)),
    Column("scope", Text),
    Column("connected_at", DateTime(timezone=True), nullable=False),
    Column("connected_by", String(256), nullable=False),
    Column("refreshed_at", DateTime(timezone=True)),
    # Set while one process refreshes (a lease): others wait or use the access token they have.
    Column("refreshing_until", DateTime(timezone=True)),
)

# A run touches this as it commits each window and each delivery chunk; a "running" run whose
# heartbeat stopped long ago was killed, and the next run records it as abandoned.
runs.append_column(Column("heartbeat_at", DateTime(timezone=True)))

# --------------------------------------------------------------------------- accounting delivery

# Months whose books are closed. No row = open. A change that lands in a closed month after it
# closed becomes an adjustment line in the first open month after it.
periods = Table(
    "periods",
    metadata,
    Column("label", String(7), primary_key=True),  # YYYY-MM
    Column("status", String(8), nullable=False),  # closed | open
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(256), nullable=False),
)

# Append-only history of closing and reopening (a reopen always carries its reason).
period_events = Table(
    "period_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("label", String(7), nullable=False),
    Column("action", String(8), nullable=False),  # close | reopen
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_period_events_label", "label"),
)

# What each sink holds, line by line, as of the last receipt: the "delivered" side of the diff.
delivered_lines = Table(
    "delivered_lines",
    metadata,
    Column("sink", String(32), primary_key=True),
    Column("line_key", String(255), primary_key=True),
    Column("version", Integer, nullable=False),  # the version whose op produced this state
    Column("content_hash", String(64), nullable=False),
    Column("line", JSON, nullable=False),  # the line as delivered (sync.delivery.lines.line_to_json)
    Column("period", String(7), nullable=False),  # month of the line's work date
    Column("seconds", Integer, nullable=False),
    Column("remote_id", String(255)),
    Column("sync_token", String(64)),
    Column("deleted", Boolean, nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=False),
    Index("ix_delivered_lines_sink_period", "sink", "period"),
)

# Every op ever planned. A row is committed (state "pending") before anything is sent, marked
# "sending" just before the call, and closed by its receipt: "ok" or "failed". "sending" and
# "unknown" rows are looked up at the sink (Sink.find) before anything is sent again.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("idempotency_key", String(36), nullable=False, unique=True),
    Column("sink", String(32), nullable=False),
    Column("line_key", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # create | update | delete
    Column("line", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("target_remote_id", String(255)),  # the record an update or delete changes
    Column("target_sync_token", String(64)),
    Column("state", String(8), nullable=False),  # pending | sending | unknown | ok | failed
    Column("attempts", Integer, nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    Column("remote_id", String(255)),
    Column("sync_token", String(64)),
    Column("error", Text),
    UniqueConstraint("sink", "line_key", "version", name="uq_outbox_line_version"),
    Index("ix_outbox_sink_state", "sink", "state"),
)

# --------------------------------------------------------------------------- invoice check

# One row per `invoices check` (CLI or worker): what was checked and what it found. ``result`` holds
# the contractors' rows (billed, logged, per code and per bill) as ``sync.invoices.store`` writes them.
invoice_checks = Table(
    "invoice_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("period", String(7), nullable=False),  # YYYY-MM
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("contractor", String(256)),  # the one contractor checked; NULL = everyone
    Column("bills_checked", Integer, nullable=False),
    Column("findings", Integer, nullable=False),
    Column("result", JSON, nullable=False),
    Index("ix_invoice_checks_period", "period"),
)

# Each finding of a check, so status and metrics can count them by kind.
invoice_findings = Table(
    "invoice_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_id", Integer, ForeignKey("invoice_checks.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("contractor", String(256), nullable=False),
    Column("code", String(128)),
    Column("bill", String(300)),  # <sink>:<bill id>
    Column("billed_seconds", Integer, nullable=False),
    Column("logged_seconds", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_invoice_findings_check_id", "check_id"),
)

# --------------------------------------------------------------------------- the browser console

# Local admin tokens of `hourbridge console`: only a SHA-256 of each token is kept (a token is 32
# random bytes, so a fast hash is enough; the token itself is printed once and never stored).
console_tokens = Table(
    "console_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(128), nullable=False),
    Column("role", String(8), nullable=False),  # admin | viewer
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# Console sessions, server side: the browser holds a random id whose SHA-256 is the key here, so a
# copy of the database opens no session. A row without a role is a sign-in in progress (OIDC state).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("identity", String(256), nullable=False),
    Column("role", String(8)),  # admin | viewer; NULL while an identity provider sign-in is under way
    Column("method", String(8), nullable=False),  # token | oidc | proxy
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("oidc_state", String(128)),
    Column("oidc_nonce", String(128)),
    # The last request seen (refreshed at most once a minute): the idle timeout counts from here.
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# Token sign-in attempts per client address in the current window (kept here, not in memory, so
# every console process counts against the same limit). A successful sign-in deletes the row.
console_sign_in_attempts = Table(
    "console_sign_in_attempts",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
)
