"""Storage URIs → backends. The one place that decides which adapter serves a URI.

- ``file:///abs/path/blob`` → :class:`airlock.storage.filesystem.FileBlob`
- ``https://<account>.blob.<suffix>/<container>/<blob>`` (host style) and
  ``http(s)://<host>[:port]/<account>/<container>/<blob>`` (path style: Azurite, Azure Stack)
  → :class:`airlock.storage.azure_blob.AzureBlob`

The Azure adapter is imported only when an Azure URI is used, so the SDK's import cost is not
paid by file-only runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airlock.errors import UsageError
from airlock.storage.base import Blob, Container

# Container names: 3-63 chars of lowercase letters, digits and single hyphens (Azure rules).
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}\Z")


@dataclass(frozen=True)
class BlobLocation:
    """A parsed blob URI. ``kind`` is "file" or "azure"."""

    kind: str
    path: Path | None = None
    account_url: str = ""
    account: str = ""
    container: str = ""
    blob: str = ""

    @property
    def display(self) -> str:
        if self.kind == "file":
            assert self.path is not None
            return self.path.as_uri()
        return f"{self.account_url}/{self.container}/{self.blob}"


def parse_blob_uri(uri: str) -> BlobLocation:
    """Parse a blob URI (see the module docstring).

    Raises:
        UsageError: unknown scheme, relative path, a SAS in the URI, missing container or blob.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"invalid blob URI {uri!r}: file URIs must be file:///absolute/path")
        path = Path(unquote(parts.path))
        if not path.is_absolute() or path.name in ("", ".", ".."):
            raise UsageError(f"invalid blob URI {uri!r}: expected file:///absolute/path/to/blob")
        return BlobLocation("file", path=path)
    if parts.scheme in ("http", "https"):
        if parts.query:
            raise UsageError(
                "a SAS token must not be part of the blob URI (it would end up in logs and shell history); "
                "pass it with --sas-token-file or --secret-uri"
            )
        if parts.username or parts.password:
            raise UsageError("invalid blob URI: credentials must not be part of the URI")
        host = parts.hostname or ""
        netloc = parts.netloc
        segments = [unquote(s) for s in parts.path.split("/") if s]
        host_label = host.split(".", 1)[0]
        if ".blob." in host and not host.replace(".", "").isdigit():
            account, account_url = host_label, f"{parts.scheme}://{netloc}"
        else:
            if not segments:
                raise UsageError(f"invalid blob URI {uri!r}: expected {parts.scheme}://host/account/container/blob")
            account = segments.pop(0)
            account_url = f"{parts.scheme}://{netloc}/{account}"
        if len(segments) < 2:
            raise UsageError(f"invalid blob URI {uri!r}: expected a container and a blob name after the account")
        container, blob = segments[0], "/".join(segments[1:])
        if not _CONTAINER_RE.match(container):
            raise UsageError(
                f"invalid blob URI {uri!r}: container name {container!r} must be 3-63 lowercase letters, "
                "digits or single hyphens"
            )
        if len(blob) > 1024:
            raise UsageError("invalid blob URI: blob names are at most 1024 characters")
        return BlobLocation("azure", account_url=account_url, account=account, container=container, blob=blob)
    raise UsageError(
        f"unsupported blob URI {uri!r}: use file:///path or https://<account>.blob.core.windows.net/<container>/<blob>"
    )


def open_blob(location: BlobLocation, *, sas_token: str | None = None, credential: object = None) -> Blob:
    """The backend for ``location``.

    ``sas_token`` and ``credential`` (an Azure ``TokenCredential``, e.g. a pipeline's managed
    identity) apply to Azure only; with neither, the environment's Azure identity is used.
    """
    if location.kind == "file":
        from airlock.storage.filesystem import FileBlob

        if sas_token:
            raise UsageError("a SAS token was given for a file:// blob; it applies to Azure Blob URIs only")
        assert location.path is not None
        return FileBlob(location.path)
    from airlock.storage.azure_blob import AzureBlob

    return AzureBlob(
        account_url=location.account_url,
        container=location.container,
        blob=location.blob,
        sas_token=sas_token,
        credential=credential,
    )


def parse_container_uri(uri: str) -> BlobLocation:
    """Parse a container URI (``file:///dir`` or ``https://<account>.blob…/<container>``); ``blob`` is empty.

    Raises:
        UsageError: as :func:`parse_blob_uri`.
    """
    if uri.startswith("file:"):
        loc = parse_blob_uri(uri.rstrip("/") + "/x")
        assert loc.path is not None
        return BlobLocation("file", path=loc.path.parent)
    loc = parse_blob_uri(uri.rstrip("/") + "/x")
    if loc.blob != "x":
        raise UsageError(f"invalid container URI {uri!r}: expected https://<account>.blob.<suffix>/<container>")
    return BlobLocation("azure", account_url=loc.account_url, account=loc.account, container=loc.container)


def open_container(location: BlobLocation, *, sas_token: str | None = None, credential: object = None) -> Container:
    """The container backend for a location from :func:`parse_container_uri`."""
    if location.kind == "file":
        from airlock.storage.filesystem import FileContainer

        assert location.path is not None
        return FileContainer(location.path)
    from airlock.storage.azure_blob import AzureContainer

    return AzureContainer(
        account_url=location.account_url, container=location.container, sas_token=sas_token, credential=credential
    )
