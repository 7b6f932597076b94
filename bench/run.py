"""Throughput and memory benchmark: airlock side by side with skopeo and the machine's raw limits (issue 4).

Run ``make bench`` (full set, about 2 GiB of payload, 10-20 min on 2 cores) or ``make bench-smoke`` (a tiny set,
seconds); directly: ``.venv/bin/python -m bench.run [--smoke] [--repeat N] ...`` (``--help`` lists the knobs).

What it does, all against real local services started with airlock's own test harness:

1. Builds a fixed, seeded test set once and caches it under ``bench/work/set-<key>/`` (the source registry's
   storage): ``--images`` images of ``--layers`` layers of ``--layer-mib`` MiB each, plus one image with a single
   ``--big-mib`` layer. Layers are tars of one file of seeded random bytes (AES-CTR keystream), wrapped in gzip
   level 0 (stored blocks): valid ``tar+gzip`` layers that cost nothing to build and that skopeo passes through
   untouched. They are streamed straight into the registry (chunked PATCH), so no layout is kept on disk.
2. Measures, interleaved in every repetition (page cache dropped before each timed step when permitted):
   the raw limits (hashlib SHA-256 over the largest blob, one cold GET of it with urllib3, a 1 GiB write with
   fsync, one monolithic registry PUT of it, and the azure-storage-blob SDK upload/download of the archive
   airlock wrote); airlock export → file and import ← file (fresh registry); skopeo registry → one oci-archive
   per image and back (fresh registry, blob-info cache wiped); airlock export → Azurite and import ← Azurite
   (fresh Azurite per repetition, SAS token file). Every airlock and skopeo process is timed and its peak RSS
   taken from ``wait4``'s rusage.
3. Prints the table (MiB/s median and min-max, ratio to skopeo, fraction of the relevant limit, peak RSS),
   writes ``bench/results/<UTC timestamp>.json`` with the machine's description and refreshes
   ``bench/results/latest.md``. Smoke runs write to ``bench/work/results/`` instead, so CI never overwrites
   the published numbers. The exit status is 1 when any step failed.

Throughput is payload bytes (every blob and manifest of the set, once) divided by wall time of the whole
operation, process start-up included, for airlock and skopeo alike.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import urllib3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import airlock
from airlock.testing.azurite import AzuriteServer, container_sas, container_url, create_container
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import SKOPEO_BIN, run_skopeo

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
SMOKE_RESULTS_DIR = WORK_DIR / "results"

MiB = 1024 * 1024
GEN_CHUNK = 4 * MiB
READ_CHUNK = MiB
GENERATOR_VERSION = 1  # bump when the set's bytes change, so old caches are not reused

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"
TAG = "v1"
AZ_ACCOUNT = "benchacct"
AZ_CONTAINER = "transfer"
SKOPEO_CACHES = (
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path.home() / ".local/share/containers/cache/blob-info-cache-v1.boltdb",
)
PROCESS_TIMEOUT = 3600.0

_http = urllib3.PoolManager(maxsize=4, timeout=urllib3.Timeout(connect=10, read=300), retries=False)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------------ test set


@dataclass(frozen=True)
class SetSpec:
    seed: int
    images: int
    layers: int
    layer_mib: float
    big_mib: float

    @property
    def key(self) -> str:
        doc = json.dumps({**asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:12]

    @property
    def layer_bytes(self) -> int:
        return int(self.layer_mib * MiB)

    @property
    def big_bytes(self) -> int:
        return int(self.big_mib * MiB)

    def describe(self) -> str:
        text = f"{self.images} images x {self.layers} layers x {self.layer_mib:g} MiB"
        if self.big_bytes:
            text += f" + 1 image with one {self.big_mib:g} MiB layer"
        return f"{text} (seed {self.seed})"


@dataclass
class Image:
    repository: str
    tag: str
    digest: str
    manifest_size: int
    blobs: list[tuple[str, int]]  # (digest, size): config first, then layers

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class TestSet:
    spec: SetSpec
    directory: Path
    images: list[Image]

    @property
    def payload_bytes(self) -> int:
        return sum(i.manifest_size + sum(size for _, size in i.blobs) for i in self.images)

    @property
    def largest_blob(self) -> tuple[str, str, int]:
        """(repository, digest, size) of the largest layer: the subject of the raw GET/PUT/hash limits."""
        return max(((i.repository, d, s) for i in self.images for d, s in i.blobs), key=lambda t: t[2])


def _keystream(seed: int, name: str) -> Any:
    key = hashlib.sha256(f"airlock-bench/{seed}/{name}".encode()).digest()
    return Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()


def _tar_chunks(seed: int, name: str, size: int) -> Iterator[bytes]:
    """A ustar stream holding one file of ``size`` seeded random bytes (AES-CTR keystream: GB/s)."""
    info = tarfile.TarInfo("layer.bin")
    info.size, info.mtime, info.mode = size, 0, 0o644
    yield info.tobuf(format=tarfile.USTAR_FORMAT)
    enc = _keystream(seed, name)
    zeros = memoryview(bytes(GEN_CHUNK))
    left = size
    while left:
        n = min(GEN_CHUNK, left)
        yield enc.update(zeros[:n])
        left -= n
    yield bytes(-size % 512 + 1024)


class _Layer:
    """A gzip (level 0) layer generated on the fly; digest, diff_id and size are known once consumed."""

    def __init__(self, seed: int, name: str, size: int) -> None:
        self.seed, self.name, self.raw_size = seed, name, size
        self.sha = hashlib.sha256()
        self.diff_id = hashlib.sha256()
        self.size = 0

    def chunks(self) -> Iterator[bytes]:
        z = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: gzip wrapper, mtime 0: deterministic
        for raw in _tar_chunks(self.seed, self.name, self.raw_size):
            self.diff_id.update(raw)
            out = z.compress(raw)
            if out:
                self.sha.update(out)
                self.size += len(out)
                yield out
        out = z.flush()
        self.sha.update(out)
        self.size += len(out)
        yield out


def _check(resp: urllib3.BaseHTTPResponse, expected: int, what: str) -> None:
    if resp.status != expected:
        raise RuntimeError(f"{what}: HTTP {resp.status} {resp.data[:300]!r}")


def _start_upload(base: str, repo: str, http: urllib3.PoolManager | None = None) -> str:
    resp = (http or _http).request("POST", f"{base}/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    _check(resp, 202, f"POST upload {repo}")
    location = resp.headers["Location"]
    return location if location.startswith("http") else base + location


def _amp(url: str) -> str:
    return "&" if "?" in url else "?"


def push_bytes(
    base: str, repo: str, data: bytes, *, digest: str | None = None, http: urllib3.PoolManager | None = None
) -> str:
    """A monolithic upload of ``data`` into ``repo`` (a POST, then a PUT with the digest); the digest.

    Raises RuntimeError on any answer but 202 (POST) or 201 (PUT).
    """
    digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    location = _start_upload(base, repo, http)
    resp = (http or _http).request(
        "PUT",
        f"{location}{_amp(location)}digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _check(resp, 201, f"PUT blob {repo}@{digest}")
    return digest


def push_layer(base: str, repo: str, layer: _Layer) -> tuple[str, int, str]:
    """Stream a generated layer into ``repo`` (one chunked PATCH, then PUT with the digest)."""
    location = _start_upload(base, repo)
    resp = _http.request(
        "PATCH",
        location,
        body=layer.chunks(),
        chunked=True,
        headers={"Content-Type": "application/octet-stream"},
    )
    _check(resp, 202, f"PATCH layer {repo}")
    location = resp.headers["Location"]
    location = location if location.startswith("http") else base + location
    digest = "sha256:" + layer.sha.hexdigest()
    resp = _http.request("PUT", f"{location}{_amp(location)}digest={digest}", headers={"Content-Length": "0"})
    _check(resp, 201, f"PUT layer {repo}")
    return digest, layer.size, "sha256:" + layer.diff_id.hexdigest()


def _build_image(base: str, seed: int, repo: str, layer_sizes: Sequence[int]) -> Image:
    layers = []
    for j, size in enumerate(layer_sizes):
        layers.append(push_layer(base, repo, _Layer(seed, f"{repo}/{j}", size)))
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = push_bytes(base, repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s, _ in layers],
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    resp = _http.request("PUT", f"{base}/v2/{repo}/manifests/{TAG}", body=raw, headers={"Content-Type": OCI_MANIFEST})
    _check(resp, 201, f"PUT manifest {repo}")
    blobs = [(config_digest, len(config_bytes)), *((d, s) for d, s, _ in layers)]
    return Image(repo, TAG, "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw), blobs)


def manifest_digest(base: str, repo: str, tag: str) -> str | None:
    resp = _http.request("HEAD", f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    return resp.headers.get("Docker-Content-Digest") if resp.status == 200 else None


def registry_holds(base: str, images: Sequence[Image]) -> bool:
    return all(manifest_digest(base, i.repository, i.tag) == i.digest for i in images)


def open_test_set(spec: SetSpec) -> tuple[TestSet, RegistryServer]:
    """Start the source registry on the cached set, building the set first when it is not cached."""
    directory = WORK_DIR / f"set-{spec.key}"
    marker = directory / "set.json"
    if marker.is_file():
        doc = json.loads(marker.read_text())
        images = [
            Image(i["repository"], i["tag"], i["digest"], i["manifest_size"], [(d, s) for d, s in i["blobs"]])
            for i in doc["images"]
        ]
        registry = RegistryServer.start(directory, name="source")
        if registry_holds(registry.url, images):
            say(f"test set: cached in {directory.relative_to(REPO_ROOT)} ({spec.describe()})")
            return TestSet(spec, directory, images), registry
        say("test set: cache incomplete, rebuilding")
        registry.stop()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    registry = RegistryServer.start(directory, name="source")
    say(f"test set: building {spec.describe()} into {directory.relative_to(REPO_ROOT)} ...")
    started = time.perf_counter()
    jobs: list[tuple[str, list[int]]] = [
        (f"bench/img{i:02d}", [spec.layer_bytes] * spec.layers) for i in range(spec.images)
    ]
    if spec.big_bytes:
        jobs.append(("bench/big", [spec.big_bytes]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        images = list(pool.map(lambda job: _build_image(registry.url, spec.seed, *job), jobs))
    test_set = TestSet(spec, directory, images)
    marker.write_text(json.dumps({"spec": asdict(spec), "images": [asdict(i) for i in images]}, indent=1) + "\n")
    say(f"test set: built in {time.perf_counter() - started:.1f} s ({test_set.payload_bytes / MiB:.1f} MiB)")
    return test_set, registry


# ------------------------------------------------------------------------------------------- measuring


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted (then only the flush happened)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


@dataclass
class Proc:
    argv: list[str]
    seconds: float
    rss_kib: int
    cpu_seconds: float  # user + system of the process
    returncode: int
    stdout: str
    stderr: str


TIME_BIN = Path("/usr/bin/time")
# Fallback when GNU time is missing: a minimal Python that forks, execs and reports the child's rusage.
_RSS_WRAPPER = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    try: os.execvp(sys.argv[2],sys.argv[2:])\n"
    "    finally: os._exit(127)\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write(f'0 {ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(st) & 255)\n"
)


def run_process(argv: Sequence[str], *, timeout: float = PROCESS_TIMEOUT) -> Proc:
    """Run ``argv``; its wall time, peak RSS and CPU time.

    RSS and CPU come from GNU time (``/usr/bin/time -f '%e %M %U %S'``), or else from a tiny forking wrapper: ``wait4``
    on a child spawned directly from this process would report *our* RSS, because CPython spawns with vfork
    and Linux folds the pre-exec memory's high-water mark into the child's ``ru_maxrss``.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file,
    ):
        if TIME_BIN.is_file():
            wrapped = [str(TIME_BIN), "-f", "%e %M %U %S", "-o", rss_file.name, *argv]
        else:
            wrapped = [sys.executable, "-S", "-c", _RSS_WRAPPER, rss_file.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds = time.perf_counter() - started
        rss_kib, cpu = 0, 0.0
        with contextlib.suppress(ValueError, IndexError):
            # GNU time writes "Command exited with non-zero status N" first when the command failed.
            fields = rss_file.read().split()[-3:]
            rss_kib, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        out.seek(0)
        err.seek(0)
        return Proc(
            list(argv),
            seconds,
            rss_kib,
            cpu,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def airlock_argv() -> list[str]:
    """The command that runs airlock's CLI, with its bytecode compiled (see :func:`compile_airlock`)."""
    compile_airlock()
    script = Path(sys.executable).with_name("airlock")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "airlock"]


PYCACHE_DIR = WORK_DIR / "pycache"


@functools.cache
def compile_airlock() -> None:
    """Make every airlock process this benchmark starts load compiled bytecode, as an installed airlock does.

    pip compiles a wheel's modules when it installs them; this checkout is an editable install, and where
    ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it) nothing ever writes airlock's ``.pyc`` files,
    so every run compiled all of its modules again: 0.27 s of a 2.6 s export of 200 small images (medians of
    6, back to back). So: compile them once into ``bench/work/pycache`` and point the children there
    (``PYTHONPYCACHEPREFIX``, which the children inherit from this process's environment).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    package = Path(airlock.__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"compiling airlock's modules failed: {done.stdout}{done.stderr}")


@dataclass
class Run:
    op: str
    rep: int
    bytes: int
    seconds: float = 0.0
    rss_mib: float | None = None
    cpu_seconds: float | None = None  # user + system of the measured airlock/skopeo process(es)
    other_cpu: float | None = None  # cores busy outside the benchmark's processes during the step (noise)
    server_cpu: float | None = None  # user + system of the registries and Azurite during the step
    busy_cores: float | None = None  # the whole machine's busy cores during the step (2.0 = saturated here)
    cache_dropped: bool = False
    ok: bool = True
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        return self.bytes / MiB / self.seconds if self.ok and self.seconds > 0 else 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def _system_busy() -> float:
    """CPU seconds the whole machine spent busy (user, nice, system, irq, softirq; not idle, iowait, steal)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / _TICK


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime


def wait_for_quiet(max_wait: float, own_cpu: Callable[[], float] = lambda: 0.0) -> float:
    """Wait (at most ``max_wait`` s) until processes other than ours use under 0.15 cores; return the wait."""
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        busy, own = _system_busy(), own_cpu()
        time.sleep(0.5)
        if (_system_busy() - busy) - (own_cpu() - own) < 0.15 * 0.5:
            break
    return time.perf_counter() - started


class StepFailed(Exception):
    pass


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _checked(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        raise StepFailed(f"{what} exited {proc.returncode}:\n{_tail(proc.stderr) or _tail(proc.stdout)}")
    return proc


class NullSink(io.RawIOBase):
    """A seekable sink that discards everything (the SDK's parallel download needs seek)."""

    def __init__(self) -> None:
        self.pos = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.pos += n
        self.total += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


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


# ----------------------------------------------------------------------------------------------- report

LABELS = {
    "airlock.export.file": "airlock export registry → file",
    "airlock.import.file": "airlock import file → registry",
    "skopeo.export": "skopeo registry → oci-archive (per image)",
    "skopeo.import": "skopeo oci-archive → registry (per image)",
    "airlock.export.azure": "airlock export registry → Azurite",
    "airlock.import.azure": "airlock import Azurite → registry",
    "limit.sha256": "limit: SHA-256, hashlib (file in page cache)",
    "limit.get": "limit: registry GET of the largest blob (cold)",
    "limit.disk_write": "limit: disk write + fsync",
    "limit.put": "limit: registry monolithic PUT, 1 stream (cold)",
    "limit.azure_upload": "limit: azure-storage-blob upload (max_concurrency=4)",
    "limit.azure_download": "limit: azure-storage-blob download (max_concurrency=4)",
}
# For each airlock operation: the skopeo operation it is compared with, and its limit (min of these).
SKOPEO_OF = {
    "airlock.export.file": "skopeo.export",
    "airlock.import.file": "skopeo.import",
    "airlock.export.azure": "skopeo.export",
    "airlock.import.azure": "skopeo.import",
}
LIMITS_OF = {
    "airlock.export.file": ("limit.get", "limit.sha256", "limit.disk_write"),
    "airlock.import.file": ("limit.sha256", "limit.put"),
    "airlock.export.azure": ("limit.azure_upload",),
    "airlock.import.azure": ("limit.azure_download",),
}
LIMIT_NAMES = {
    "limit.get": "GET",
    "limit.sha256": "SHA",
    "limit.disk_write": "disk",
    "limit.put": "PUT",
    "limit.azure_upload": "SDK up",
    "limit.azure_download": "SDK down",
}


def summarize(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for op in LABELS:
        mine = [r for r in runs if r.op == op]
        good = [r for r in mine if r.ok]
        if not mine:
            continue
        rates = [r.mib_s for r in good]
        rss = [r.rss_mib for r in good if r.rss_mib is not None]
        cpu = [r.cpu_seconds / (r.bytes / 2**30) for r in good if r.cpu_seconds is not None and r.bytes]
        server = [r.server_cpu / (r.bytes / 2**30) for r in good if r.server_cpu is not None and r.bytes]
        busy = [r.busy_cores for r in good if r.busy_cores is not None]
        other = [r.other_cpu for r in mine if r.other_cpu is not None]
        out[op] = {
            "runs": len(mine),
            "failed": len(mine) - len(good),
            "mib_s_median": statistics.median(rates) if rates else None,
            "mib_s_min": min(rates) if rates else None,
            "mib_s_max": max(rates) if rates else None,
            "seconds_median": statistics.median(r.seconds for r in good) if good else None,
            "peak_rss_mib": max(rss) if rss else None,
            "cpu_s_per_gib": statistics.median(cpu) if cpu else None,
            "server_cpu_s_per_gib": statistics.median(server) if server else None,
            "busy_cores": statistics.median(busy) if busy else None,
            "other_load_cores": statistics.median(other) if other else None,
            "bytes": mine[0].bytes,
        }
    for op, summary in out.items():
        rate = summary["mib_s_median"]
        sk = out.get(SKOPEO_OF.get(op, ""), {}).get("mib_s_median")
        summary["vs_skopeo"] = rate / sk if rate and sk else None
        limits = [(name, out.get(name, {}).get("mib_s_median")) for name in LIMITS_OF.get(op, ())]
        known = [(name, v) for name, v in limits if v]
        if known and rate and len(known) == len(limits):
            name, value = min(known, key=lambda kv: kv[1])
            summary["limit"] = {"op": name, "mib_s": value}
            summary["of_limit"] = rate / value
    return out


def table_rows(summary: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [
        [
            "operation",
            "MiB/s median (min-max)",
            "vs skopeo",
            "of limit",
            "peak RSS MiB",
            "CPU s/GiB",
            "servers' CPU s/GiB",
            "busy cores",
            "other load",
        ]
    ]
    for op, s in summary.items():
        if s["mib_s_median"] is None:
            rate = f"FAILED ({s['failed']}/{s['runs']})"
        else:
            rate = f"{s['mib_s_median']:.0f} ({s['mib_s_min']:.0f}-{s['mib_s_max']:.0f})"
            if s["failed"]:
                rate += f", {s['failed']} failed"
        ratio = f"{s['vs_skopeo']:.2f}x" if s.get("vs_skopeo") else ""
        limit = ""
        if s.get("of_limit"):
            limit = f"{100 * s['of_limit']:.0f}% of {s['limit']['mib_s']:.0f} ({LIMIT_NAMES[s['limit']['op']]})"
        rss = f"{s['peak_rss_mib']:.0f}" if s.get("peak_rss_mib") is not None else ""
        if op.startswith("skopeo") and rss:
            rss += " (skopeo)"
        cpu = f"{s['cpu_s_per_gib']:.1f}" if s.get("cpu_s_per_gib") is not None else ""
        other = f"{s['other_load_cores']:.2f}" if s.get("other_load_cores") is not None else ""
        server = f"{s['server_cpu_s_per_gib']:.1f}" if s.get("server_cpu_s_per_gib") else ""
        busy = f"{s['busy_cores']:.2f}" if s.get("busy_cores") is not None else ""
        rows.append([LABELS[op], rate, ratio, limit, rss, cpu, server, busy, other])
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def targets(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 4's targets, each with the measured value and whether it is met."""

    def get(op: str, key: str) -> float | None:
        value = summary.get(op, {}).get(key)
        return float(value) if value is not None else None

    lines = []

    def check(text: str, value: float | None, goal: float, fmt: str, *, at_most: bool = False) -> None:
        if value is None:
            lines.append(f"- {text}: not measured")
            return
        met = value <= goal if at_most else value >= goal
        lines.append(f"- {text}: {fmt.format(value)} — {'met' if met else 'NOT met'}")

    check("export → file ≥ 3x skopeo", get("airlock.export.file", "vs_skopeo"), 3.0, "{:.2f}x")
    of = get("airlock.export.file", "of_limit")
    check("export → file ≥ 60% of min(GET, SHA, disk)", None if of is None else 100 * of, 60, "{:.0f}%")
    check("import ← file ≥ 2x skopeo", get("airlock.import.file", "vs_skopeo"), 2.0, "{:.2f}x")
    for op, text in (("airlock.export.azure", "export → Azurite"), ("airlock.import.azure", "import ← Azurite")):
        of = get(op, "of_limit")
        check(f"{text} ≥ 90% of the raw SDK rate", None if of is None else 100 * of, 90, "{:.0f}%")
    rss = [v for op in SKOPEO_OF if (v := get(op, "peak_rss_mib")) is not None]
    check("peak RSS of every airlock process ≤ 150 MiB", max(rss) if rss else None, 150, "{:.0f} MiB", at_most=True)
    return lines


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    osname = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    import airlock

    azurite = "?"
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = REPO_ROOT / ".tools/node_modules/azurite/package.json"
        azurite = json.loads(pkg.read_text())["version"]

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    git = _version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    fs = _version(["findmnt", "-no", "SOURCE,FSTYPE", "--target", str(WORK_DIR)])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": osname,
        "kernel": platform.release(),
        "filesystem": fs,
        "python": platform.python_version(),
        "airlock": f"{airlock.__version__} (git {git}{', src/ modified' if dirty else ''})",
        "skopeo": run_skopeo("--version", check=False).stdout.strip(),
        "distribution": _version(["/usr/bin/docker-registry", "--version"]),
        "azurite": azurite,
        "azure-storage-blob": dist("azure-storage-blob"),
        "urllib3": dist("urllib3"),
    }


def write_results(
    args: argparse.Namespace,
    bench: Bench,
    summary: dict[str, dict[str, Any]],
    started: dt.datetime,
    host: dict[str, Any],
) -> tuple[Path, Path]:
    results_dir = Path(args.results_dir) if args.results_dir else (SMOKE_RESULTS_DIR if args.smoke else RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    dropped = [r.cache_dropped for r in bench.runs if r.op != "limit.sha256"]
    doc = {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "argv": sys.argv[1:],
        "smoke": args.smoke,
        "set": {
            **asdict(bench.set.spec),
            "key": bench.set.spec.key,
            "description": bench.set.spec.describe(),
            "payload_bytes": bench.set.payload_bytes,
            "archive_bytes": bench.archive_size,
            "images": [asdict(i) for i in bench.set.images],
        },
        "settings": {
            "repeat": args.repeat,
            "airlock_concurrency": args.concurrency or "default",
            "page_cache_dropped": all(dropped) if dropped else False,
            "skipped": sorted(args.skip),
        },
        "machine": host,
        "summary": summary,
        "runs": [asdict(r) | {"mib_s": r.mib_s} for r in bench.runs],
    }
    json_path = results_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    md = [
        "# airlock benchmark: latest results",
        "",
        f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `{'make bench-smoke' if args.smoke else 'make bench'}`"
        f" ({json_path.name}); {args.repeat} interleaved repetitions, page cache "
        f"{'dropped' if doc['settings']['page_cache_dropped'] else 'NOT dropped'} before each timed step.",
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, {host['os']}, kernel "
        f"{host['kernel']}, Python {host['python']}; airlock {host['airlock']}, {host['skopeo']}, distribution "
        f"{host['distribution'].split()[-1]}, Azurite {host['azurite']}, "
        f"azure-storage-blob {host['azure-storage-blob']}.",
        "",
        f"Set: {bench.set.spec.describe()}: {bench.set.payload_bytes / MiB:.1f} MiB of payload in "
        f"{len(bench.set.images)} images (archive {(bench.archive_size or 0) / MiB:.1f} MiB).",
        "",
        render_markdown(table_rows(summary)),
        "",
        "MiB/s is payload bytes over the wall time of the whole operation, process start-up included; skopeo runs "
        "one `skopeo copy` per image, sequentially. *vs skopeo* compares with skopeo in the same direction; "
        "*of limit* divides by the smallest of the relevant raw limits measured in the same run "
        "(export → file: GET, SHA, disk; import ← file: SHA, registry PUT of one stream; Azurite: the raw SDK rate "
        "for the archive's bytes). Peak RSS is the largest over the repetitions. *CPU s/GiB* is the user + system "
        "time of the airlock (or skopeo) processes per GiB of payload; *servers' CPU* is the same for the registries "
        "and Azurite serving the step; *busy cores* is how many of the machine's cores were busy during the step "
        f"(the machine has {os.cpu_count()}; near that, the step is CPU-bound). *other load* is the median "
        "number of cores kept busy, during the step, by processes that are not the benchmark's (other work on "
        "the machine, kernel writeback): above ~0.2 the rates are disturbed.",
        "",
        "Targets (issue 4):",
        "",
        *targets(summary),
        "",
    ]
    md_path = results_dir / "latest.md"
    md_path.write_text("\n".join(md))
    return json_path, md_path


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny set (2x2x1 MiB + 8 MiB), 1 repetition: seconds")
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--images", type=int, help="images of --layers layers (default 10; smoke 2)")
    p.add_argument("--layers", type=int, help="layers per image (default 5; smoke 2)")
    p.add_argument("--layer-mib", type=float, help="MiB per layer (default 20; smoke 1)")
    p.add_argument("--big-mib", type=float, help="MiB of the one-layer image, 0 for none (default 1024; smoke 8)")
    p.add_argument(
        "--disk-mib",
        type=float,
        help="MiB written for the disk limit (default: the set's payload, as much as an export writes)",
    )
    p.add_argument("--repeat", type=int, help="interleaved repetitions (default 3; smoke 1)")
    p.add_argument("--concurrency", type=int, help="airlock --concurrency (default: airlock's own default)")
    p.add_argument(
        "--skip", action="append", default=[], choices=["skopeo", "azure", "limits"], help="leave a group out"
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each step, wait up to this many seconds for other processes to go idle (default 20; smoke 0)",
    )
    p.add_argument("--results-dir", help="where to write <timestamp>.json and latest.md")
    p.add_argument("--keep", action="store_true", help="keep the run's scratch directory under bench/work/")
    args = p.parse_args(argv)
    defaults = (
        {"images": 2, "layers": 2, "layer_mib": 1, "big_mib": 8, "repeat": 1, "quiet_wait": 0}
        if args.smoke
        else {
            "images": 10,
            "layers": 5,
            "layer_mib": 20,
            "big_mib": 1024,
            "repeat": 3,
            "quiet_wait": 20,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.disk_mib is None:
        # The same amount as the export writes: past ~1 GiB of dirty pages the kernel throttles
        # writers to the device's rate (seen here: 3 GB/s for the first GiB, then 230-300 MB/s at
        # times), so a smaller write would overstate the disk limit an export meets.
        args.disk_mib = args.images * args.layers * args.layer_mib + args.big_mib
    if args.repeat < 1 or args.images < 0 or args.layers < 1 or args.layer_mib <= 0 or args.big_mib < 0:
        p.error("sizes and --repeat must be positive")
    if args.images == 0 and args.big_mib == 0:
        p.error("the set would be empty")
    args.skip = set(args.skip)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    spec = SetSpec(args.seed, args.images, args.layers, args.layer_mib, args.big_mib)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    test_set, source = open_test_set(spec)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{started.strftime('%Y%m%dT%H%M%S')}-", dir=WORK_DIR))
    bench = Bench(args, test_set, source, run_dir)
    try:
        host = machine()
        can_drop = drop_caches()
        say(
            f"payload {test_set.payload_bytes / MiB:.1f} MiB in {len(test_set.images)} images; "
            f"page cache {'dropped' if can_drop else 'cannot be dropped (not root)'} before each step; "
            f"scratch {run_dir.relative_to(REPO_ROOT)}"
        )
        for rep in range(args.repeat):
            bench.repetition(rep)
    finally:
        source.stop()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    summary = summarize(bench.runs)
    rows = table_rows(summary)
    say()
    say(render_text(rows))
    say()
    for line in targets(summary):
        say(line)
    json_path, md_path = write_results(args, bench, summary, started, host)
    say()

    def shown(path: Path) -> str:
        return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)

    say(f"results: {shown(json_path)}, {shown(md_path)}")
    failed = [r for r in bench.runs if not r.ok]
    if failed:
        say(f"{len(failed)} step(s) failed:")
        for r in failed:
            say(f"  {r.op} (repetition {r.rep + 1}): {r.error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
