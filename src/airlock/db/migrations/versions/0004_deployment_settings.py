"""The deployment's settings that every process shares (tenant id, the vault key's fingerprint).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "deployment_settings" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "deployment_settings",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("deployment_settings")
