"""``-o table`` at 80 columns, and ``--query`` errors, through the real console script.

Local mode (the API in the CLI process) with file:// containers and the real test registries. A
table may wrap long values within their column; :func:`parse_table` reads it back by the column
spans of the dashed rule, joining a cell's continuation lines, so the tests can check every value.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock.cli import display
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set

AIRLOCK = Path(sys.executable).parent / "airlock"
RG = "tablerg"
RULE = re.compile(r"^-+(  -+)*$")
BOX = re.compile(r"[│┃━─┏┗┡└┌╇╈]")


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def where(self) -> str:
        return f"airlock {' '.join(self.args)}\n--- stdout:\n{self.stdout}\n--- stderr:\n{self.stderr}"


@dataclass
class Cli:
    home: Path
    columns: int = 80

    def __call__(self, *args: str | Path) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "AZURE_"))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"airlock-test-pycache-{os.getuid()}")
        env.update(AIRLOCK_HOME=str(self.home), HOME=str(self.home), NO_COLOR="1", COLUMNS=str(self.columns))
        done = subprocess.run(
            [str(AIRLOCK), *map(str, args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        return Run(tuple(map(str, args)), done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str | Path) -> Run:
        run = self(*args)
        assert run.returncode == 0, run.where()
        assert "Traceback" not in run.stdout + run.stderr, run.where()
        return run


def parse_table(text: str, width: int = 80, key: int = 0) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a plain table, a wrapped cell's lines joined; checks every line fits
    ``width`` and the style: headers, then a dashed rule with two spaces between columns. A row
    starts on each line where column ``key`` (one that does not wrap) has a value."""
    lines = text.splitlines()
    assert len(lines) >= 2 and RULE.match(lines[1]), text
    assert not BOX.search(text), f"not the plain table style:\n{text}"
    assert all(len(line) <= width for line in lines), f"a line is longer than {width}:\n{text}"
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]

    def cut(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    headers = cut(lines[0])
    rows: list[list[str]] = []
    for line in lines[2:]:
        cells = cut(line)
        if cells[key] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [(old + new) for old, new in zip(rows[-1], cells, strict=True)]
    return headers, rows


def column_text(text: str) -> list[str]:
    """Each column's cells below the rule, read top to bottom and joined (for tables whose every
    column wraps, so rows cannot be told apart by the text)."""
    lines = text.splitlines()
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    return ["".join(line[a:b].strip() for line in lines[2:]) for a, b in spans]


def squeezed(value: str) -> str:
    """A value without its spaces: a wrapped cell's lines are joined without the spaces it broke at."""
    return value.replace(" ", "")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    return push_sample_set(source_registry.url)


@dataclass
class Setup:
    cli: Cli
    container: Path


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    samples: list[PushedArtifact],
) -> Setup:
    """Registries, an export and an import pipeline on a container with a long path, an export run, an
    import run and a failed import run (its error message is long)."""
    base = tmp_path_factory.mktemp("tables")
    cli = Cli(base / "home")
    container = base / "a container path long enough" / "that it cannot fit in eighty columns" / "transfer"
    container.mkdir(parents=True)
    uri = container.as_uri()
    cli.ok("acr", "create", "-g", RG, "-n", "srcreg", "--login-server", source_registry.url)
    cli.ok("acr", "create", "-g", RG, "-n", "dstreg", "--login-server", target_registry.url)
    cli.ok("acr", "export-pipeline", "create", "-g", RG, "-r", "srcreg", "-n", "tableexport", "-c", uri)
    cli.ok("acr", "import-pipeline", "create", "-g", RG, "-r", "dstreg", "-n", "tableimport", "-c", uri, "-e", "False")
    refs = [a.reference for a in samples]
    cli.ok("acr", "pipeline-run", "create", "-g", RG, "-r", "srcreg", "-p", "tableexport", "-n", "exportrun",
           "-t", "export", "-b", "batch.tar", "-a", *refs)  # fmt: skip
    cli.ok("acr", "pipeline-run", "create", "-g", RG, "-r", "dstreg", "-p", "tableimport", "-n", "importrun",
           "-t", "import", "-b", "batch.tar")  # fmt: skip
    failed = cli("acr", "pipeline-run", "create", "-g", RG, "-r", "dstreg", "-p", "tableimport", "-n", "failedrun",
                 "-t", "import", "-b", "no-such-blob.tar")  # fmt: skip
    assert failed.returncode == 1, failed.where()
    return Setup(cli, container)


# ------------------------------------------------------------------------------------------ control plane


def test_pipeline_list_table_fits_80_columns_and_wraps_the_long_container_uri(setup: Setup) -> None:
    run = setup.cli.ok("acr", "import-pipeline", "list", "-g", RG, "-r", "dstreg", "-o", "table")
    assert len(setup.container.as_uri()) > 80
    headers, rows = parse_table(run.stdout)
    assert headers == ["NAME", "PROVISIONING_STATE", "STORAGE_ACCOUNT", "SOURCE_TRIGGER"]
    assert len(rows) == 1
    name, state, storage, trigger = rows[0]
    assert (name, state, trigger) == ("tableimport", "Succeeded", "Disabled")
    assert squeezed(storage) == squeezed(setup.container.as_uri())
    assert len(run.stdout.splitlines()) > 3  # the URI took more than one line


def test_run_list_table_fits_80_columns_leaving_out_the_least_telling_columns(setup: Setup) -> None:
    run = setup.cli.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "dstreg", "-o", "table")
    headers, rows = parse_table(run.stdout)
    assert headers == ["NAME", "PIPELINE", "DURATION", "STATUS", "ERROR_MESSAGE"], run.stdout
    by_name = {row[0]: row for row in rows}
    assert set(by_name) == {"importrun", "failedrun"}
    assert by_name["importrun"][1:4] == ["tableimport", by_name["importrun"][2], "Succeeded"]
    assert re.fullmatch(r"\d+:\d\d:\d\d", by_name["importrun"][2])
    assert by_name["failedrun"][3] == "Failed"
    shown = json.loads(setup.cli.ok("acr", "pipeline-run", "show", "-g", RG, "-r", "dstreg", "-n", "failedrun").stdout)
    message = shown["properties"]["response"]["pipelineRunErrorMessage"]
    assert len(message) > 40  # long: it wraps within its column, whole
    assert squeezed(by_name["failedrun"][4]) == squeezed(message)

    # Export runs have no trigger: that empty column goes first, and the rest fits.
    run = setup.cli.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "srcreg", "-o", "table")
    headers, rows = parse_table(run.stdout)
    assert headers == ["NAME", "PIPELINE", "START_TIME", "DURATION", "STATUS", "ERROR_MESSAGE"], run.stdout
    assert rows[0][0] == "exportrun" and rows[0][4] == "Succeeded"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0][2])


def test_wide_terminal_shows_every_run_column(setup: Setup) -> None:
    wide = Cli(setup.cli.home, columns=250)
    headers, _rows = parse_table(
        wide.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "dstreg", "-o", "table").stdout, 250
    )
    assert headers == ["NAME", "PIPELINE", "START_TIME", "DURATION", "SOURCE_TRIGGER", "STATUS", "ERROR_MESSAGE"]


def test_table_style_is_the_same_with_query(setup: Setup) -> None:
    query = "[].{name: name, status: properties.response.status, error: properties.response.pipelineRunErrorMessage}"
    run = setup.cli.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "dstreg", "-o", "table", "--query", query)
    headers, rows = parse_table(run.stdout)
    assert headers == ["Name", "Status", "Error"]
    assert {row[0]: row[1] for row in rows} == {"importrun": "Succeeded", "failedrun": "Failed"}
    scalar = setup.cli.ok("acr", "import-pipeline", "list", "-g", RG, "-r", "dstreg", "-o", "table",
                          "--query", "[].name")  # fmt: skip
    assert parse_table(scalar.stdout) == (["Result"], [["tableimport"]])


# ------------------------------------------------------------------------------------------ data plane


def test_export_table_lists_the_artifacts_at_80_columns(
    tmp_path: Path, setup: Setup, source_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    target = tmp_path / "batch.tar"
    refs = [a.reference for a in samples]
    run = setup.cli.ok("export", "--source-registry", source_registry.url, "-a", *refs, "--target", target.as_uri(),
                       "-o", "table")  # fmt: skip
    headers, rows = parse_table(run.stdout, key=1)  # a shortened digest never wraps
    assert headers == ["ARTIFACT", "DIGEST", "TYPE", "SIZE"]
    assert [row[0] for row in rows] == refs
    for row, artifact in zip(rows, samples, strict=True):
        assert row[1] == display.short_digest(artifact.digest)
        assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB)", row[3]), row
    assert rows[refs.index("samples/app:1.0")][2] == "OCI image"
    # The table shortens digests: the catalogDigest, which an import is given, is on stderr in full.
    digest = content.catalog_digest_of(target)
    assert run.stderr.strip() == f"catalogDigest {digest}"

    queried = setup.cli.ok(
        "inspect", target.as_uri(), "-o", "table", "--query", "artifacts[].{ref: reference, digest: digest}"
    )
    headers, _rows = parse_table(queried.stdout)
    assert headers == ["Ref", "Digest"]
    assert column_text(queried.stdout) == ["".join(refs), "".join(a.digest for a in samples)]


# Regression: the import's table had no digest column, unlike export's and inspect's.
def test_import_table_lists_each_artifact_its_digest_and_its_result(
    tmp_path: Path,
    setup: Setup,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    samples: list[PushedArtifact],
) -> None:
    archive = tmp_path / "one.tar"
    setup.cli.ok(
        "export", "--source-registry", source_registry.url, "-a", "samples/app:1.0", "--target", archive.as_uri()
    )
    run = setup.cli.ok("import", "--source", archive.as_uri(), "--target-registry", target_registry.url,
                       "-z", "OverwriteTags", "-o", "table")  # fmt: skip
    (app,) = [a for a in samples if a.reference == "samples/app:1.0"]
    short = app.digest[: len("sha256:") + 12] + "…"
    assert parse_table(run.stdout) == (["ARTIFACT", "DIGEST", "RESULT"], [["samples/app:1.0", short, "imported"]])


# ------------------------------------------------------------------------------------------ --query errors


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("foo[?", "incomplete expression: expected more at column 5"),
        ("foo bar", "unexpected 'bar' at column 4"),
        ("foo.", "expected a quoted name, a name, '[' or '{' at column 4, found the end"),
        ("a ~ b", "unknown token ~ at column 2"),
    ],
)
def test_bad_query_prints_the_jmespath_error_with_its_position(tmp_path: Path, query: str, problem: str) -> None:
    # Before any work: the blob does not even exist.
    for args in (
        ("inspect", (tmp_path / "missing.tar").as_uri()),
        ("acr", "pipeline-run", "list", "-g", RG, "-r", "noreg"),
    ):
        run = Cli(tmp_path / "home")(*args, "--query", query)
        assert run.returncode == 2, run.where()
        assert run.stdout == "", run.where()
        assert run.stderr.splitlines() == [f"error: invalid --query {query!r}: {problem}"], run.where()
