"""delivery: periods and their history, delivered lines and the outbox; run heartbeats"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "periods",
        sa.Column("label", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("label", name=op.f("pk_periods")),
    )
    op.create_table(
        "period_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("label", sa.String(length=7), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_period_events")),
    )
    op.create_index("ix_period_events_label", "period_events", ["label"], unique=False)
    op.create_table(
        "delivered_lines",
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("line_key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("line", sa.JSON(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("sync_token", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", "line_key", name=op.f("pk_delivered_lines")),
    )
    op.create_index("ix_delivered_lines_sink_period", "delivered_lines", ["sink", "period"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=36), nullable=False),
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("line_key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("line", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("target_remote_id", sa.String(length=255), nullable=True),
        sa.Column("target_sync_token", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("sync_token", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_outbox_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
        sa.UniqueConstraint("sink", "line_key", "version", name="uq_outbox_line_version"),
    )
    op.create_index("ix_outbox_sink_state", "outbox", ["sink", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_sink_state", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_delivered_lines_sink_period", table_name="delivered_lines")
    op.drop_table("delivered_lines")
    op.drop_index("ix_period_events_label", table_name="period_events")
    op.drop_table("period_events")
    op.drop_table("periods")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
