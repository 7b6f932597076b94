"""API bearer tokens with roles, stored hashed.

Roles (after Azure's built-in ones):

- ``Owner`` — everything, including token management. The token in ``AIRLOCK_HOME/api-token`` is an Owner.
- ``TransferPipelineContributor`` — "Container Registry Transfer Pipeline Contributor": create, run
  and delete export/import pipelines and pipeline runs, read everything else; no registries,
  identities, key vaults or secrets.
- ``Reader`` — GET only; secret values are never returned to it.

Which role a route needs is declared on the route (``airlock.api.deps.require``).

Only a SHA-256 of each token is kept, so the database never holds a usable credential.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from airlock.db.migrate import ensure_schema
from airlock.db.schema import api_tokens
from airlock.errors import ResourceConflict, ResourceNotFound, UsageError


class Role(StrEnum):
    """An API role. Each includes the ones below it: Owner > TransferPipelineContributor > Reader."""

    READER = "Reader"
    TRANSFER_PIPELINE_CONTRIBUTOR = "TransferPipelineContributor"
    OWNER = "Owner"

    def includes(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


ROLES = (Role.OWNER.value, Role.TRANSFER_PIPELINE_CONTRIBUTOR.value, Role.READER.value)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

tokens_table = api_tokens


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


BOOTSTRAP_NAME = "owner"  # the Owner token airlock serve writes to AIRLOCK_HOME/api-token


class TokenStore:
    """The tokens of one deployment, hashed in its database, where every replica reads them.

    The bootstrap token (the home's ``api-token``) is recorded as the Owner token ``owner`` when
    the database has none. On SQLite (one home, one database) the home's token is the Owner token
    and replaces a different record; on PostgreSQL the first server's record stands, and another
    home's token is an ordinary unknown token (:attr:`bootstrap_accepted` False).
    """

    def __init__(self, engine: Engine, bootstrap_token: str, *, trust_bootstrap: bool = False) -> None:
        self._engine = engine
        ensure_schema(engine)
        self.bootstrap_accepted = self._register(bootstrap_token)
        # The CLI's in-process app: its caller holds the database itself, so its token is an Owner.
        self._trusted = _digest(bootstrap_token) if trust_bootstrap else None

    def _register(self, token: str) -> bool:
        digest = _digest(token)
        table = tokens_table
        with self._engine.begin() as conn:
            row = conn.execute(select(table.c.sha256).where(table.c.name == BOOTSTRAP_NAME)).first()
            if row is not None and hmac.compare_digest(row.sha256, digest):
                return True
            if row is not None and self._engine.dialect.name == "postgresql":
                return False
            if row is not None:
                conn.execute(delete(table).where(table.c.name == BOOTSTRAP_NAME))
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(table).values(
                            name=BOOTSTRAP_NAME, role=Role.OWNER, sha256=digest, created_at=datetime.now(UTC)
                        )
                    )
            except IntegrityError:  # another replica recorded its own first
                return False
        return True

    def authenticate(self, token: str) -> Caller | None:
        if not token:
            return None
        if self._trusted is not None and hmac.compare_digest(_digest(token), self._trusted):
            return Caller(BOOTSTRAP_NAME, Role.OWNER)
        with self._engine.connect() as conn:
            row = conn.execute(select(tokens_table).where(tokens_table.c.sha256 == _digest(token))).first()
        return Caller(row.name, row.role) if row else None

    def create(self, name: str, role: str) -> str:
        """A new token (returned once, never stored in clear). Raises UsageError, ResourceConflict."""
        if role not in ROLES:
            raise UsageError(f"unknown role {role[:40]!r}; choose one of {', '.join(ROLES)}")
        if name == BOOTSTRAP_NAME:
            raise UsageError(f"the token name {BOOTSTRAP_NAME!r} is the home's Owner token's (AIRLOCK_HOME/api-token)")
        if not _NAME.fullmatch(name):
            raise UsageError(f"invalid token name {name[:70]!r}: ASCII letters, digits, '-' and '_', at most 64")
        token = "alt_" + secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            if conn.execute(select(tokens_table.c.name).where(tokens_table.c.name == name)).first():
                raise ResourceConflict(f"a token named {name!r} exists; revoke it first")
            conn.execute(
                insert(tokens_table).values(name=name, role=role, sha256=_digest(token), created_at=datetime.now(UTC))
            )
        return token

    def list(self) -> list[dict[str, str]]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(tokens_table).order_by(tokens_table.c.created_at)).all()
        return [{"name": r.name, "role": r.role, "created": r.created_at.isoformat()} for r in rows]

    def revoke(self, name: str) -> None:
        with self._engine.begin() as conn:
            if conn.execute(delete(tokens_table).where(tokens_table.c.name == name)).rowcount == 0:
                raise ResourceNotFound(f"no token named {name!r}")


def token_request(body: Any) -> tuple[str, str]:
    """(name, role) of a ``POST /airlock/tokens`` body ``{"name": ..., "role": ...}``.

    Raises:
        UsageError: the body is not such an object of two strings (no other keys).
    """
    if not isinstance(body, dict) or set(body) - {"name", "role"}:
        raise UsageError('a token request is {"name": "<name>", "role": "<role>"} and nothing else')
    name, role = body.get("name"), body.get("role")
    if not isinstance(name, str) or not isinstance(role, str):
        raise UsageError(f"a token request needs name and role as strings (role: one of {', '.join(ROLES)})")
    return name, role
