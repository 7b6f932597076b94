"""Reference, digest and registry-URL parsing (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.errors import AirlockError, ReferenceError_, UsageError
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "repo", "tag", "digest"),
    [
        ("hello-world", "hello-world", "latest", None),
        ("hello-world:v1", "hello-world", "v1", None),
        ("team/app/sub:1.0.0-rc.1", "team/app/sub", "1.0.0-rc.1", None),
        (f"app@sha256:{HEX}", "app", None, f"sha256:{HEX}"),
        (f"app:v1@sha256:{HEX}", "app", "v1", f"sha256:{HEX}"),
        ("a__b/c.d-e:TAG_9", "a__b/c.d-e", "TAG_9", None),
    ],
    ids=["bare", "tag", "nested", "digest", "tag+digest", "separators"],
)
def test_acr_artifact_forms(text: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = ArtifactReference.parse(text)
    assert ref.repository == repo
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    # str() round-trips, with the implicit :latest made explicit
    assert ArtifactReference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER:tag",
        "app:",
        "app:.hidden",
        "-app",
        "app//x",
        "app@sha256:abc",
        f"app@md5:{HEX}",
        "a" * 300,
        "../etc/passwd",
        "app:tag with space",
        "/abs",
        "app/:x",
    ],
)
def test_invalid_references_are_refused_with_the_reference_named(text: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        ArtifactReference.parse(text)
    assert "invalid" in str(info.value)
    assert "\n" not in str(info.value)


@given(st.text(max_size=300))
def test_reference_parser_never_fails_other_than_with_a_reference_error(text: str) -> None:
    try:
        ref = ArtifactReference.parse(text)
    except ReferenceError_:
        return
    assert ArtifactReference.parse(str(ref)) == ref
    assert ".." not in ref.repository.split("/")


def test_digest_parse_and_verify() -> None:
    d = Digest.of(b"hello")
    assert Digest.parse(str(d)) == d
    with pytest.raises(UsageError):
        Digest.parse("sha256:" + "A" * 64)


@pytest.mark.parametrize(
    ("text", "scheme", "host"),
    [
        ("registry.example.com", "https", "registry.example.com"),
        ("http://127.0.0.1:5000", "http", "127.0.0.1:5000"),
        ("https://r.example.com:8443/", "https", "r.example.com:8443"),
        ("https://myreg.azurecr.io/v2", "https", "myreg.azurecr.io"),
    ],
)
def test_registry_urls(text: str, scheme: str, host: str) -> None:
    url = RegistryURL.parse(text)
    assert (url.scheme, url.host) == (scheme, host)


@pytest.mark.parametrize(
    "text",
    ["ftp://x", "https://user:pw@r.example.com", "https://r.example.com/some/path", "https://r:notaport"],
)
def test_bad_registry_urls(text: str) -> None:
    with pytest.raises(AirlockError) as info:
        RegistryURL.parse(text)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("text", ["app\n", "app:tag\n", f"app@sha256:{HEX}\n", "app\n:tag"])
def test_security_trailing_newlines_are_refused(text: str) -> None:
    """Regression: '$' matches before a final newline; names from archives go into registry URLs."""
    with pytest.raises(ReferenceError_):
        ArtifactReference.parse(text)
