"""OCI distribution API v2 client over urllib3 (the HTTP session is :mod:`airlock.registry.session`,
blobs are :mod:`airlock.registry.blobs`).

The client is thread-safe: one instance is shared by all transfer workers.

Contracts common to every method:
- Errors are :class:`airlock.errors.RegistryError` subclasses (``NotFound``, ``AuthenticationError``,
  ``PermissionDenied``) or :class:`airlock.errors.IntegrityError`; ``transient`` says whether a
  later retry may succeed. Messages name the method, the URL without its query, the status and the
  registry's own error codes — never credentials.
- Idempotent requests (GET, HEAD, PUT of a manifest, upload initiation) are retried with jittered
  backoff on connection errors, 408/429/5xx, honouring ``Retry-After``; blob bodies are never
  replayed unless they are held in memory.
- A wrong scheme (https:// to a plain-HTTP server, http:// to a TLS port) and an untrusted
  certificate are not retried: they raise at once, saying what to use (see ``registry.tls``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from urllib3.exceptions import HTTPError as Urllib3Error

from airlock.errors import IntegrityError, NotFound, RegistryError
from airlock.oci.digest import Digest
from airlock.oci.manifest import ACCEPT_MANIFESTS, MAX_MANIFEST_SIZE, OCI_INDEX, Descriptor, Manifest
from airlock.oci.reference import RegistryURL
from airlock.registry import blobs
from airlock.registry.auth import Authenticator
from airlock.registry.blobs import CHUNK
from airlock.registry.credentials import Credentials
from airlock.registry.retry import RetryPolicy
from airlock.registry.session import Session, discard, pull_scope, push_scope, reason

_TAGS_PAGE = 1000  # go-containerregistry's default: ECR rejects larger pages
# Pages a tag list or the catalog may take (10 million names): a registry whose Link never ends,
# with a new URL each time, is stopped here; one that sends a page's URL again is stopped at once.
_MAX_PAGES = 10_000
_CATALOG_SCOPE = "registry:catalog:*"


@dataclass(frozen=True)
class ManifestInfo:
    """What a HEAD on a manifest tells: its digest, media type and size."""

    digest: Digest
    media_type: str
    size: int


class RegistryClient:
    """A client for one registry. See the module docstring for error and retry contracts."""

    def __init__(
        self,
        url: RegistryURL,
        *,
        credentials: Credentials | None = None,
        use_auth_files: bool = True,
        retry: RetryPolicy | None = None,
        max_connections: int = 40,  # an export keeps 32 GETs, an import 16 requests and 4 blob streams in flight
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
    ) -> None:
        self._session = Session(
            url,
            credentials=credentials,
            use_auth_files=use_auth_files,
            retry=retry,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @property
    def url(self) -> RegistryURL:
        return self._session.url

    @property
    def base(self) -> str:
        """The registry's URL as a string, no trailing slash."""
        return self._session.base

    @property
    def retry(self) -> RetryPolicy:
        return self._session.retry

    @property
    def auth(self) -> Authenticator:
        return self._session.auth

    def close(self) -> None:
        self._session.close()

    # -- registry -------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry speaks API v2 and that our credentials (if any) are accepted.

        Raises:
            RegistryError: unreachable, not a registry, or credentials refused.
        """
        resp = self._session.send("GET", "/v2/", scopes=())
        if resp.status == 200:
            discard(resp)
            return
        raise self._session.fail(resp, "GET", "/v2/", f"registry {self.url.host}")

    # -- manifests ------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest by tag or digest, byte-exact.

        Raises:
            NotFound: no such manifest.
            IntegrityError: fetched by digest and the bytes do not hash to it, or over the size cap.
        """
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self._session.send("GET", path, scopes=(pull_scope(repository),), headers={"Accept": ACCEPT_MANIFESTS})
        what = (
            f"manifest {repository}@{reference}"
            if reference.startswith("sha")
            else f"manifest {repository}:{reference}"
        )
        if resp.status != 200:
            raise self._session.fail(resp, "GET", path, what)
        try:
            raw = resp.read(MAX_MANIFEST_SIZE + 1)
        except Urllib3Error as exc:
            raise RegistryError(f"{what}: connection broke while reading ({reason(exc)})", transient=True) from None
        finally:
            discard(resp)
        manifest = Manifest.parse(raw, media_type=resp.headers.get("Content-Type"), where=what)
        if reference.startswith(("sha256:", "sha512:")):
            expected = Digest.parse(reference)
            actual = Digest.of(raw, expected.algorithm)
            if actual != expected:
                raise IntegrityError(f"{what}: registry returned content that hashes to {actual}")
        return manifest

    def head_manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """Digest, media type and size of a manifest, or None when it does not exist."""
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self._session.send("HEAD", path, scopes=(pull_scope(repository),), headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status == 404:
            discard(resp)
            return None
        if resp.status != 200:
            raise self._session.fail(resp, "HEAD", path, f"manifest {repository}:{reference}")
        digest = resp.headers.get("Docker-Content-Digest")
        discard(resp)
        if not digest:
            # Some registries omit the header on HEAD; a GET tells for sure.
            m = self.get_manifest(repository, reference)
            return ManifestInfo(m.digest, m.media_type, m.size)
        return ManifestInfo(
            Digest.parse(digest),
            resp.headers.get("Content-Type", ""),
            int(resp.headers.get("Content-Length", "0") or 0),
        )

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        """Store ``manifest`` under ``reference`` (its digest, or a tag), byte-exact.

        Raises:
            RegistryError: refused (e.g. MANIFEST_BLOB_UNKNOWN when a blob is missing).
            IntegrityError: the registry computed another digest than ours.
        """
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self._session.send(
            "PUT",
            path,
            scopes=(push_scope(repository),),
            headers={"Content-Type": manifest.media_type},
            body=manifest.raw,
        )
        if resp.status not in (200, 201, 202):
            raise self._session.fail(resp, "PUT", path, f"manifest {repository}@{manifest.digest}")
        got = resp.headers.get("Docker-Content-Digest")
        discard(resp)
        if got and got.startswith(manifest.digest.algorithm) and got != str(manifest.digest):
            raise IntegrityError(f"manifest {repository}@{manifest.digest}: registry stored it as {got}")

    def list_tags(self, repository: str, *, strict: bool = False) -> list[str]:
        """All tags of ``repository`` following ``Link`` pagination; [] when it has none.

        A 404 means no tags, unless ``strict``: then it raises :class:`NotFound` with the
        registry's error codes, so that a caller can tell a repository that does not exist
        (``NAME_UNKNOWN``) from a registry that does not list tags at all.
        """
        tags: list[str] = []
        what = f"tags of {repository}"
        first = f"/v2/{repository}/tags/list?n={_TAGS_PAGE}"
        path: str | None = first
        pages = _Pages(what, self._session.resolve, first)
        while path:
            resp = self._session.send("GET", path, scopes=(pull_scope(repository),))
            if resp.status == 404 and not strict:
                discard(resp)
                return tags
            if resp.status != 200:
                raise self._session.fail(resp, "GET", path, what)
            tags += _names(resp, what, "tags")
            path = pages.next(_next_link(resp.headers.get("Link"), self._session.resolve(path)))
        return tags

    def list_repositories(self) -> Iterator[str]:
        """Every repository in the registry's ``/v2/_catalog``, page by page (``n``, then ``Link``,
        or ``last`` when a registry sends no ``Link`` but a full page).

        Raises:
            RegistryError: the registry refuses or lacks the catalog (some hosted registries do).
        """
        first = f"/v2/_catalog?n={_TAGS_PAGE}"
        path: str | None = first
        last: str | None = None
        pages = _Pages("repository catalog", self._session.resolve, first)
        while path:
            resp = self._session.send("GET", path, scopes=(_CATALOG_SCOPE,))
            if resp.status != 200:
                raise self._session.fail(resp, "GET", path, "repository catalog")
            names = _names(resp, "repository catalog", "repositories")
            yield from names
            path = _next_link(resp.headers.get("Link"), self._session.resolve(path))
            if path is None and len(names) >= _TAGS_PAGE and names[-1] != last:  # != : one that ignores last
                last = names[-1]
                path = f"/v2/_catalog?n={_TAGS_PAGE}&last={quote(last, safe='/')}"
            path = pages.next(path)

    def list_referrers(self, repository: str, subject: Digest) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``subject``: the OCI 1.1 referrers API, else the tag schema.

        The fallback reads the index tagged ``sha256-<hex>`` (distribution-spec, "referrers tag schema").
        """
        path = f"/v2/{repository}/referrers/{subject}"
        resp = self._session.send("GET", path, scopes=(pull_scope(repository),), headers={"Accept": OCI_INDEX})
        if resp.status == 200 and resp.headers.get("Content-Type", "").startswith(OCI_INDEX):
            try:
                raw = resp.read(MAX_MANIFEST_SIZE + 1)
            finally:
                discard(resp)
            index = Manifest.parse(raw, media_type=OCI_INDEX, where=f"referrers of {repository}@{subject}")
            return list(index.children)
        if resp.status not in (200, 400, 404, 405):
            raise self._session.fail(resp, "GET", path, f"referrers of {repository}@{subject}")
        discard(resp)
        try:
            index = self.get_manifest(repository, f"{subject.algorithm}-{subject.hex}")
        except NotFound:
            return []
        return list(index.children) if index.is_index else []

    def has_referrers_api(self, repository: str, subject: Digest) -> bool:
        """Whether the registry answers the OCI 1.1 referrers API (and so indexes referrers itself)."""
        path = f"/v2/{repository}/referrers/{subject}"
        resp = self._session.send("GET", path, scopes=(pull_scope(repository),), headers={"Accept": OCI_INDEX})
        ok = resp.status == 200 and resp.headers.get("Content-Type", "").startswith(OCI_INDEX)
        discard(resp)
        return ok

    def add_to_referrers_tag(self, repository: str, subject: Digest, referrers: list[Descriptor]) -> bool:
        """Add ``referrers`` to the tag-schema index ``<alg>-<hex>`` of ``subject`` (OCI 1.1 fallback
        for registries without the referrers API). Returns False when they were all listed already."""
        tag = f"{subject.algorithm}-{subject.hex}"
        try:
            existing: list[dict[str, Any]] = [d.to_json() for d in self.get_manifest(repository, tag).children]
        except NotFound:
            existing = []
        listed = {d["digest"] for d in existing}
        new = [d.to_json() for d in referrers if str(d.digest) not in listed]
        if not new:
            return False
        raw = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": existing + new}, separators=(",", ":")
        ).encode()
        self.put_manifest(repository, tag, Manifest.parse(raw, media_type=OCI_INDEX, where=f"referrers of {subject}"))
        return True

    # -- blobs ----------------------------------------------------------------------------------

    def blob_size(self, repository: str, digest: Digest) -> int | None:
        """The size of a blob in ``repository`` (HEAD), or None when it is not there."""
        return blobs.blob_size(self._session, repository, digest)

    def iter_blob(self, repository: str, desc: Descriptor, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream a blob, verified, resuming broken downloads; raises IntegrityError at its end when
        the content does not match ``desc`` (see :func:`airlock.registry.blobs.iter_blob`)."""
        return blobs.iter_blob(self._session, repository, desc, chunk_size=chunk_size)

    def mount_blob(self, repository: str, digest: Digest, source_repository: str) -> bool:
        """Cross-repository mount; True if the registry mounted it, False if it declined."""
        return blobs.mount_blob(self._session, repository, digest, source_repository)

    def mount_or_start(self, repository: str, digest: Digest, source_repository: str) -> str | None:
        """Mount from ``source_repository`` (or, naming ``repository`` itself, find the blob there),
        else open an upload session: None when the blob is in place, else the session's URL for
        :meth:`push_blob` (see :func:`airlock.registry.blobs.mount_or_start`)."""
        return blobs.mount_or_start(self._session, repository, digest, source_repository)

    def push_blob(
        self, repository: str, desc: Descriptor, chunks: Iterable[bytes], *, location: str | None = None
    ) -> None:
        """Upload a blob from ``chunks``, verified as the bytes pass; nothing is committed when they do
        not match ``desc``. ``location``: a session from :meth:`mount_or_start`, taken over (see
        :func:`airlock.registry.blobs.push_blob`)."""
        blobs.push_blob(self._session, repository, desc, chunks, location=location)


def _names(resp: Any, what: str, key: str) -> list[str]:
    """The strings in a listing page's ``key`` array (a tag list's ``tags``, the catalog's
    ``repositories``); the response is read and released.

    Raises:
        RegistryError: the body is not JSON, or not an object whose ``key`` is an array (or null).
    """
    try:
        doc = json.loads(resp.read(MAX_MANIFEST_SIZE))
    except ValueError:
        raise RegistryError(f"{what}: registry returned invalid JSON") from None
    finally:
        discard(resp)
    values = doc.get(key) if isinstance(doc, dict) else ()
    if not isinstance(values, list | None):
        raise RegistryError(f"{what}: registry returned JSON that is not an object with a {key!r} array")
    return [v for v in values or () if isinstance(v, str)]


class _Pages:
    """The pages a listing has followed: refuses a URL already fetched, or more than _MAX_PAGES.

    URLs are compared resolved (``resolve``: the session's), as a ``Link`` may be relative or not.
    """

    def __init__(self, what: str, resolve: Callable[[str], str], first: str) -> None:
        self.what = what
        self.resolve = resolve
        self.seen = {resolve(first)}

    def next(self, path: str | None) -> str | None:
        """``path`` (None: the listing is done).

        Raises:
            RegistryError: ``path`` was fetched before (a pagination loop), or the page cap is reached.
        """
        if path is None:
            return None
        url = self.resolve(path)
        if url in self.seen:  # named by its path: a Link may carry userinfo or tokens in its query
            shown = urlsplit(url).path[:200]
            raise RegistryError(f"{self.what}: the registry's next page is one it already sent ({shown}): a loop")
        if len(self.seen) >= _MAX_PAGES:
            raise RegistryError(f"{self.what}: more than {_MAX_PAGES} pages; the registry's pagination does not end")
        self.seen.add(url)
        return path


def _next_link(header: str | None, current: str) -> str | None:
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return urljoin(current, target.strip().strip("<>"))
    return None
