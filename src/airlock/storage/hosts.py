"""Which storage endpoints the server trusts with credentials it holds for a pipeline.

A pipeline's SAS token is read from a key vault as the pipeline's identity, and in the
``ManagedIdentity`` mode the server's own Azure identity signs requests: either way a credential
leaves the server for the pipeline's storage URI. :class:`StorageHosts` says where it may go:

- Azure Blob Storage over https, in the public and sovereign clouds (:data:`BLOB_SUFFIXES`);
- the hosts the operator lists in ``AIRLOCK_STORAGE_HOSTS`` (comma-separated): ``host`` (any port),
  ``host:port`` (that port only: ``127.0.0.1:10000`` for Azurite, so no other local listener
  qualifies) or ``*.suffix`` (Azure Stack Hub: ``*.blob.local.azurestack.external``); these may use
  http as well.

Local ``file:`` containers carry no credential and are not judged here (only an Owner may name them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airlock.errors import UsageError

ENV = "AIRLOCK_STORAGE_HOSTS"
# Azure Blob Storage's DNS suffixes: public (also the Azure DNS zone endpoints), China, US Gov, Germany.
BLOB_SUFFIXES = (
    ".blob.core.windows.net",
    ".blob.storage.azure.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.cloudapi.de",
)


# A DNS name, an IPv4 address or a bracketed IPv6 literal, with an optional port: nothing else may
# stand between "//" and the path. Anything more (a backslash, '%', whitespace, '@') is read as
# another host by some HTTP clients than by urlsplit, and a credential would follow that host.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_NETLOC = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{{1,5}})?\Z")


def plain_netloc(uri: str) -> bool:
    """Whether ``uri``'s netloc is a plain host[:port], read the same by every HTTP client."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return bool(_PLAIN_NETLOC.match(netloc))


@dataclass(frozen=True)
class StorageHosts:
    """The storage endpoints credentials may be sent to: :data:`BLOB_SUFFIXES` over https, plus ``extra``
    (entries as in ``AIRLOCK_STORAGE_HOSTS``, lower-case)."""

    extra: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> StorageHosts:
        """The built-in suffixes plus ``AIRLOCK_STORAGE_HOSTS``."""
        return cls(frozenset(h.strip().lower() for h in os.environ.get(ENV, "").split(",") if h.strip()))

    def trusts(self, uri: str) -> bool:
        """Whether a credential may be sent to the storage endpoint of ``uri`` (an http(s) URI).

        Only a plain host (a DNS name or an IP literal) is judged: a netloc that HTTP clients could
        read as another host (``evil.example\\.blob.core.windows.net``) is never trusted.
        """
        if not plain_netloc(uri):
            return False
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            return False
        if not host or parts.scheme not in ("http", "https"):
            return False
        if parts.scheme == "https" and host.endswith(BLOB_SUFFIXES):
            return True
        netloc = f"[{host}]" if ":" in host else host
        default = 443 if parts.scheme == "https" else 80
        for entry in self.extra:
            if entry.startswith("*."):
                if host.endswith(entry[1:]):
                    return True
            elif entry in (host, netloc, f"{netloc}:{port or default}"):
                return True
        return False

    def check(self, uri: str, what: str) -> None:
        """Raises UsageError (naming ``what``, the host and the variable) unless :meth:`trusts` ``uri``."""
        if self.trusts(uri):
            return
        parts = urlsplit(uri)
        where = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme == "http" and (parts.hostname or "").lower().endswith(BLOB_SUFFIXES):
            raise UsageError(
                f"{what}: storage {where} is plain http; use https:// (a credential would travel in clear)"
            )
        raise UsageError(
            f"{what}: storage {where} is not trusted with this server's credentials: Azure Blob Storage "
            f"(https://<account>{BLOB_SUFFIXES[0]} and the sovereign clouds) or a host the operator lists in {ENV}"
        )
