"""Registry URLs and artifact hosts as a newcomer writes them, through the real ``airlock`` console script.

Issue 9, items 7 and 9: a bare loopback ``host:port`` is plain HTTP (Docker's convention), a wrong
scheme or an untrusted certificate fails at once with one line saying what to use (no retries),
and an artifact may carry its registry's host when that host is the registry being used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from airlock.testing.console import Console, Result
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer

AIRLOCK = Path(sys.executable).parent / "airlock"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def assert_not_retried(home: Path, *args: str | Path) -> None:
    """The same command with -v: the registry client logs every retry ("... retrying"); none may come."""
    run = airlock(home, *args, "-v")
    assert run.returncode == 1 and "error: " in run.stderr, run.where()
    assert "retrying" not in run.stderr, f"retried: {run.where()}"


def airlock(home: Path, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    # Hermetic (airlock.testing.console): no stored logins, no ambient CA settings, no airlock or Azure configuration.
    return Console(home=home, env={"COLUMNS": "200", **(env or {})})(*args, timeout=60)


@pytest.fixture(scope="module")
def app(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, "samples/app", "1.0", layer_size=4096)


@pytest.fixture(scope="module")
def tls_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "tls-registry", name="tls", tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> Path:
    path = tmp_path_factory.mktemp("archive") / "app.tar"
    airlock(
        home, "export", "--source-registry", source_registry.url, "-a", "samples/app:1.0", "--target", path.as_uri()
    ).json()
    return path


# ------------------------------------------------------------------------------------ item 7: URL schemes


def test_export_with_schemeless_loopback_registry_uses_http(
    tmp_path: Path, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> None:
    target = tmp_path / "out.tar"
    run = airlock(
        home, "export", "--source-registry", source_registry.host, "-a", "samples/app:1.0", "--target", target.as_uri()
    )
    assert run.json()["artifactDetails"][0]["digest"] == app.digest
    assert target.is_file()


def test_https_url_on_plain_http_registry_fails_fast_with_hint(
    tmp_path: Path, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> None:
    host = source_registry.host
    target = tmp_path / "out.tar"
    run = airlock(
        home, "export", "--source-registry", f"https://{host}", "-a", "samples/app:1.0", "--target", target.as_uri()
    )
    assert run.only_error(1) == f"the registry at https://{host} answered plain HTTP; use http://{host}"
    assert_not_retried(home, *run.args)
    assert not target.exists()


def test_http_url_on_tls_registry_fails_with_hint(home: Path, tls_registry: RegistryServer, archive: Path) -> None:
    host = tls_registry.host
    # Both http:// and a bare loopback host (which means http://) get the same advice.
    for given in (f"http://{host}", host):
        run = airlock(home, "import", "--source", archive.as_uri(), "--target-registry", given)
        assert run.only_error(1) == f"the registry at http://{host} answered with TLS; use https://{host}"
        assert_not_retried(home, *run.args)


def test_untrusted_registry_certificate_fails_fast_naming_host_reason_and_ssl_cert_file(
    home: Path, tls_registry: RegistryServer, archive: Path
) -> None:
    run = airlock(home, "import", "--source", archive.as_uri(), "--target-registry", tls_registry.url)
    message = run.only_error(1)
    where = f"the registry at https://{tls_registry.host}"
    assert message.startswith(f"{where} presented a certificate that is not trusted (self-signed certificate)"), message
    assert "SSL_CERT_FILE" in message
    assert_not_retried(home, *run.args)


def test_ssl_cert_file_makes_a_registry_ca_trusted(
    home: Path, tls_registry: RegistryServer, archive: Path, app: PushedArtifact
) -> None:
    assert tls_registry.ca_cert is not None
    run = airlock(
        home, "import", "--source", archive.as_uri(), "--target-registry", tls_registry.url,
        env={"SSL_CERT_FILE": str(tls_registry.ca_cert)},
    )  # fmt: skip
    assert run.json()["importedArtifacts"] == ["samples/app:1.0"], run.where()
    http = urllib3.PoolManager(ca_certs=str(tls_registry.ca_cert), retries=False)
    resp = http.request("HEAD", f"{tls_registry.url}/v2/samples/app/manifests/1.0", headers={"Accept": app.media_type})
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == app.digest


def test_registry_options_help_states_the_scheme_rule(home: Path) -> None:
    for command, option in (("export", "--source-registry"), ("import", "--target-registry")):
        run = airlock(home, command, "--help", env={"COLUMNS": "400"})
        assert run.returncode == 0, run.where()
        options = run.stdout.split("\nOptions:\n", 1)[1]
        _, _, entry = options.partition(f"  {option} ")
        entry = " ".join(entry.split("\n  -", 1)[0].split())  # the option's help, unwrapped
        assert "Without a scheme, localhost, 127.0.0.0/8 and [::1] mean http://" in entry, entry
        assert "any other host https://" in entry, entry


# ------------------------------------------------------------------------------ item 9: artifact hosts


def test_artifact_with_matching_registry_host_is_accepted(
    tmp_path: Path, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> None:
    host = source_registry.host
    for registry in (source_registry.url, host):
        target = tmp_path / f"{len(registry)}.tar"
        run = airlock(
            home, "export", "--source-registry", registry, "-a", f"{host}/samples/app:1.0", "--target", target.as_uri()
        )
        artifact = run.json()["artifactDetails"][0]
        assert (artifact["reference"], artifact["digest"]) == ("samples/app:1.0", app.digest), artifact


def test_artifact_with_other_registry_host_is_refused_naming_both(
    tmp_path: Path, home: Path, source_registry: RegistryServer
) -> None:
    host = source_registry.host
    other = f"127.0.0.1:{source_registry.port + 1}"
    target = tmp_path / "out.tar"
    run = airlock(
        home,
        "export",
        "--source-registry",
        source_registry.url,
        "-a",
        f"{other}/samples/app:1.0",
        "--target",
        target.as_uri(),
    )
    assert (
        run.only_error(2) == f"artifact {other}/samples/app:1.0 names registry {other}, but --source-registry is {host}"
    )
    assert not target.exists()


def test_pipeline_run_artifact_host_must_be_the_registrys_login_server(
    tmp_path: Path, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> None:
    host = source_registry.host
    container = tmp_path / "container"
    container.mkdir()
    airlock(home, "acr", "create", "-g", "rg", "-n", "srcreg", "--login-server", host).json()
    airlock(
        home,
        "acr",
        "export-pipeline",
        "create",
        "-g",
        "rg",
        "-r",
        "srcreg",
        "-n",
        "exportpipe",
        "-c",
        container.as_uri(),
    ).json()

    accepted = airlock(
        home, "acr", "pipeline-run", "create", "-g", "rg", "-r", "srcreg", "-p", "exportpipe", "-n", "exportrun1",
        "-t", "export", "-b", "app.tar", "-a", f"{host}/samples/app:1.0",
    ).json()  # fmt: skip
    assert accepted["properties"]["provisioningState"] == "Succeeded", accepted
    assert accepted["properties"]["response"]["exportedArtifacts"] == ["samples/app:1.0"]

    other = f"localhost:{source_registry.port}"  # the same server, but not the same registry name
    refused = airlock(
        home, "acr", "pipeline-run", "create", "-g", "rg", "-r", "srcreg", "-p", "exportpipe", "-n", "exportrun2",
        "-t", "export", "-b", "other.tar", "-a", f"{other}/samples/app:1.0",
    )  # fmt: skip
    message = refused.only_error(2)
    assert (
        f"artifact {other}/samples/app:1.0 names registry {other}, but registry srcreg's loginServer is {host}"
        in message
    )
    assert not (container / "other.tar").exists()
