"""The secret-store interface: read a secret (a SAS token, a password) by URI, as a principal.

Backends, chosen by URI (see :mod:`airlock.secrets.resolver`):

- the embedded vault (:mod:`airlock.secrets.embedded`): ``https://<vault>.vault.azure.net/secrets/<name>[/<version>]``
  when an embedded vault named ``<vault>`` exists — so az-style commands and ARM bodies work as they are;
- Azure Key Vault (:mod:`airlock.secrets.azure_key_vault`): any other ``https://<host>/secrets/<name>[/<version>]``;
- HashiCorp Vault / OpenBao KV v2 (:mod:`airlock.secrets.hashicorp_vault`):
  ``http(s)://<host>[:port]/v1/<mount>/data/<path>[#<field>]`` (the secret's own API URL; field ``value`` by default).

A pipeline reads its secret *as its identity*: every call names the :class:`Principal`, and each
backend authenticates as that principal (access policies in the embedded vault, an Azure
credential for the identity, a Vault token for it) so a missing permission fails with a message
that names the vault, the secret, the principal and the permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The secret errors live in the one error tree; re-exported here, where the backends raise them.
from airlock.errors import SecretAccessDenied as SecretAccessDenied
from airlock.errors import SecretNotFound as SecretNotFound


@dataclass(frozen=True)
class Principal:
    """An identity that reads secrets: a pipeline's system-assigned or a user-assigned identity.

    ``resource_id`` is the user-assigned identity's ARM id (None for system-assigned ones).
    """

    principal_id: str
    tenant_id: str = ""
    client_id: str = ""
    resource_id: str | None = None

    def describe(self) -> str:
        if self.resource_id:
            return f"identity {self.resource_id.rsplit('/', 1)[-1]} (principal {self.principal_id})"
        return f"principal {self.principal_id}"


class SecretStore(Protocol):
    """One secret backend. Implementations are thread-safe."""

    def handles(self, uri: str) -> bool:
        """Whether this backend serves ``uri`` (checked in order by the resolver)."""
        ...

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        """The secret's value, read as ``principal`` (None: the process's own credentials).

        Raises:
            SecretNotFound: the secret or version does not exist.
            SecretAccessDenied: the principal may not read it (message names vault, secret,
                principal and the missing permission).
            SecretError: the store cannot be reached or answered garbage. Never includes the value.
        """
        ...
