"""Alembic's environment: migrations run on the engine airlock hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from airlock.db.job_queue import include_name
from airlock.db.schema import metadata


def _run() -> None:
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("airlock's migrations run through airlock.db.migrate, which supplies the engine")
    with engine.begin() as conn:
        # render_as_batch: SQLite alters tables by copying them; PostgreSQL alters in place.
        # include_name: procrastinate's tables (revision 0003) are not airlock's metadata's.
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True, include_name=include_name)
        context.run_migrations()


_run()
