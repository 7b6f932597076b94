"""Persistence of ARM resources (registries, identities, pipelines, runs) and trigger bookkeeping.

Resources are stored as their JSON documents keyed by ARM id (lower-cased, as ARM compares ids
case-insensitively), through SQLAlchemy so that another database can be named by URL later
(``AIRLOCK_DATABASE_URL``). The store holds no business rules; :mod:`airlock.pipelines.service` does.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from airlock.db.migrate import ensure_schema
from airlock.db.schema import resources, trigger_imports

# The tables are airlock.db.schema's; Alembic (airlock.db.migrate) creates and migrates them.


def process_token() -> str:
    """Identifies this process across PID reuse: host, pid and the process's start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


# How long a run of another machine (a database shared by several servers) counts as alive
# without a heartbeat; its owner refreshes ``updated_at`` every HEARTBEAT seconds while it runs.
LEASE = 300.0
HEARTBEAT = 30.0


def process_alive(token: str | None, updated_at: datetime | None = None) -> bool:
    """Whether the process named by ``token`` may still run its run.

    A process of this machine is checked directly (pid and start time); one of another machine is
    taken to be alive while its heartbeat (``updated_at``) is younger than LEASE.
    """
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname():
        if updated_at is None:
            return True
        if updated_at.tzinfo is None:
            updated_at = updated_at.replace(tzinfo=UTC)
        return (datetime.now(UTC) - updated_at).total_seconds() < LEASE
    if not pid_text.isdigit():
        return False
    return _start_time(int(pid_text)) == start


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, starttime in clock ticks since boot


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout for the server's threads."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class _Keep:
    """Sentinel: leave a column as it is."""


KEEP = _Keep()


def _owner_column(owner: str | _Keep | None) -> dict[str, str | None]:
    return {} if isinstance(owner, _Keep) else {"owner": owner}


class ResourceStore:
    """CRUD of resource documents. Thread-safe; each call is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        """Opens the store on ``engine``, migrating its database to this release's schema first.

        Raises:
            AirlockError: the database was written by a newer airlock.
        """
        self.engine = engine
        ensure_schema(engine)
        self._seq_lock = threading.Lock()

    def get(self, resource_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(resources.c.body).where(resources.c.id == resource_id.lower())).first()
        return json.loads(row.body) if row else None

    def put(
        self,
        resource_id: str,
        body: dict[str, Any],
        *,
        type_: str,
        resource_group: str,
        parent: str | None = None,
        state: str | None = None,
        owner: str | _Keep | None = KEEP,
    ) -> None:
        """Insert or replace the document (creation order is kept on replace; ``owner`` is kept unless given)."""
        now = datetime.now(UTC)
        key = resource_id.lower()
        payload = json.dumps(body)
        with self._seq_lock, self.engine.begin() as conn:
            exists = conn.execute(select(resources.c.seq).where(resources.c.id == key)).first()
            if exists:
                conn.execute(
                    update(resources)
                    .where(resources.c.id == key)
                    .values(body=payload, state=state, updated_at=now, **_owner_column(owner))
                )
            else:
                seq = conn.execute(select(resources.c.seq).order_by(resources.c.seq.desc()).limit(1)).scalar() or 0
                conn.execute(
                    insert(resources).values(
                        id=key,
                        type=type_,
                        parent=parent.lower() if parent else None,
                        name=body.get("name", ""),
                        resource_group=resource_group,
                        body=payload,
                        seq=seq + 1,
                        state=state,
                        owner=None if isinstance(owner, _Keep) else owner,
                        created_at=now,
                        updated_at=now,
                    )
                )

    def delete(self, resource_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(resources).where(resources.c.id == resource_id.lower())).rowcount > 0

    def find(
        self, type_: str, *, parent: str | None = None, resource_group: str | None = None, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """Documents of ``type_``; ``prefix`` (an ARM id prefix, any case) scopes to a subscription/group."""
        query = select(resources.c.body).where(resources.c.type == type_)
        if parent is not None:
            query = query.where(resources.c.parent == parent.lower())
        if resource_group is not None:
            query = query.where(func.lower(resources.c.resource_group) == resource_group.lower())
        if prefix is not None:
            query = query.where(resources.c.id.startswith(prefix.lower().rstrip("/") + "/", autoescape=True))
        with self.engine.connect() as conn:
            return [json.loads(r.body) for r in conn.execute(query.order_by(resources.c.seq))]

    def state_of(self, resource_id: str) -> tuple[str | None, str | None, datetime | None]:
        """(state, owner, updated_at) of a resource; all None when it does not exist."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(resources.c.state, resources.c.owner, resources.c.updated_at).where(
                    resources.c.id == resource_id.lower()
                )
            ).first()
        return (row.state, row.owner, row.updated_at) if row else (None, None, None)

    def touch(self, resource_ids: list[str]) -> None:
        """Refresh ``updated_at`` (the heartbeat of runs this process executes)."""
        if not resource_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(resources)
                .where(resources.c.id.in_([r.lower() for r in resource_ids]))
                .values(updated_at=datetime.now(UTC))
            )

    def ids_in_state(self, type_: str, state: str) -> list[tuple[str, str | None, datetime | None]]:
        """(id, owner, updated_at) of every resource of ``type_`` in ``state``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.id, resources.c.owner, resources.c.updated_at).where(
                    and_(resources.c.type == type_, resources.c.state == state)
                )
            )
            return [(r.id, r.owner, r.updated_at) for r in rows]

    def children(self, parent: str) -> Iterator[str]:
        with self.engine.connect() as conn:
            yield from (r.id for r in conn.execute(select(resources.c.id).where(resources.c.parent == parent.lower())))

    # -- source trigger bookkeeping --------------------------------------------------------------

    def trigger_record(self, pipeline_id: str, blob: str, version: str) -> tuple[str, str, datetime] | None:
        """(run id, status, claimed at) recorded for this blob version, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(trigger_imports.c.run_id, trigger_imports.c.status, trigger_imports.c.created_at).where(
                    self._trigger_key(pipeline_id, blob, version)
                )
            ).first()
        return (row.run_id, row.status, row.created_at) if row else None

    @staticmethod
    def _trigger_key(pipeline_id: str, blob: str, version: str) -> Any:
        return and_(
            trigger_imports.c.pipeline_id == pipeline_id.lower(),
            trigger_imports.c.blob == blob,
            trigger_imports.c.version == version,
        )

    def claim_trigger(
        self, pipeline_id: str, blob: str, version: str, run_id: str, *, replacing: tuple[str, str, datetime] | None
    ) -> bool:
        """Claim a blob version for ``run_id`` (status pending). Exactly one claimant wins.

        With ``replacing`` (the record as read by :meth:`trigger_record`) the claim takes over that
        record only if nobody changed it since (compare-and-swap on status and claim time); without
        it, the record must not exist. Returns False when someone else claimed it first.
        """
        key = self._trigger_key(pipeline_id, blob, version)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            if replacing is not None:
                old_run, old_status, old_at = replacing
                done = conn.execute(
                    update(trigger_imports)
                    .where(
                        and_(
                            key,
                            trigger_imports.c.run_id == old_run,
                            trigger_imports.c.status == old_status,
                            trigger_imports.c.created_at == old_at,
                        )
                    )
                    .values(run_id=run_id, status="pending", created_at=now)
                )
                return done.rowcount == 1
            try:
                conn.execute(
                    insert(trigger_imports).values(
                        pipeline_id=pipeline_id.lower(),
                        blob=blob,
                        version=version,
                        run_id=run_id,
                        status="pending",
                        created_at=now,
                    )
                )
            except IntegrityError:
                return False
            return True

    def mark_trigger_started(self, pipeline_id: str, blob: str, version: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(trigger_imports)
                .where(
                    and_(
                        trigger_imports.c.pipeline_id == pipeline_id.lower(),
                        trigger_imports.c.blob == blob,
                        trigger_imports.c.version == version,
                    )
                )
                .values(status="started")
            )
