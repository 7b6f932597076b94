"""``airlock db upgrade|current``: the database's schema revision (Alembic), shown and brought current.

The embedded default (SQLite in ``AIRLOCK_HOME``) is migrated whenever airlock opens it; these
commands are for a database named by ``AIRLOCK_DATABASE_URL`` that several processes share.
"""

from __future__ import annotations

import typer

from airlock.cli.common import OutputOpt, QueryOpt, emit
from airlock.cli.output import check_output

db_app = typer.Typer(
    rich_markup_mode=None,
    help="The control plane's database: AIRLOCK_DATABASE_URL, else AIRLOCK_HOME/airlock.db.",
    no_args_is_help=True,
)


@db_app.command("current")
def current(output: OutputOpt = "json", query: QueryOpt = None) -> None:
    """Show the database's schema revision and the one this release expects.

    Example:

        airlock db current --query revision -o tsv
    """
    check_output(output, query)
    from airlock.db.migrate import current_revision, head_revision
    from airlock.wiring import database_engine

    revision = current_revision(database_engine())
    emit({"revision": revision, "head": head_revision(), "current": revision == head_revision()}, output, query)


@db_app.command("upgrade")
def upgrade(output: OutputOpt = "json", query: QueryOpt = None) -> None:
    """Migrate the database to this release's schema (nothing happens when it is current).

    Example:

        AIRLOCK_DATABASE_URL=sqlite:////srv/airlock/airlock.db airlock db upgrade
    """
    check_output(output, query)
    from airlock.db import migrate
    from airlock.wiring import database_engine

    engine = database_engine()
    before = migrate.current_revision(engine)
    after = migrate.upgrade(engine)
    emit({"from": before, "revision": after}, output, query)
