"""A run's owner (the process executing it) and a trigger claim's status, where missing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if "owner" not in _columns("resources"):
        with op.batch_alter_table("resources") as batch:
            batch.add_column(sa.Column("owner", sa.String(256), nullable=True))
    if "status" not in _columns("trigger_imports"):
        # Claims recorded before statuses existed were all followed by their run.
        with op.batch_alter_table("trigger_imports") as batch:
            batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="started"))


def downgrade() -> None:
    with op.batch_alter_table("trigger_imports") as batch:
        batch.drop_column("status")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("owner")
