"""RegistryClient's pushes against the real distribution 2.8 registry: blobs (monolithic and chunked,
with resent chunks and sources that do not match their descriptor), mounts, manifests and tag lists.

Content is checked with :mod:`airlock.testing.content` (plain urllib3), never with the client under test;
faults come from a local proxy. Every error a test provokes goes through :func:`no_secrets`.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator

import pytest

import airlock.registry.blobs as blobs_module
import airlock.registry.client as client_module
from airlock.errors import IntegrityError, RegistryError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST, Descriptor
from airlock.registry.client import ManifestInfo
from airlock.registry.credentials import Credentials
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy, flip_middle_byte
from airlock.testing.leaks import unleaked
from airlock.testing.registry_clients import RegistryClients
from airlock.testing.registry_server import RegistryServer

USER, PASSWORD = "alice", "pw-basic-7f3a9c1e"  # sent by the replay test; the registry ignores them
SECRETS = (
    PASSWORD,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    "_state=",  # upload locations carry signed session state in their query
)
KiB = 1024


def no_secrets(exc: BaseException) -> str:
    return unleaked(exc, SECRETS)


def desc_of(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, Digest.of(data), len(data))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def random_bytes(n: int, seed: int | str) -> bytes:
    return random.Random(f"test_client:{seed}").randbytes(n)


# ------------------------------------------------------------------------------------------ blob upload


def test_push_blob_monolithic(registry: RegistryServer, proxy: FaultProxy, make_client: RegistryClients) -> None:
    data = random_bytes(5 * KiB + 7, seed=1)
    desc = desc_of(data)
    client = make_client(proxy.url)
    client.push_blob("push/mono", desc, pieces(data, 2 * KiB))
    assert content.get_blob(registry.url, "push/mono", str(desc.digest)) == data
    assert client.blob_size("push/mono", desc.digest) == len(data)
    assert proxy.seen("PATCH", "/push/mono/") == []
    puts = proxy.seen("PUT", "/push/mono/blobs/uploads/")
    assert [p.headers["content-length"] for p in puts] == [str(len(data))]
    assert f"digest={desc.digest}" in puts[0].path


def test_push_blob_chunked(
    registry: RegistryServer, proxy: FaultProxy, make_client: RegistryClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    data = random_bytes(200 * KiB + 123, seed=2)
    desc = desc_of(data)
    client = make_client(proxy.url)
    client.push_blob("push/chunked", desc, pieces(data, 16 * KiB))
    assert content.get_blob(registry.url, "push/chunked", str(desc.digest)) == data
    patches = proxy.seen("PATCH", "/push/chunked/blobs/uploads/")
    assert len(patches) == math.ceil(len(data) / (16 * KiB))
    ranges = [p.headers["content-range"] for p in patches]
    expected = [f"{i}-{min(i + 16 * KiB, len(data)) - 1}" for i in range(0, len(data), 16 * KiB)]
    assert ranges == expected
    puts = proxy.seen("PUT", "/push/chunked/blobs/uploads/")
    assert [p.headers["content-length"] for p in puts] == ["0"]


# Regression: distribution answers "Range: 0-0" for an EMPTY upload session; it was once read as
# "1 byte held", so a failed FIRST PATCH was resent without its first byte.
@pytest.mark.parametrize("how", ["503", "dropped"])
@pytest.mark.parametrize("which", [1, 3])
def test_push_blob_chunked_resends_a_failed_chunk(
    which: int,
    how: str,
    registry: RegistryServer,
    proxy: FaultProxy,
    make_client: RegistryClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PATCH that never reached the registry is sent again from what the upload session holds."""
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    repo = f"push/patch-{which}-{how}"
    data = random_bytes(80 * KiB + 5, seed=repo)
    desc = desc_of(data)
    fault = Fault("PATCH", f"/{repo}/blobs/uploads/", skip=which - 1)
    if how == "503":
        fault.status = 503
    else:
        fault.drop = True
    proxy.add(fault)
    client = make_client(proxy.url)
    client.push_blob(repo, desc, pieces(data, 16 * KiB))
    assert fault.hits == 1
    assert content.get_blob(registry.url, repo, str(desc.digest)) == data
    patches = proxy.seen("PATCH", f"/{repo}/blobs/uploads/")
    failed = patches[which - 1]
    assert failed.status == (503 if how == "503" else 0)
    # The retry covers exactly the chunk that failed.
    assert patches[which].headers["content-range"] == failed.headers["content-range"]


# Regression: the 401 re-authentication once replayed a streamed upload body (retry=False): an
# exhausted generator sent an empty body announcing Content-Length N and hung until read_timeout.
@pytest.mark.parametrize("source", ["generator", "list"])
def test_push_blob_stream_is_not_replayed_after_401(
    source: str, registry: RegistryServer, proxy: FaultProxy, make_client: RegistryClients
) -> None:
    repo = f"push/replay-{source}"
    data = random_bytes(6 * KiB, seed=repo)
    desc = desc_of(data)
    # The anonymous registry ignores Authorization; the proxy plays a registry that wants Basic auth
    # again on the upload's PUT (as after an expired or revoked token).
    proxy.add(Fault("PUT", f"/{repo}/blobs/uploads/", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    client = make_client(proxy.url, Credentials(USER, PASSWORD))
    chunks = pieces(data, 2 * KiB) if source == "generator" else [data]
    with pytest.raises(RegistryError) as info:
        client.push_blob(repo, desc, chunks)
    message = no_secrets(info.value)
    assert "cannot reach" not in message
    assert len(proxy.seen("PUT", f"/{repo}/blobs/uploads/")) == 1
    assert client.blob_size(repo, desc.digest) is None


@pytest.mark.parametrize("mode", ["monolithic", "chunked"])
@pytest.mark.parametrize("fault", ["changed-byte", "extra-bytes", "missing-bytes"])
def test_push_blob_rejects_mismatching_source(
    mode: str,
    fault: str,
    registry: RegistryServer,
    proxy: FaultProxy,
    make_client: RegistryClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    size = 20 * KiB if mode == "monolithic" else 100 * KiB
    data = random_bytes(size, seed=f"{mode}-{fault}")
    source = {
        "changed-byte": flip_middle_byte(data),
        "extra-bytes": data + b"x",
        "missing-bytes": data[:-1],
    }[fault]
    desc = desc_of(data)
    repo = f"push/bad-{mode}-{fault}"
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        client.push_blob(repo, desc, pieces(source, 8 * KiB))
    assert str(desc.digest) in no_secrets(info.value)
    # The upload session is cancelled rather than left behind.
    assert len(proxy.seen("DELETE", f"/{repo}/blobs/uploads/")) == 1
    assert client.blob_size(repo, desc.digest) is None
    assert client.blob_size(repo, Digest.of(source)) is None
    assert not content.blob_exists(registry.url, repo, str(desc.digest))


def test_mount_blob(registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients) -> None:
    source = samples["oci-image"]
    digest, size = source.blobs[-1]
    client = make_client(registry.url)
    assert client.mount_blob("mount/dst", Digest.parse(digest), source.repository) is True
    assert content.blob_exists(registry.url, "mount/dst", digest)
    assert client.blob_size("mount/dst", Digest.parse(digest)) == size
    # A blob the source does not have: the registry declines (and the opened session is cancelled).
    unknown = Digest.of(b"not in any repository")
    assert client.mount_blob("mount/dst", unknown, source.repository) is False
    assert client.blob_size("mount/dst", unknown) is None


def test_put_manifest_by_digest_then_tag(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    manifest = client.get_manifest(source.repository, "v1")
    for desc in manifest.blobs:
        assert client.mount_blob("put/img", desc.digest, source.repository)
    client.put_manifest("put/img", str(manifest.digest), manifest)
    assert content.get_manifest(registry.url, "put/img", source.digest)[0] == source.manifest
    assert content.list_tags(registry.url, "put/img") == []
    client.put_manifest("put/img", "v2", manifest)
    raw, media_type, digest = content.get_manifest(registry.url, "put/img", "v2")
    assert (raw, media_type, digest) == (source.manifest, OCI_MANIFEST, source.digest)
    assert client.list_tags("put/img") == ["v2"]
    assert client.head_manifest("put/img", "v2") == ManifestInfo(manifest.digest, OCI_MANIFEST, manifest.size)


# Regression: error bodies were once preloaded and lost, so registry error codes
# (MANIFEST_BLOB_UNKNOWN) never reached the exception.
def test_put_manifest_error_carries_registry_codes(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    manifest = client.get_manifest(source.repository, "v1")
    # The blobs were never pushed to this repository: the registry refuses with its own error code.
    with pytest.raises(RegistryError) as info:
        client.put_manifest("put/no-blobs", "v1", manifest)
    message = no_secrets(info.value)
    assert "put/no-blobs" in message and "HTTP 400" in message
    assert not info.value.transient
    assert "MANIFEST_BLOB_UNKNOWN" in info.value.codes
    assert "MANIFEST_BLOB_UNKNOWN" in message
    assert content.manifest_exists(registry.url, "put/no-blobs", "v1") is False


def test_list_tags_paginates(
    registry: RegistryServer,
    proxy: FaultProxy,
    samples: dict[str, PushedArtifact],
    make_client: RegistryClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_TAGS_PAGE", 2)
    source = samples["oci-image"]
    direct = make_client(registry.url)
    manifest = direct.get_manifest(source.repository, "v1")
    for desc in manifest.blobs:
        direct.mount_blob("tags/app", desc.digest, source.repository)
    tags = [f"t{i}" for i in range(1, 6)]
    for tag in tags:
        direct.put_manifest("tags/app", tag, manifest)
    assert sorted(content.list_tags(registry.url, "tags/app")) == tags

    # distribution 2.8 ignores ?n= and answers everything at once.
    assert sorted(direct.list_tags("tags/app")) == tags
    # A registry that honours ?n= (the proxy emulates one) answers 3 pages linked by Link headers.
    proxy.paginate_tags = True
    got = make_client(proxy.url).list_tags("tags/app")
    assert sorted(got) == tags and len(got) == 5
    pages = proxy.seen("GET", "/v2/tags/app/tags/list")
    assert len(pages) == 3
    assert all("n=2" in p.path for p in pages)
    assert "last=t2" in pages[1].path and "last=t4" in pages[2].path
    assert direct.list_tags("no/such-repo") == []
