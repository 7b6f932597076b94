"""The SQLAlchemy adapter of the audit trail (:class:`SqlAuditLog`), on SQLite or PostgreSQL.

Appends are serialized so that the chain never forks, however many processes append at once:

- On PostgreSQL each append takes ``pg_advisory_xact_lock(AUDIT_LOCK_KEY)`` in its transaction,
  then reads the head and inserts after it; the lock is released at commit, so the next appender
  reads the new head.
- On SQLite the database has one writer at a time; a process's appends also go one at a time
  (a lock), and an appender whose read of the head went stale (another process wrote meanwhile)
  fails its insert and tries again.
- Whatever the database, ``seq`` is the primary key and an append writes the head's ``seq`` + 1
  with the head's hash as ``prev_hash``, read in the same transaction: two entries can never
  follow the same one. An insert that loses that race is retried from a fresh head.

Only :class:`airlock.pipelines.services.audit.AuditService` holds one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from airlock.db.migrate import ensure_schema
from airlock.db.schema import audit_entries
from airlock.errors import AirlockError
from airlock.pipelines.audit_chain import GENESIS, AuditEntry

# pg_advisory_xact_lock's key for audit appends: any fixed 64-bit number, the same in every release.
AUDIT_LOCK_KEY = 0x61756469745F6C  # "audit_l"
_TRIES = 20
PAGE = 500  # rows read per query when iterating the whole chain


# The table's columns are the entry's fields, by the same names; two of them hold JSON.
_JSON_COLUMNS = ("resources", "artifacts")


def _row_entry(row: Any) -> AuditEntry:
    values = dict(row._mapping)
    return AuditEntry(**{**values, **{k: json.loads(values[k]) for k in _JSON_COLUMNS}})


def _row_values(entry: AuditEntry) -> dict[str, Any]:
    return {**entry.__dict__, **{k: json.dumps(getattr(entry, k)) for k in _JSON_COLUMNS}}


class SqlAuditLog:
    """The audit entries of one database. Thread-safe; each append is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        """Raises AirlockError: the database was written by a newer airlock."""
        self.engine = engine
        ensure_schema(engine)
        self._lock = threading.Lock()

    def append(self, draft: AuditEntry) -> AuditEntry:
        """Append ``draft`` (its ``seq``, ``prev_hash`` and ``hash`` are set here) after the head.

        Raises:
            AirlockError: the head kept moving under this append (more than 20 tries).
            DBAPIError: the database failed.
        """
        with self._lock:
            for _ in range(_TRIES):
                try:
                    return self._append(draft)
                except (IntegrityError, OperationalError) as exc:
                    if isinstance(exc, OperationalError) and "locked" not in str(exc).lower():
                        raise
                    continue  # another appender took that place; read the new head
        raise AirlockError("audit trail: could not append an entry (the chain's head kept moving); try again")

    def _append(self, draft: AuditEntry) -> AuditEntry:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
            head = conn.execute(
                select(audit_entries.c.seq, audit_entries.c.hash).order_by(audit_entries.c.seq.desc()).limit(1)
            ).first()
            entry = AuditEntry(
                **{**draft.__dict__, "seq": head.seq + 1 if head else 1, "prev_hash": head.hash if head else GENESIS}
            ).sealed()
            conn.execute(insert(audit_entries).values(**_row_values(entry)))
        return entry

    def page(
        self,
        *,
        after: int = 0,
        limit: int = PAGE,
        since: str | None = None,
        until: str | None = None,
        action: str | None = None,
        before: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Up to ``limit`` entries with ``seq`` > ``after`` (and < ``before``, if given), in order;
        ``since``/``until`` compare ISO 8601 UTC times (as stored), ``action`` an exact action or a
        prefix ending in ``*``. ``newest_first``: the newest ``limit`` of them, newest first."""
        query = select(audit_entries).where(audit_entries.c.seq > after)
        if before is not None:
            query = query.where(audit_entries.c.seq < before)
        if since:
            query = query.where(audit_entries.c.time >= since)
        if until:
            query = query.where(audit_entries.c.time < until)
        if action and action.endswith("*"):
            query = query.where(audit_entries.c.action.startswith(action[:-1], autoescape=True))
        elif action:
            query = query.where(audit_entries.c.action == action)
        with self.engine.connect() as conn:
            order = audit_entries.c.seq.desc() if newest_first else audit_entries.c.seq
            rows = conn.execute(query.order_by(order).limit(limit)).all()
        return [_row_entry(r) for r in rows]

    def every(self) -> Iterator[AuditEntry]:
        """Every entry in ``seq`` order, read :data:`PAGE` at a time."""
        after = 0
        while True:
            rows = self.page(after=after)
            yield from rows
            if len(rows) < PAGE:
                return
            after = rows[-1].seq
