"""The ``airlock`` console script, run as a subprocess against real registries and Azurite.

Contract under test (see ``airlock.cli.main``): stdout is one JSON object (or the ``-o`` format);
a failure prints exactly one line ``error: ...`` on stderr, nothing on stdout, never a traceback
nor a secret, and exits 1 (operational) or 2 (usage).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from airlock import __version__
from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.processes import refusing_port
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set

AIRLOCK = Path(sys.executable).parent / "airlock"
AUTH_USER = "cliuser"
# Recognisable, and made of characters no redaction pattern would keep verbatim by accident.
AUTH_PASSWORD = "Pw-cli-7f3c9e1a-planted"
ACCOUNT = "dstacct"
CONTAINER = "transfer"


_DROPPED_ENV = ("AIRLOCK_", "AZURE_")
_DROPPED_VARS = {"REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"}
_HOME: dict[str, Path] = {}


@pytest.fixture(scope="module", autouse=True)
def _empty_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    _HOME["dir"] = tmp_path_factory.mktemp("home")


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        assert self.returncode == 0, f"airlock {' '.join(self.args)} failed: {self.stderr}"
        out: dict[str, Any] = json.loads(self.stdout)
        return out


def airlock(*args: str | Path, stdin: str | None = None, timeout: float = 60.0) -> Run:
    argv = [str(AIRLOCK), *map(str, args)]
    # Hermetic: no stored registry logins (docker/podman auth files) and no ambient Azure credential.
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV) and k not in _DROPPED_VARS}
    env["HOME"] = str(_HOME["dir"])
    env["AIRLOCK_NO_PROGRESS"] = "1"
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        argv,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Run(tuple(map(str, args)), done.returncode, done.stdout, done.stderr)


def ok(*args: str | Path, stdin: str | None = None) -> Run:
    run = airlock(*args, stdin=stdin)
    assert run.returncode == 0, f"airlock {' '.join(run.args)} exited {run.returncode}: {run.stderr}"
    assert "Traceback" not in run.stdout + run.stderr
    return run


def error_message(run: Run, code: int | tuple[int, ...]) -> str:
    """Check the failure contract and return the message after ``error:``."""
    codes = (code,) if isinstance(code, int) else code
    where = f"airlock {' '.join(run.args)}\n--- stdout:\n{run.stdout}\n--- stderr:\n{run.stderr}"
    assert run.returncode in codes, f"exit {run.returncode}, expected {codes}: {where}"
    assert "Traceback" not in run.stdout + run.stderr, where
    assert run.stdout == "", where
    lines = run.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line: {where}"
    assert lines[0].strip(), where
    assert lines[0].startswith("error: "), where
    return lines[0][len("error: ") :]


def catalog_digest(path: Path) -> str:
    return content.catalog_digest_of(path)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    return push_sample_set(source_registry.url)


@pytest.fixture(scope="module")
def refs(samples: list[PushedArtifact]) -> list[str]:
    return [a.reference for a in samples]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, source_registry: RegistryServer, refs: list[str]) -> Path:
    """One transfer file of the whole sample set, written by the CLI."""
    path = tmp_path_factory.mktemp("exported") / "batch.tar"
    ok("export", "--source-registry", source_registry.url, "--artifacts", *refs, "--target", path.as_uri())
    return path


@pytest.fixture(scope="module")
def fresh_target(workdir: Path) -> Iterator[RegistryServer]:
    """An empty registry that only failing imports ever touch."""
    with RegistryServer.start(workdir / "fresh-registry", name="fresh") as server:
        yield server


@pytest.fixture(scope="module")
def auth_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "auth-registry", name="auth", htpasswd=(AUTH_USER, AUTH_PASSWORD)) as server:
        push_oci_image(server.url, "secure/app", "1.0", layer_size=4096, auth=(AUTH_USER, AUTH_PASSWORD))
        yield server


@pytest.fixture(scope="module")
def container(azurite: AzuriteServer) -> str:
    az.create_container(azurite, ACCOUNT, CONTAINER)
    return az.container_url(azurite, ACCOUNT, CONTAINER)


def sas_file(tmp_path: Path, azurite: AzuriteServer, permissions: str, name: str) -> tuple[Path, str]:
    """Write a real container SAS to a file; return the file and the token's sig value."""
    token = az.container_sas(azurite, ACCOUNT, CONTAINER, permissions=permissions)
    sig = re.search(r"(?:^|&)sig=([^&]+)", token)
    assert sig, token
    path = tmp_path / f"{name}.sas"
    path.write_text("?" + token + "\n")
    return path, sig.group(1)


# ------------------------------------------------------------------------------------------ happy paths


def test_export_inspect_import_round_trip(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    samples: list[PushedArtifact],
    refs: list[str],
    exported: Path,
) -> None:
    # The module fixture exported with `--artifacts a b c ...`; redo it here to check its JSON.
    target = tmp_path / "spaced.tar"
    out = ok(
        "export", "--source-registry", source_registry.url, "--artifacts", *refs, "--target", target.as_uri()
    ).json()
    assert out["target"]["uri"] == target.as_uri()
    assert out["catalogDigest"] == catalog_digest(target)
    assert out["size"] == target.stat().st_size
    assert out["artifacts"] == refs
    assert out["failedArtifacts"] == {}

    # `-a x -a y` is accepted as well.
    repeated = tmp_path / "repeated.tar"
    two = ["-a", refs[0], "-a", refs[2]]
    out2 = ok("export", "--source-registry", source_registry.url, *two, "--target", repeated.as_uri()).json()
    assert out2["artifacts"] == [refs[0], refs[2]]
    assert out2["catalogDigest"] == catalog_digest(repeated)

    inspected = ok("inspect", exported.as_uri()).json()
    assert inspected["size"] == exported.stat().st_size
    assert inspected["catalogDigest"] == catalog_digest(exported)  # from the catalog alone, no --verify
    assert "verified" not in inspected
    by_ref = {a["reference"]: a for a in inspected["artifacts"]}
    assert sorted(by_ref) == sorted(refs)
    for artifact in samples:
        entry = by_ref[artifact.reference]
        assert entry["digest"] == artifact.digest
        assert entry["mediaType"] == artifact.media_type

    verified = ok("inspect", "--verify", exported.as_uri()).json()
    assert verified["catalogDigest"] == catalog_digest(exported)
    assert verified["verified"] is True

    catalog = catalog_digest(exported)
    imported = ok(
        "import",
        "--source",
        exported.as_uri(),
        "--target-registry",
        target_registry.url,
        "--catalog-digest",
        catalog,
    ).json()
    assert imported["catalogDigest"] == catalog
    assert sorted(imported["importedArtifacts"]) == sorted(refs)
    assert imported["failedArtifacts"] == {}
    for artifact in samples:
        ref = artifact.tag or artifact.digest
        _, src_type, src_digest = content.get_manifest(source_registry.url, artifact.repository, ref)
        _, dst_type, dst_digest = content.get_manifest(target_registry.url, artifact.repository, ref)
        assert dst_digest == src_digest == artifact.digest
        assert dst_type == src_type


def test_query_and_tsv(tmp_path: Path, source_registry: RegistryServer, refs: list[str], exported: Path) -> None:
    catalog = catalog_digest(exported)

    target = tmp_path / "q.tar"
    base = ["export", "--source-registry", source_registry.url, "-a", refs[0], "--target"]
    out = ok(*base, target.as_uri(), "--query", "catalogDigest", "-o", "tsv").stdout
    assert out == catalog_digest(target) + "\n"

    # Without --query, tsv prints the top-level scalars of the object on one line.
    target2 = tmp_path / "t.tar"
    out = ok(*base, target2.as_uri(), "-o", "tsv").stdout
    assert out == f"{catalog_digest(target2)}\t{target2.stat().st_size}\n"

    # --query with the default json output prints the JSON value.
    out = ok("inspect", "--verify", exported.as_uri(), "--query", "catalogDigest").stdout
    assert json.loads(out) == catalog
    out = ok("inspect", "--verify", exported.as_uri(), "--query", "catalogDigest", "-o", "tsv").stdout
    assert out == catalog + "\n"
    out = ok("inspect", exported.as_uri(), "--query", "artifacts[].reference", "-o", "tsv").stdout
    assert sorted(out.splitlines()) == sorted(refs)
    out = ok("inspect", exported.as_uri(), "--query", "length(artifacts)", "-o", "tsv").stdout
    assert out == f"{len(refs)}\n"


def test_version_and_help() -> None:
    out = ok("--version").stdout
    assert out.strip() == f"airlock {__version__}"
    help_text = ok("export", "--help").stdout
    assert "--artifacts" in help_text


# --------------------------------------------------------------------------------------------- failures


def test_invalid_reference(tmp_path: Path, source_registry: RegistryServer) -> None:
    bad = "samples/App:1.0"
    run = airlock("export", "--source-registry", source_registry.url, "-a", bad, "--target", (tmp_path / "x").as_uri())
    assert bad in error_message(run, 2)
    assert not (tmp_path / "x").exists()


def test_unknown_option(tmp_path: Path, source_registry: RegistryServer, refs: list[str]) -> None:
    target = tmp_path / "x.tar"
    run = airlock(
        "export", "--source-registry", source_registry.url, "-a", refs[0],
        "--target", target.as_uri(), "--options", "Bogus",
    )  # fmt: skip
    assert "Bogus" in error_message(run, 2)
    assert not target.exists()


@pytest.mark.parametrize("extra", [["-o", "bogus"], ["--query", "[["]], ids=["output", "query"])
def test_bad_output_or_query_fails_before_any_work(
    tmp_path: Path, source_registry: RegistryServer, refs: list[str], extra: list[str]
) -> None:
    # A usage error must be reported before the transfer, not after it wrote the target.
    target = tmp_path / "x.tar"
    run = airlock(
        "export", "--source-registry", source_registry.url, "-a", refs[0], "--target", target.as_uri(), *extra
    )
    assert extra[1] in error_message(run, 2)
    assert not target.exists(), "the export ran and wrote its target before the usage error was reported"


def test_missing_artifact(tmp_path: Path, source_registry: RegistryServer, samples: list[PushedArtifact]) -> None:
    target = tmp_path / "x.tar"
    run = airlock(
        "export",
        "--source-registry",
        source_registry.url,
        "-a",
        "samples/nope:1.0",
        "--target",
        target.as_uri(),
    )
    assert "samples/nope" in error_message(run, 1)


# Regression (flaky): the port free_port() found was taken by another worker's registry, which answered 404.
def test_unreachable_registry(tmp_path: Path) -> None:
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        run = airlock(
            "export", "--source-registry", url, "-a", "samples/app:1.0", "--target", (tmp_path / "x").as_uri()
        )
    message = error_message(run, 1)
    assert re.search(r"(?i)(cannot|could not|unable to) (reach|connect)", message), message
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    # In words, not urllib3's exception and pool reprs ("MaxRetryError: HTTPConnection(host=...").
    assert message.endswith("cannot reach the registry (connection refused)"), message


def test_existing_target_needs_overwrite_blobs(
    tmp_path: Path, source_registry: RegistryServer, refs: list[str]
) -> None:
    target = tmp_path / "exists.tar"
    target.write_bytes(b"previous content")
    base = ["export", "--source-registry", source_registry.url, "-a", refs[0], "--target", target.as_uri()]
    assert "OverwriteBlobs" in error_message(airlock(*base), 1)
    assert target.read_bytes() == b"previous content"
    out = ok(*base, "--options", "OverwriteBlobs").json()
    assert out["catalogDigest"] == catalog_digest(target)


def test_import_not_an_archive(tmp_path: Path, fresh_target: RegistryServer) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not an airlock archive\n" * 100)
    run = airlock("import", "--source", junk.as_uri(), "--target-registry", fresh_target.url)
    error_message(run, 1)


def test_import_wrong_catalog_digest_writes_no_tag(
    fresh_target: RegistryServer, samples: list[PushedArtifact], exported: Path
) -> None:
    wrong = "sha256:" + "0" * 64
    run = airlock(
        "import",
        "--source",
        exported.as_uri(),
        "--target-registry",
        fresh_target.url,
        "--catalog-digest",
        wrong,
    )
    message = error_message(run, 1)
    assert wrong in message and "nothing was imported" in message, message
    for artifact in samples:
        assert content.list_tags(fresh_target.url, artifact.repository) == [], artifact.repository
        # The catalog comes first, so a wrong digest is refused before any blob is uploaded.
        for digest, _size in artifact.blobs:
            assert not content.blob_exists(fresh_target.url, artifact.repository, digest), digest


def test_read_only_sas_export(
    tmp_path: Path, azurite: AzuriteServer, container: str, source_registry: RegistryServer, refs: list[str]
) -> None:
    token_file, sig = sas_file(tmp_path, azurite, "r", "readonly")
    run = airlock(
        "export", "--source-registry", source_registry.url, "-a", refs[0],
        "--target", f"{container}/readonly.tar", "--sas-token-file", token_file,
    )  # fmt: skip
    message = error_message(run, 1)
    assert "permission" in message.lower()
    assert sig not in run.stdout + run.stderr


def test_missing_sas_token_file(tmp_path: Path, container: str, source_registry: RegistryServer) -> None:
    missing = tmp_path / "no-such.sas"
    run = airlock(
        "export", "--source-registry", source_registry.url, "-a", "samples/app:1.0",
        "--target", f"{container}/x.tar", "--sas-token-file", missing,
    )  # fmt: skip
    assert str(missing) in error_message(run, (1, 2))


def test_secret_uri_reads_the_embedded_vault_and_names_missing_ones(
    tmp_path: Path, container: str, source_registry: RegistryServer, azurite: AzuriteServer
) -> None:
    run = airlock(
        "export", "--source-registry", source_registry.url, "-a", "samples/app:1.0",
        "--target", f"{container}/x.tar", "--secret-uri", "https://nosuchvault.vault.azure.net/secrets/x",
    )  # fmt: skip
    message = error_message(run, (1, 2))
    assert "nosuchvault" in message, message
    sas = az.container_sas(azurite, ACCOUNT, CONTAINER, permissions="racwl")
    ok("keyvault", "create", "-g", "rg", "-n", "clikv")
    ok("keyvault", "secret", "set", "--vault-name", "clikv", "--name", "exportsas", "--value", "?" + sas)
    ok(
        "export", "--source-registry", source_registry.url, "-a", "samples/app:1.0",
        "--target", f"{container}/kv.tar", "--secret-uri", "https://clikv.vault.azure.net/secrets/exportsas",
    )  # fmt: skip


def test_sas_in_blob_uri_refused_and_not_echoed(
    tmp_path: Path, azurite: AzuriteServer, container: str, source_registry: RegistryServer
) -> None:
    token = az.container_sas(azurite, ACCOUNT, CONTAINER, permissions="racwdl")
    sig = re.search(r"(?:^|&)sig=([^&]+)", token)
    assert sig and token.startswith("s") and "sv=" in token
    for command in (
        ["export", "--source-registry", source_registry.url, "-a", "samples/app:1.0", "--target"],
        ["inspect"],
    ):
        run = airlock(*command, f"{container}/x.tar?{token}")
        message = error_message(run, 2)
        assert "SAS" in message
        assert sig.group(1) not in run.stdout + run.stderr
        assert "sig=" + sig.group(1) not in run.stderr


# ------------------------------------------------------------------------------------------------ secrets


def test_secrets_never_leak(
    tmp_path: Path,
    azurite: AzuriteServer,
    container: str,
    auth_registry: RegistryServer,
    target_registry: RegistryServer,
) -> None:
    token_file, sig = sas_file(tmp_path, azurite, "racwdl", "full")
    ro_file, ro_sig = sas_file(tmp_path, azurite, "r", "ro")
    blob = f"{container}/secret-run.tar"
    sas = ["--sas-token-file", str(token_file)]
    login = ["--username", AUTH_USER, "--password-stdin"]
    pw = AUTH_PASSWORD + "\n"
    export = ["export", "--source-registry", auth_registry.url, *login, "--target", blob, *sas]
    imp = ["import", "--source", blob, *sas, *login]
    # (expected exit code, argv, stdin); -v on succeeding runs makes the log lines show up too.
    cases: list[tuple[int, list[str], str | None]] = [
        (0, ["-v", *export, "-a", "secure/app:1.0"], pw),
        (0, ["-v", "inspect", "--verify", blob, *sas], None),
        (0, ["inspect", blob, "--sas-token-file", str(ro_file), "-o", "tsv"], None),
        (0, ["-v", *imp, "--target-registry", auth_registry.url, "-z", "OverwriteTags"], pw),
        # a registry without auth receives the password too
        (0, [*imp, "--target-registry", target_registry.url, "-z", "OverwriteTags"], pw),
        (1, [*export, "-a", "secure/app:1.0"], pw),  # blob exists
        (1, [*export, "-a", "secure/nope:1.0", "-z", "OverwriteBlobs"], pw),
        (2, [*export, "-a", "secure/app:1.0", "-z", "Bogus"], pw),
        (1, [*export[:-1], str(ro_file), "-a", "secure/app:1.0", "-z", "OverwriteBlobs"], pw),
        (1, [*imp, "--target-registry", auth_registry.url, "--catalog-digest", "sha256:" + "1" * 64], pw),
        (1, ["inspect", blob + "-missing", *sas], None),
        (2, ["inspect", f"{blob}?{token_file.read_text().strip().lstrip('?')}"], None),
    ]
    for expected, argv, stdin in cases:
        run = airlock(*argv, stdin=stdin)
        where = f"airlock {' '.join(run.args)} -> {run.returncode}\n{run.stdout}\n{run.stderr}"
        for secret in (sig, unquote(sig), ro_sig, unquote(ro_sig), AUTH_PASSWORD):
            assert secret not in run.stdout, where
            assert secret not in run.stderr, where
        if expected == 0:
            assert run.returncode == 0, where
            assert "Traceback" not in run.stdout + run.stderr, where
        else:
            error_message(run, expected)


def test_basic_auth_registry(tmp_path: Path, auth_registry: RegistryServer) -> None:
    target = tmp_path / "auth.tar"
    base = [
        "export",
        "--source-registry",
        auth_registry.url,
        "-a",
        "secure/app:1.0",
        "--target",
        target.as_uri(),
    ]
    out = ok(*base, "--username", AUTH_USER, "--password-stdin", stdin=AUTH_PASSWORD + "\n").json()
    assert out["artifacts"] == ["secure/app:1.0"]
    assert out["catalogDigest"] == catalog_digest(target)

    target.unlink()
    run = airlock(*base)
    message = error_message(run, 1)
    assert re.search(r"(?i)requires? (a )?username and password", message), message
    assert not target.exists()

    run = airlock(*base, "--username", AUTH_USER, "--password-stdin", stdin="wrong-password\n")
    error_message(run, 1)
    assert "wrong-password" not in run.stderr


def test_security_error_text_is_printed_literally_not_as_markup(tmp_path: Path) -> None:
    """Regression: messages were rendered as Rich markup, so '[/x]' crashed with a traceback and
    '[red]' vanished from the path the user needs to see."""
    for name in ("[/x]", "[red]missing"):
        token_file = tmp_path / name / "sas.txt"
        run = airlock("inspect", "https://acct.blob.core.windows.net/transfer/b.tar", "--sas-token-file", token_file)
        message = error_message(run, (1, 2))
        assert str(token_file) in message
