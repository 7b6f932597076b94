"""The SQLAlchemy adapters: resources (:class:`SqlResourceRepository`) and the source trigger's
ledger of blob versions (:class:`TriggerLedger`), on SQLite or PostgreSQL.

Resources are stored as their JSON documents keyed by ARM id (lower-cased, as ARM compares ids
case-insensitively) and read back into their models (:data:`airlock.pipelines.models.STORED`).
Neither holds business rules; the services (:mod:`airlock.pipelines.services`) do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from airlock.db.migrate import ensure_schema
from airlock.db.schema import resources, trigger_imports
from airlock.pipelines.models import STORED, Resource
from airlock.pipelines.repository import KEEP, Change, Keep, M

# The tables are airlock.db.schema's; Alembic (airlock.db.migrate) creates and migrates them.


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
    if url.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; airlock ships psycopg 3.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _owner_column(owner: str | Keep | None) -> dict[str, str | None]:
    return {} if isinstance(owner, Keep) else {"owner": owner}


def _load(type_: str, body: str) -> Resource:
    return STORED[type_].model_validate(json.loads(body))


class SqlResourceRepository:
    """:class:`airlock.pipelines.repository.ResourceRepository` on SQLAlchemy."""

    def __init__(self, engine: Engine) -> None:
        """Opens the store on ``engine``, migrating its database to this release's schema first.

        Raises:
            AirlockError: the database was written by a newer airlock.
        """
        self.engine = engine
        ensure_schema(engine)
        self._seq_lock = threading.Lock()

    def get(self, resource_id: str, model: type[M]) -> M | None:
        found = self.get_any(resource_id)
        return found if isinstance(found, model) else None

    def get_any(self, resource_id: str) -> Resource | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(resources.c.type, resources.c.body).where(resources.c.id == resource_id.lower())
            ).first()
        return _load(row.type, row.body) if row and row.type in STORED else None

    def put(
        self,
        resource: Resource,
        *,
        state: str | None = None,
        owner: str | Keep | None = KEEP,
        then: Callable[[Any], None] | None = None,
    ) -> None:
        now = datetime.now(UTC)
        key = resource.id.lower()
        payload = json.dumps(resource.document())
        try:
            self._put(key, resource, payload, now, state=state, owner=owner, then=then)
        except IntegrityError:  # another process created it between our look and our insert
            self._put(key, resource, payload, now, state=state, owner=owner, then=then)

    def _put(
        self,
        key: str,
        resource: Resource,
        payload: str,
        now: datetime,
        *,
        state: str | None,
        owner: str | Keep | None,
        then: Callable[[Any], None] | None,
    ) -> None:
        parent = resource.parent_id
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
                        type=resource.TYPE,
                        parent=parent.lower() if parent else None,
                        name=resource.name,
                        resource_group=resource.resource_group,
                        body=payload,
                        seq=seq + 1,
                        state=state,
                        owner=None if isinstance(owner, Keep) else owner,
                        created_at=now,
                        updated_at=now,
                    )
                )
            if then is not None:
                then(conn)

    def delete(self, resource_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(resources).where(resources.c.id == resource_id.lower())).rowcount > 0

    def find(self, model: type[M], *, parent: str | None = None, prefix: str | None = None) -> list[M]:
        query = select(resources.c.body).where(resources.c.type == model.TYPE)
        if parent is not None:
            query = query.where(resources.c.parent == parent.lower())
        if prefix is not None:
            query = query.where(resources.c.id.startswith(prefix.lower().rstrip("/") + "/", autoescape=True))
        with self.engine.connect() as conn:
            return [model.model_validate(json.loads(r.body)) for r in conn.execute(query.order_by(resources.c.seq))]

    def state_of(self, resource_id: str) -> tuple[str | None, str | None, datetime | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(resources.c.state, resources.c.owner, resources.c.updated_at).where(
                    resources.c.id == resource_id.lower()
                )
            ).first()
        return (row.state, row.owner, row.updated_at) if row else (None, None, None)

    def modify(self, resource_id: str, model: type[M], change: Change[M]) -> bool:
        key = resource_id.lower()
        with self._seq_lock, self.engine.begin() as conn:
            if self.engine.dialect.name == "sqlite":
                # Take SQLite's write lock first: a read, then a write, would let another process's
                # write in between (PostgreSQL locks the row with FOR UPDATE instead).
                conn.execute(update(resources).where(resources.c.id == key).values(id=key))
            row = conn.execute(
                select(resources.c.type, resources.c.body, resources.c.state, resources.c.owner)
                .where(resources.c.id == key)
                .with_for_update()
            ).first()
            if row is None or row.type != model.TYPE:
                return False
            changed = change(model.model_validate(json.loads(row.body)), row.state, row.owner)
            if changed is None:
                return False
            resource, state = changed
            conn.execute(
                update(resources)
                .where(resources.c.id == key)
                .values(body=json.dumps(resource.document()), state=state, updated_at=datetime.now(UTC))
            )
        return True

    def claim(self, resource_id: str, *, expect: tuple[str, str | None], state: str, owner: str) -> bool:
        old_state, old_owner = expect
        same_owner = resources.c.owner.is_(None) if old_owner is None else resources.c.owner == old_owner
        with self.engine.begin() as conn:
            done = conn.execute(
                update(resources)
                .where(and_(resources.c.id == resource_id.lower(), resources.c.state == old_state, same_owner))
                .values(state=state, owner=owner, updated_at=datetime.now(UTC))
            )
        return done.rowcount == 1

    def touch(self, resource_ids: list[str]) -> None:
        if not resource_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(resources)
                .where(resources.c.id.in_([r.lower() for r in resource_ids]))
                .values(updated_at=datetime.now(UTC))
            )

    def ids_in_state(self, model: type[Resource], state: str) -> list[tuple[str, str | None, datetime | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.id, resources.c.owner, resources.c.updated_at).where(
                    and_(resources.c.type == model.TYPE, resources.c.state == state)
                )
            )
            return [(r.id, r.owner, r.updated_at) for r in rows]

    def children(self, parent: str) -> Iterator[str]:
        with self.engine.connect() as conn:
            yield from (r.id for r in conn.execute(select(resources.c.id).where(resources.c.parent == parent.lower())))


class TriggerLedger:
    """Which blob versions the source trigger claimed for which run, and whether it started them.
    Thread-safe; shared by every process of a deployment through the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, pipeline_id: str, blob: str, version: str) -> tuple[str, str, datetime] | None:
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

    def claim(
        self, pipeline_id: str, blob: str, version: str, run_id: str, *, replacing: tuple[str, str, datetime] | None
    ) -> bool:
        """Claim a blob version for ``run_id`` (status pending). Exactly one claimant wins.

        With ``replacing`` (the record as read by :meth:`record`) the claim takes over that
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

    def mark_started(self, pipeline_id: str, blob: str, version: str) -> None:
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
