"""The throughput benchmark's test set: :class:`SetSpec` (what to build, from a seed), :class:`Image` and
:class:`TestSet` (what was built), the generator of its layers (a tar of seeded AES-CTR bytes in gzip level 0,
made on the fly), the registry push helpers (:func:`push_bytes`, :func:`push_layer` and the upload steps
``_start_upload``/``_check`` under them, which ``bench.steps`` uses too), :func:`open_test_set` (the source
registry on the cached set, built first when missing), :func:`manifest_digest` and :func:`registry_holds` (what a
registry holds), and the OCI media types, which ``bench.many_small`` and ``bench.bare_requests`` build with too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import urllib3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airlock.testing.registry_server import RegistryServer
from bench.workspace import REPO_ROOT, WORK_DIR, MiB, say

GEN_CHUNK = 4 * MiB
GENERATOR_VERSION = 1  # bump when the set's bytes change, so old caches are not reused

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"
TAG = "v1"

_http = urllib3.PoolManager(maxsize=4, timeout=urllib3.Timeout(connect=10, read=300), retries=False)


@dataclass(frozen=True)
class SetSpec:
    seed: int
    images: int
    layers: int
    layer_mib: float
    big_mib: float

    @property
    def key(self) -> str:
        doc = json.dumps({**asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:12]

    @property
    def layer_bytes(self) -> int:
        return int(self.layer_mib * MiB)

    @property
    def big_bytes(self) -> int:
        return int(self.big_mib * MiB)

    def describe(self) -> str:
        text = f"{self.images} images x {self.layers} layers x {self.layer_mib:g} MiB"
        if self.big_bytes:
            text += f" + 1 image with one {self.big_mib:g} MiB layer"
        return f"{text} (seed {self.seed})"


@dataclass
class Image:
    repository: str
    tag: str
    digest: str
    manifest_size: int
    blobs: list[tuple[str, int]]  # (digest, size): config first, then layers

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class TestSet:
    spec: SetSpec
    directory: Path
    images: list[Image]

    @property
    def payload_bytes(self) -> int:
        return sum(i.manifest_size + sum(size for _, size in i.blobs) for i in self.images)

    @property
    def largest_blob(self) -> tuple[str, str, int]:
        """(repository, digest, size) of the largest layer: the subject of the raw GET/PUT/hash limits."""
        return max(((i.repository, d, s) for i in self.images for d, s in i.blobs), key=lambda t: t[2])


def _keystream(seed: int, name: str) -> Any:
    key = hashlib.sha256(f"airlock-bench/{seed}/{name}".encode()).digest()
    return Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()


def _tar_chunks(seed: int, name: str, size: int) -> Iterator[bytes]:
    """A ustar stream holding one file of ``size`` seeded random bytes (AES-CTR keystream: GB/s)."""
    info = tarfile.TarInfo("layer.bin")
    info.size, info.mtime, info.mode = size, 0, 0o644
    yield info.tobuf(format=tarfile.USTAR_FORMAT)
    enc = _keystream(seed, name)
    zeros = memoryview(bytes(GEN_CHUNK))
    left = size
    while left:
        n = min(GEN_CHUNK, left)
        yield enc.update(zeros[:n])
        left -= n
    yield bytes(-size % 512 + 1024)


class _Layer:
    """A gzip (level 0) layer generated on the fly; digest, diff_id and size are known once consumed."""

    def __init__(self, seed: int, name: str, size: int) -> None:
        self.seed, self.name, self.raw_size = seed, name, size
        self.sha = hashlib.sha256()
        self.diff_id = hashlib.sha256()
        self.size = 0

    def chunks(self) -> Iterator[bytes]:
        z = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: gzip wrapper, mtime 0: deterministic
        for raw in _tar_chunks(self.seed, self.name, self.raw_size):
            self.diff_id.update(raw)
            out = z.compress(raw)
            if out:
                self.sha.update(out)
                self.size += len(out)
                yield out
        out = z.flush()
        self.sha.update(out)
        self.size += len(out)
        yield out


def _check(resp: urllib3.BaseHTTPResponse, expected: int, what: str) -> None:
    if resp.status != expected:
        raise RuntimeError(f"{what}: HTTP {resp.status} {resp.data[:300]!r}")


def _start_upload(base: str, repo: str, http: urllib3.PoolManager | None = None) -> str:
    resp = (http or _http).request("POST", f"{base}/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    _check(resp, 202, f"POST upload {repo}")
    location = resp.headers["Location"]
    return location if location.startswith("http") else base + location


def _amp(url: str) -> str:
    return "&" if "?" in url else "?"


def push_bytes(
    base: str, repo: str, data: bytes, *, digest: str | None = None, http: urllib3.PoolManager | None = None
) -> str:
    """A monolithic upload of ``data`` into ``repo`` (a POST, then a PUT with the digest); the digest.

    Raises RuntimeError on any answer but 202 (POST) or 201 (PUT).
    """
    digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    location = _start_upload(base, repo, http)
    resp = (http or _http).request(
        "PUT",
        f"{location}{_amp(location)}digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _check(resp, 201, f"PUT blob {repo}@{digest}")
    return digest


def push_layer(base: str, repo: str, layer: _Layer) -> tuple[str, int, str]:
    """Stream a generated layer into ``repo`` (one chunked PATCH, then PUT with the digest)."""
    location = _start_upload(base, repo)
    resp = _http.request(
        "PATCH",
        location,
        body=layer.chunks(),
        chunked=True,
        headers={"Content-Type": "application/octet-stream"},
    )
    _check(resp, 202, f"PATCH layer {repo}")
    location = resp.headers["Location"]
    location = location if location.startswith("http") else base + location
    digest = "sha256:" + layer.sha.hexdigest()
    resp = _http.request("PUT", f"{location}{_amp(location)}digest={digest}", headers={"Content-Length": "0"})
    _check(resp, 201, f"PUT layer {repo}")
    return digest, layer.size, "sha256:" + layer.diff_id.hexdigest()


def _build_image(base: str, seed: int, repo: str, layer_sizes: Sequence[int]) -> Image:
    layers = []
    for j, size in enumerate(layer_sizes):
        layers.append(push_layer(base, repo, _Layer(seed, f"{repo}/{j}", size)))
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = push_bytes(base, repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s, _ in layers],
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    resp = _http.request("PUT", f"{base}/v2/{repo}/manifests/{TAG}", body=raw, headers={"Content-Type": OCI_MANIFEST})
    _check(resp, 201, f"PUT manifest {repo}")
    blobs = [(config_digest, len(config_bytes)), *((d, s) for d, s, _ in layers)]
    return Image(repo, TAG, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw), blobs)


def manifest_digest(base: str, repo: str, tag: str) -> str | None:
    resp = _http.request("HEAD", f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    return resp.headers.get("Docker-Content-Digest") if resp.status == 200 else None


def registry_holds(base: str, images: Sequence[Image]) -> bool:
    return all(manifest_digest(base, i.repository, i.tag) == i.digest for i in images)


def open_test_set(spec: SetSpec) -> tuple[TestSet, RegistryServer]:
    """Start the source registry on the cached set, building the set first when it is not cached."""
    directory = WORK_DIR / f"set-{spec.key}"
    marker = directory / "set.json"
    if marker.is_file():
        doc = json.loads(marker.read_text())
        images = [
            Image(i["repository"], i["tag"], i["digest"], i["manifest_size"], [(d, s) for d, s in i["blobs"]])
            for i in doc["images"]
        ]
        registry = RegistryServer.start(directory, name="source")
        if registry_holds(registry.url, images):
            say(f"test set: cached in {directory.relative_to(REPO_ROOT)} ({spec.describe()})")
            return TestSet(spec, directory, images), registry
        say("test set: cache incomplete, rebuilding")
        registry.stop()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    registry = RegistryServer.start(directory, name="source")
    say(f"test set: building {spec.describe()} into {directory.relative_to(REPO_ROOT)} ...")
    started = time.perf_counter()
    jobs: list[tuple[str, list[int]]] = [
        (f"bench/img{i:02d}", [spec.layer_bytes] * spec.layers) for i in range(spec.images)
    ]
    if spec.big_bytes:
        jobs.append(("bench/big", [spec.big_bytes]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        images = list(pool.map(lambda job: _build_image(registry.url, spec.seed, *job), jobs))
    test_set = TestSet(spec, directory, images)
    marker.write_text(json.dumps({"spec": asdict(spec), "images": [asdict(i) for i in images]}, indent=1) + "\n")
    say(f"test set: built in {time.perf_counter() - started:.1f} s ({test_set.payload_bytes / MiB:.1f} MiB)")
    return test_set, registry
