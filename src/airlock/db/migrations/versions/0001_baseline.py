"""The tables of airlock's first releases, created where they are missing.

Databases from before Alembic already hold some or all of them: this revision creates only the
missing ones, in their first form (later columns come in later revisions), so that every earlier
database and an empty one reach the same schema.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return name not in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    if _missing("resources"):
        op.create_table(
            "resources",
            sa.Column("id", sa.String(512), primary_key=True),
            sa.Column("type", sa.String(128), nullable=False),
            sa.Column("parent", sa.String(512), nullable=True),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("resource_group", sa.String(90), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("seq", sa.Integer, nullable=False),
            sa.Column("state", sa.String(32), nullable=True),
            sa.Column("created_at", tz, nullable=False),
            sa.Column("updated_at", tz, nullable=False),
        )
        for column in ("type", "parent", "resource_group", "state"):
            op.create_index(f"ix_resources_{column}", "resources", [column])
    if _missing("trigger_imports"):
        op.create_table(
            "trigger_imports",
            sa.Column("pipeline_id", sa.String(512), primary_key=True),
            sa.Column("blob", sa.String(1024), primary_key=True),
            sa.Column("version", sa.String(256), primary_key=True),
            sa.Column("run_id", sa.String(512), nullable=False),
            sa.Column("created_at", tz, nullable=False),
        )
    if _missing("api_tokens"):
        op.create_table(
            "api_tokens",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("role", sa.String(64), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("created_at", tz, nullable=False),
        )
    if _missing("embedded_vaults"):
        op.create_table(
            "embedded_vaults",
            sa.Column("name", sa.String(24), primary_key=True),
            sa.Column("resource_group", sa.String(90), nullable=False),
            sa.Column("location", sa.String(64), nullable=False),
            sa.Column("tenant_id", sa.String(36), nullable=False),
            sa.Column("policies", sa.Text, nullable=False),
            sa.Column("created_at", tz, nullable=False),
        )
    if _missing("embedded_vault_secrets"):
        op.create_table(
            "embedded_vault_secrets",
            sa.Column("vault", sa.String(24), primary_key=True),
            sa.Column("name", sa.String(127), primary_key=True),
            sa.Column("version", sa.String(32), primary_key=True),
            sa.Column("ciphertext", sa.Text, nullable=False),
            sa.Column("content_type", sa.String(255), nullable=True),
            sa.Column("created_at", tz, nullable=False),
        )


def downgrade() -> None:
    for table in ("embedded_vault_secrets", "embedded_vaults", "api_tokens", "trigger_imports", "resources"):
        op.drop_table(table)
