"""Many small artifacts (issue 12): airlock export/import beside ``skopeo sync``, artifacts per second.

Run by ``make bench`` after ``bench.run``; directly: ``.venv/bin/python -m bench.many_small [--smoke] [--counts
100,200,1000,10000] [--repeat 3] [--skopeo-max 1000] ...`` (``--help`` lists the knobs).

What it does, against real local services started with airlock's own test harness:

1. For each count N it builds (once, cached under ``bench/work/small-<key>/``) N small images in a source
   registry: N/10 repositories of 10 tags each, every image 3 unique layers (tar of seeded random bytes in gzip
   level 0, so skopeo passes them through) plus its config and manifest, pushed through the registry API by 8
   threads. Layers are 8-64 KiB each, except from 5,000 images up, where they are 2-8 KiB so that the set builds
   in minutes (the per-artifact cost is round trips, not bytes: 3 x 36 KiB at 200 artifacts/s is 21 MiB/s).
2. Measures, back to back in every repetition: ``airlock export`` of every tag to a file, ``skopeo sync --src
   docker --dest dir`` one process per repository, sequentially; then ``airlock import`` of that file into a
   fresh registry, and ``skopeo sync --src dir --dest docker`` of each repository's directory into another fresh
   registry. Every target is checked (each tag's digest) after the step, outside the timing. skopeo runs for
   counts up to ``--skopeo-max`` (a 10,000-image sync takes over ten minutes and adds nothing to the ratio).
   With skopeo, each repetition also measures the bare requests (``bench.bare_requests``): the GETs, and then
   the POSTs and PUTs, that any transfer of the set must send, as many at a time as airlock sends (32 GETs, 16
   uploads), from a client doing nothing else: a reference for the registry's own pace on this machine, and
   airlock's share of it. The target registries, the archive and skopeo's copies live in ``--scratch-dir``
   (default ``bench/work``): on tmpfs (``/dev/shm``) the targets pay no fsync per file, which on this disk
   caps every parallel client's import alike.
3. Writes ``bench/results/many_small.md`` (smoke runs: ``bench/work/results/``): artifacts/s (median over the
   repetitions, with min-max), milliseconds and CPU milliseconds per artifact, peak RSS (GNU time of the CLI
   process; skopeo: its largest process), the ratio to skopeo, and the machine's load. For airlock's rows, the
   all-cores ceiling: cores / (the registries' CPU + the bare client's CPU per artifact), the rate at which the
   requests a step needs would keep every core busy and nothing else ran; and what 5x skopeo is of it (a step
   whose 5x needs 100% or more of it cannot reach 5x on this machine with any client that sends them).

Wall time is the whole process, start-up included, for airlock and skopeo alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import urllib3

from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import SKOPEO_BIN
from bench.bare_requests import Image, bare_export, bare_import
from bench.image_set import MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, push_bytes
from bench.many_small_report import Measured, render, summarize
from bench.measuring import Proc, _process_cpu, _system_busy, airlock_argv, run_process, wait_for_quiet
from bench.report import machine
from bench.workspace import REPO_ROOT, RESULTS_DIR, SMOKE_RESULTS_DIR, WORK_DIR, say

KiB = 1024
TAGS_PER_REPO = 10
SMALL_FROM = 5000  # from this many images up, layers are 2-8 KiB instead of 8-64 KiB
GENERATOR_VERSION = 1
BUILD_THREADS = 8
PY_SPY = Path(sys.executable).with_name("py-spy")  # --profile only: a profiling tool, not a dependency

_http = urllib3.PoolManager(maxsize=BUILD_THREADS, timeout=urllib3.Timeout(connect=10, read=120), retries=False)


@dataclass
class Small:
    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class SmallSet:
    count: int
    seed: int
    directory: Path
    images: list[Small]
    payload_bytes: int

    @property
    def layer_kib(self) -> tuple[int, int]:
        return layer_range(self.count)

    @property
    def repositories(self) -> list[str]:
        return sorted({i.repository for i in self.images})


def layer_range(count: int) -> tuple[int, int]:
    return (2, 8) if count >= SMALL_FROM else (8, 64)


def _layer(rng: random.Random, size: int) -> bytes:
    info = tarfile.TarInfo("layer.bin")
    info.size, info.mtime, info.mode = size, 0, 0o644
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    z = zlib.compressobj(0, zlib.DEFLATED, 31)  # gzip wrapper, level 0: a valid tar+gzip layer at no cost
    return z.compress(buf.getvalue()) + z.flush()


def _build_one(base: str, seed: int, index: int, kib: tuple[int, int]) -> tuple[Small, int]:
    rng = random.Random(f"{seed}/{index}")
    repo, tag = f"small/r{index // TAGS_PER_REPO:04d}", f"t{index % TAGS_PER_REPO}"
    layers = [_layer(rng, rng.randint(kib[0] * KiB, kib[1] * KiB)) for _ in range(3)]
    descs = [
        {"mediaType": OCI_LAYER, "digest": push_bytes(base, repo, data, http=_http), "size": len(data)}
        for data in layers
    ]
    diff_ids = ["sha256:" + hashlib.sha256(zlib.decompress(data, 31)).hexdigest() for data in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": push_bytes(base, repo, config, http=_http),
                "size": len(config),
            },
            "layers": descs,
        },
        separators=(",", ":"),
    ).encode()
    resp = _http.request(
        "PUT", f"{base}/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    if resp.status != 201:
        raise RuntimeError(f"PUT manifest {repo}:{tag}: HTTP {resp.status}")
    size = len(manifest) + len(config) + sum(len(d) for d in layers)
    return Small(repo, tag, "sha256:" + hashlib.sha256(manifest).hexdigest()), size


def digests_in(base: str, images: Sequence[Small]) -> list[str]:
    """References whose tag is missing from ``base`` or names another digest (8 HEADs at once)."""

    def wrong(i: Small) -> bool:
        resp = _http.request("HEAD", f"{base}/v2/{i.repository}/manifests/{i.tag}", headers={"Accept": MANIFEST_ACCEPT})
        return resp.status != 200 or resp.headers.get("Docker-Content-Digest") != i.digest

    with ThreadPoolExecutor(BUILD_THREADS) as pool:
        return [i.reference for i, bad in zip(images, pool.map(wrong, images), strict=True) if bad]


def open_set(count: int, seed: int) -> tuple[SmallSet, RegistryServer]:
    """The source registry holding ``count`` small images, built (and cached) when missing."""
    key = hashlib.sha256(f"{count}/{seed}/{GENERATOR_VERSION}/{TAGS_PER_REPO}".encode()).hexdigest()[:12]
    directory = WORK_DIR / f"small-{key}"
    marker = directory / "set.json"
    if marker.is_file():
        doc = json.loads(marker.read_text())
        images = [Small(**i) for i in doc["images"]]
        registry = RegistryServer.start(directory, name="source")
        if not digests_in(registry.url, images[:: max(1, count // 50)]):
            say(f"set of {count}: cached in {directory.relative_to(REPO_ROOT)}")
            return SmallSet(count, seed, directory, images, doc["payload_bytes"]), registry
        registry.stop()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    registry = RegistryServer.start(directory, name="source")
    started = time.perf_counter()
    kib = layer_range(count)
    with ThreadPoolExecutor(BUILD_THREADS) as pool:
        built = list(pool.map(lambda i: _build_one(registry.url, seed, i, kib), range(count)))
    images = [b[0] for b in built]
    payload = sum(b[1] for b in built)
    marker.write_text(json.dumps({"payload_bytes": payload, "images": [asdict(i) for i in images]}) + "\n")
    say(f"set of {count}: built in {time.perf_counter() - started:.1f} s ({payload / 2**20:.1f} MiB)")
    return SmallSet(count, seed, directory, images, payload), registry


def _checked(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise RuntimeError(f"{what} exited {proc.returncode}: {tail}")
    return proc


class Round:
    """One count's measurements, back to back, in a scratch directory."""

    def __init__(self, args: argparse.Namespace, small: SmallSet, source: RegistryServer, scratch: Path) -> None:
        self.args, self.set, self.source, self.scratch = args, small, source, scratch
        self.archive = scratch / "many.tar"
        self.catalog_digest: str | None = None
        self.results: list[Measured] = []
        self._fresh = 0
        self._target_cpu = 0.0
        self.bare_images: list[Image] = []  # what bare.export read, for bare.import to push

    def step(self, op: str, rep: int, body: Callable[[Measured], None]) -> None:
        m = Measured(op, self.set.count, rep)
        if self.args.quiet_wait > 0:
            wait_for_quiet(self.args.quiet_wait)
        busy, started, source_cpu = _system_busy(), time.perf_counter(), _process_cpu(self.source.pid)
        try:
            body(m)
        except Exception as exc:
            m.ok, m.error = False, f"{type(exc).__name__}: {exc}"
        wall = time.perf_counter() - started
        m.busy_cores = (_system_busy() - busy) / wall if wall else None
        m.registry_cpu_seconds += _process_cpu(self.source.pid) - source_cpu + self._target_cpu
        self._target_cpu = 0.0
        self.results.append(m)
        if m.ok:
            say(
                f"  {op:<15} N={m.count:<6} {m.seconds:7.2f} s {m.per_s:7.1f}/s  "
                f"{1000 * m.cpu_seconds / m.count:6.1f} CPU ms/artifact (registries "
                f"{1000 * m.registry_cpu_seconds / m.count:.1f})  RSS {m.rss_mib:.0f} MiB"
            )
        else:
            say(f"  {op:<15} N={m.count:<6} FAILED: {m.error}")

    def fresh(self) -> RegistryServer:
        self._fresh += 1
        return RegistryServer.start(self.scratch, name=f"target-{self._fresh}")

    def discard(self, registry: RegistryServer) -> None:
        self._target_cpu += _process_cpu(registry.pid)
        registry.stop()
        shutil.rmtree(registry.data_dir, ignore_errors=True)

    def airlock(self, m: Measured, argv: list[str]) -> dict[str, object]:
        spy: list[str] = []
        if self.args.profile:  # py-spy around the CLI: its wall time and RSS are then not airlock's alone
            out_file = Path(self.args.profile) / f"{argv[0]}-{self.set.count}-{m.rep}.txt"
            out_file.parent.mkdir(parents=True, exist_ok=True)
            spy = [str(PY_SPY), "record", "--format", "raw", "--threads"]
            spy += ["--gil"] if self.args.gil else ["--idle"]
            spy += ["-r", "200", "-o", str(out_file), "--"]
        proc = _checked(run_process([*spy, *airlock_argv(), *argv, *self.args.airlock_args]), f"airlock {argv[0]}")
        m.seconds, m.cpu_seconds, m.rss_mib = proc.seconds, proc.cpu_seconds, proc.rss_kib / 1024
        # py-spy, when profiling, writes its own lines around the command's one JSON object.
        out: dict[str, object] = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.find("{") :])[0]
        return out

    def skopeo(self, m: Measured, argvs: list[list[str]]) -> None:
        started, peak = time.perf_counter(), 0
        for argv in argvs:
            proc = _checked(run_process([str(SKOPEO_BIN), "--insecure-policy", *argv]), "skopeo sync")
            peak = max(peak, proc.rss_kib)
            m.cpu_seconds += proc.cpu_seconds
        m.seconds, m.rss_mib, m.processes = time.perf_counter() - started, peak / 1024, len(argvs)

    def airlock_export(self, m: Measured) -> None:
        self.archive.unlink(missing_ok=True)
        refs = [i.reference for i in self.set.images]
        where = ["--source-registry", self.source.url, "--target", self.archive.as_uri()]
        out = self.airlock(m, ["export", *where, "--query", "{catalogDigest: catalogDigest}", "--artifacts", *refs])
        self.catalog_digest = str(out["catalogDigest"])

    def airlock_import(self, m: Measured) -> None:
        if self.catalog_digest is None:
            raise RuntimeError("no archive: the export before it failed")
        target = self.fresh()
        try:
            out = self.airlock(
                m,
                [
                    "import",
                    "--source",
                    self.archive.as_uri(),
                    "--target-registry",
                    target.url,
                    "--catalog-digest",
                    self.catalog_digest,
                    "--query",
                    "blobs",
                ],
            )
            m.detail["blobs"] = out
            if wrong := digests_in(target.url, self.set.images):
                raise RuntimeError(f"target lacks {len(wrong)} tags, e.g. {wrong[:2]}")
        finally:
            self.discard(target)

    @property
    def skopeo_dir(self) -> Path:
        return self.scratch / "skopeo"

    def skopeo_export(self, m: Measured) -> None:
        shutil.rmtree(self.skopeo_dir, ignore_errors=True)
        argvs = [
            [
                "sync",
                "--src",
                "docker",
                "--dest",
                "dir",
                "--src-tls-verify=false",
                f"{self.source.host}/{repo}",
                str(self.skopeo_dir / repo),
            ]
            for repo in self.set.repositories
        ]
        self.skopeo(m, argvs)

    def skopeo_import(self, m: Measured) -> None:
        target = self.fresh()
        try:
            argvs = [
                [
                    "sync",
                    "--src",
                    "dir",
                    "--dest",
                    "docker",
                    "--dest-tls-verify=false",
                    str(self.skopeo_dir / repo),
                    f"{target.host}/{repo.rpartition('/')[0]}",
                ]
                for repo in self.set.repositories
            ]
            self.skopeo(m, argvs)
            if wrong := digests_in(target.url, self.set.images):
                raise RuntimeError(f"target lacks {len(wrong)} tags, e.g. {wrong[:2]}")
        finally:
            self.discard(target)
            shutil.rmtree(self.skopeo_dir, ignore_errors=True)

    def bare_export(self, m: Measured) -> None:
        refs = [(i.repository, i.tag) for i in self.set.images]
        self.bare_images, m.seconds, m.cpu_seconds = bare_export(self.source.url, refs)

    def bare_import(self, m: Measured) -> None:
        if not self.bare_images:
            raise RuntimeError("nothing to push: the bare export before it failed")
        target = self.fresh()
        try:
            m.seconds, m.cpu_seconds = bare_import(target.url, self.bare_images)
            if wrong := digests_in(target.url, self.set.images):
                raise RuntimeError(f"target lacks {len(wrong)} tags, e.g. {wrong[:2]}")
        finally:
            self.discard(target)
            self.bare_images = []

    def run(self, repeat: int) -> None:
        with_peers = self.set.count <= self.args.skopeo_max
        for rep in range(repeat):
            self.step("airlock.export", rep, self.airlock_export)
            if with_peers:
                self.step("skopeo.export", rep, self.skopeo_export)
                self.step("bare.export", rep, self.bare_export)
            self.step("airlock.import", rep, self.airlock_import)
            if with_peers:
                self.step("skopeo.import", rep, self.skopeo_import)
                self.step("bare.import", rep, self.bare_import)
            self.archive.unlink(missing_ok=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.many_small", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="20 images, one repetition, skopeo included: seconds")
    p.add_argument("--counts", help="comma-separated image counts (default 100,200,1000,10000; smoke 20)")
    p.add_argument("--repeat", type=int, help="repetitions for each count up to 1000 (default 3; smoke 1)")
    p.add_argument("--repeat-large", type=int, default=1, help="repetitions for counts above 1000 (default 1)")
    p.add_argument("--skopeo-max", type=int, default=1000, help="run skopeo for counts up to this (default 1000)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--quiet-wait", type=float, help="wait up to this many s for an idle machine before each step")
    p.add_argument(
        "--airlock-args", default="", help="extra arguments for every airlock command, e.g. '--concurrency 8'"
    )
    p.add_argument("--results-dir", help="where to write many_small.md and many_small.json")
    p.add_argument("--profile", metavar="DIR", help="record every airlock command with py-spy (raw stacks) into DIR")
    p.add_argument(
        "--gil", action="store_true", help="with --profile: only samples holding the GIL (airlock's own CPU), no idle"
    )
    p.add_argument("--label", default="", help="a note for the results (e.g. 'before', a commit)")
    p.add_argument(
        "--scratch-dir",
        help="where the target registries, the archive and skopeo's copies live (default bench/work; e.g. "
        "/dev/shm to measure the tools without this disk's fsyncs, which the target registries pay per file)",
    )
    args = p.parse_args(argv)
    args.counts = [int(c) for c in (args.counts or ("20" if args.smoke else "100,200,1000,10000")).split(",")]
    args.repeat = args.repeat or (1 if args.smoke else 3)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0 if args.smoke else 10)
    args.airlock_args = args.airlock_args.split()
    if any(c < 1 for c in args.counts) or args.repeat < 1:
        p.error("counts and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Said before the sets are built: otherwise every airlock step fails minutes later with exit 127.
    if args.profile and not PY_SPY.is_file():
        raise SystemExit("--profile needs py-spy, a profiling tool and not a dependency: .venv/bin/pip install py-spy")
    if args.gil and not args.profile:
        raise SystemExit("--gil changes what --profile records: give --profile DIR too")
    started = dt.datetime.now(dt.UTC)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results: list[Measured] = []
    for count in args.counts:
        small, source = open_set(count, args.seed)
        # Untimed: the first pass over a freshly started registry reads its files from disk and fills its
        # blob-descriptor cache (up to 2x slower); without this the first tool measured would pay for it.
        _, warm_s, _ = bare_export(source.url, [(i.repository, i.tag) for i in small.images])
        say(f"set of {count}: read once to warm the registry ({warm_s:.1f} s)")
        scratch = Path(tempfile.mkdtemp(prefix=f"small-run-{count}-", dir=args.scratch_dir or WORK_DIR))
        try:
            r = Round(args, small, source, scratch)
            r.run(args.repeat if count <= 1000 else args.repeat_large)
            results += r.results
        finally:
            source.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    rows = summarize(results)
    table = render(rows)
    say("\n".join(table))
    results_dir = Path(args.results_dir) if args.results_dir else (SMOKE_RESULTS_DIR if args.smoke else RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    host = machine()
    doc = {
        "started": started.isoformat(),
        "argv": sys.argv[1:],
        "label": args.label,
        "machine": host,
        "summary": rows,
        "runs": [asdict(m) | {"per_s": m.per_s} for m in results],
    }
    (results_dir / "many_small.json").write_text(json.dumps(doc, indent=1) + "\n")
    (results_dir / "many_small.md").write_text(
        "\n".join(
            [
                "# Many small artifacts: airlock beside skopeo sync",
                "",
                f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `python -m bench.many_small "
                f"{' '.join(sys.argv[1:])}`{f' ({args.label})' if args.label else ''}; airlock {host['airlock']}, "
                f"{host['skopeo']}, {host['cores']} cores.",
                "",
                *table,
                "",
            ]
        )
    )
    failed = [m for m in results if not m.ok]
    for m in failed:
        say(f"FAILED {m.op} N={m.count} rep {m.rep + 1}: {m.error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
