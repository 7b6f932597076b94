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
        ("registry.example.com:5000", "https", "registry.example.com:5000"),
        ("http://127.0.0.1:5000", "http", "127.0.0.1:5000"),
        # Bare loopback hosts are plain HTTP, as Docker's default insecure registries (127.0.0.0/8).
        ("127.0.0.1:5000", "http", "127.0.0.1:5000"),
        ("127.8.9.10", "http", "127.8.9.10"),
        ("localhost:5000", "http", "localhost:5000"),
        ("LocalHost", "http", "localhost"),
        ("[::1]:5000", "http", "[::1]:5000"),
        ("10.0.0.1:5000", "https", "10.0.0.1:5000"),
        ("128.0.0.1", "https", "128.0.0.1"),
        ("localhost.example.com", "https", "localhost.example.com"),
        # An explicit scheme always wins, in both directions.
        ("https://127.0.0.1:5000", "https", "127.0.0.1:5000"),
        ("https://localhost", "https", "localhost"),
        ("https://r.example.com:8443/", "https", "r.example.com:8443"),
        ("https://myreg.azurecr.io/v2", "https", "myreg.azurecr.io"),
    ],
)
def test_registry_urls(text: str, scheme: str, host: str) -> None:
    url = RegistryURL.parse(text)
    assert (url.scheme, url.host) == (scheme, host)


@pytest.mark.parametrize(
    "text",
    # "\u00e5)[K": found by schemathesis as a registry's loginServer; urlsplit raised ValueError (a 500).
    [
        "ftp://x",
        "https://user:pw@r.example.com",
        "https://r.example.com/some/path",
        "https://r:notaport",
        "\u00e5)[K",
        "https://r]",
    ],
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


# ------------------------------------------------------------------------- artifacts with a registry host

LOCAL = RegistryURL.parse("http://127.0.0.1:5000")


@pytest.mark.parametrize(
    ("text", "registry", "expected"),
    [
        ("127.0.0.1:5000/samples/app:1.0", LOCAL, "samples/app:1.0"),
        ("127.0.0.1:5000/samples/app", LOCAL, "samples/app:latest"),
        (f"127.0.0.1:5000/app@sha256:{HEX}", LOCAL, f"app@sha256:{HEX}"),
        ("samples/app:1.0", LOCAL, "samples/app:1.0"),
        ("app", LOCAL, "app:latest"),
        ("Registry.Example.COM/team/app:2", RegistryURL.parse("https://registry.example.com"), "team/app:2"),
        ("registry.example.com:443/team/app:2", RegistryURL.parse("https://registry.example.com"), "team/app:2"),
        ("registry.example.com/team/app:2", RegistryURL.parse("https://registry.example.com:443"), "team/app:2"),
        ("r.example.com:80/a:1", RegistryURL.parse("http://r.example.com"), "a:1"),
        ("localhost:5000/a:1", RegistryURL.parse("localhost:5000"), "a:1"),
        ("[::1]:5000/a:1", RegistryURL.parse("[::1]:5000"), "a:1"),
        # Only the first component can be a host; later ones with dots are path components.
        ("team/my.app:1", LOCAL, "team/my.app:1"),
    ],
)
def test_artifact_with_the_registrys_own_host_is_accepted_and_stripped(
    text: str, registry: RegistryURL, expected: str
) -> None:
    assert str(ArtifactReference.parse_for(text, registry)) == expected


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("127.0.0.1:5001/samples/app:1.0", "127.0.0.1:5001"),
        # No name resolution: localhost is not 127.0.0.1, as in Docker's credential store.
        ("localhost:5000/samples/app:1.0", "localhost:5000"),
        ("localhost/samples/app:1.0", "localhost"),
        ("registry.example.com/samples/app", "registry.example.com"),
        ("127.0.0.1/samples/app", "127.0.0.1"),
    ],
)
def test_artifact_with_another_registry_host_is_refused_naming_both(text: str, host: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        ArtifactReference.parse_for(text, LOCAL)
    message = str(info.value)
    assert message.startswith(f"artifact {text} names registry {host}, but --source-registry is 127.0.0.1:5000")
    assert "\n" not in message


def test_refusal_names_where_the_registry_came_from() -> None:
    with pytest.raises(ReferenceError_, match=r"but registry src's loginServer is 127\.0\.0\.1:5000\Z"):
        ArtifactReference.parse_for("127.0.0.1:9/a", LOCAL, named_by="registry src's loginServer")


def test_a_dotted_first_component_is_a_host_as_in_docker_with_a_hint() -> None:
    # Docker reads "my.team/app" as registry my.team; the message says how to mean the repository.
    with pytest.raises(ReferenceError_) as info:
        ArtifactReference.parse_for("my.team/app:1", LOCAL)
    assert "names registry my.team" in str(info.value)
    assert "write 127.0.0.1:5000/my.team/app:1" in str(info.value)
    assert str(ArtifactReference.parse_for("127.0.0.1:5000/my.team/app:1", LOCAL)) == "my.team/app:1"


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1:5000/", "127.0.0.1:5000/UPPER:1", "127.0.0.1:5000/a:", "bad_host.com/a", "-x.com/a", "a.b\n/c"],
)
def test_invalid_references_with_a_host_are_refused_naming_the_whole_text(text: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        ArtifactReference.parse_for(text, LOCAL)
    assert str(info.value).startswith(f"invalid artifact reference {text!r}")


def test_parse_without_a_registry_still_refuses_a_host() -> None:
    with pytest.raises(ReferenceError_):
        ArtifactReference.parse("127.0.0.1:5000/samples/app:1.0")


_hosts = st.sampled_from(["127.0.0.1:5000", "localhost:5000", "r.example.com", "R.EXAMPLE.com:443", "[::1]:5000"])


@given(st.one_of(st.text(max_size=300), st.builds(lambda h, t: f"{h}/{t}", _hosts, st.text(max_size=100))), _hosts)
def test_parse_for_never_fails_other_than_with_a_reference_error(text: str, host: str) -> None:
    registry = RegistryURL.parse("https://" + host)
    try:
        ref = ArtifactReference.parse_for(text, registry)
    except ReferenceError_ as exc:
        assert "\n" not in str(exc)
        return
    # What it accepts is a reference parse() accepts, with the registry's host gone.
    assert ArtifactReference.parse(str(ref)) == ref
    assert ArtifactReference.parse_for(f"{registry.host}/{ref}", registry) == ref
