"""The scale-out mode's job queue: procrastinate's schema, on PostgreSQL only, where it is missing.

SQLite (the embedded mode, which runs its runs on its own threads) gets nothing. A PostgreSQL
database whose queue was already set up (by hand, or before this revision existed) keeps it as it is.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from airlock.db import job_queue

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    job_queue.apply_schema(op.get_bind())


def downgrade() -> None:
    job_queue.drop_schema(op.get_bind())
