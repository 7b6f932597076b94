"""Artifact references in ACR's forms and registry URLs.

Grammar from the distribution spec (reference/regexp.go): a repository is one or more
path components of lowercase alphanumerics joined by ``.``, ``_``, ``__`` or runs of ``-``,
separated by ``/``; a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airlock.errors import ReferenceError_, UsageError
from airlock.oci.digest import Digest

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")  # \Z: "$" would allow a trailing newline
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_MAX_REPOSITORY = 255
DEFAULT_TAG = "latest"


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository name; raise ReferenceError_ otherwise."""
    if len(name) > _MAX_REPOSITORY or not _REPOSITORY_RE.match(name):
        raise ReferenceError_(
            f"invalid repository name {_shown(name)}: lowercase letters, digits and separators "
            "(. _ __ -) in path components joined by '/', at most 255 characters"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag; raise ReferenceError_ otherwise."""
    if not _TAG_RE.match(tag):
        raise ReferenceError_(
            f"invalid tag {_shown(tag)}: letters, digits, '_', '.', '-', not starting with '.' or '-', "
            "at most 128 characters"
        )
    return tag


@dataclass(frozen=True)
class ArtifactReference:
    """``repository`` plus a tag, a digest, or both (``repo:tag@sha256:…``)."""

    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ArtifactReference:
        """Parse ACR's artifact forms: ``repo`` (→ ``repo:latest``), ``repo:tag``, ``repo@sha256:…``.

        A leading registry host is not accepted: the registry is named separately, as in ACR.

        Raises:
            ReferenceError_: the text is not a valid reference.
        """
        if not text or len(text) > 512:
            raise ReferenceError_(f"invalid artifact reference {_shown(text)}: empty or too long")
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except UsageError as exc:
                raise ReferenceError_(f"invalid artifact reference {_shown(text)}: {exc}") from None
        tag = None
        # A ':' after the last '/' separates the tag; one before it would be a registry port.
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
        if digest is None and tag is None:
            tag = DEFAULT_TAG
        try:
            validate_repository(rest)
            if tag is not None:
                validate_tag(tag)
        except ReferenceError_ as exc:
            raise ReferenceError_(f"invalid artifact reference {_shown(text)}: {exc}") from None
        return cls(rest, tag, digest)

    @property
    def reference(self) -> str:
        """What to put in ``/v2/<repo>/manifests/<reference>``: the digest when known, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        assert self.tag is not None
        return self.tag

    def __str__(self) -> str:
        out = self.repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


@dataclass(frozen=True)
class RegistryURL:
    """A registry's base URL: scheme (https unless the user wrote http://) and host[:port]."""

    scheme: str
    host: str

    @classmethod
    def parse(cls, text: str) -> RegistryURL:
        """Parse ``https://host[:port]``, ``http://host[:port]`` or a bare ``host[:port]`` (→ https).

        Raises:
            UsageError: not a registry URL (a path, credentials in the URL, another scheme).
        """
        raw = text.strip().rstrip("/")
        if "://" not in raw:
            raw = "https://" + raw
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https"):
            raise UsageError(f"invalid registry URL {_shown(text)}: scheme must be http or https")
        if parts.username or parts.password:
            raise UsageError(
                "invalid registry URL: credentials must not be part of the URL "
                "(use a Docker config.json or --username with --password-stdin)"
            )
        if not parts.hostname or parts.path not in ("", "/v2") or parts.query or parts.fragment:
            raise UsageError(f"invalid registry URL {_shown(text)}: expected scheme://host[:port]")
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"invalid registry URL {_shown(text)}: bad port") from None
        host = parts.hostname if port is None else f"{parts.hostname}:{port}"
        if ":" in parts.hostname:  # IPv6 literal
            host = f"[{parts.hostname}]" + ("" if port is None else f":{port}")
        return cls(parts.scheme, host)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
