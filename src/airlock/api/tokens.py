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
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, delete, insert, select

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

_metadata = MetaData()
tokens_table = Table(
    "api_tokens",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(64), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens of one installation; the bootstrap token (from the home's file) is always an Owner."""

    def __init__(self, engine: Engine, bootstrap_token: str) -> None:
        self._engine = engine
        self._bootstrap = bootstrap_token
        _metadata.create_all(engine)

    def authenticate(self, token: str) -> Caller | None:
        if token and hmac.compare_digest(token.encode(), self._bootstrap.encode()):
            return Caller("owner", "Owner")
        with self._engine.connect() as conn:
            row = conn.execute(select(tokens_table).where(tokens_table.c.sha256 == _digest(token))).first()
        return Caller(row.name, row.role) if row else None

    def create(self, name: str, role: str) -> str:
        """A new token (returned once, never stored in clear). Raises UsageError, ResourceConflict."""
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"invalid token name {name!r}: letters, digits, '-' and '_', at most 64")
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
