"""Bringing a database to the current schema with Alembic, the one migration path for SQLite and
PostgreSQL alike.

A database that airlock wrote before it used Alembic (no ``alembic_version`` table) upgrades in
place too: the first revisions create only the tables that are missing and add only the columns
that are missing, so they fit every earlier layout.
"""

from __future__ import annotations

import functools
import threading
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from airlock.errors import AirlockError

_MIGRATIONS = Path(__file__).with_name("migrations")
# Engines already brought to head in this process (by identity: two in-memory SQLite engines share
# a URL but not a database).
_done: weakref.WeakSet[Engine] = weakref.WeakSet()
_lock = threading.Lock()


def _config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


@functools.cache
def head_revision() -> str:
    """The revision this release's code expects."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:  # alembic's answer for a revision its scripts do not have
        return False


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one written before Alembic."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate the database to this release's schema (a no-op when it is current); returns the revision.

    Raises:
        AirlockError: the database's revision is unknown to this release (written by a newer airlock).
    """
    current = current_revision(engine)
    if current is not None and not _known(current):
        raise AirlockError(
            f"the database is at schema revision {current}, which this airlock does not know: it was written by "
            "a newer release; upgrade airlock"
        )
    if current != head_revision():
        command.upgrade(_config(engine), "head")
    return head_revision()


def ensure_schema(engine: Engine) -> None:
    """:func:`upgrade` once per engine and process (the stores call it when they open).

    Raises:
        AirlockError: as :func:`upgrade`.
    """
    with _lock:
        if engine in _done:
            return
        upgrade(engine)
        _done.add(engine)
