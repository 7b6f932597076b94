"""Sample OCI content: its media types, what a push stored (:class:`PushedArtifact`), and a way to
reach a registry that shares no code with airlock's own client, so tests never verify that client
with itself: a plain-urllib3 :class:`Client` and the read helpers below. The content itself is built
by :mod:`airlock.testing.images`, :mod:`~airlock.testing.referrers` and :mod:`~airlock.testing.helm`
(:mod:`~airlock.testing.samples` is the demo's set of them all).

Authentication: ``auth=(user, password)`` is sent as HTTP Basic; when the registry answers with a
Bearer challenge (distribution ``token`` auth), a token is fetched from the challenge's realm with
those credentials, for the challenge's scope, and the request retried.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY_BLOB",
    "EMPTY_CONFIG",
    "EMPTY_DIGEST",
    "HELM_CHART_LAYER",
    "HELM_CONFIG",
    "MANIFEST_MEDIA_TYPES",
    "OCI_ARTIFACT_MANIFEST",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Client",
    "Platform",
    "PushedArtifact",
    "blob_exists",
    "catalog_digest_of",
    "get_blob",
    "get_manifest",
    "list_tags",
    "manifest_exists",
    "sha256",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_ARTIFACT_MANIFEST)
# Distribution 2.8 answers a manifest GET whose Accept lacks the stored type with 404 (OCI) or with a
# platform-resolved child (lists), so every read asks for all of them.
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

Platform = tuple[str, str]


def sha256(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PushedArtifact:
    """What a ``push_*`` helper stored: enough for tests to check a copy independently.

    ``blobs`` lists (digest, size) of every blob the artifact references, those of child manifests
    included, without duplicates; ``children`` lists child manifest digests (indexes only).
    """

    repository: str
    tag: str | None
    digest: str
    media_type: str
    manifest: bytes
    blobs: tuple[tuple[str, int], ...]
    children: tuple[str, ...] = ()
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """``repository:tag``, or ``repository@digest`` when pushed by digest only."""
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"

    @property
    def size(self) -> int:
        return len(self.manifest)

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor of this manifest (mediaType, digest, size)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Client:
    """Just enough of the distribution API to push and read back, with Basic and Bearer auth."""

    def __init__(self, registry_url: str, auth: tuple[str, str] | None) -> None:
        self.base = registry_url.rstrip("/")
        self.auth = auth
        # No retries and no redirect following: a fixture must show the registry's real answer.
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5.0, read=60.0))
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.clear()

    def _auth_header(self, repository: str) -> dict[str, str]:
        token = self._tokens.get(repository)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self.auth is not None:
            return dict(urllib3.make_headers(basic_auth=f"{self.auth[0]}:{self.auth[1]}"))
        return {}

    def request(
        self,
        method: str,
        repository: str,
        path_or_url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        for attempt in range(2):
            all_headers = {**self._auth_header(repository), **(headers or {})}
            resp = self.http.request(method, url, body=body, headers=all_headers, redirect=False)
            challenge = resp.headers.get("WWW-Authenticate", "")
            if resp.status != 401 or not challenge.startswith("Bearer ") or attempt == 1:
                return resp
            self._tokens[repository] = self._fetch_token(repository, challenge)
        raise AssertionError("unreachable")

    def _fetch_token(self, repository: str, challenge: str) -> str:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise RuntimeError(f"Bearer challenge without realm: {challenge!r}")
        query = [("service", params.get("service", "")), ("scope", params.get("scope", ""))]
        if not params.get("scope"):
            query[1] = ("scope", f"repository:{repository}:pull")
        headers: dict[str, str] = {}
        if self.auth is not None:
            headers = dict(urllib3.make_headers(basic_auth=f"{self.auth[0]}:{self.auth[1]}"))
        sep = "&" if "?" in realm else "?"
        resp = self.http.request("GET", realm + sep + urllib.parse.urlencode(query), headers=headers)
        _expect(resp, "GET", realm, 200)
        answer = json.loads(resp.data)
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str):
            raise RuntimeError(f"token endpoint {realm} answered without a token: {answer!r}")
        return token

    # -- blobs

    def blob_status(self, repository: str, digest: str) -> int:
        resp = self.request("HEAD", repository, f"/v2/{repository}/blobs/{digest}")
        return resp.status

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        if self.blob_status(repository, digest) == 200:
            return digest
        start = f"/v2/{repository}/blobs/uploads/"
        resp = self.request("POST", repository, start, headers={"Content-Length": "0"})
        _expect(resp, "POST", start, 202)
        location = resp.headers.get("Location")
        if not location:
            raise RuntimeError(f"POST {start}: 202 without Location")
        # Location is usually absolute with a ?_state= query, but may be relative and query-less.
        url = urllib.parse.urljoin(self.base + "/", location)
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode({"digest": digest})
        resp = self.request(
            "PUT",
            repository,
            url,
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        _expect(resp, "PUT", url, 201)
        return digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        path = f"/v2/{repository}/blobs/{digest}"
        resp = self.request("GET", repository, path)
        if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
            # Redirects point at backend storage, which must not receive registry credentials.
            url = urllib.parse.urljoin(self.base + path, resp.headers["Location"])
            resp = self.http.request("GET", url, redirect=True)
            path = url
        _expect(resp, "GET", path, 200)
        data = bytes(resp.data)
        if sha256(data) != digest:
            raise RuntimeError(f"GET {path}: content digest {sha256(data)} != {digest}")
        return data

    # -- manifests

    def put_manifest(self, repository: str, reference: str, media_type: str, manifest: bytes) -> str:
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self.request("PUT", repository, path, body=manifest, headers={"Content-Type": media_type})
        _expect(resp, "PUT", path, 201)
        digest = sha256(manifest)
        answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RuntimeError(f"PUT {path}: registry computed digest {answered}, expected {digest}")
        return digest

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str] | None:
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self.request("GET", repository, path, headers={"Accept": _ACCEPT})
        if resp.status == 404:
            return None
        _expect(resp, "GET", path, 200)
        body = bytes(resp.data)
        digest = sha256(body)
        answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RuntimeError(f"GET {path}: Docker-Content-Digest {answered} != content digest {digest}")
        if reference.startswith("sha256:") and reference != digest:
            raise RuntimeError(f"GET {path}: content digest {digest} != requested digest")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type:
            media_type = str(json.loads(body).get("mediaType", ""))
        return body, media_type, digest


def _expect(resp: urllib3.BaseHTTPResponse, method: str, what: str, status: int) -> None:
    if resp.status != status:
        body = resp.data[:1000].decode(errors="replace")
        raise RuntimeError(f"{method} {what}: expected HTTP {status}, got {resp.status}: {body}")


def get_manifest(
    registry_url: str, repository: str, reference: str, auth: tuple[str, str] | None = None
) -> tuple[bytes, str, str]:
    """Fetch a manifest by tag or digest: (raw bytes, media type, sha256 digest of the bytes).

    Accepts every manifest type, so no registry-side conversion or platform resolution happens.
    Raises RuntimeError when it does not exist or the registry's digest disagrees with the bytes.
    """
    with Client(registry_url, auth) as client:
        found = client.get_manifest(repository, reference)
    if found is None:
        raise RuntimeError(f"manifest {repository}:{reference} not found at {registry_url}")
    return found


def manifest_exists(registry_url: str, repository: str, reference: str, auth: tuple[str, str] | None = None) -> bool:
    """Whether a manifest exists (HEAD); other answers than 200/404 raise RuntimeError."""
    path = f"/v2/{repository}/manifests/{reference}"
    with Client(registry_url, auth) as client:
        resp = client.request("HEAD", repository, path, headers={"Accept": _ACCEPT})
    if resp.status in (200, 404):
        return resp.status == 200
    raise RuntimeError(f"HEAD {path}: unexpected HTTP {resp.status}")


def list_tags(registry_url: str, repository: str, auth: tuple[str, str] | None = None) -> list[str]:
    """All tags of ``repository`` in the registry's order (distribution 2.8 does not sort them),
    following ``Link`` pagination; [] for an unknown repository.
    """
    tags: list[str] = []
    path: str | None = f"/v2/{repository}/tags/list"
    with Client(registry_url, auth) as client:
        while path is not None:
            resp = client.request("GET", repository, path)
            if resp.status == 404:
                return tags
            _expect(resp, "GET", path, 200)
            tags.extend(json.loads(resp.data).get("tags") or [])
            link = re.match(r"\s*<([^>]+)>", resp.headers.get("Link", ""))
            path = link.group(1) if link else None
    return tags


def get_blob(registry_url: str, repository: str, digest: str, auth: tuple[str, str] | None = None) -> bytes:
    """A blob's content, checked against ``digest``; RuntimeError when missing or corrupt."""
    with Client(registry_url, auth) as client:
        return client.get_blob(repository, digest)


def blob_exists(registry_url: str, repository: str, digest: str, auth: tuple[str, str] | None = None) -> bool:
    """Whether ``repository`` serves the blob (HEAD); other answers than 200/404 raise RuntimeError."""
    with Client(registry_url, auth) as client:
        status = client.blob_status(repository, digest)
    if status in (200, 404):
        return status == 200
    raise RuntimeError(f"HEAD /v2/{repository}/blobs/{digest}: unexpected HTTP {status}")


def catalog_digest_of(archive: str | Path) -> str:
    """The catalogDigest of a transfer archive on disk, computed independently of airlock's reader
    (with the standard library's tarfile): the SHA-256 of its ``airlock-catalog.json`` member."""
    with tarfile.open(archive) as tf:
        member = tf.extractfile("airlock-catalog.json")
        if member is None:
            raise RuntimeError(f"{archive}: no airlock-catalog.json member")
        return "sha256:" + hashlib.sha256(member.read()).hexdigest()
