"""mapping revisions: append-only mapping documents and the revision that mapped each entry"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mapping_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=256), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("canonical_json", sa.Text(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["mapping_revisions.id"], name=op.f("fk_mapping_revisions_parent_id_mapping_revisions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mapping_revisions")),
        sa.UniqueConstraint("parent_id", name=op.f("uq_mapping_revisions_parent_id")),
    )
    with op.batch_alter_table("mapping_revisions", schema=None) as batch_op:
        batch_op.create_index("ix_mapping_revisions_content_hash", ["content_hash"], unique=False)

    # SQLite cannot add a foreign key to an existing table: batch mode rebuilds `entries` there
    # (a one-off copy); PostgreSQL gets plain ALTER TABLE statements.
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mapping_revision", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_entries_mapping_revision_mapping_revisions"), "mapping_revisions", ["mapping_revision"], ["id"]
        )
        batch_op.create_index("ix_entries_mapping_revision", ["mapping_revision"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("ix_entries_mapping_revision")
        batch_op.drop_constraint(op.f("fk_entries_mapping_revision_mapping_revisions"), type_="foreignkey")
        batch_op.drop_column("mapping_revision")
    with op.batch_alter_table("mapping_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_mapping_revisions_content_hash")
    op.drop_table("mapping_revisions")
