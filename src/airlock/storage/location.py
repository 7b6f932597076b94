"""Storage URIs → backends. The one place that decides which adapter serves a URI.

- ``file:///abs/path/blob``, or a plain path (``out/x.tar``, ``/tmp/x.tar``) →
  :class:`airlock.storage.filesystem.FileBlob`
- ``https://<account>.blob.<suffix>/<container>/<blob>`` (host style) and
  ``http(s)://<host>[:port]/<account>/<container>/<blob>`` (path style: Azurite, Azure Stack)
  → :class:`airlock.storage.azure_blob.AzureBlob`

The Azure adapter is imported only when an Azure URI is used, so the SDK's import cost is not
paid by file-only runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from airlock.errors import UsageError
from airlock.storage.base import Blob, Container
from airlock.storage.hosts import plain_netloc

# Container names: 3-63 chars of lowercase letters, digits and single hyphens (Azure rules).
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}\Z")  # storage account names (Azure rules)


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
        return blob_url(self.account_url, self.container, self.blob)


def blob_url(account_url: str, container: str, blob: str) -> str:
    """The blob's URL without credentials. The name is percent-encoded as a request sends it, so that
    one holding "#", "?" or "%" parses back (:func:`parse_blob_uri`) as itself."""
    return f"{account_url}/{container}/{quote(blob, safe='/~')}"


# host:port at the start of a scheme-less URI ("127.0.0.1:10000/acct/c/b", "localhost:10000/..."):
# a storage endpoint given without http(s)://, not a local path.
_HOST_PORT_RE = re.compile(r"^[A-Za-z0-9.-]+:\d+(/|\Z)")
# An Azure storage host at the start of a scheme-less URI ("acct.blob.core.windows.net/c/b").
_STORAGE_HOST_RE = re.compile(r"^[A-Za-z0-9-]+\.blob\.[A-Za-z0-9.-]+(/|\Z)")


def _host_without_scheme(text: str) -> bool:
    return bool(_HOST_PORT_RE.match(text) or _STORAGE_HOST_RE.match(text))


def is_local_path(text: str) -> bool:
    """True if ``text`` is a plain local path (``out/x.tar``, ``./x.tar``, ``/tmp/x.tar``), not a URI."""
    if not text or _host_without_scheme(text):
        return False
    return text.startswith(("/", "./", "../", "~")) or not urlsplit(text).scheme


def local_uri(text: str) -> str:
    """``text`` as a URI: a plain local path becomes its absolute ``file://`` URI; a URI is kept."""
    if is_local_path(text):
        uri = Path(os.path.abspath(os.path.expanduser(text))).as_uri()
        return uri + "/" if text.endswith("/") and not uri.endswith("/") else uri  # still a directory
    return text


def parse_blob_uri(uri: str) -> BlobLocation:
    """Parse a blob URI (see the module docstring) or a plain local path (absolute or relative to the
    working directory, as skopeo and oras take them).

    Raises:
        UsageError: unknown scheme, a file URI with a host, a SAS in the URI, missing container or blob.
    """
    if _host_without_scheme(uri):
        raise UsageError(
            f"invalid blob URI {uri!r}: it starts with a host but has no scheme; write https://{uri} (or "
            f"http://{uri} for Azurite without TLS), or ./{uri} for a local path"
        )
    uri = local_uri(uri)
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(
                f"invalid blob URI {uri!r}: file://{parts.netloc}/... names host {parts.netloc!r}; a file URI has "
                f"three slashes (file:///absolute/path), or give a plain path ({parts.netloc}{parts.path})"
            )
        path = Path(unquote(parts.path))
        if not path.is_absolute() or path.name in ("", ".", "..") or parts.path.endswith("/"):
            raise UsageError(
                f"invalid blob URI {uri!r}: expected file:///absolute/path/to/blob or a plain path to a file"
            )
        return BlobLocation("file", path=path)
    if parts.scheme in ("http", "https"):
        if parts.query:
            raise UsageError(
                "a SAS token must not be part of the blob URI (it would end up in logs and shell history); "
                "pass it with --sas-token-file or --secret-uri"
            )
        if parts.username or parts.password:
            raise UsageError("invalid blob URI: credentials must not be part of the URI")
        if not plain_netloc(uri):
            # e.g. "evil.example\\.blob.core.windows.net": HTTP clients may read another host than we do.
            raise UsageError(f"invalid blob URI {uri!r}: the host must be a plain DNS name or IP address[:port]")
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
            if not _ACCOUNT_RE.match(account):
                # Decoded, it would be joined into the account URL as text ("acct%2F..%2Fother").
                raise UsageError(
                    f"invalid blob URI {uri!r}: account name {account!r} must be 3-24 lowercase letters and digits"
                )
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
        if any(s in (".", "..") for s in blob.split("/")):
            # HTTP clients and servers resolve dot-segments: the request would name another blob, or
            # another container ("a%2F..%2F..%2Fother%2Fx" decodes to one).
            raise UsageError(f"invalid blob URI {uri!r}: the blob name {blob!r} has a '.' or '..' segment")
        return BlobLocation("azure", account_url=account_url, account=account, container=container, blob=blob)
    raise UsageError(
        f"unsupported blob URI {uri!r}: use a path (./batch1.tar, /media/usb/batch1.tar), file:///path, or "
        "https://<account>.blob.core.windows.net/<container>/<blob>"
    )


def check_blob_name(name: str) -> str:
    """``name`` itself, when it is a blob name that addresses a blob inside its container.

    A blob name is not a URI: nothing in it is decoded ("a%2Fb" is the blob of that name).

    Raises:
        UsageError: the name is empty or over 1,024 characters, has an empty, "." or ".." segment
            (a leading, trailing or double "/" included), a backslash or a control character.
    """
    segments = name.split("/")
    if not name or len(name) > 1024 or any(s in ("", ".", "..") for s in segments):
        raise UsageError(
            f"invalid blob name {name!r}: expected 1-1024 characters, segments separated by single '/', "
            "none of them '.' or '..'"
        )
    if "\\" in name or _CONTROL_RE.search(name):
        raise UsageError(f"invalid blob name {name!r}: it holds a backslash or a control character")
    return name


def blob_in(container: BlobLocation, name: str) -> BlobLocation:
    """Blob ``name`` of ``container`` (from :func:`parse_container_uri`), by name: it cannot leave the
    container, whatever it holds. Raises UsageError as :func:`check_blob_name`, and for a name with
    a segment that begins with "." in a file container (hidden files: airlock's own staging)."""
    check_blob_name(name)
    if container.kind == "file":
        assert container.path is not None
        if any(s.startswith(".") for s in name.split("/")):
            # Hidden: the trigger never lists it, and ".x.tar.airlock-partial" is a resume's staging file.
            raise UsageError(f"invalid blob name {name!r}: a file container's blob names may not begin with '.'")
        return BlobLocation("file", path=container.path / name)
    return replace(container, blob=name)


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
    uri = local_uri(uri) if not _host_without_scheme(uri) else uri
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
