"""``airlock db upgrade|current``: the database's schema revision (Alembic), shown and brought current.

The embedded default (SQLite in ``AIRLOCK_HOME``) is migrated whenever airlock opens it; these
commands are for a database named by ``AIRLOCK_DATABASE_URL`` that several processes share.
"""

from __future__ import annotations

from typing import Any

import typer

from airlock.cli.kernel import command

db_app = typer.Typer(
    rich_markup_mode=None,
    help="The control plane's database: AIRLOCK_DATABASE_URL, else AIRLOCK_HOME/airlock.db.",
    no_args_is_help=True,
)


@command(db_app, "current")
def current() -> Any:
    """Show the database's schema revision and the one this release expects.

    Example:

        airlock db current --query revision -o tsv
    """
    from airlock.db.migrate import current_revision, head_revision
    from airlock.wiring import database_engine

    revision = current_revision(database_engine())
    return {"revision": revision, "head": head_revision(), "current": revision == head_revision()}


@command(db_app, "upgrade")
def upgrade() -> Any:
    """Migrate the database to this release's schema (nothing happens when it is current).

    Raises AirlockError (exit 1) for a database written by a newer airlock.

    Example:

        AIRLOCK_DATABASE_URL=sqlite:////srv/airlock/airlock.db airlock db upgrade
    """
    from airlock.db import migrate
    from airlock.wiring import database_engine

    engine = database_engine()
    before = migrate.current_revision(engine)
    return {"from": before, "revision": migrate.upgrade(engine)}
