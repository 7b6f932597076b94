"""Alembic's environment: migrations run on the engine airlock hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from airlock.db.schema import metadata


def _run() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("airlock's migrations run through airlock.db.migrate, which supplies the engine")
    with engine.begin() as conn:
        # render_as_batch: SQLite alters tables by copying them; PostgreSQL alters in place.
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()


_run()
