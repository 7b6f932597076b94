"""Bringing a database to the current schema with Alembic, the one migration path for SQLite and
PostgreSQL alike.

A database that airlock wrote before it used Alembic (no ``alembic_version`` table) upgrades in
place too: the first revisions create only the tables that are missing and add only the columns
that are missing, so they fit every earlier layout.

Processes that open one database at once (API replicas, workers, a CLI beside a server) migrate
it one at a time: :func:`upgrade` holds a lock of the database's own while it reads the revision
and migrates, a PostgreSQL advisory lock or, for a SQLite file, an exclusive lock on a file beside
it. The second process then finds the schema current and changes nothing.

Alembic is imported only to migrate or to report: a process whose database is already at
:data:`HEAD` (every CLI command after the first) finds that with one SELECT, which saves a command
the 0.07 s of CPU that importing Alembic and reading its scripts takes.
"""

from __future__ import annotations

import fcntl
import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from airlock.errors import AirlockError

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).with_name("migrations")
# Engines already brought to head in this process (by identity: two in-memory SQLite engines share
# a URL but not a database).
_done: weakref.WeakSet[Engine] = weakref.WeakSet()
_lock = threading.Lock()
# pg_advisory_lock's key for airlock's migrations: any fixed 64-bit number, the same in every release.
MIGRATION_LOCK_KEY = 0x6169726C6F636B  # "airlock"
# The newest revision in migrations/versions, written here so that a current database is recognised
# without Alembic; tests/db/test_migrations.py fails until a new revision is named here too.
HEAD = "0005"


def _config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


@functools.cache
def head_revision() -> str:
    """The revision this release's code expects, as Alembic's scripts say (:data:`HEAD` is the same)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:  # alembic's answer for a revision its scripts do not have
        return False


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one written before Alembic."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate the database to this release's schema (a no-op when it is current); returns the revision.

    Raises:
        AirlockError: the database's revision is unknown to this release (written by a newer airlock).
    """
    with migration_lock(engine):
        current = current_revision(engine)
        if current is not None and not _known(current):
            raise AirlockError(
                f"the database is at schema revision {current}, which this airlock does not know: it was written "
                "by a newer release; upgrade airlock"
            )
        if current != head_revision():
            from alembic import command

            command.upgrade(_config(engine), "head")
    return head_revision()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock (blocking until other processes release it): a
    PostgreSQL session advisory lock, or an exclusive ``flock`` on ``<file>.migrate-lock`` beside a
    SQLite file. An in-memory SQLite database is this process's alone and needs none."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _recorded_revision(engine: Engine) -> str | None:
    """What ``alembic_version`` holds when it holds exactly one revision, else None (no table, no
    row, or several: Alembic itself then decides). One SELECT, no Alembic."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


def ensure_schema(engine: Engine) -> None:
    """Once per engine and process (the stores call it when they open): a SQLite database, the
    embedded default, is migrated to this release's schema (:func:`upgrade`); a PostgreSQL one,
    shared by the processes of a deployment, must already be current: its operator migrates it
    with ``airlock db upgrade`` before starting (or after upgrading) them.

    Raises:
        AirlockError: as :func:`upgrade`; a PostgreSQL database that is not at this release's
            revision (naming both, and the command that migrates it).
    """
    with _lock:
        if engine in _done:
            return
        if _recorded_revision(engine) == HEAD:  # current: nothing to migrate or report
            _done.add(engine)
            return
        if engine.dialect.name == "postgresql":
            current = current_revision(engine)
            if current != head_revision():
                where = engine.url.render_as_string(hide_password=True)
                raise AirlockError(
                    f"the database {where} is at schema revision {current or 'none (empty)'}, and this airlock "
                    f"needs {head_revision()}: run `airlock db upgrade` with this AIRLOCK_DATABASE_URL first "
                    "(the processes of a PostgreSQL deployment never migrate it by themselves)"
                )
        else:
            upgrade(engine)
        _done.add(engine)
