"""Signed bundles (issue 13), through the real console script: `export --sign-key` (ECDSA P-256 and
Ed25519, plain or encrypted PEM), `inspect --trusted-key` and `import --trusted-key` refusing
unsigned, otherwise signed and altered bundles before anything is uploaded, and the README's
commands that check a signature with tar and openssl alone. One small image (2 layers of 8 KiB);
keys are made with openssl, as the README makes them."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airlock.testing import content
from airlock.testing.console import Console, Run, error_message
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer

REPO = "team/app"
README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def openssl(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def key_pair(directory: Path, name: str, algorithm: str) -> tuple[Path, Path]:
    """A private key (``EC`` = P-256, or ``ed25519``) and its public half, written by openssl."""
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    curve = ["-pkeyopt", "ec_paramgen_curve:P-256"] if algorithm == "EC" else []
    openssl("genpkey", "-algorithm", algorithm, *curve, "-out", private, cwd=directory)
    openssl("pkey", "-in", private, "-pubout", "-out", public, cwd=directory)
    return private, public


def openssl_key_id(public: Path) -> str:
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(public), "-outform", "DER"], capture_output=True, check=True
    ).stdout
    return content.sha256(der).removeprefix("sha256:")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "old": key_pair(directory, "old", "EC"),
        "new": key_pair(directory, "new", "ed25519"),
        "other": key_pair(directory, "other", "EC"),
    }


@pytest.fixture(scope="module")
def app(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, REPO, "1.4", seed=131, layers=2, layer_size=8 * 1024)


@pytest.fixture(scope="module")
def exports(
    tmp_path_factory: pytest.TempPathFactory, cli: Callable[..., Run], source_registry: RegistryServer,
    app: PushedArtifact, keys: dict[str, tuple[Path, Path]],
) -> dict[str, tuple[Path, dict[str, Any]]]:  # fmt: skip
    """Bundles of the same image, with the export's JSON: unsigned, signed by the old (ECDSA) key, by
    the new (Ed25519) one."""
    directory = tmp_path_factory.mktemp("signed")
    out = {}
    for name in ("unsigned", "old", "new"):
        sign = [] if name == "unsigned" else ["--sign-key", keys[name][0]]
        path = directory / f"{name}.tar"
        result = cli("export", "--source-registry", source_registry.url, "-a", app.reference, "--target", path, *sign)
        out[name] = (path, result.json())
    return out


@pytest.fixture(scope="module")
def signed(exports: dict[str, tuple[Path, dict[str, Any]]]) -> dict[str, Path]:
    return {name: path for name, (path, _out) in exports.items()}


def assert_nothing_landed(registry: RegistryServer, image: PushedArtifact) -> None:
    assert content.list_tags(registry.url, REPO) == []
    for digest, _size in image.blobs:
        assert not content.blob_exists(registry.url, REPO, digest), digest


def test_export_sign_key_shows_key_id_and_algorithm(
    cli: Callable[..., Run], exports: dict[str, tuple[Path, dict[str, Any]]], keys: dict[str, tuple[Path, Path]]
) -> None:
    for name, algorithm in (("old", "ecdsa-p256-sha256"), ("new", "ed25519")):
        path, out = exports[name]
        # The key id is what openssl says of the public key: the SHA-256 of its DER SubjectPublicKeyInfo.
        assert out["signature"] == {"keyId": openssl_key_id(keys[name][1]), "algorithm": algorithm}, out
        with tarfile.open(path) as tar:  # the signature is a member of its own, right after the catalog
            assert tar.getnames()[:3] == ["airlock-catalog.json", "airlock-catalog.sig", "oci-layout"]
    assert "signature" not in exports["unsigned"][1]
    shown = cli("inspect", exports["old"][0]).json()
    assert shown["signature"] == exports["old"][1]["signature"], shown
    assert shown["catalogDigest"] == exports["old"][1]["catalogDigest"], shown


def test_import_refuses_unsigned_bundle_before_upload(
    tmp_path: Path, cli: Callable[..., Run], signed: dict[str, Path], untouched: RegistryServer, app: PushedArtifact,
    keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    run = cli("import", "--source", signed["unsigned"], "--target-registry", untouched.url,
              "--trusted-key", keys["old"][1])  # fmt: skip
    message = error_message(run)
    assert message.startswith(f"bundle {signed['unsigned'].as_uri()} is unsigned; "), message
    assert openssl_key_id(keys["old"][1]) in message, message
    assert_nothing_landed(untouched, app)
    message = error_message(cli("inspect", signed["unsigned"], "--verify", "--trusted-key", keys["old"][1]))
    assert "is unsigned" in message, message
    # Another tool's OCI layout has no airlock catalog, so no signature: refused the same way.
    layout = tmp_path / "layout.tar"
    with tarfile.open(layout, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", b'{"manifests":[]}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    run = cli("import", "--source", layout, "--target-registry", untouched.url, "--trusted-key", keys["old"][1])
    assert error_message(run).startswith(f"bundle {layout.as_uri()} is unsigned; "), run.where()


def test_import_refuses_bundle_signed_by_other_key(
    cli: Callable[..., Run], signed: dict[str, Path], untouched: RegistryServer, app: PushedArtifact,
    keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    run = cli("import", "--source", signed["old"], "--target-registry", untouched.url,
              "--trusted-key", keys["other"][1], "--trusted-key", keys["new"][1])  # fmt: skip
    message = error_message(run)
    signer = openssl_key_id(keys["old"][1])
    assert f"is signed by key {signer}, which is not a trusted key" in message, message
    assert openssl_key_id(keys["other"][1]) in message and openssl_key_id(keys["new"][1]) in message, message
    assert_nothing_landed(untouched, app)


def _altered_catalog(data: bytes) -> bytes:
    """The bundle with one character of its catalog changed (same length, still valid JSON)."""
    at = data.index(b'"creator":"airlock ') + len(b'"creator":"')
    return data[:at] + b"A" + data[at + 1 :]


def test_import_refuses_bundle_altered_after_signing(
    tmp_path: Path, cli: Callable[..., Run], signed: dict[str, Path], untouched: RegistryServer,
    app: PushedArtifact, keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    data = signed["old"].read_bytes()
    source = tmp_path / "altered-catalog.tar"
    source.write_bytes(_altered_catalog(data))
    run = cli("import", "--source", source, "--target-registry", untouched.url, "--trusted-key", keys["old"][1])
    message = error_message(run)
    key_id = openssl_key_id(keys["old"][1])
    expected = f"bundle {source.as_uri()}: its ecdsa-p256-sha256 signature by key {key_id} does not verify"
    assert message.startswith(expected) and "altered after signing" in message, message
    assert_nothing_landed(untouched, app)
    # A blob altered after signing: the catalog still verifies, its digest in the catalog does not, no tag.
    layer = max(app.blobs, key=lambda b: b[1])[0].removeprefix("sha256:")
    start = data.index(b"blobs/sha256/" + layer.encode()) + 512
    source = tmp_path / "altered-blob.tar"
    source.write_bytes(data[:start] + bytes([data[start] ^ 1]) + data[start + 1 :])
    run = cli("import", "--source", source, "--target-registry", untouched.url, "--trusted-key", keys["old"][1])
    assert "sha256:" + layer in error_message(run), run.where()
    assert content.list_tags(untouched.url, REPO) == []


def test_inspect_verify_trusted_key_accepts_rotated_keys(
    cli: Callable[..., Run], signed: dict[str, Path], target_registry: RegistryServer, app: PushedArtifact,
    keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    trusted = ["--trusted-key", keys["old"][1], "--trusted-key", keys["new"][1]]
    for name in ("old", "new"):  # bundles of either key, before and after the rotation
        out = cli("inspect", signed[name], "--verify", *trusted).json()
        assert out["verified"] is True and out["signature"]["trusted"] is True, out
        assert out["signature"]["keyId"] == openssl_key_id(keys[name][1]), out
    out = cli("import", "--source", signed["new"], "--target-registry", target_registry.url, *trusted,
              "--options", "OverwriteTags").json()  # fmt: skip
    assert out["importedArtifacts"] == [app.reference] and out["signature"]["trusted"] is True, out
    assert content.list_tags(target_registry.url, REPO) == ["1.4"]


def test_copy_checks_a_signed_bundle_and_keeps_its_signature(
    tmp_path: Path, cli: Callable[..., Run], signed: dict[str, Path]
) -> None:
    out = cli("copy", signed["new"], tmp_path / "copy.tar").json()
    assert out["verified"] is True, out
    assert (tmp_path / "copy.tar").read_bytes() == signed["new"].read_bytes()


def test_encrypted_sign_key_with_passphrase_file(
    tmp_path: Path, home: Path, source_registry: RegistryServer, app: PushedArtifact
) -> None:
    (tmp_path / "pass.txt").write_text("correct horse\n")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-256-cbc",
            "-pass", "file:pass.txt", "-out", "enc.pem", cwd=tmp_path)  # fmt: skip
    openssl("pkey", "-in", "enc.pem", "-passin", "file:pass.txt", "-pubout", "-out", "enc.pub.pem", cwd=tmp_path)
    key_id = openssl_key_id(tmp_path / "enc.pub.pem")
    console = Console(home=home)
    key = tmp_path / "enc.pem"
    export: list[str | Path] = [
        "export", "--source-registry", source_registry.url, "-a", app.reference, "--sign-key", key
    ]  # fmt: skip

    out = console(*export, "--target", tmp_path / "a.tar", "--sign-key-passphrase-file", tmp_path / "pass.txt").json()
    assert out["signature"]["keyId"] == key_id, out
    by_variable = Console(home=home, env={"AIRLOCK_SIGN_KEY_PASSPHRASE": "correct horse"})
    assert by_variable(*export, "--target", tmp_path / "b.tar").json()["signature"]["keyId"] == key_id

    message = error_message(console(*export, "--target", tmp_path / "c.tar"), 2)
    assert message == (
        f"sign key {tmp_path / 'enc.pem'} is encrypted: give its passphrase with --sign-key-passphrase-file or "
        "AIRLOCK_SIGN_KEY_PASSPHRASE"
    ), message
    # A wrong passphrase is said the same way (tests/archive/test_signature.py): "the passphrase does not decrypt it".
    assert not (tmp_path / "c.tar").exists()  # refused before anything is written


def test_sign_key_of_another_kind_is_a_usage_error(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, app: PushedArtifact
) -> None:
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "rsa.pem", cwd=tmp_path)
    run = cli("export", "--source-registry", source_registry.url, "-a", app.reference, "--target", tmp_path / "x.tar",
              "--sign-key", tmp_path / "rsa.pem")  # fmt: skip
    assert "is a RSA key; airlock signs with ECDSA P-256 or Ed25519 only" in error_message(run, 2)
    run = cli("inspect", tmp_path / "x.tar", "--trusted-key", tmp_path / "rsa.pem")
    assert f"trusted key {tmp_path / 'rsa.pem'} is not a PEM public key" in error_message(run, 2)


def test_signed_multi_volume_bundle_verifies_in_its_first_volume(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    big = push_oci_image(source_registry.url, "team/big", "1", seed=132, layers=3, layer_size=40 * 1024)
    target = tmp_path / "vol.tar"
    out = cli("export", "--source-registry", source_registry.url, "-a", big.reference, "--target", target,
              "--volume-size", "64KiB", "--sign-key", keys["new"][0]).json()  # fmt: skip
    assert len(out["volumes"]) > 1 and out["signature"]["algorithm"] == "ed25519", out
    shown = cli("inspect", target, "--verify", "--trusted-key", keys["new"][1]).json()
    assert shown["signature"]["trusted"] and shown["verified"], shown
    assert all(v["verified"] for v in shown["volumes"][1:]), shown  # the first is the one the catalog heads
    # Without --trusted-key a signed bundle imports as any other; the result still says who signed it.
    out = cli("import", "--source", target, "--target-registry", target_registry.url).json()
    assert out["signature"] == {"keyId": shown["signature"]["keyId"], "algorithm": "ed25519"}, out
    assert content.list_tags(target_registry.url, "team/big") == ["1"]


def readme_signing_blocks() -> list[str]:
    """The ``sh`` blocks of the README's "Signed bundles" subsection, in order."""
    text = README.read_text()
    section = text.split("### Signed bundles\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 3, blocks
    return blocks


def test_signed_bundle_verifies_with_tar_and_openssl(
    tmp_path: Path, home: Path, source_registry: RegistryServer, target_registry: RegistryServer, app: PushedArtifact,
    signed: dict[str, Path], keys: dict[str, tuple[Path, Path]],
) -> None:  # fmt: skip
    """The README's commands, as written: make a key, sign, check with airlock, then with tar + openssl."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "AIRLOCK_HOME": str(home / ".airlock"),
        "AIRLOCK_NO_PROGRESS": "1",
        "SOURCE_REGISTRY": source_registry.url,
        "TARGET_REGISTRY": target_registry.url,
    }
    outputs = []
    for block in readme_signing_blocks():
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{block}\n--- stdout:\n{done.stdout}\n--- stderr:\n{done.stderr}"
        outputs.append(done.stdout)
    signature = json.loads(outputs[0])
    assert signature == {"keyId": openssl_key_id(tmp_path / "sign.pub.pem"), "algorithm": "ecdsa-p256-sha256"}
    assert json.loads(outputs[1])["trusted"] is True
    assert "Verified OK" in outputs[2]
    assert content.list_tags(target_registry.url, REPO) == ["1.4"]

    # The same check fails on a catalog altered after signing, and the README's Ed25519 line verifies too.
    catalog = tmp_path / "catalog.json"
    catalog.write_bytes(catalog.read_bytes().replace(b'"creator":"airlock', b'"creator":"Airlock'))
    altered = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", "sign.pub.pem", "-signature", "catalog.sig", "catalog.json"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert altered.returncode != 0 and "Verification failure" in altered.stdout + altered.stderr
    bundle, ed25519_public = signed["new"], keys["new"][1]
    ed25519_line = next(
        line.removeprefix("# Ed25519: ") for line in readme_signing_blocks()[2].splitlines() if "Ed25519" in line
    )
    script = (
        f"tar -xOf {bundle} airlock-catalog.json > catalog.json && tar -xOf {bundle} airlock-catalog.sig > catalog.sig "
        f"&& cp {ed25519_public} sign.pub.pem && {ed25519_line}"
    )
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr
