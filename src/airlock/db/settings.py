"""The deployment's shared settings (table ``deployment_settings``): first writer wins.

Every process of a deployment opens the same database; a setting is decided once, by whichever
process first needs it, and read by all the others. Process-local files (``AIRLOCK_HOME``) may
seed a setting (a home from before the table existed), never override it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from airlock.db.migrate import ensure_schema
from airlock.db.schema import deployment_settings


def setting(engine: Engine, name: str, default: Callable[[], str]) -> str:
    """The value of ``name``; when it has none yet, ``default()`` is stored (unless another
    process stored one first, which is then returned). Raises AirlockError (schema not current)."""
    ensure_schema(engine)
    table = deployment_settings
    with engine.connect() as conn:
        found = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
    if found is not None:
        return str(found)
    value = default()
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(name=name, value=value))
    except IntegrityError:  # another process decided it first: theirs counts
        with engine.connect() as conn:
            return str(conn.execute(select(table.c.value).where(table.c.name == name)).scalar_one())
    return value
