"""``airlock acr pipeline-run create|show|list|delete|clean``: the acrtransfer run commands of az.

``-f`` sets ``forceUpdateTag``; ``create`` waits for the run (drawing its progress on a terminal)
and fails (exit 1) when the run failed, after printing it. An identical request is ARM's no-op: the
stored run is printed, with a note saying so.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from airlock.cli.arm import TERMINAL_STATES, ArmClient, registry_path, resource_group
from airlock.cli.common import GroupOpt, OutputOpt, QueryOpt, RegistryOpt, Row, dig, emit, hint, text
from airlock.cli.output import check_output
from airlock.cli.pipelines import KINDS, get_pipeline
from airlock.cli.progress import wait_for_run
from airlock.errors import AirlockError, UsageError

run_app = typer.Typer(
    rich_markup_mode=None,
    help="Pipeline runs: one export (artifacts → a blob) or one import (a blob → the registry).",
    no_args_is_help=True,
)


def _run_path(rg: str, registry: str, name: str = "") -> str:
    return f"{registry_path(rg, registry)}/pipelineRuns" + (f"/{name}" if name else "")


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _run_columns(item: Any) -> Row:
    props = item.get("properties") or {}
    response = props.get("response") or {}
    pipeline_id = text(dig(props, "request", "pipelineResourceId"))
    start, finish = _when(response.get("startTime")), _when(response.get("finishTime"))
    duration = str(timedelta(seconds=int((finish - start).total_seconds()))) if start and finish else ""
    is_import = "/importpipelines/" in pipeline_id.lower()
    return {
        "NAME": text(item.get("name")),
        "PIPELINE": pipeline_id.rsplit("/", 1)[-1],
        "START_TIME": start.strftime("%Y-%m-%dT%H:%M:%SZ") if start else "",
        "DURATION": duration,
        "SOURCE_TRIGGER": str("_" in text(item.get("name"))) if is_import else "",
        "STATUS": text(response.get("status")),
        "ERROR_MESSAGE": text(response.get("pipelineRunErrorMessage")),
    }


def _with_tag(artifact: str) -> str:
    # az appends ':latest' to a bare repository name.
    if "@" in artifact or ":" in artifact.rsplit("/", 1)[-1]:
        return artifact
    return artifact + ":latest"


RunNameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the pipeline run.")]


@run_app.command("create")
def run_create(
    registry: RegistryOpt,
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Name of the pipeline to run.")],
    name: RunNameOpt,
    pipeline_type: Annotated[
        str, typer.Option("--pipeline-type", "-t", help="Type of pipeline. Must be either import or export.")
    ],
    storage_blob: Annotated[
        str, typer.Option("--storage-blob", "-b", help="Name of the storage blob to be imported or exported.")
    ],
    resource_group_name: GroupOpt = None,
    artifacts: Annotated[
        list[str] | None,
        typer.Option(
            "--artifacts",
            "-a",
            help="Space-separated list of container artifacts (export only, at most 50). Artifacts must be either "
            "of the form repository:tag or repository@digest such as hello-world:latest or "
            "hello-world@sha256:90659bf80b44ce6be8234e6ff90a1ac34acbeb826903b02cfa0da11c82cbc042; a bare "
            "repository means repository:latest.",
        ),
    ] = None,
    force_redeploy: Annotated[
        bool,
        typer.Option(
            "--force-redeploy",
            "-f",
            help="Flag that forces ARM to redeploy resource even if no parameters have changed "
            "(re-runs a finished run of the same name).",
        ),
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the run has started, without waiting for its end.")
    ] = False,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Run a pipeline: export artifacts to a blob, or import a blob into the registry.

    Waits for the run and prints it; exits 1 if the run failed. Re-creating an identical run does
    nothing (use -f to run it again).

    Examples:

        airlock acr pipeline-run create -g myrg -r myregistry -p myexport \\
            -n exportrun1 -t export -b batch1.tar -a hello-world:latest team/app:1.4

        airlock acr pipeline-run create -g myrg -r myregistry -p myimport \\
            -n importrun1 -t import -b batch1.tar --force-redeploy
    """
    check_output(output, query)
    kind = pipeline_type.lower()
    if kind not in KINDS:
        raise UsageError(f"--pipeline-type/-t {pipeline_type!r}: must be either import or export")
    if kind == "export" and not artifacts:
        raise UsageError(
            "artifacts cannot be empty for export pipeline runs: give a space-separated list of artifacts to "
            "export with -a, e.g. -a hello-world:latest"
        )
    if kind == "import" and artifacts:
        raise UsageError("--artifacts/-a is for export runs only; an import run imports everything in the blob")
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        found = get_pipeline(client, kind, rg, registry, pipeline)
        request: dict[str, Any] = {"pipelineResourceId": found["id"]}
        if kind == "export":
            request["target"] = {"type": "AzureStorageBlob", "name": storage_blob}
            request["artifacts"] = [_with_tag(a) for a in artifacts or []]
        else:
            request["source"] = {"type": "AzureStorageBlob", "name": storage_blob}
        properties: dict[str, Any] = {"request": request}
        if force_redeploy:
            properties["forceUpdateTag"] = str(time.time())
        path = _run_path(rg, registry, name)
        status, doc = client.request("PUT", path, {"properties": properties})
        # ARM: an identical PUT is a no-op (200 with the stored run). Say so, or the user takes an old
        # result for a new one (e.g. a failure whose cause they have just fixed).
        stored = status == 200 and dig(doc, "properties", "provisioningState") in TERMINAL_STATES
        if stored:
            hint(_stored_note(name, doc))
        if no_wait or stored:
            if client.local and not stored:
                hint(
                    "note: without AIRLOCK_ENDPOINT the run executes in this process, so this command still "
                    "ends with it (run `airlock serve` and set AIRLOCK_ENDPOINT for background runs)"
                )
        else:
            doc = wait_for_run(client, path)  # with a bar on a terminal
    emit(doc, output, query, _run_columns)
    if (not no_wait or stored) and dig(doc, "properties", "provisioningState") in ("Failed", "Canceled"):
        message = text(dig(doc, "properties", "response", "pipelineRunErrorMessage")) or "no error message"
        if stored:
            raise AirlockError(
                f"pipeline run {name} failed earlier and was not run again (an identical request is a no-op); "
                f"re-run it with --force-redeploy/-f. Its stored error: {message}"
            )
        raise AirlockError(f"pipeline run {name} failed: {message}")


def _stored_note(name: str, doc: dict[str, Any]) -> str:
    response = dig(doc, "properties", "response") or {}
    state = text(dig(doc, "properties", "provisioningState"))
    when = text(response.get("finishTime")) or text(response.get("startTime")) or "earlier"
    return (
        f"note: pipeline run {name} already exists with this request, so it was not run again; this is its "
        f"stored result ({state}, finished {when}). Re-run it with --force-redeploy/-f."
    )


@run_app.command("show")
def run_show(
    registry: RegistryOpt,
    name: RunNameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Show a pipeline run: its state, progress, and (export) catalogDigest or (import) importedArtifacts."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        doc = client.get(_run_path(rg, registry, name))
    emit(doc, output, query, _run_columns)


@run_app.command("list")
def run_list(
    registry: RegistryOpt,
    resource_group_name: GroupOpt = None,
    top: Annotated[
        int | None, typer.Option("--top", min=1, help="List only the last n pipeline-runs. Must be an integer.")
    ] = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """List the pipeline runs of a registry (oldest first)."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        items = client.list(_run_path(rg, registry))
    if top is not None:
        items = items[-top:]
    emit(items, output, query, _run_columns)


@run_app.command("delete")
def run_delete(
    registry: RegistryOpt,
    name: RunNameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Delete a pipeline run (the record only: blobs and imported artifacts stay)."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        path = _run_path(rg, registry, name)
        client.get(path)
        client.delete(path)


@run_app.command("clean")
def run_clean(
    registry: RegistryOpt,
    resource_group_name: GroupOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List the failed pipeline-runs that would have been deleted, but do not delete any.",
        ),
    ] = False,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Delete every failed pipeline run of a registry; prints the runs deleted (or, with --dry-run, to delete).

    Example:

        airlock acr pipeline-run clean -g myrg -r myregistry --dry-run -o table
    """
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        failed = [
            run
            for run in client.list(_run_path(rg, registry))
            if dig(run, "properties", "provisioningState") == "Failed"
        ]
        if not dry_run:
            for i, run in enumerate(failed, 1):
                client.delete(_run_path(rg, registry, text(run.get("name"))))
                if i % 100 == 0:
                    hint(f"deleted {i} of {len(failed)} failed pipeline runs")
    if not dry_run:
        hint(f"deleted {len(failed)} failed pipeline run(s) of registry {registry}")
    emit(failed, output, query, _run_columns)
