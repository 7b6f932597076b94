"""Artifact references in ACR's forms and registry URLs.

Grammar from the distribution spec (reference/regexp.go): a repository is one or more
path components of lowercase alphanumerics joined by ``.``, ``_``, ``__`` or runs of ``-``,
separated by ``/``; a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.
"""

from __future__ import annotations

import ipaddress
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

        A leading registry host is not accepted: the registry is named separately, as in ACR (see
        :meth:`parse_for` where the registry is known).

        Raises:
            ReferenceError_: the text is not a valid reference.
        """
        return cls._parse(text, text)

    @classmethod
    def parse_for(cls, text: str, registry: RegistryURL, *, named_by: str = "--source-registry") -> ArtifactReference:
        """Parse as :meth:`parse`, also accepting ``HOST[:PORT]/repo…`` when HOST[:PORT] is ``registry``'s.

        The host is stripped. Whether the first path component is a host follows Docker: it is when
        the text has a ``/`` and that component contains ``.`` or ``:`` or is ``localhost`` (Docker
        also reads an upper-case component as a host; here it stays an invalid repository name,
        which is the likelier mistake). It matches ``registry`` when equal to its host[:port] ignoring case and
        an explicit default port (``:443`` for https, ``:80`` for http). No name is resolved:
        ``localhost`` and ``127.0.0.1`` are different hosts, as they are to Docker's credential store.
        ``named_by`` says, in the error, where the registry came from (a flag, a resource).

        Raises:
            ReferenceError_: the text is not a valid reference, or it names another registry (the
                message names both).
        """
        host, rest = _split_host(text)
        if host is None:
            return cls._parse(text, text)
        if not _HOST_RE.match(host):
            raise ReferenceError_(f"invalid artifact reference {_shown(text)}: invalid registry host {_shown(host)}")
        ref = cls._parse(rest, text)
        if _normal_host(host, registry.scheme) != _normal_host(registry.host, registry.scheme):
            # Both texts are validated by now (host and reference grammar): safe to show unquoted.
            hint = ""
            if "." in host and _COMPONENT_RE.match(host):  # e.g. "my.team/app": Docker reads a host too
                hint = f" (if {host} is part of the repository name, write {registry.host}/{text})"
            raise ReferenceError_(f"artifact {text} names registry {host}, but {named_by} is {registry.host}{hint}")
        return ref

    @classmethod
    def _parse(cls, text: str, shown: str) -> ArtifactReference:
        """``parse``; error messages name ``shown`` (the text as the user wrote it)."""
        if not text or len(text) > 512:
            raise ReferenceError_(f"invalid artifact reference {_shown(shown)}: empty or too long")
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except UsageError as exc:
                raise ReferenceError_(f"invalid artifact reference {_shown(shown)}: {exc}") from None
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
            raise ReferenceError_(f"invalid artifact reference {_shown(shown)}: {exc}") from None
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
    """A registry's base URL: scheme and host[:port] (see :meth:`parse` for the default scheme)."""

    scheme: str
    host: str

    @classmethod
    def parse(cls, text: str) -> RegistryURL:
        """Parse ``https://host[:port]``, ``http://host[:port]`` or a bare ``host[:port]``.

        A bare host is https, except a loopback host — ``localhost``, an address in 127.0.0.0/8,
        or ``[::1]`` — which is http: Docker's convention, whose default insecure registries are
        127.0.0.0/8 (Docker tries https first; here the rule is fixed, without a fallback, so an
        explicit ``https://`` is never silently downgraded). No name is resolved.

        Raises:
            UsageError: not a registry URL (a path, credentials in the URL, another scheme).
        """
        raw = text.strip().rstrip("/")
        if "://" not in raw:
            raw = ("http://" if _is_loopback(raw) else "https://") + raw
        try:
            parts = urlsplit(raw)
        except ValueError:  # an unbalanced '[' or ']': urlsplit takes it for a broken IPv6 literal
            raise UsageError(f"invalid registry URL {_shown(text)}: expected scheme://host[:port]") from None
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


# A registry host as Docker writes it in a reference: a DNS name or IPv4 address, or a bracketed
# IPv6 literal, with an optional port.
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}\Z")
_DEFAULT_PORTS = {"https": ":443", "http": ":80"}


def _split_host(text: str) -> tuple[str | None, str]:
    """(host, rest) when the first path component of ``text`` is a registry host, as Docker decides."""
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, text


def _normal_host(host: str, scheme: str) -> str:
    host = host.lower()
    return host.removesuffix(_DEFAULT_PORTS[scheme])


def _is_loopback(hostport: str) -> bool:
    """Whether a bare ``host[:port]`` names this machine: localhost, 127.0.0.0/8 or ::1 (literally)."""
    try:
        hostname = urlsplit("//" + hostport).hostname
    except ValueError:
        return False  # malformed: parse() reports it
    if not hostname:
        return False
    if hostname == "localhost":  # urlsplit lower-cases the host
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
