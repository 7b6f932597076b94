"""The throughput benchmark's steps: :class:`Bench` runs every repetition's timed steps against the cached test
set, fresh target registries and a fresh Azurite (the raw limits: SHA-256, GET, disk write, monolithic PUT and
the Azure SDK; airlock export and import through a file and through Azurite; skopeo to one oci-archive per image
and back) and records a :class:`~bench.measuring.Run` for each, which ``bench.report`` summarizes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from airlock.testing.azurite import AzuriteServer, container_sas, container_url, create_container
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import SKOPEO_BIN
from bench.image_set import TestSet, _amp, _check, _http, _start_upload, manifest_digest
from bench.measuring import (
    NullSink,
    Run,
    StepFailed,
    _checked,
    _process_cpu,
    _system_busy,
    airlock_argv,
    drop_caches,
    run_process,
    wait_for_quiet,
)
from bench.workspace import MiB, say

READ_CHUNK = MiB
AZ_ACCOUNT = "benchacct"
AZ_CONTAINER = "transfer"
SKOPEO_CACHES = (
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
)


class Bench:
    def __init__(self, args: argparse.Namespace, test_set: TestSet, source: RegistryServer, run_dir: Path) -> None:
        self.args = args
        self.set = test_set
        self.source = source
        self.run_dir = run_dir
        self.runs: list[Run] = []
        self.catalog_digest: str | None = None
        self.archive_size: int | None = None
        self.big_repo, self.big_digest, self.big_size = test_set.largest_blob
        hexd = self.big_digest.split(":", 1)[1]
        self.big_path = source.data_dir / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
        self._fresh = 0
        self.az_catalog: str | None = None
        self.azurite: AzuriteServer | None = None

    # -- helpers ----------------------------------------------------------------------------------

    def own_cpu(self) -> float:
        """CPU seconds of this process, its reaped children (airlock, skopeo, stopped servers) and live servers."""
        t = os.times()
        live = [self.source.pid, self.azurite.pid if self.azurite is not None else None]
        return t.user + t.system + t.children_user + t.children_system + sum(_process_cpu(p) for p in live)

    def server_cpu(self) -> float:
        """CPU seconds so far of the long-lived servers (the source registry, Azurite)."""
        return _process_cpu(self.source.pid) + _process_cpu(self.azurite.pid if self.azurite is not None else None)

    def step(self, op: str, rep: int, nbytes: int, body: Callable[[Run], None]) -> Run:
        run = Run(op, rep, nbytes)
        if self.args.quiet_wait > 0:
            run.detail["waited_for_quiet_s"] = round(wait_for_quiet(self.args.quiet_wait, self.own_cpu), 1)
        busy, own, started = _system_busy(), self.own_cpu(), time.perf_counter()
        servers = self.server_cpu()
        try:
            body(run)
        except Exception as exc:
            run.ok, run.error = False, f"{type(exc).__name__}: {exc}"
        wall = time.perf_counter() - started
        run.server_cpu = self.server_cpu() - servers + float(run.detail.pop("target_registry_cpu_s", 0.0))
        if wall > 0:
            machine = _system_busy() - busy  # read once: both figures describe the same interval
            run.busy_cores = machine / wall
            run.other_cpu = max(0.0, machine - (self.own_cpu() - own)) / wall
        self.runs.append(run)
        if run.ok:
            rss = f", peak RSS {run.rss_mib:.0f} MiB" if run.rss_mib is not None else ""
            cpu = f", CPU {run.cpu_seconds:.1f} s" if run.cpu_seconds is not None else ""
            other = f"; other load {run.other_cpu:.2f} cores" if run.other_cpu is not None else ""
            say(f"  {op:<22} {run.seconds:7.2f} s  {run.mib_s:8.1f} MiB/s{rss}{cpu}{other}")
        else:
            say(f"  {op:<22} FAILED: {run.error}")
        return run

    def fresh_registry(self, label: str) -> RegistryServer:
        self._fresh += 1
        return RegistryServer.start(self.run_dir, name=f"{label}-{self._fresh}")

    @staticmethod
    def discard_registry(registry: RegistryServer, run: Run | None = None) -> None:
        """Stop a step's own registry; with ``run``, count its CPU as the step's server CPU."""
        if run is not None:
            run.detail["target_registry_cpu_s"] = _process_cpu(registry.pid)
        registry.stop()
        shutil.rmtree(registry.data_dir, ignore_errors=True)

    def cold(self, run: Run) -> None:
        run.cache_dropped = drop_caches()

    def verify_target(self, registry: RegistryServer) -> None:
        wrong = [i.reference for i in self.set.images if manifest_digest(registry.url, i.repository, i.tag) != i.digest]
        if wrong:
            raise StepFailed(f"target registry lacks or has other digests for {wrong[:3]}")

    def timed_airlock(self, run: Run, argv: list[str], what: str) -> dict[str, Any]:
        self.cold(run)
        proc = _checked(run_process([*airlock_argv(), *argv]), what)
        run.seconds = proc.seconds
        run.rss_mib = proc.rss_kib / 1024
        run.cpu_seconds = proc.cpu_seconds
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def concurrency_args(self) -> list[str]:
        return ["--concurrency", str(self.args.concurrency)] if self.args.concurrency else []

    # -- raw limits -------------------------------------------------------------------------------

    def limit_sha256(self, run: Run) -> None:
        with open(self.big_path, "rb") as f:  # warm the cache: this measures hashing, not the disk
            while f.read(8 * MiB):
                pass
        h = hashlib.sha256()
        started = time.perf_counter()
        with open(self.big_path, "rb", buffering=0) as f:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
        run.seconds = time.perf_counter() - started
        if "sha256:" + h.hexdigest() != self.big_digest:
            raise StepFailed("hash of the blob file does not match its digest")

    def limit_get(self, run: Run) -> None:
        self.cold(run)
        url = f"{self.source.url}/v2/{self.big_repo}/blobs/{self.big_digest}"
        started = time.perf_counter()
        resp = _http.request("GET", url, preload_content=False)
        n = 0
        for chunk in resp.stream(READ_CHUNK, decode_content=False):
            n += len(chunk)
        resp.release_conn()
        run.seconds = time.perf_counter() - started
        if resp.status != 200 or n != self.big_size:
            raise StepFailed(f"GET answered {resp.status} with {n} bytes")

    def limit_disk(self, run: Run) -> None:
        size = int(self.args.disk_mib * MiB)
        run.bytes = size
        block = random.Random(self.set.spec.seed).randbytes(8 * MiB)
        path = self.run_dir / "disk-write.bin"
        self.cold(run)
        started = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left:
                view = memoryview(block)[: min(left, len(block))]
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    left -= n
            os.fsync(fd)
        finally:
            os.close(fd)
        run.seconds = time.perf_counter() - started
        path.unlink()

    def limit_put(self, run: Run) -> None:
        registry = self.fresh_registry("put")
        try:
            location = _start_upload(registry.url, "bench/put")

            def body() -> Iterator[bytes]:
                with open(self.big_path, "rb", buffering=0) as f:
                    while chunk := f.read(READ_CHUNK):
                        yield chunk

            self.cold(run)
            started = time.perf_counter()
            resp = _http.request(
                "PUT",
                f"{location}{_amp(location)}digest={self.big_digest}",
                body=body(),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(self.big_size)},
            )
            run.seconds = time.perf_counter() - started
            _check(resp, 201, "monolithic PUT")
        finally:
            self.discard_registry(registry, run)

    # -- airlock ----------------------------------------------------------------------------------

    @property
    def archive(self) -> Path:
        return self.run_dir / "batch.tar"

    def airlock_export_file(self, run: Run) -> None:
        self.archive.unlink(missing_ok=True)
        refs = [i.reference for i in self.set.images]
        out = self.timed_airlock(
            run,
            [
                "export",
                "--source-registry",
                self.source.url,
                "--artifacts",
                *refs,
                "--target",
                self.archive.as_uri(),
                *self.concurrency_args(),
            ],
            "airlock export → file",
        )
        self.catalog_digest = out["catalogDigest"]
        self.archive_size = int(out["size"])
        run.detail.update({"archive_bytes": self.archive_size, "catalog_digest": self.catalog_digest})

    def airlock_import(self, run: Run, source_uri: str, extra: list[str], what: str) -> None:
        if self.catalog_digest is None:
            raise StepFailed("no archive: the export before it failed")
        registry = self.fresh_registry("target")
        try:
            out = self.timed_airlock(
                run,
                [
                    "import",
                    "--source",
                    source_uri,
                    "--target-registry",
                    registry.url,
                    "--catalog-digest",
                    self.catalog_digest,
                    *extra,
                    *self.concurrency_args(),
                ],
                what,
            )
            run.detail.update({"blobs": out.get("blobs")})
            self.verify_target(registry)
        finally:
            self.discard_registry(registry, run)

    # -- skopeo -----------------------------------------------------------------------------------

    def skopeo_dir(self) -> Path:
        return self.run_dir / "skopeo"

    def skopeo_series(self, run: Run, argvs: list[list[str]], what: str) -> None:
        for cache in SKOPEO_CACHES:
            with contextlib.suppress(OSError):
                cache.unlink()
        self.cold(run)
        started = time.perf_counter()
        peak, cpu = 0, 0.0
        for argv in argvs:
            proc = _checked(run_process([str(SKOPEO_BIN), "--insecure-policy", *argv]), what)
            peak = max(peak, proc.rss_kib)
            cpu += proc.cpu_seconds
        run.seconds = time.perf_counter() - started
        run.rss_mib = peak / 1024
        run.cpu_seconds = cpu
        run.detail.update({"processes": len(argvs)})

    def skopeo_export(self, run: Run) -> None:
        shutil.rmtree(self.skopeo_dir(), ignore_errors=True)
        self.skopeo_dir().mkdir()
        argvs = [
            [
                "copy",
                "--src-tls-verify=false",
                f"docker://{self.source.host}/{i.reference}",
                f"oci-archive:{self.skopeo_dir() / (i.repository.replace('/', '_') + '.tar')}:{i.tag}",
            ]
            for i in self.set.images
        ]
        self.skopeo_series(run, argvs, "skopeo copy registry → oci-archive")

    def skopeo_import(self, run: Run) -> None:
        registry = self.fresh_registry("skopeo-target")
        try:
            argvs = []
            for i in self.set.images:
                archive = self.skopeo_dir() / (i.repository.replace("/", "_") + ".tar")
                if not archive.is_file():
                    raise StepFailed("no oci-archives: the skopeo export before it failed")
                argvs.append(
                    [
                        "copy",
                        "--dest-tls-verify=false",
                        f"oci-archive:{archive}:{i.tag}",
                        f"docker://{registry.host}/{i.reference}",
                    ]
                )
            self.skopeo_series(run, argvs, "skopeo copy oci-archive → registry")
            self.verify_target(registry)
        finally:
            self.discard_registry(registry, run)
            shutil.rmtree(self.skopeo_dir(), ignore_errors=True)

    # -- Azurite ----------------------------------------------------------------------------------

    def azure_group(self, rep: int) -> None:
        azurite = AzuriteServer.start(self.run_dir, accounts=(AZ_ACCOUNT,), name=f"azurite-{rep}")
        self.azurite = azurite
        try:
            create_container(azurite, AZ_ACCOUNT, AZ_CONTAINER)
            sas = container_sas(azurite, AZ_ACCOUNT, AZ_CONTAINER, permissions="racwdl")
            sas_file = self.run_dir / "azurite.sas"
            sas_file.write_text(sas + "\n")
            base = container_url(azurite, AZ_ACCOUNT, AZ_CONTAINER)
            blob_uri = f"{base}/batch.tar"
            payload = self.set.payload_bytes
            sas_args = ["--sas-token-file", str(sas_file)]

            def export(run: Run) -> None:
                refs = [i.reference for i in self.set.images]
                argv = ["export", "--source-registry", self.source.url, "--artifacts", *refs, "--target", blob_uri]
                out = self.timed_airlock(run, [*argv, *sas_args, *self.concurrency_args()], "airlock export → Azurite")
                self.az_catalog = out["catalogDigest"]
                run.detail.update({"archive_bytes": int(out["size"])})

            self.az_catalog = None
            self.step("airlock.export.azure", rep, payload, export)

            def do_import(run: Run) -> None:
                if self.az_catalog is None:
                    raise StepFailed("no blob: the export before it failed")
                saved, self.catalog_digest = self.catalog_digest, self.az_catalog
                try:
                    self.airlock_import(run, blob_uri, sas_args, "airlock import ← Azurite")
                finally:
                    self.catalog_digest = saved

            self.step("airlock.import.azure", rep, payload, do_import)
            if "limits" not in self.args.skip:
                self.azure_sdk(rep, base, sas)
        finally:
            self.azurite = None
            azurite.stop()
            shutil.rmtree(azurite.location, ignore_errors=True)

    def azure_sdk(self, rep: int, base: str, sas: str) -> None:
        from azure.storage.blob import BlobClient

        nbytes = self.archive_size or 0
        url = f"{base}/raw-sdk.tar?{sas}"

        def upload(run: Run) -> None:
            if not self.archive.is_file():
                raise StepFailed("no archive file: the file export failed or was skipped")
            self.cold(run)
            with BlobClient.from_blob_url(url) as client, open(self.archive, "rb") as f:
                started = time.perf_counter()
                client.upload_blob(f, length=nbytes, overwrite=True, max_concurrency=4)
                run.seconds = time.perf_counter() - started

        self.step("limit.azure_upload", rep, nbytes, upload)

        def download(run: Run) -> None:
            sink = NullSink()
            self.cold(run)
            with BlobClient.from_blob_url(url) as client:
                started = time.perf_counter()
                # A RawIOBase is no typing.IO[bytes], but it has all readinto uses: write, seek, tell, seekable.
                client.download_blob(max_concurrency=4).readinto(cast(IO[bytes], sink))
                run.seconds = time.perf_counter() - started
            if sink.total != nbytes:
                raise StepFailed(f"downloaded {sink.total} bytes, expected {nbytes}")

        self.step("limit.azure_download", rep, nbytes, download)

    # -- the run ----------------------------------------------------------------------------------

    def repetition(self, rep: int) -> None:
        say(f"repetition {rep + 1}/{self.args.repeat}")
        payload = self.set.payload_bytes
        skip = self.args.skip
        if "limits" not in skip:
            self.step("limit.sha256", rep, self.big_size, self.limit_sha256)
            self.step("limit.get", rep, self.big_size, self.limit_get)
            self.step("limit.disk_write", rep, 0, self.limit_disk)
            self.step("limit.put", rep, self.big_size, self.limit_put)
        # airlock and skopeo back to back in each direction, so both see the same machine.
        self.step("airlock.export.file", rep, payload, self.airlock_export_file)
        if "skopeo" not in skip:
            self.step("skopeo.export", rep, payload, self.skopeo_export)
        self.step(
            "airlock.import.file",
            rep,
            payload,
            lambda run: self.airlock_import(run, self.archive.as_uri(), [], "airlock import ← file"),
        )
        if "skopeo" not in skip:
            self.step("skopeo.import", rep, payload, self.skopeo_import)
        if "azure" not in skip:
            try:
                self.azure_group(rep)
            except Exception as exc:  # Azurite did not start: record it, keep the other numbers
                self.runs.append(Run("airlock.export.azure", rep, payload, ok=False, error=f"Azurite: {exc}"))
        self.archive.unlink(missing_ok=True)
