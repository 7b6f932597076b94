"""A reference client for the many-small set: the requests a transfer needs, and nothing else.

``bench.many_small`` measures it beside airlock and skopeo, so that its table shows how fast the local
registry serves (export) or accepts (import) the set for a client that sends only the requests any transfer
of an image must send, as many at a time as airlock does (32 GETs, 16 uploads) on kept-alive connections,
and does no other work: no archive, no digest check, no tag-conflict check, no retry. It is Python with
urllib3, as airlock is. It is a reference, not a bound: another client could spend less CPU of its own, or
send requests the registry handles more cheaply; but on these two cores the registry's CPU per image is
most of what there is (see the registries' column).

- **Export:** per image, a GET of its manifest by tag, then a GET of its config and of each layer; the bytes
  are counted and dropped. Kept in memory (the manifest and every blob) for the import that follows.
- **Import:** per image, a POST and a PUT (monolithic upload) of each blob, then a PUT of its manifest by tag,
  into a fresh registry.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3

from airlock.transfer.concurrent_map import GETS_IN_FLIGHT, REQUESTS_IN_FLIGHT
from bench.image_set import OCI_MANIFEST, _check, push_bytes


@dataclass
class Image:
    """One image as the bare export read it: enough for the bare import to push it again."""

    repository: str
    tag: str
    manifest: bytes
    blobs: list[tuple[str, bytes]]  # (digest, content): config first, then layers


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pool(size: int) -> urllib3.PoolManager:
    return urllib3.PoolManager(maxsize=size, timeout=urllib3.Timeout(connect=10, read=120), retries=False, block=True)


def bare_export(base: str, references: Sequence[tuple[str, str]]) -> tuple[list[Image], float, float]:
    """GET every (repository, tag)'s manifest and blobs from ``base``: the images, wall s and own CPU s.

    Raises RuntimeError on any answer but 200, or a blob whose length is not its descriptor's size.
    """
    http = _pool(GETS_IN_FLIGHT)

    def one(ref: tuple[str, str]) -> Image:
        repo, tag = ref
        resp = http.request("GET", f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        _check(resp, 200, f"GET manifest {repo}:{tag}")
        raw = resp.data
        doc = json.loads(raw)
        blobs = []
        for desc in [doc["config"], *doc["layers"]]:
            resp = http.request("GET", f"{base}/v2/{repo}/blobs/{desc['digest']}")
            _check(resp, 200, f"GET blob {repo}@{desc['digest']}")
            if len(resp.data) != desc["size"]:
                raise RuntimeError(f"GET blob {repo}@{desc['digest']}: {len(resp.data)} bytes, expected {desc['size']}")
            blobs.append((desc["digest"], resp.data))
        return Image(repo, tag, raw, blobs)

    cpu, started = _own_cpu(), time.perf_counter()
    with ThreadPoolExecutor(GETS_IN_FLIGHT) as pool:
        images = list(pool.map(one, references))
    return images, time.perf_counter() - started, _own_cpu() - cpu


def bare_import(base: str, images: Sequence[Image]) -> tuple[float, float]:
    """Push every image into ``base``: wall s and own CPU s.

    Raises RuntimeError on any answer but 202 (POST) or 201 (PUT).
    """
    http = _pool(REQUESTS_IN_FLIGHT)

    def one(image: Image) -> None:
        for digest, data in image.blobs:
            push_bytes(base, image.repository, data, digest=digest, http=http)
        resp = http.request(
            "PUT",
            f"{base}/v2/{image.repository}/manifests/{image.tag}",
            body=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        _check(resp, 201, f"PUT manifest {image.repository}:{image.tag}")

    cpu, started = _own_cpu(), time.perf_counter()
    with ThreadPoolExecutor(REQUESTS_IN_FLIGHT) as pool:
        list(pool.map(one, images))
    return time.perf_counter() - started, _own_cpu() - cpu
