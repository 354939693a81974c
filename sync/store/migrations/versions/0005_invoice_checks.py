"""invoice checks: each check of contractors' bills against the ledger, and its findings"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contractor", sa.String(length=256), nullable=True),
        sa.Column("bills_checked", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_checks")),
    )
    op.create_index("ix_invoice_checks_period", "invoice_checks", ["period"], unique=False)
    op.create_table(
        "invoice_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("contractor", sa.String(length=256), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=True),
        sa.Column("bill", sa.String(length=300), nullable=True),
        sa.Column("billed_seconds", sa.Integer(), nullable=False),
        sa.Column("logged_seconds", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["invoice_checks.id"],
            name=op.f("fk_invoice_findings_check_id_invoice_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_findings")),
    )
    op.create_index("ix_invoice_findings_check_id", "invoice_findings", ["check_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_invoice_findings_check_id", table_name="invoice_findings")
    op.drop_table("invoice_findings")
    op.drop_index("ix_invoice_checks_period", table_name="invoice_checks")
    op.drop_table("invoice_checks")
