"""Image signatures required at import (``--require-signed-by``), verified offline from the bundle.

cosign is not packaged here and Debian's skopeo is built without sigstore, so the signatures are
made by :mod:`airlock.testing.cosign` with ``cryptography``, to cosign's format (simple-signing
payload, ECDSA P-256, base64 in the layer annotation) under the ``sha256-<hex>.sig`` tag or as a
referrer. One source and one target registry for the module; each test has its own repositories.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console, Run, error_message
from airlock.testing.content import PushedArtifact
from airlock.testing.cosign import CosignKey, push_cosign_signature
from airlock.testing.images import push_oci_image
from airlock.testing.keyless import TestSigstore, push_bundle
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

TRUSTED = CosignKey.from_seed("trusted")
STRANGER = CosignKey.from_seed("stranger")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    (folder / "cosign.pub").write_bytes(TRUSTED.public_pem)
    (folder / "other.pub").write_bytes(STRANGER.public_pem)
    return {"trusted": folder / "cosign.pub", "stranger": folder / "other.pub"}


def host(registry: RegistryServer) -> str:
    return urllib.parse.urlsplit(registry.url).netloc


def image(registry: RegistryServer, repository: str, seed: int) -> PushedArtifact:
    return push_oci_image(registry.url, repository, "1.0", seed=seed, layers=1, layer_size=2048)


def signed(registry: RegistryServer, art: PushedArtifact, key: CosignKey = TRUSTED, **how: Any) -> PushedArtifact:
    how.setdefault("docker_reference", f"{host(registry)}/{art.repository}")
    return push_cosign_signature(registry.url, art.repository, art, key, **how)


def export(cli: Callable[..., Run], registry: RegistryServer, target: Path, *arts: PushedArtifact) -> Path:
    refs = [a.reference for a in arts]
    cli("export", "--source-registry", registry.url, "-a", *refs, "--include-referrers", "--target", target).json()
    return target


def import_(cli: Callable[..., Run], bundle: Path, registry: RegistryServer, *args: str | Path) -> Run:
    return cli("import", "--source", bundle, "--target-registry", registry.url, *args)


@dataclass
class World:
    cli: Callable[..., Run]
    source: RegistryServer
    target: RegistryServer
    keys: dict[str, Path]
    folder: Path

    def signed_import(self, *arts: PushedArtifact, extra: tuple[str, ...] = ()) -> Run:
        """Export ``arts`` with their signatures, then import them requiring the trusted key."""
        bundle = export(self.cli, self.source, self.folder / f"b{len(list(self.folder.iterdir()))}.tar", *arts)
        return import_(self.cli, bundle, self.target, "--require-signed-by", self.keys["trusted"], *extra)

    def refusal(self, art: PushedArtifact) -> str:
        """The one error line of an import that refuses ``art``, after checking its repository has no tag."""
        message = error_message(self.signed_import(art))
        assert content.list_tags(self.target.url, art.repository) == []
        return message


@pytest.fixture
def world(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    keys: dict[str, Path],
) -> World:  # fmt: skip
    return World(cli, source_registry, target_registry, keys, tmp_path)


def test_require_signed_by_accepts_cosign_tag_signature(world: World) -> None:
    app = image(world.source, "sig/tag/app", seed=1301)
    sig = signed(world.source, app)

    out = world.signed_import(app, extra=("--require-signed-by", str(world.keys["stranger"]))).json()  # any of the keys

    sig_tag = app.digest.replace(":", "-") + ".sig"
    assert sorted(out["importedArtifacts"]) == sorted(["sig/tag/app:1.0", f"sig/tag/app:{sig_tag}"])
    assert out["failedArtifacts"] == {}
    assert content.get_manifest(world.target.url, "sig/tag/app", "1.0")[2] == app.digest
    assert content.get_manifest(world.target.url, "sig/tag/app", sig_tag)[2] == sig.digest


def test_require_signed_by_accepts_referrer_signature(world: World) -> None:
    app = image(world.source, "sig/ref/app", seed=1302)
    sig = signed(world.source, app, referrer=True)

    out = world.signed_import(app).json()

    assert {"sig/ref/app:1.0", f"sig/ref/app@{sig.digest}"} <= set(out["importedArtifacts"])
    assert content.get_manifest(world.target.url, "sig/ref/app", "1.0")[2] == app.digest
    assert content.manifest_exists(world.target.url, "sig/ref/app", sig.digest)


def test_require_signed_by_refuses_tampered_signature(world: World) -> None:
    app = image(world.source, "sig/tampered/app", seed=1303)
    signed(world.source, app, tamper=True)
    message = world.refusal(app)
    assert message.startswith(f"artifact sig/tampered/app:1.0 ({app.digest}) refused: signature not by a trusted key")
    assert "tampered with" in message and message.endswith("no tag was written")


def test_require_signed_by_refuses_signature_of_other_digest(world: World) -> None:
    app = image(world.source, "sig/moved/app", seed=1304)
    other = image(world.source, "sig/moved/other", seed=1305)
    signed(world.source, app, signed_digest=other.digest)  # other's signature, under app's .sig tag
    assert f"refused: payload digest {other.digest} ≠ artifact {app.digest}" in world.refusal(app)


def test_require_signed_by_refuses_untrusted_key(world: World) -> None:
    app = image(world.source, "sig/stranger/app", seed=1306)
    signed(world.source, app, key=STRANGER)
    trusted_id = "sha256:" + hashlib.sha256(TRUSTED.public_der).hexdigest()[:16]
    assert f"refused: signature not by a trusted key ({trusted_id}), or tampered with" in world.refusal(app)


def test_require_signed_by_checks_identity_after_rename(world: World) -> None:
    src, dst = host(world.source), host(world.target)
    app = image(world.source, "sig/ren/app", seed=1307)
    signed(world.source, app)  # names its source repository
    mirrored = image(world.source, "sig/ren/mirrored", seed=1308)
    signed(world.source, mirrored, docker_reference=f"{dst}/mirror/ren/mirrored")  # names its target
    rename = ("--rename", "sig/ren/=mirror/ren/")

    out = world.signed_import(app, mirrored, extra=rename).json()
    assert {"mirror/ren/app:1.0", "mirror/ren/mirrored:1.0"} <= set(out["importedArtifacts"])

    # A signature made for another repository is not this artifact's, whatever the rename.
    elsewhere = image(world.source, "sig/ren/elsewhere", seed=1309)
    signed(world.source, elsewhere, docker_reference=f"{src}/sig/ren/app")
    message = error_message(world.signed_import(elsewhere, extra=rename))
    assert f"refused: identity {src}/sig/ren/app ≠ {src}/sig/ren/elsewhere or {dst}/mirror/ren/elsewhere" in message
    assert content.list_tags(world.target.url, "mirror/ren/elsewhere") == []


def test_continue_on_errors_lands_signed_and_reports_refused(world: World) -> None:
    good = image(world.source, "sig/coe/good", seed=1310)
    signed(world.source, good)
    unsigned = image(world.source, "sig/coe/unsigned", seed=1311)
    stranger = image(world.source, "sig/coe/stranger", seed=1312)
    stranger_sig = signed(world.source, stranger, key=STRANGER)

    run = world.signed_import(good, unsigned, stranger, extra=("-z", "ContinueOnErrors"))

    assert run.returncode == 1, run.where()
    out = json.loads(run.stdout)
    assert "sig/coe/good:1.0" in out["importedArtifacts"]
    assert content.get_manifest(world.target.url, "sig/coe/good", "1.0")[2] == good.digest
    failed = out["failedArtifacts"]
    sig_tag = stranger.digest.replace(":", "-") + ".sig"
    assert sorted(failed) == sorted(["sig/coe/unsigned:1.0", "sig/coe/stranger:1.0", f"sig/coe/stranger:{sig_tag}"])
    assert failed["sig/coe/unsigned:1.0"].endswith(f"({unsigned.digest}) refused: no signature (no tag "
                                                   f"{unsigned.digest.replace(':', '-')}.sig and no signature referrer "
                                                   "in the bundle; export with --include-referrers)")  # fmt: skip
    assert (
        failed[f"sig/coe/stranger:{sig_tag}"]
        == f"artifact sig/coe/stranger:{sig_tag}: attached to sig/coe/stranger:1.0, refused"
    )
    assert content.list_tags(world.target.url, "sig/coe/unsigned") == []
    assert content.list_tags(world.target.url, "sig/coe/stranger") == []
    assert not content.manifest_exists(world.target.url, "sig/coe/stranger", stranger_sig.digest)


def test_require_signed_by_names_a_file_that_is_not_a_key(tmp_path: Path, cli: Callable[..., Run]) -> None:
    not_a_key = tmp_path / "cosign.key"
    not_a_key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    run = cli(
        "import", "--source", tmp_path / "b.tar", "--target-registry", "127.0.0.1:9", "--require-signed-by", not_a_key
    )
    assert (
        error_message(run, 2) == f"--require-signed-by {not_a_key}: not a PEM public key (-----BEGIN PUBLIC KEY-----)"
    )


# Keyless: a CA, transparency log and CT log of the tests' own (airlock.testing.keyless), whose
# trusted root names hosts that do not resolve (*.airlock.test): a verification that fetched anything would fail.
SIGNER = ("--certificate-identity", "signer@example.com", "--certificate-oidc-issuer", "https://issuer.example")


@pytest.fixture(scope="module")
def trusted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sigstore") / "trusted_root.json"
    path.write_bytes(TestSigstore().trusted_root())
    return path


def keyless_signed(world: World, repository: str, seed: int) -> tuple[PushedArtifact, PushedArtifact, Path]:
    """An image with a keyless Sigstore bundle attached as a referrer, exported with it."""
    app = image(world.source, repository, seed=seed)
    bundle = TestSigstore().bundle(app.digest, email="signer@example.com", issuer="https://issuer.example")
    attached = push_bundle(world.source.url, app, bundle)
    return app, attached, export(world.cli, world.source, world.folder / "keyless.tar", app)


def test_trusted_root_verifies_keyless_bundle_offline(world: World, trusted_root: Path) -> None:
    app, attached, bundle = keyless_signed(world, "sig/keyless/app", seed=1320)

    out = import_(world.cli, bundle, world.target, "--trusted-root", trusted_root, *SIGNER).json()

    assert {"sig/keyless/app:1.0", f"sig/keyless/app@{attached.digest}"} <= set(out["importedArtifacts"])
    assert content.get_manifest(world.target.url, "sig/keyless/app", "1.0")[2] == app.digest
    assert content.manifest_exists(world.target.url, "sig/keyless/app", attached.digest)


def test_trusted_root_refuses_wrong_certificate_identity(world: World, trusted_root: Path) -> None:
    app, _, bundle = keyless_signed(world, "sig/keyless/other", seed=1321)
    wrong = ("--certificate-identity", "mallory@example.com", "--certificate-oidc-issuer", "https://issuer.example")

    run = import_(world.cli, bundle, world.target, "--trusted-root", trusted_root, *wrong)

    message = error_message(run)
    assert message.startswith(f"artifact sig/keyless/other:1.0 ({app.digest}) refused: Sigstore bundle refused: ")
    assert "Certificate's SANs do not match mallory@example.com" in message
    assert content.list_tags(world.target.url, "sig/keyless/other") == []
    # A trusted root of another Sigstore (its CA unknown to this bundle) refuses it too.
    other_root = world.folder / "other_root.json"
    other_root.write_bytes(TestSigstore(seed="other").trusted_root())
    message = error_message(import_(world.cli, bundle, world.target, "--trusted-root", other_root, *SIGNER))
    assert "refused: Sigstore bundle refused: failed to build timestamp certificate chain" in message


def signing_pipeline(cli: Callable[..., Run], world: World, container: Path, name: str, *trigger: str) -> None:
    """Registry ``<name>reg`` (the target), import pipeline ``<name>`` on ``container`` requiring the trusted key."""
    cli("acr", "create", "-g", "sigrg", "-n", f"{name}reg", "--login-server", world.target.url).json()
    policy = ("--require-signed-by", world.keys["trusted"])
    made = cli("acr", "import-pipeline", "create", "-g", "sigrg", "-r", f"{name}reg", "-n", name,
               "-c", container.as_uri(), *trigger, *policy).json()  # fmt: skip
    assert made["properties"]["signaturePolicy"] == {"requireSignedBy": [TRUSTED.public_pem.decode()]}


@dataclass
class PipelineBundles:
    """Two bundles, exported once for the pipeline tests: a signed image and an unsigned one."""

    signed: PushedArtifact
    unsigned: PushedArtifact
    folder: Path

    def into(self, container: Path) -> tuple[PushedArtifact, PushedArtifact]:
        """Copy them into ``container`` as signed.tar and unsigned.tar, each appearing whole (a trigger may watch)."""
        container.mkdir(exist_ok=True)
        for name in ("signed.tar", "unsigned.tar"):
            staged = container.parent / f"{name}.staged"
            shutil.copyfile(self.folder / name, staged)
            staged.replace(container / name)
        return self.signed, self.unsigned


@pytest.fixture(scope="module")
def pipeline_bundles(
    tmp_path_factory: pytest.TempPathFactory, cli: Callable[..., Run], source_registry: RegistryServer
) -> PipelineBundles:
    folder = tmp_path_factory.mktemp("pipeline-bundles")
    signed_app = image(source_registry, "sig/pipe/signed", seed=1330)
    signed(source_registry, signed_app)
    unsigned = image(source_registry, "sig/pipe/unsigned", seed=1331)
    export(cli, source_registry, folder / "signed.tar", signed_app)
    export(cli, source_registry, folder / "unsigned.tar", unsigned)
    return PipelineBundles(signed_app, unsigned, folder)


def test_import_pipeline_signature_policy_is_applied_by_its_runs(
    world: World, pipeline_bundles: PipelineBundles
) -> None:
    container = world.folder / "container"
    signed_app, unsigned = pipeline_bundles.into(container)
    signing_pipeline(world.cli, world, container, "sigimport", "-e", "False")

    def run(name: str, blob: str) -> Run:
        return world.cli("acr", "pipeline-run", "create", "-g", "sigrg", "-r", "sigimportreg", "-p", "sigimport",
                         "-n", name, "-t", "import", "-b", blob)  # fmt: skip

    landed = run("signedrun", "signed.tar").json()
    assert signed_app.reference in landed["properties"]["response"]["importedArtifacts"]
    refused = run("unsignedrun", "unsigned.tar")
    message = error_message(refused, stdout_empty=False)
    assert json.loads(refused.stdout)["properties"]["provisioningState"] == "Failed"
    assert (
        f"pipeline run unsignedrun failed: artifact {unsigned.reference} ({unsigned.digest}) refused: no signature"
        in message
    )
    assert content.list_tags(world.target.url, unsigned.repository) == []
    # The API checks a policy as the CLI does: a key that is not one is refused when the pipeline is made.
    body = world.folder / "bad.json"
    storage = {"type": "AzureStorageBlobContainer", "uri": container.as_uri(), "storageAccessMode": "SasToken"}
    body.write_text(json.dumps({"properties": {"source": storage, "signaturePolicy": {"requireSignedBy": ["x"]}}}))
    url = "/subscriptions/{subscriptionId}/resourceGroups/sigrg/providers/Microsoft.ContainerRegistry/registries"
    path = f"{url}/sigimportreg/importPipelines/badpolicy"
    bad = world.cli("rest", "--method", "put", "--url", path, "--body", f"@{body}")
    assert error_message(bad, 2).endswith(
        "badpolicy properties.signaturePolicy requireSignedBy[0]: not a PEM public key (-----BEGIN PUBLIC KEY-----)"
    )


def test_import_pipeline_signature_policy_is_applied_by_the_source_trigger(
    world: World, pipeline_bundles: PipelineBundles
) -> None:
    container = world.folder / "container"
    server = AirlockServer(world.folder / "served", trigger_interval=0.5).start()
    try:
        token = (server.home / "api-token").read_text().strip()
        remote = Console(home=world.folder, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token})
        container.mkdir()
        signing_pipeline(remote, world, container, "sigtrigger", "-e", "True")
        signed_app, unsigned = pipeline_bundles.into(container)

        def runs() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = remote(
                "acr", "pipeline-run", "list", "-g", "sigrg", "-r", "sigtriggerreg"
            ).json()
            return [r for r in listed if r["properties"].get("provisioningState") in ("Succeeded", "Failed")]

        wait_until(lambda: len(runs()) == 2, timeout=60, what="the trigger's two imports")
        by_state = {r["properties"]["provisioningState"]: r["properties"]["response"] for r in runs()}
    finally:
        server.stop()
    assert signed_app.reference in by_state["Succeeded"]["importedArtifacts"]
    assert (
        f"artifact {unsigned.reference} ({unsigned.digest}) refused: no signature"
        in by_state["Failed"]["pipelineRunErrorMessage"]
    )
    assert content.get_manifest(world.target.url, signed_app.repository, "1.0")[2] == signed_app.digest
    assert content.list_tags(world.target.url, unsigned.repository) == []


def test_require_signed_by_verifies_signatures_a_delta_left_out_from_the_target(world: World) -> None:
    # cosign's .sig tag of a known image and a referrer's payload are in the target already, so a
    # delta of the image under a new tag leaves them out: they are read back from the target.
    tagged = image(world.source, "sig/delta/tagged", seed=1350)
    signed(world.source, tagged)
    referred = image(world.source, "sig/delta/referred", seed=1351)
    signed(world.source, referred, referrer=True)
    receipt = world.folder / "receipt.json"
    world.signed_import(tagged, referred, extra=("--receipt-out", str(receipt))).json()
    again = [push_oci_image(world.source.url, a.repository, "latest", seed=s, layers=1, layer_size=2048)
             for a, s in ((tagged, 1350), (referred, 1351))]  # fmt: skip
    assert [a.digest for a in again] == [tagged.digest, referred.digest]
    delta = world.folder / "delta.tar"
    world.cli("export", "--source-registry", world.source.url, "-a", *[a.reference for a in again],
              "--include-referrers", "--delta-from", receipt, "--target", delta).json()  # fmt: skip

    out = import_(world.cli, delta, world.target, "--require-signed-by", world.keys["trusted"]).json()

    assert {"sig/delta/tagged:latest", "sig/delta/referred:latest"} <= set(out["importedArtifacts"])
    assert f"sig/delta/tagged:{tagged.digest.replace(':', '-')}.sig" in out["unchangedArtifacts"]
    assert content.get_manifest(world.target.url, "sig/delta/referred", "latest")[2] == referred.digest


def test_require_signed_by_refuses_an_oci_layout_written_by_another_tool(world: World, skopeo_tar: Path) -> None:
    # Such a layout has no catalog to hold its signatures to: a policy is refused rather than skipped.
    run = import_(world.cli, skopeo_tar, world.target, "--require-signed-by", world.keys["trusted"])
    assert error_message(run, 2) == (
        f"signatures are required only of airlock archives: {skopeo_tar.as_uri()} is an OCI layout written by "
        "another tool (export it with airlock --include-referrers)"
    )
