"""RegistryClient against the real distribution 2.8 registry: anonymous pulls, blob downloads, retries
and referrers (pushes: test_client_push.py; authentication: test_client_auth.py; fixtures: conftest.py).

Content is pushed and checked with :mod:`airlock.testing.content` (plain urllib3), never with the client
under test. Faults (5xx, 429, dropped and cut connections, corrupted bodies) come from a local proxy.
Every error a test provokes goes through :func:`no_secrets`.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import airlock.registry.client as client_module
from airlock.errors import IntegrityError, NotFound, RegistryError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST, Descriptor, Manifest
from airlock.registry.client import ManifestInfo
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy, flip_middle_byte
from airlock.testing.images import push_oci_image
from airlock.testing.leaks import unleaked
from airlock.testing.referrers import push_referrer
from airlock.testing.registry_clients import RegistryClients
from airlock.testing.registry_server import RegistryServer

# Upload locations carry signed session state in their query; no error may show one.
SECRETS = ("_state=",)
KiB = 1024


def no_secrets(exc: BaseException) -> str:
    return unleaked(exc, SECRETS)


# ------------------------------------------------------------------------------------- anonymous pulls


def test_ping_anonymous(registry: RegistryServer, make_client: RegistryClients) -> None:
    client = make_client(registry.url)
    client.ping()
    assert client.auth.scheme is None  # no challenge was ever sent
    assert client.auth.credentials is None


@pytest.mark.parametrize("kind", ["oci-image", "oci-index", "docker-image", "docker-list"])
def test_get_manifest_is_byte_exact(
    kind: str, registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    pushed = samples[kind]
    client = make_client(registry.url)
    by_tag = client.get_manifest(pushed.repository, "v1")
    assert by_tag.raw == pushed.manifest
    assert str(by_tag.digest) == pushed.digest
    assert by_tag.media_type == pushed.media_type
    if pushed.children:
        assert by_tag.is_index
        assert [str(c.digest) for c in by_tag.children] == list(pushed.children)
        assert by_tag.blobs == ()
    else:
        assert not by_tag.is_index
        assert {(str(b.digest), b.size) for b in by_tag.blobs} == set(pushed.blobs)

    by_digest = client.get_manifest(pushed.repository, pushed.digest)
    assert by_digest.raw == pushed.manifest
    assert by_digest.digest == by_tag.digest

    info = client.head_manifest(pushed.repository, "v1")
    assert info == ManifestInfo(Digest.parse(pushed.digest), pushed.media_type, len(pushed.manifest))
    assert client.head_manifest(pushed.repository, pushed.digest) == info


def test_missing_manifest(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    client = make_client(registry.url)
    repo = samples["oci-image"].repository
    assert client.head_manifest(repo, "no-such-tag") is None
    assert client.head_manifest("no/such-repo", "v1") is None
    with pytest.raises(NotFound) as info:
        client.get_manifest(repo, "no-such-tag")
    message = no_secrets(info.value)
    assert f"{repo}:no-such-tag" in message
    assert info.value.status == 404
    assert "MANIFEST_UNKNOWN" in info.value.codes
    assert not info.value.transient


def test_get_by_digest_verifies_the_bytes(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    pushed = samples["oci-image"]
    # Still valid JSON of the same manifest, but other bytes: only the digest check can notice.
    proxy.add(Fault("GET", f"/manifests/{pushed.digest}", transform=lambda b: b.replace(b"{", b"{ ", 1)))
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        client.get_manifest(pushed.repository, pushed.digest)
    message = no_secrets(info.value)
    assert pushed.digest in message and "hashes to sha256:" in message
    # The fault fired once; the next fetch is clean.
    assert client.get_manifest(pushed.repository, pushed.digest).raw == pushed.manifest


# ------------------------------------------------------------------------------------------ blob download


def test_iter_blob_streams_and_verifies(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    layer = client.get_manifest(source.repository, "v1").blobs[1]
    chunks = list(client.iter_blob(source.repository, layer, chunk_size=1024))
    assert len(chunks) > 1
    assert b"".join(chunks) == content.get_blob(registry.url, source.repository, str(layer.digest))

    # A descriptor that promises fewer bytes than the registry serves.
    short = Descriptor(layer.media_type, layer.digest, layer.size - 1)
    with pytest.raises(IntegrityError) as info:
        b"".join(client.iter_blob(source.repository, short))
    assert str(layer.digest) in no_secrets(info.value)

    nobody = b"nobody pushed this"
    missing = Descriptor("application/octet-stream", Digest.of(nobody), len(nobody))
    with pytest.raises(NotFound) as nf:
        b"".join(client.iter_blob(source.repository, missing))
    assert str(missing.digest) in no_secrets(nf.value)


def test_iter_blob_detects_corrupted_bytes(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    source = samples["oci-image"]
    digest, size = source.blobs[-1]
    proxy.add(Fault("GET", f"/blobs/{digest}", transform=flip_middle_byte))
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        b"".join(
            client.iter_blob(source.repository, Descriptor("application/octet-stream", Digest.parse(digest), size))
        )
    message = no_secrets(info.value)
    assert digest in message and "digest mismatch" in message


@pytest.mark.parametrize("how", ["cut", "short"])
def test_iter_blob_resumes_with_range(
    how: str, registry: RegistryServer, proxy: FaultProxy, make_client: RegistryClients
) -> None:
    """``cut``: the connection breaks mid-body; ``short``: a clean response with too few bytes."""
    pushed = push_oci_image(registry.url, "resume/app", "v1", layers=1, layer_size=200 * KiB, seed=9)
    digest, size = pushed.blobs[-1]
    assert size > 150 * KiB  # gzip of random bytes does not shrink
    cut = 50_000
    if how == "cut":
        proxy.add(Fault("GET", f"/blobs/{digest}", cut_after=cut))
    else:
        proxy.add(Fault("GET", f"/blobs/{digest}", transform=lambda b: b[:cut]))
    client = make_client(proxy.url)
    desc = Descriptor("application/octet-stream", Digest.parse(digest), size)
    data = b"".join(client.iter_blob("resume/app", desc))
    assert data == content.get_blob(registry.url, "resume/app", digest)
    gets = proxy.seen("GET", f"/blobs/{digest}")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    match = re.fullmatch(r"bytes=(\d+)-", gets[1].headers.get("range", ""))
    assert match is not None, gets[1].headers
    assert 0 < int(match.group(1)) <= cut
    assert gets[1].status == 206

    if how == "cut":
        # A connection that breaks every time: the client gives up with a transient error.
        proxy.add(Fault("GET", f"/blobs/{digest}", cut_after=cut, times=100))
        with pytest.raises(RegistryError) as info:
            b"".join(client.iter_blob("resume/app", desc))
        assert info.value.transient
        assert "broke" in no_secrets(info.value)


def test_one_client_serves_many_threads(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    client = make_client(registry.url)
    jobs = [(p.repository, Digest.parse(d), size) for p in samples.values() for d, size in p.blobs]

    def fetch(job: tuple[str, Digest, int]) -> bytes:
        repo, digest, size = job
        return b"".join(client.iter_blob(repo, Descriptor("application/octet-stream", digest, size), chunk_size=4096))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(fetch, jobs * 2))
    for (_, digest, size), data in zip(jobs * 2, results, strict=True):
        assert len(data) == size and Digest.of(data) == digest


# ----------------------------------------------------------------------------------------------- retries


def test_retries_on_503_429_and_dropped_connections(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    pushed = samples["oci-image"]
    path = f"/v2/{pushed.repository}/manifests/v1"
    proxy.add(Fault("GET", path, status=503))
    proxy.add(Fault("GET", path, status=429, headers={"Retry-After": "0"}))
    proxy.add(Fault("GET", path, drop=True))
    client = make_client(proxy.url)
    assert client.get_manifest(pushed.repository, "v1").raw == pushed.manifest
    assert [s.status for s in proxy.seen("GET", path)] == [503, 429, 0, 200]


def test_retries_are_bounded(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    pushed = samples["oci-image"]
    path = f"/v2/{pushed.repository}/manifests/v1"
    proxy.add(Fault("GET", path, status=503, times=100))
    with pytest.raises(RegistryError) as info:
        make_client(proxy.url).get_manifest(pushed.repository, "v1")
    assert info.value.transient and info.value.status == 503
    assert "HTTP 503" in no_secrets(info.value)
    assert len(proxy.seen("GET", path)) == make_client.retry.attempts


def test_registry_down_then_back(workdir: Path, make_client: RegistryClients) -> None:
    with RegistryServer.start(workdir, name="downreg") as server:
        pushed = push_oci_image(server.url, "down/app", "v1", layer_size=KiB)
        client = make_client(server.url)
        client.ping()
        server.kill()
        for call in (client.ping, lambda: client.get_manifest("down/app", "v1")):
            with pytest.raises(RegistryError) as info:
                call()
            message = no_secrets(info.value)
            assert type(info.value) is RegistryError
            assert info.value.transient and info.value.status == 0
            assert "cannot reach" in message and server.host in message
        server.restart()
        client.ping()
        assert client.get_manifest("down/app", "v1").raw == pushed.manifest


# --------------------------------------------------------------------------------------------- referrers


def test_list_referrers_falls_back_to_tag_schema(registry: RegistryServer, make_client: RegistryClients) -> None:
    url = registry.url
    subject = push_oci_image(url, "ref/app", "v1", layer_size=KiB, seed=21)
    signature = push_referrer(url, "ref/app", subject, artifact_type="application/vnd.example.sig.v1")
    sbom = push_referrer(url, "ref/app", subject, artifact_type="application/vnd.example.sbom.v1", seed=1)
    client = make_client(url)
    found = client.list_referrers("ref/app", Digest.parse(subject.digest))
    assert [(str(d.digest), d.size, d.media_type) for d in found] == [
        (signature.digest, signature.size, OCI_MANIFEST),
        (sbom.digest, sbom.size, OCI_MANIFEST),
    ]
    assert [d.artifact_type for d in found] == ["application/vnd.example.sig.v1", "application/vnd.example.sbom.v1"]
    assert found[0].annotations == dict(signature.annotations)
    # The descriptors lead to the referrers themselves, whose subject is ours.
    referrer = client.get_manifest("ref/app", str(found[0].digest))
    assert referrer.subject is not None and str(referrer.subject.digest) == subject.digest

    lonely = push_oci_image(url, "ref/app", "v2", layer_size=KiB, seed=22)
    assert client.list_referrers("ref/app", Digest.parse(lonely.digest)) == []
    assert client.list_referrers("ref/no-such-repo", Digest.parse(lonely.digest)) == []


def test_index_children_fetch_by_digest(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    """Children of a fetched index are fetchable by digest and match what content.py pushed."""
    pushed = samples["oci-index"]
    client = make_client(registry.url)
    index = client.get_manifest(pushed.repository, "v1")
    for child in index.children:
        fetched: Manifest = client.get_manifest(pushed.repository, str(child.digest))
        assert fetched.size == child.size and fetched.media_type == child.media_type
        assert child.platform is not None and child.platform["os"] == "linux"


# ---------------------------------------------------------------------------------------- listings


# Regression: a Link that led back to a page already sent was followed for ever (2,107 GETs in 10 s,
# the list growing); the catalog had a guard only for registries that ignore ``last``.
@pytest.mark.parametrize("listing", ["tags", "catalog"])
def test_a_listing_whose_link_loops_is_stopped_at_the_repeated_page(
    listing: str, proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    repo = samples["oci-image"].repository
    path = f"/v2/{repo}/tags/list?n=1000" if listing == "tags" else "/v2/_catalog?n=1000"
    token = "sig=pw-link-5e1f"  # a Link's query may carry a token: the error names the path only
    proxy.add(Fault("GET", path.split("?")[0], times=100, headers={"Link": f'<{path}&{token}>; rel="next"'}))
    client = make_client(proxy.url)
    with pytest.raises(RegistryError) as info:
        client.list_tags(repo) if listing == "tags" else list(client.list_repositories())
    shown = path.split("?")[0]
    assert f"the registry's next page is one it already sent ({shown}): a loop" in unleaked(info.value, [token])
    assert len(proxy.seen("GET", path.split("?")[0])) == 2  # the first page, and the one that came back


def test_a_tag_list_whose_pages_never_end_is_stopped_at_the_cap(
    proxy: FaultProxy,
    samples: dict[str, PushedArtifact],
    make_client: RegistryClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_MAX_PAGES", 3)
    repo = samples["oci-image"].repository
    first = f"/v2/{repo}/tags/list?n=1000"
    proxy.add(Fault("GET", first, headers={"Link": f'<{first}&page=1>; rel="next"'}))
    for k in range(1, 10):  # every page links to a new one
        proxy.add(Fault("GET", f"page={k}", headers={"Link": f'<{first}&page={k + 1}>; rel="next"'}))
    with pytest.raises(RegistryError, match=r"more than 3 pages; the registry's pagination does not end"):
        make_client(proxy.url).list_tags(repo)
    assert len(proxy.seen("GET", f"/v2/{repo}/tags/list")) == 3


# Regression: a listing whose JSON was not an object crashed on ``doc.get`` (exit 70, "internal error").
@pytest.mark.parametrize("body", [b"[]", b'"tags"', b'{"tags": {"a": 1}}'])
def test_a_tag_list_that_is_not_an_object_with_an_array_is_a_registry_error(
    body: bytes, proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: RegistryClients
) -> None:
    repo = samples["oci-image"].repository
    proxy.add(Fault("GET", f"/v2/{repo}/tags/list", transform=lambda _: body))
    with pytest.raises(RegistryError) as info:
        make_client(proxy.url).list_tags(repo)
    assert no_secrets(info.value) == f"tags of {repo}: registry returned JSON that is not an object with a 'tags' array"
