"""Progress as a user at a terminal sees it: the real console script with stderr on a pseudo-terminal
(``airlock.testing.terminal``) 80 and 60 columns wide, against the real test registries.

What is drawn is read back without its control sequences; every redraw of the bar is one line, and
rich draws a final frame when the bar stops, so the finished state is always on the screen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airlock.cli import display
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.terminal import TerminalRun, run_on_terminal

AIRLOCK = Path(sys.executable).parent / "airlock"
MiB = 1024 * 1024
# Long enough to be cut in its middle at 60 columns, whole at 80.
LONG_REPO = "progress/a/rather/long/repository/name/to/cut"
BAR = re.compile(r"[━─]{3,}")
DECIMAL_UNITS = re.compile(r"\d\s?(kB|KB|MB|GB|TB)\b|\d\s?(kB|MB|GB)/s")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The environment without airlock or Azure settings (progress left on), for one AIRLOCK_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "AZURE_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"airlock-test-pycache-{os.getuid()}")
    env.update(AIRLOCK_HOME=str(home), HOME=str(home), NO_COLOR="1", **extra)
    return env


def on_terminal(env: dict[str, str], *args: str | Path, columns: int = 80) -> TerminalRun:
    run = run_on_terminal([str(AIRLOCK), *map(str, args)], env=env, columns=columns)
    assert run.returncode == 0, f"airlock {' '.join(map(str, args))} exited {run.returncode}:\n{run.text}"
    assert "Traceback" not in run.text + run.stdout
    return run


def bar_lines(run: TerminalRun) -> list[str]:
    return [line for line in run.lines if BAR.search(line) and not line.startswith("✓")]


def done_lines(run: TerminalRun) -> list[str]:
    return [line for line in run.lines if line.startswith("✓ ")]


def assert_fits(run: TerminalRun, columns: int) -> None:
    assert run.lines, "nothing was drawn on the terminal"
    too_long = [line for line in run.lines if len(line) > columns]
    assert not too_long, f"lines longer than {columns} columns: {too_long}"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts(source_registry: RegistryServer) -> list[PushedArtifact]:
    """A few MiB in two artifacts, one with a repository name too long for a narrow terminal."""
    return [
        push_oci_image(source_registry.url, "progress/app", "1.0", layers=3, layer_size=2 * MiB, seed=91),
        push_oci_image(source_registry.url, LONG_REPO, "2.0", layers=1, layer_size=MiB, seed=92),
    ]


@dataclass
class Transfer:
    columns: int
    export: TerminalRun
    exported: dict[str, Any]
    imported_run: TerminalRun
    imported: dict[str, Any]


@pytest.fixture(scope="module", params=[80, 60], ids=["80cols", "60cols"])
def transfer(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    artifacts: list[PushedArtifact],
) -> Transfer:
    """An export and an import of ``artifacts``, each run on a terminal ``columns`` wide."""
    columns: int = request.param
    home = tmp_path_factory.mktemp(f"progress{columns}")
    env = env_for(home)
    archive = home / "batch.tar"
    refs = [a.reference for a in artifacts]
    export = on_terminal(
        env, "export", "--source-registry", source_registry.url, "-a", *refs, "--target", archive.as_uri(),
        columns=columns,
    )  # fmt: skip
    imported = on_terminal(
        env, "import", "--source", archive.as_uri(), "--target-registry", target_registry.url,
        "--options", "OverwriteTags", columns=columns,
    )  # fmt: skip
    return Transfer(columns, export, json.loads(export.stdout), imported, json.loads(imported.stdout))


# ------------------------------------------------------------------------------------------ data plane


def test_progress_bar_is_one_line_that_fits_the_terminal_with_the_total_shown(transfer: Transfer) -> None:
    content_total = sum(a["contentSize"] for a in transfer.exported["artifactDetails"])
    for run, total in ((transfer.export, content_total), (transfer.imported_run, transfer.imported["size"])):
        assert_fits(run, transfer.columns)
        bars = bar_lines(run)
        assert bars, run.text
        # Every frame is whole on its one line: bar, amount with its total, rate and ETA together.
        for line in bars:
            assert re.search(r"\d+(\.\d)?/\d+(\.\d)? (B|KiB|MiB|GiB)\b", line), line
            assert "ETA " in line, line
        # The final frame: all of it done, and the total is the transfer's.
        whole = display.size_pair(total, total)
        assert whole in bars[-1], (whole, bars[-1])


def test_progress_uses_iec_units_throughout(transfer: Transfer) -> None:
    for run in (transfer.export, transfer.imported_run):
        assert not DECIMAL_UNITS.search(run.text), run.text
        assert re.search(r"\d+\.\d (KiB|MiB|GiB)/s", bar_lines(run)[-1]), bar_lines(run)[-1]
        assert re.search(r"\d+\.\d/\d+\.\d MiB", bar_lines(run)[-1]), bar_lines(run)[-1]


def test_progress_shows_an_eta(transfer: Transfer) -> None:
    for run in (transfer.export, transfer.imported_run):
        first, last = bar_lines(run)[0], bar_lines(run)[-1]
        assert re.search(r"ETA (\d+:\d\d:\d\d|-:--:--)$", first), first
        assert last.endswith("ETA 0:00:00"), last


def _assert_one_line_per_artifact(run: TerminalRun, details: dict[str, tuple[str, int]], columns: int) -> None:
    lines = done_lines(run)
    assert len(lines) == len(details), run.text
    for reference, (digest, size) in details.items():
        mine = [line for line in lines if line.endswith(f"  {display.size(size)}") and _names(line, reference)]
        assert len(mine) == 1, (reference, lines)
        if len(f"✓ {reference}  {display.short_digest(digest)}  {display.size(size)}") <= columns:
            assert display.short_digest(digest) in mine[0], mine[0]
    # Printed above the bar as each artifact finishes: the last thing drawn is the bar's final frame.
    assert BAR.search(run.lines[-1]), run.lines[-1]


def _names(line: str, reference: str) -> bool:
    """The line names ``reference`` whole, or cut in its middle (head…tail)."""
    shown = line[2:].split("  ")[0]
    if "…" not in shown:
        return shown == reference
    head, tail = shown.split("…")
    return reference.startswith(head) and reference.endswith(tail) and len(head) >= 4


def test_export_prints_a_line_per_artifact_as_it_completes(transfer: Transfer) -> None:
    details = {a["reference"]: (a["digest"], a["contentSize"]) for a in transfer.exported["artifactDetails"]}
    assert set(details) == {"progress/app:1.0", f"{LONG_REPO}:2.0"}
    assert details["progress/app:1.0"][1] > 6 * MiB
    _assert_one_line_per_artifact(transfer.export, details, transfer.columns)


def test_import_prints_a_line_per_artifact_as_it_completes(transfer: Transfer) -> None:
    details = {a["reference"]: (a["digest"], a["contentSize"]) for a in transfer.exported["artifactDetails"]}
    assert sorted(transfer.imported["importedArtifacts"]) == sorted(details)
    _assert_one_line_per_artifact(transfer.imported_run, details, transfer.columns)


def test_no_progress_when_airlock_no_progress_is_1(
    tmp_path: Path, source_registry: RegistryServer, artifacts: list[PushedArtifact]
) -> None:
    env = env_for(tmp_path, AIRLOCK_NO_PROGRESS="1")
    target = tmp_path / "quiet.tar"
    run = on_terminal(env, "export", "--source-registry", source_registry.url, "-a", "progress/app:1.0",
                      "--target", target.as_uri())  # fmt: skip
    assert run.lines == [], run.text
    assert json.loads(run.stdout)["artifacts"] == ["progress/app:1.0"]


# ------------------------------------------------------------------------------------------ pipeline runs


def _slow(seconds: float) -> Any:
    def transform(body: bytes) -> bytes:
        time.sleep(seconds)  # the registry is slow to send this blob: the run stalls part way
        return body

    return transform


@pytest.fixture(scope="module")
def slow_source(source_registry: RegistryServer) -> Iterator[tuple[FaultProxy, PushedArtifact]]:
    """The source registry behind a proxy that holds one layer back for 3 s. The held layer is the
    one an export writes last (layers go largest first), so a run of this image stalls part way,
    long enough for several polls to see it Running at a percentage between 0 and 100."""
    image = push_oci_image(source_registry.url, "progress/slow", "1.0", layers=3, layer_size=MiB, seed=93)
    _config, *layers = image.blobs
    held, _size = sorted(layers, key=lambda blob: -blob[1])[-1]
    with FaultProxy(source_registry.url) as proxy:
        proxy.add(Fault("GET", held.split(":", 1)[1], times=1000, transform=_slow(3.0)))
        yield proxy, image


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`airlock serve` on a free port; the environment of a client that talks to it (AIRLOCK_ENDPOINT)."""
    home = tmp_path_factory.mktemp("progress-served") / "home"
    served = AirlockServer(home, trigger_interval=3600).start()
    try:
        token = (home / "api-token").read_text().strip()
        yield env_for(home.parent / "client-home", AIRLOCK_ENDPOINT=served.url, AIRLOCK_TOKEN=token)
    finally:
        served.stop()
    assert "Traceback" not in (home.parent / f"serve-{served.port}.log").read_text()


def plain(env: dict[str, str], *args: str | Path) -> Any:
    """A set-up command without a terminal; its JSON output."""
    done = subprocess.run(
        [str(AIRLOCK), *map(str, args)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"airlock {' '.join(map(str, args))}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def run_with_progress(env: dict[str, str], container: Path, registry_url: str, image: PushedArtifact) -> TerminalRun:
    """An export pipeline on ``registry_url`` and one run of it on an 80-column terminal."""
    container.mkdir(parents=True)
    plain(env, "acr", "create", "-g", "rg", "-n", "slowreg", "--login-server", registry_url)
    plain(env, "acr", "export-pipeline", "create", "-g", "rg", "-r", "slowreg", "-n", "slowexport",
          "-c", container.as_uri())  # fmt: skip
    return on_terminal(
        env, "acr", "pipeline-run", "create", "-g", "rg", "-r", "slowreg", "-p", "slowexport", "-n", "slowrun",
        "-t", "export", "-b", "slow.tar", "-a", image.reference,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run_screens(
    tmp_path_factory: pytest.TempPathFactory,
    slow_source: tuple[FaultProxy, PushedArtifact],
    server: dict[str, str],
) -> dict[str, TerminalRun]:
    """The same pipeline run in local mode and through `airlock serve`, side by side."""
    proxy, image = slow_source
    base = tmp_path_factory.mktemp("runs")
    local = env_for(base / "home")
    with ThreadPoolExecutor(max_workers=2) as pool:
        mine = pool.submit(run_with_progress, local, base / "local", proxy.url, image)
        served = pool.submit(run_with_progress, server, base / "served", proxy.url, image)
        return {"local": mine.result(), "served": served.result()}


def _assert_run_progress(run: TerminalRun) -> None:
    doc = json.loads(run.stdout)
    assert doc["properties"]["provisioningState"] == "Succeeded", doc
    assert_fits(run, 80)
    bars = bar_lines(run)
    assert bars and all(line.startswith("run slowrun ") for line in bars), run.text
    # While the run waited for the held blob, the polls saw it Running part way.
    running = [int(m.group(1)) for line in bars if (m := re.search(r"\s(\d+)%\s+Running\s", line))]
    assert [pct for pct in running if 0 < pct < 100], bars
    # Part way, the ETA is estimated from the run's pace so far.
    assert any(re.search(r"Running\s+ETA \d+:\d\d:\d\d$", line) for line in bars), bars
    assert re.search(r"\s100%\s+Succeeded\s+ETA 0:00:00$", bars[-1]), bars[-1]


def test_pipeline_run_create_shows_the_runs_progress_in_local_mode(run_screens: dict[str, TerminalRun]) -> None:
    _assert_run_progress(run_screens["local"])


def test_pipeline_run_create_shows_the_runs_progress_through_airlock_serve(
    run_screens: dict[str, TerminalRun],
) -> None:
    _assert_run_progress(run_screens["served"])
