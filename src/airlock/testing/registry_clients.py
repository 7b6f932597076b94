"""Registry clients for tests: made with fast retries, and all closed when the test is over."""

from __future__ import annotations

from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.registry.retry import RetryPolicy

__all__ = ["RegistryClients"]


class RegistryClients:
    """Call it with a registry URL (and credentials) for a client; :meth:`close` closes every one made.

    Retries back off 10-50 ms instead of seconds, so a test of a failure does not wait out the
    production policy; :attr:`retry` says how many attempts a request gets.
    """

    retry = RetryPolicy(attempts=4, base=0.01, cap=0.05)

    def __init__(self) -> None:
        self._made: list[RegistryClient] = []

    def __call__(self, url: str, credentials: Credentials | None = None) -> RegistryClient:
        client = RegistryClient(RegistryURL.parse(url), credentials=credentials, retry=self.retry)
        self._made.append(client)
        return client

    def close(self) -> None:
        """Close every client made so far."""
        for client in self._made:
            client.close()
        self._made.clear()
