"""Deterministic sample OCI content, built in memory and pushed with plain urllib3.

These fixtures deliberately share no code with airlock's own registry client, so tests never verify
that client with itself. Content depends only on the kind of artifact, the platform and ``seed``
(not on the repository), so the same call yields the same digests on every run and in every
repository: layers are gzipped tars (level 1, mtime 0, fixed tar metadata) of seeded random bytes.
Digests are stable for a given zlib; a different zlib build could compress differently.

Authentication: ``auth=(user, password)`` is sent as HTTP Basic; when the registry answers with a
Bearer challenge (distribution ``token`` auth), a token is fetched from the challenge's realm with
those credentials, for the challenge's scope, and the request retried.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
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
    "PushedArtifact",
    "blob_exists",
    "get_blob",
    "get_manifest",
    "list_tags",
    "manifest_exists",
    "push_docker_image",
    "push_docker_manifest_list",
    "push_helm_chart",
    "push_oci_artifact",
    "push_oci_image",
    "push_oci_index",
    "push_referrer",
    "push_sample_set",
    "referrers_tag",
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
_EPOCH = "1970-01-01T00:00:00Z"

Platform = tuple[str, str]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


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


# ------------------------------------------------------------------------------------------- HTTP client


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class _Client:
    """Just enough of the distribution API to push and read back, with Basic and Bearer auth."""

    def __init__(self, registry_url: str, auth: tuple[str, str] | None) -> None:
        self.base = registry_url.rstrip("/")
        self.auth = auth
        # No retries and no redirect following: a fixture must show the registry's real answer.
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5.0, read=60.0))
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> _Client:
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
        digest = _sha256(data)
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
        if _sha256(data) != digest:
            raise RuntimeError(f"GET {path}: content digest {_sha256(data)} != {digest}")
        return data

    # -- manifests

    def put_manifest(self, repository: str, reference: str, media_type: str, manifest: bytes) -> str:
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self.request("PUT", repository, path, body=manifest, headers={"Content-Type": media_type})
        _expect(resp, "PUT", path, 201)
        digest = _sha256(manifest)
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
        digest = _sha256(body)
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


# ----------------------------------------------------------------------------------------- building


@dataclass
class _Built:
    """An artifact built in memory: its manifest, its blobs and (for indexes) built children."""

    media_type: str
    manifest: bytes
    blobs: list[bytes]
    children: list[_Built] = field(default_factory=list)
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)

    def all_blobs(self) -> list[tuple[str, int]]:
        seen: dict[str, int] = {}
        for child in self.children:
            for digest, size in child.all_blobs():
                seen.setdefault(digest, size)
        for blob in self.blobs:
            seen.setdefault(_sha256(blob), len(blob))
        return list(seen.items())


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _sha256(data), "size": len(data), **extra}


def _tar_gz(files: Sequence[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """A gzipped tar of ``files`` with fixed metadata; returns (gzipped, uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, compresslevel=1, mtime=0), plain


def _build_image(
    *,
    docker: bool,
    layers: int,
    layer_size: int,
    seed: int,
    platform: Platform,
) -> _Built:
    kind = "docker" if docker else "oci"
    os_name, arch = platform
    # A string seed is hashed with SHA-512 by random.Random, so it is stable across runs and
    # independent of PYTHONHASHSEED.
    rng = random.Random(f"airlock-testing:{kind}-image:{seed}:{os_name}/{arch}")
    layer_blobs: list[bytes] = []
    diff_ids: list[str] = []
    for i in range(layers):
        gz, plain = _tar_gz([(f"airlock/{kind}-{os_name}-{arch}-{i}.bin", rng.randbytes(layer_size))])
        layer_blobs.append(gz)
        diff_ids.append(_sha256(plain))
    config = _json(
        {
            "architecture": arch,
            "os": os_name,
            "created": _EPOCH,
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": _EPOCH, "created_by": f"airlock.testing layer {i}"} for i in range(layers)],
        }
    )
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": _descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
            "layers": [_descriptor(layer_type, blob) for blob in layer_blobs],
        }
    )
    return _Built(DOCKER_MANIFEST if docker else OCI_MANIFEST, manifest, [config, *layer_blobs])


def _build_index(
    *,
    docker: bool,
    platforms: Sequence[Platform],
    layers: int,
    layer_size: int,
    seed: int,
) -> _Built:
    if not platforms:
        raise ValueError("an index needs at least one platform")
    children = [
        _build_image(docker=docker, layers=layers, layer_size=layer_size, seed=seed, platform=p) for p in platforms
    ]
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": len(child.manifest),
                    "platform": {"architecture": arch, "os": os_name},
                }
                for child, (os_name, arch) in zip(children, platforms, strict=True)
            ],
        }
    )
    return _Built(media_type, manifest, [], children)


def _push(client: _Client, repository: str, tag: str | None, built: _Built) -> PushedArtifact:
    for child in built.children:
        _push(client, repository, None, child)
    for blob in built.blobs:
        client.push_blob(repository, blob)
    digest = client.put_manifest(repository, tag or built.digest, built.media_type, built.manifest)
    return PushedArtifact(
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=built.media_type,
        manifest=built.manifest,
        blobs=tuple(built.all_blobs()),
        children=tuple(child.digest for child in built.children),
        artifact_type=built.artifact_type,
        annotations=dict(built.annotations),
    )


# ------------------------------------------------------------------------------------------- pushing


def push_oci_image(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    platform: Platform = ("linux", "amd64"),
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a single-platform OCI image (``tag`` None: by digest only)."""
    built = _build_image(docker=False, layers=layers, layer_size=layer_size, seed=seed, platform=platform)
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def push_oci_index(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push an OCI image index with one OCI image per platform; children are pushed by digest.

    Each child equals what :func:`push_oci_image` builds for the same seed, sizes and platform.
    """
    built = _build_index(docker=False, platforms=platforms, layers=layers, layer_size=layer_size, seed=seed)
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def push_docker_image(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    platform: Platform = ("linux", "amd64"),
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Docker image manifest v2 schema 2."""
    built = _build_image(docker=True, layers=layers, layer_size=layer_size, seed=seed, platform=platform)
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def push_docker_manifest_list(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Docker manifest list with one schema 2 image per platform, children by digest."""
    built = _build_index(docker=True, platforms=platforms, layers=layers, layer_size=layer_size, seed=seed)
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def push_helm_chart(
    registry_url: str,
    repository: str,
    tag: str,
    *,
    chart_name: str | None = None,
    version: str | None = None,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Helm chart as Helm 3 stores it in OCI registries.

    ``chart_name`` defaults to the last path segment of ``repository``, ``version`` to ``tag``.
    The chart layer is a real tar.gz holding ``<chart>/Chart.yaml`` and ``<chart>/values.yaml``.
    """
    name = chart_name or repository.rsplit("/", 1)[-1]
    version = version or tag
    rng = random.Random(f"airlock-testing:helm:{seed}:{name}:{version}")
    chart_yaml = (
        f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"description: airlock test chart (seed {seed})\ntype: application\n"
    ).encode()
    values_yaml = f"replicaCount: 1\nnonce: {rng.randbytes(8).hex()}\n".encode()
    chart, _ = _tar_gz([(f"{name}/Chart.yaml", chart_yaml), (f"{name}/values.yaml", values_yaml)])
    config = _json({"name": name, "version": version, "apiVersion": "v2", "type": "application"})
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(HELM_CONFIG, config),
            "layers": [_descriptor(HELM_CHART_LAYER, chart)],
            "annotations": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            },
        }
    )
    built = _Built(OCI_MANIFEST, manifest, [config, chart])
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def _build_artifact(
    *,
    artifact_type: str,
    layer_media_type: str,
    payload: bytes,
    title: str,
    subject: Mapping[str, Any] | None,
    annotations: Mapping[str, str],
) -> _Built:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _descriptor(EMPTY_CONFIG, EMPTY_BLOB),
        "layers": [_descriptor(layer_media_type, payload, annotations={"org.opencontainers.image.title": title})],
    }
    if subject is not None:
        body["subject"] = dict(subject)
    if annotations:
        body["annotations"] = dict(annotations)
    return _Built(
        OCI_MANIFEST,
        _json(body),
        [EMPTY_BLOB, payload],
        artifact_type=artifact_type,
        annotations=dict(annotations),
    )


def push_oci_artifact(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    artifact_type: str = "application/vnd.example.sbom.v1+json",
    layer_media_type: str | None = None,
    payload: bytes | None = None,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push an OCI 1.1 artifact: image manifest with ``artifactType``, the empty config, one layer.

    The layer is ``payload`` (default: a small seeded JSON document) of ``layer_media_type``
    (default: ``artifact_type``).
    """
    if payload is None:
        rng = random.Random(f"airlock-testing:artifact:{seed}:{artifact_type}")
        payload = _json({"kind": artifact_type, "seed": seed, "nonce": rng.randbytes(16).hex()})
    built = _build_artifact(
        artifact_type=artifact_type,
        layer_media_type=layer_media_type or artifact_type,
        payload=payload,
        title="payload.json",
        subject=None,
        annotations={},
    )
    with _Client(registry_url, auth) as client:
        return _push(client, repository, tag, built)


def referrers_tag(subject_digest: str) -> str:
    """The OCI 1.1 referrers tag-schema fallback tag for a subject: ``sha256:abc`` → ``sha256-abc``."""
    return subject_digest.replace(":", "-")[:128]


def push_referrer(
    registry_url: str,
    repository: str,
    subject: PushedArtifact,
    *,
    artifact_type: str = "application/vnd.example.signature.v1",
    seed: int = 0,
    annotations: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Attach an artifact to ``subject`` (pushed by digest, ``subject`` field set) and return it.

    Distribution 2.8 has no referrers API, so like OCI 1.1 clients do against such registries this
    also maintains the fallback index tagged :func:`referrers_tag` of the subject: the existing one is
    read and the referrer's descriptor (with ``artifactType`` and ``annotations``) appended.
    ``annotations`` default to a fixed ``org.opencontainers.image.created`` and the seed.
    """
    rng = random.Random(f"airlock-testing:referrer:{seed}:{artifact_type}:{subject.digest}")
    payload = _json({"subject": subject.digest, "type": artifact_type, "nonce": rng.randbytes(16).hex()})
    if annotations is None:
        annotations = {"org.opencontainers.image.created": _EPOCH, "org.example.seed": str(seed)}
    built = _build_artifact(
        artifact_type=artifact_type,
        layer_media_type=artifact_type,
        payload=payload,
        title="signature.json",
        subject=subject.descriptor(),
        annotations=annotations,
    )
    with _Client(registry_url, auth) as client:
        referrer = _push(client, repository, None, built)
        fallback_tag = referrers_tag(subject.digest)
        existing = client.get_manifest(repository, fallback_tag)
        index: dict[str, Any]
        if existing is None:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        else:
            index = json.loads(existing[0])
        if all(entry.get("digest") != referrer.digest for entry in index.get("manifests", [])):
            entry = {**referrer.descriptor(), "artifactType": artifact_type}
            if annotations:
                entry["annotations"] = dict(annotations)
            index.setdefault("manifests", []).append(entry)
            client.put_manifest(repository, fallback_tag, OCI_INDEX, _json(index))
    return referrer


def push_sample_set(registry_url: str, *, seed: int = 0, auth: tuple[str, str] | None = None) -> list[PushedArtifact]:
    """Push the demo's sample content (about 260 KiB of blobs) and return it in this order.

    ``samples/app:1.0`` (OCI image), its signature referrer (by digest, plus the fallback index
    tagged ``sha256-<hex>`` in ``samples/app``), ``samples/multi:latest`` (OCI index, linux/amd64 and
    linux/arm64), ``samples/legacy:v2`` (Docker schema 2 image) and ``charts/mychart:0.1.0`` (Helm).
    """
    size = 32 * 1024
    app = push_oci_image(registry_url, "samples/app", "1.0", layer_size=size, seed=seed, auth=auth)
    signature = push_referrer(registry_url, "samples/app", app, seed=seed, auth=auth)
    multi = push_oci_index(registry_url, "samples/multi", "latest", layer_size=size, seed=seed, auth=auth)
    legacy = push_docker_image(registry_url, "samples/legacy", "v2", layer_size=size, seed=seed, auth=auth)
    chart = push_helm_chart(registry_url, "charts/mychart", "0.1.0", seed=seed, auth=auth)
    return [app, signature, multi, legacy, chart]


# ------------------------------------------------------------------------------------------ reading


def get_manifest(
    registry_url: str, repository: str, reference: str, auth: tuple[str, str] | None = None
) -> tuple[bytes, str, str]:
    """Fetch a manifest by tag or digest: (raw bytes, media type, sha256 digest of the bytes).

    Accepts every manifest type, so no registry-side conversion or platform resolution happens.
    Raises RuntimeError when it does not exist or the registry's digest disagrees with the bytes.
    """
    with _Client(registry_url, auth) as client:
        found = client.get_manifest(repository, reference)
    if found is None:
        raise RuntimeError(f"manifest {repository}:{reference} not found at {registry_url}")
    return found


def manifest_exists(registry_url: str, repository: str, reference: str, auth: tuple[str, str] | None = None) -> bool:
    """Whether a manifest exists (HEAD); other answers than 200/404 raise RuntimeError."""
    path = f"/v2/{repository}/manifests/{reference}"
    with _Client(registry_url, auth) as client:
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
    with _Client(registry_url, auth) as client:
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
    with _Client(registry_url, auth) as client:
        return client.get_blob(repository, digest)


def blob_exists(registry_url: str, repository: str, digest: str, auth: tuple[str, str] | None = None) -> bool:
    """Whether ``repository`` serves the blob (HEAD); other answers than 200/404 raise RuntimeError."""
    with _Client(registry_url, auth) as client:
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
