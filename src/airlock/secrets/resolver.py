"""Which secret store serves a URI, and reading through it."""

from __future__ import annotations

from collections.abc import Sequence

from airlock.errors import UsageError
from airlock.secrets.base import Principal, SecretStore


class SecretResolver:
    """Reads secrets from the first store that handles the URI (the embedded vault comes first).

    Local files are deliberately not a secret store here: a pipeline defined through the API must
    not be able to name the server's own files (its API token, say) as its secret.
    """

    def __init__(self, stores: Sequence[SecretStore]) -> None:
        self._stores = list(stores)

    def store_for(self, uri: str) -> SecretStore | None:
        """The store that serves ``uri`` (None when none does)."""
        return next((store for store in self._stores if store.handles(uri)), None)

    def get(self, uri: str, *, principal: Principal | None, what: str = "secret") -> str:
        """The secret's value.

        Raises:
            UsageError: no store handles the URI.
            SecretError (and its SecretNotFound / SecretAccessDenied): from the store.
        """
        for store in self._stores:
            if store.handles(uri):
                return store.get_secret(uri, principal=principal)
        raise UsageError(
            f"{what}: no secret store serves {uri.split('?', 1)[0]!r}; expected a key-vault secret URI "
            "(https://<vault>.vault.azure.net/secrets/<name>) or a Vault/OpenBao KV v2 URL (http(s)://host/v1/<mount>/data/<path>)"
        )
