"""The embedded key vault: secrets with versions, encrypted at rest, with per-principal access policies.

Vaults are addressed the way Azure Key Vault's are (``https://<vault>.vault.azure.net/secrets/<name>``),
so the URIs that ACR walkthroughs and ARM templates build work unchanged; a URI whose vault is
not an embedded one falls through to the real Azure Key Vault backend.

Storage: two tables in airlock's database (names and versions in clear, values encrypted with
Fernet — AES-128-CBC + HMAC-SHA256). The key lives in its own file (mode 0600) next to, not in,
the database, so a copy of the database alone reveals no secret.
"""

from __future__ import annotations

import json
import os
import re
import secrets as pysecrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, and_, delete, insert, select, update

from airlock.db.migrate import ensure_schema
from airlock.db.schema import embedded_vault_secrets, embedded_vaults
from airlock.errors import SecretError, UsageError
from airlock.secrets.base import Principal, SecretAccessDenied, SecretNotFound

VAULT_SUFFIX = ".vault.azure.net"
SECRET_PERMISSIONS = frozenset({"get", "list", "set", "delete", "backup", "restore", "recover", "purge", "all"})

vaults_table = embedded_vaults
secrets_table = embedded_vault_secrets


@dataclass
class Vault:
    name: str
    resource_group: str
    location: str
    tenant_id: str
    created_at: datetime
    access_policies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"https://{self.name}{VAULT_SUFFIX}/"


@dataclass(frozen=True)
class SecretVersion:
    vault: str
    name: str
    version: str
    created_at: datetime
    content_type: str | None

    @property
    def id(self) -> str:
        return f"https://{self.vault}{VAULT_SUFFIX}/secrets/{self.name}/{self.version}"


def parse_secret_uri(uri: str) -> tuple[str, str, str | None]:
    """(vault name, secret name, version or None) of a ``https://<vault>.vault.azure.net/secrets/…`` URI.

    Raises:
        UsageError: not such a URI.
    """
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.scheme != "https"
        or not host.endswith(VAULT_SUFFIX)
        or len(segments) not in (2, 3)
        or segments[0] != "secrets"
    ):
        raise UsageError(f"invalid key-vault secret URI {uri!r}: expected https://<vault>{VAULT_SUFFIX}/secrets/<name>")
    return host[: -len(VAULT_SUFFIX)], segments[1], segments[2] if len(segments) == 3 else None


def load_or_create_key(path: Path) -> bytes:
    """The vault's encryption key, created (mode 0600) on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()  # another process created it first: use theirs
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class EmbeddedVaults:
    """All embedded vaults of one airlock home. Thread-safe; every method is one transaction.

    Callers acting for the user (the CLI/API caller) pass ``principal=None`` and are not checked;
    pipelines pass their identity's :class:`Principal` and are checked against access policies.
    """

    def __init__(self, engine: Engine, key: bytes) -> None:
        self._engine = engine
        self._fernet = Fernet(key)
        self._lock = threading.Lock()
        ensure_schema(engine)

    # -- vaults -------------------------------------------------------------------------------------

    def create_vault(self, name: str, *, resource_group: str, location: str, tenant_id: str) -> Vault:
        """Create the vault, or return it unchanged if it exists in the same resource group.

        Raises:
            UsageError: invalid name (3-24 alphanumerics and hyphens) or taken in another resource group.
        """
        check_vault_name(name)
        existing = self.get_vault(name)
        if existing is not None:
            if existing.resource_group.lower() != resource_group.lower():
                raise UsageError(f"key vault name {name!r} is already used in resource group {existing.resource_group}")
            return existing
        vault = Vault(name.lower(), resource_group, location, tenant_id, datetime.now(UTC))
        with self._engine.begin() as conn:
            conn.execute(
                insert(vaults_table).values(
                    name=vault.name,
                    resource_group=resource_group,
                    location=location,
                    tenant_id=tenant_id,
                    policies="[]",
                    created_at=vault.created_at,
                )
            )
        return vault

    def get_vault(self, name: str) -> Vault | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(vaults_table).where(vaults_table.c.name == name.lower())).first()
        if row is None:
            return None
        return Vault(
            row.name, row.resource_group, row.location, row.tenant_id, row.created_at, json.loads(row.policies)
        )

    def list_vaults(self, resource_group: str | None = None) -> list[Vault]:
        with self._engine.connect() as conn:
            names = [
                r.name
                for r in conn.execute(select(vaults_table.c.name, vaults_table.c.resource_group))
                if resource_group is None or r.resource_group.lower() == resource_group.lower()
            ]
        return [v for v in (self.get_vault(n) for n in sorted(names)) if v is not None]

    def delete_vault(self, name: str) -> bool:
        with self._engine.begin() as conn:
            conn.execute(delete(secrets_table).where(secrets_table.c.vault == name.lower()))
            return conn.execute(delete(vaults_table).where(vaults_table.c.name == name.lower())).rowcount > 0

    def set_policy(self, name: str, *, object_id: str, secret_permissions: list[str], tenant_id: str) -> Vault:
        """Set (replace) the secret permissions of ``object_id`` on the vault, as ``az keyvault set-policy``.

        Raises:
            SecretNotFound: no such vault. UsageError: unknown permission.
        """
        perms = check_permissions(secret_permissions)
        with self._lock:
            vault = self._require(name)
            policies = [p for p in vault.access_policies if p.get("objectId") != object_id]
            policies.append({"tenantId": tenant_id, "objectId": object_id, "permissions": {"secrets": perms}})
            with self._engine.begin() as conn:
                conn.execute(
                    update(vaults_table).where(vaults_table.c.name == vault.name).values(policies=json.dumps(policies))
                )
            vault.access_policies = policies
            return vault

    def replace_policies(self, name: str, policies: list[dict[str, Any]], *, tenant_id: str) -> Vault:
        """Replace the whole access-policy list (ARM PUT semantics: what is not listed is revoked).

        Raises:
            SecretNotFound: no such vault. UsageError: a malformed policy or unknown permission.
        """
        clean: list[dict[str, Any]] = []
        for p in policies:
            if not isinstance(p, dict) or not isinstance(p.get("objectId"), str) or not p["objectId"]:
                raise UsageError("each access policy needs an objectId string")
            perms = (p.get("permissions") or {}).get("secrets", [])
            if not isinstance(perms, list) or not all(isinstance(x, str) for x in perms):
                raise UsageError("permissions.secrets must be a list of strings")
            unknown = sorted({x.lower() for x in perms} - SECRET_PERMISSIONS)
            if unknown:
                raise UsageError(f"unknown secret permission(s) {', '.join(unknown)}")
            clean.append(
                {
                    "tenantId": tenant_id,
                    "objectId": p["objectId"],
                    "permissions": {"secrets": sorted({x.lower() for x in perms})},
                }
            )
        with self._lock:
            vault = self._require(name)
            with self._engine.begin() as conn:
                conn.execute(
                    update(vaults_table).where(vaults_table.c.name == vault.name).values(policies=json.dumps(clean))
                )
            vault.access_policies = clean
            return vault

    def _require(self, name: str) -> Vault:
        vault = self.get_vault(name)
        if vault is None:
            raise SecretNotFound(
                f"key vault {name!r} does not exist (create it with: airlock keyvault create -n {name})"
            )
        return vault

    def _check(self, vault: Vault, principal: Principal | None, permission: str, secret: str) -> None:
        if principal is None:
            return
        for policy in vault.access_policies:
            if policy.get("objectId") == principal.principal_id:
                granted = set(policy.get("permissions", {}).get("secrets", []))
                if permission in granted or "all" in granted:
                    return
        raise SecretAccessDenied(
            f"key vault {vault.name}: {principal.describe()} lacks the '{permission}' permission on secret "
            f"'{secret}' (grant it with: airlock keyvault set-policy -n {vault.name} --object-id "
            f"{principal.principal_id} --secret-permissions {permission})"
        )

    # -- secrets ------------------------------------------------------------------------------------

    def set_secret(
        self,
        vault_name: str,
        name: str,
        value: str,
        *,
        principal: Principal | None = None,
        content_type: str | None = None,
    ) -> SecretVersion:
        """Store a new version of secret ``name``; returns it (never the value)."""
        check_secret_name(name)
        name = name.lower()  # Key Vault secret names are case-insensitive (az lower-cases secret URIs)
        vault = self._require(vault_name)
        self._check(vault, principal, "set", name)
        version = SecretVersion(vault.name, name, pysecrets.token_hex(16), datetime.now(UTC), content_type)
        with self._engine.begin() as conn:
            conn.execute(
                insert(secrets_table).values(
                    vault=vault.name,
                    name=name,
                    version=version.version,
                    ciphertext=self._fernet.encrypt(value.encode()).decode(),
                    content_type=content_type,
                    created_at=version.created_at,
                )
            )
        return version

    def versions(self, vault_name: str, name: str) -> list[SecretVersion]:
        name = name.lower()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(secrets_table)
                .where(and_(secrets_table.c.vault == vault_name.lower(), secrets_table.c.name == name))
                .order_by(secrets_table.c.created_at)
            ).all()
        return [SecretVersion(r.vault, r.name, r.version, r.created_at, r.content_type) for r in rows]

    def read(
        self, vault_name: str, name: str, version: str | None = None, *, principal: Principal | None = None
    ) -> tuple[SecretVersion, str]:
        """(version, value) of the latest (or given) version.

        Raises:
            SecretNotFound, SecretAccessDenied, SecretError (the key does not decrypt the value).
        """
        name = name.lower()
        vault = self._require(vault_name)
        self._check(vault, principal, "get", name)
        found = self.versions(vault.name, name)
        if version is not None:
            found = [v for v in found if v.version == version]
        if not found:
            what = f"secret '{name}'" + (f" version {version}" if version else "")
            raise SecretNotFound(f"key vault {vault.name}: {what} does not exist")
        chosen = found[-1]
        with self._engine.connect() as conn:
            row = conn.execute(
                select(secrets_table.c.ciphertext).where(
                    and_(
                        secrets_table.c.vault == vault.name,
                        secrets_table.c.name == name,
                        secrets_table.c.version == chosen.version,
                    )
                )
            ).one()
        try:
            value = self._fernet.decrypt(row.ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretError(
                f"key vault {vault.name}: secret '{name}' cannot be decrypted with this airlock home's vault key"
            ) from None
        return chosen, value

    def list_secrets(self, vault_name: str, *, principal: Principal | None = None) -> list[SecretVersion]:
        """The latest version of every secret (metadata only)."""
        vault = self._require(vault_name)
        self._check(vault, principal, "list", "*")
        with self._engine.connect() as conn:
            names = sorted(
                {r.name for r in conn.execute(select(secrets_table.c.name).where(secrets_table.c.vault == vault.name))}
            )
        return [self.versions(vault.name, n)[-1] for n in names]

    def delete_secret(self, vault_name: str, name: str, *, principal: Principal | None = None) -> bool:
        name = name.lower()
        vault = self._require(vault_name)
        self._check(vault, principal, "delete", name)
        with self._engine.begin() as conn:
            return (
                conn.execute(
                    delete(secrets_table).where(and_(secrets_table.c.vault == vault.name, secrets_table.c.name == name))
                ).rowcount
                > 0
            )

    # -- SecretStore ----------------------------------------------------------------------------------

    def handles(self, uri: str) -> bool:
        try:
            vault, _, _ = parse_secret_uri(uri)
        except UsageError:
            return False
        return self.get_vault(vault) is not None

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        vault, name, version = parse_secret_uri(uri)
        return self.read(vault, name, version, principal=principal)[1]


def check_permissions(secret_permissions: list[str]) -> list[str]:
    """The permissions, lower-cased, sorted, without duplicates. Raises UsageError naming unknown ones."""
    perms = sorted({p.lower() for p in secret_permissions})
    unknown = [p[:32] for p in perms if p not in SECRET_PERMISSIONS]
    if unknown:
        raise UsageError(
            f"unknown secret permission(s) {', '.join(unknown)}; use: {', '.join(sorted(SECRET_PERMISSIONS))}"
        )
    return perms


def check_vault_name(name: str) -> None:
    """Raises UsageError unless ``name`` is a key vault name (Azure's rule)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]", name) or "--" in name:
        raise UsageError(
            f"invalid key vault name {name[:40]!r}: 3-24 letters, digits and hyphens, starting with a letter"
        )


def check_secret_name(name: str) -> None:
    """Raises UsageError unless ``name`` is a key vault secret name (Azure's rule)."""
    if not re.fullmatch(r"[A-Za-z0-9-]{1,127}", name):
        raise UsageError(f"invalid secret name {name[:140]!r}: 1-127 letters, digits and hyphens")
