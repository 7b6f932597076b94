"""procrastinate's schema (the scale-out mode's job queue) inside airlock's one migration path.

procrastinate keeps its jobs, workers and events in tables, types and functions named
``procrastinate_*``, in the same PostgreSQL database and schema as airlock's tables, so that a run's
job is inserted in the transaction that records the run. Alembic applies that schema (revision
0003, PostgreSQL only: the embedded SQLite mode has no queue). airlock's :data:`~airlock.db.schema.metadata`
does not declare those objects, so schema comparisons leave them out (:func:`include_name`).

The schema is procrastinate's own ``schema.sql`` of the installed release (pinned to one minor in
pyproject.toml). A procrastinate upgrade that ships files in its ``sql/migrations/`` needs an Alembic
revision that applies them, guarded like 0003, before the pin moves.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

PREFIX = "procrastinate_"

# Dropped in this order: tables (their triggers, indexes and row types with them), then the
# functions and the types that remain. starts_with, not LIKE: no '%' for any driver to interpret.
_DROP = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables
             WHERE schemaname = current_schema() AND starts_with(tablename, 'procrastinate_') LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND starts_with(p.proname, 'procrastinate_') LOOP
        EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.signature);
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND starts_with(t.typname, 'procrastinate_')
               AND t.typtype IN ('e', 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END
$$;
"""


def installed(connection: Connection) -> bool:
    """Whether procrastinate's schema is in the database (always False on SQLite)."""
    if connection.dialect.name != "postgresql":
        return False
    return bool(connection.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one())


def apply_schema(connection: Connection) -> bool:
    """Create procrastinate's schema in the connection's transaction where it is missing; True when
    this call created it. A no-op on SQLite, and where the schema already is (a database whose
    queue was set up by ``procrastinate schema --apply``, or migrated before)."""
    if connection.dialect.name != "postgresql" or installed(connection):
        return False
    from procrastinate.schema import SchemaManager  # only the PostgreSQL extra installs it

    # PostgreSQL's DDL is transactional: the schema lands with the revision bump or not at all.
    _script(connection, SchemaManager.get_schema())
    return True


def drop_schema(connection: Connection) -> None:
    """Remove every ``procrastinate_*`` table, function and type (jobs included); a no-op on SQLite."""
    if connection.dialect.name == "postgresql":
        _script(connection, _DROP)


def _script(connection: Connection, sql: str) -> None:
    """Run a multi-statement script in the connection's transaction, through the driver itself: with
    no parameters psycopg reads no placeholder, so the script's own ``%`` reach PostgreSQL as written."""
    connection.connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: airlock's schema is everything but procrastinate's tables."""
    return not (type_ == "table" and name is not None and name.startswith(PREFIX))
