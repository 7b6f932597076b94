"""The audit trail: a hash chain of every state-changing or data-moving action.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "audit_entries" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("artifacts", sa.Text, nullable=False),
        sa.Column("catalog_digest", sa.String(71), nullable=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(71), nullable=False),
        sa.Column("hash", sa.String(71), nullable=False),
    )
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])


def downgrade() -> None:
    op.drop_table("audit_entries")
