"""Every table airlock keeps, in one SQLAlchemy ``MetaData``: what Alembic's migrations build.

The resource store (``pipelines/store.py``), the API tokens (``api/tokens.py``) and the embedded
key vault (``secrets/embedded.py``) use these tables; none of them creates tables itself. Change a
table here only together with a new revision in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("id", String(512), primary_key=True),  # lower-cased ARM id
    Column("type", String(128), nullable=False, index=True),
    Column("parent", String(512), nullable=True, index=True),  # lower-cased id of the registry, for children
    Column("name", String(128), nullable=False),
    Column("resource_group", String(90), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("seq", Integer, nullable=False),  # creation order, for stable listing
    Column("state", String(32), nullable=True, index=True),  # runs: Running / Succeeded / Failed
    Column("owner", String(256), nullable=True),  # runs: the process executing it (host:pid:start)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

trigger_imports = Table(
    "trigger_imports",
    metadata,
    Column("pipeline_id", String(512), primary_key=True),
    Column("blob", String(1024), primary_key=True),
    Column("version", String(256), primary_key=True),  # etag, or inode-mtime-size for files
    Column("run_id", String(512), nullable=False),
    Column("status", String(16), nullable=False),  # pending (claimed, run not created yet) / started
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(64), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

embedded_vaults = Table(
    "embedded_vaults",
    metadata,
    Column("name", String(24), primary_key=True),
    Column("resource_group", String(90), nullable=False),
    Column("location", String(64), nullable=False),
    Column("tenant_id", String(36), nullable=False),
    Column("policies", Text, nullable=False),  # JSON list, Azure's accessPolicies shape
    Column("created_at", DateTime(timezone=True), nullable=False),
)

embedded_vault_secrets = Table(
    "embedded_vault_secrets",
    metadata,
    Column("vault", String(24), primary_key=True),
    Column("name", String(127), primary_key=True),
    Column("version", String(32), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# What every process of a deployment must agree on, kept where they all read it: the tenant of
# the identities it creates, and a fingerprint of the embedded vault's key (a process holding
# another key refuses to start instead of failing to decrypt).
deployment_settings = Table(
    "deployment_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The audit trail (pipelines/audit_store.py): one row per state-changing or data-moving action, a
# hash chain in ``seq`` order (pipelines/audit_chain.py says what is hashed). ``seq`` is the key and
# each append writes head + 1 after reading the head in its transaction, so two appenders can never
# fork the chain: the second one's insert fails and retries (pipelines/audit_store.py).
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),  # ISO 8601 UTC with microseconds, as hashed
    Column("principal", String(256), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("resources", Text, nullable=False),  # JSON list of strings
    Column("artifacts", Text, nullable=False),  # JSON list of {reference, digest, ...}
    Column("catalog_digest", String(71), nullable=True),
    Column("result", Text, nullable=False),
    Column("prev_hash", String(71), nullable=False),
    Column("hash", String(71), nullable=False),
)
