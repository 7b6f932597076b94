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

from airlock.cli.arm import TERMINAL_STATES, registry_path
from airlock.cli.common import RegistryOpt, Row, dig, hint, text
from airlock.cli.kernel import Arm, Reply, command
from airlock.cli.pipelines import KINDS, get_pipeline
from airlock.cli.progress import wait_for_run
from airlock.cli.selection import RunSelectionOpt, run_selection
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


@command(run_app, "create", columns=_run_columns, group=True)
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
    arm: Arm,
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
    selection: RunSelectionOpt = None,
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
) -> Reply:
    """Run a pipeline: export artifacts to a blob, or import a blob into the registry.

    Waits for the run and prints it; exits 1 if the run failed. Re-creating an identical run does
    nothing (use -f to run it again).

    Examples:

        airlock acr pipeline-run create -g myrg -r myregistry -p myexport \\
            -n exportrun1 -t export -b batch1.tar -a hello-world:latest team/app:1.4

        airlock acr pipeline-run create -g myrg -r myregistry -p myimport \\
            -n importrun1 -t import -b batch1.tar --force-redeploy
    """
    kind = pipeline_type.lower()
    if kind not in KINDS:
        raise UsageError(f"--pipeline-type/-t {pipeline_type!r}: must be either import or export")
    if kind == "export" and not artifacts and not selection:
        raise UsageError(
            "artifacts cannot be empty for export pipeline runs: give a space-separated list of artifacts to "
            "export with -a, e.g. -a hello-world:latest"
        )
    if kind == "import" and (artifacts or selection):
        raise UsageError(
            "--artifacts/-a and --selection are for export runs only; an import run imports everything in the blob"
        )
    rg = arm.group
    found = get_pipeline(arm.client, kind, rg, registry, pipeline)
    request: dict[str, Any] = {"pipelineResourceId": found["id"]}
    if kind == "export":
        request["target"] = {"type": "AzureStorageBlob", "name": storage_blob}
        request["artifacts"] = [_with_tag(a) for a in artifacts or []]
        if selection:
            request["selection"] = run_selection(selection)  # airlock's extension of the request
    else:
        request["source"] = {"type": "AzureStorageBlob", "name": storage_blob}
    properties: dict[str, Any] = {"request": request}
    if force_redeploy:
        properties["forceUpdateTag"] = str(time.time())
    path = _run_path(rg, registry, name)
    status, doc = arm.client.request("PUT", path, {"properties": properties})
    # ARM: an identical PUT is a no-op (200 with the stored run). Say so, or the user takes an old
    # result for a new one (e.g. a failure whose cause they have just fixed).
    stored = status == 200 and dig(doc, "properties", "provisioningState") in TERMINAL_STATES
    if stored:
        hint(_stored_note(name, doc))
    if no_wait or stored:
        if arm.local and not stored:
            hint(
                "note: without AIRLOCK_ENDPOINT the run executes in this process, so this command still "
                "ends with it (run `airlock serve` and set AIRLOCK_ENDPOINT for background runs)"
            )
    else:
        doc = wait_for_run(arm.client, path)  # with a bar on a terminal
    return Reply(doc, _run_failure(name, doc, stored=stored, waited=not no_wait))


def _run_failure(name: str, doc: Any, *, stored: bool, waited: bool) -> AirlockError | None:
    """The error a finished, failed run makes of ``pipeline-run create`` (exit 1, after printing the run)."""
    if not (waited or stored) or dig(doc, "properties", "provisioningState") not in ("Failed", "Canceled"):
        return None
    message = text(dig(doc, "properties", "response", "pipelineRunErrorMessage")) or "no error message"
    if stored:
        return AirlockError(
            f"pipeline run {name} failed earlier and was not run again (an identical request is a no-op); "
            f"re-run it with --force-redeploy/-f. Its stored error: {message}"
        )
    return AirlockError(f"pipeline run {name} failed: {message}")


def _stored_note(name: str, doc: dict[str, Any]) -> str:
    response = dig(doc, "properties", "response") or {}
    state = text(dig(doc, "properties", "provisioningState"))
    when = text(response.get("finishTime")) or text(response.get("startTime")) or "earlier"
    return (
        f"note: pipeline run {name} already exists with this request, so it was not run again; this is its "
        f"stored result ({state}, finished {when}). Re-run it with --force-redeploy/-f."
    )


@command(run_app, "show", columns=_run_columns, group=True)
def run_show(registry: RegistryOpt, name: RunNameOpt, arm: Arm) -> Any:
    """Show a pipeline run: its state, progress, and (export) catalogDigest or (import) importedArtifacts."""
    return arm.client.get(_run_path(arm.group, registry, name))


@command(run_app, "list", columns=_run_columns, group=True)
def run_list(
    registry: RegistryOpt,
    arm: Arm,
    top: Annotated[
        int | None, typer.Option("--top", min=1, help="List only the last n pipeline-runs. Must be an integer.")
    ] = None,
) -> Any:
    """List the pipeline runs of a registry (oldest first)."""
    items = arm.client.list(_run_path(arm.group, registry))
    return items[-top:] if top is not None else items


@command(run_app, "delete", group=True)
def run_delete(registry: RegistryOpt, name: RunNameOpt, arm: Arm) -> None:
    """Delete a pipeline run (the record only: blobs and imported artifacts stay)."""
    path = _run_path(arm.group, registry, name)
    arm.client.get(path)
    arm.client.delete(path)


@command(run_app, "cancel", columns=_run_columns, group=True)
def run_cancel(
    registry: RegistryOpt,
    name: RunNameOpt,
    arm: Arm,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Do not wait for a running run to stop; print it as it is now.")
    ] = False,
) -> Any:
    """Cancel a queued or running pipeline run (an airlock extension; az has no such command).

    A queued run ends Canceled at once. A running one stops within about a second of moving
    bytes: an export leaves no blob, an import tags nothing it had not finished. Fails when the
    run has already ended.

    Example:

        airlock acr pipeline-run cancel -g myrg -r myregistry -n exportrun1
    """
    path = _run_path(arm.group, registry, name)
    doc = arm.client.post(path + "/cancel")
    if no_wait:
        return doc
    return arm.client.wait_for_run(path)


@command(run_app, "clean", columns=_run_columns, group=True)
def run_clean(
    registry: RegistryOpt,
    arm: Arm,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List the failed pipeline-runs that would have been deleted, but do not delete any.",
        ),
    ] = False,
) -> Any:
    """Delete every failed pipeline run of a registry; prints the runs deleted (or, with --dry-run, to delete).

    Example:

        airlock acr pipeline-run clean -g myrg -r myregistry --dry-run -o table
    """
    rg = arm.group
    runs = arm.client.list(_run_path(rg, registry))
    failed = [run for run in runs if dig(run, "properties", "provisioningState") == "Failed"]
    if not dry_run:
        for i, run in enumerate(failed, 1):
            arm.client.delete(_run_path(rg, registry, text(run.get("name"))))
            if i % 100 == 0:
                hint(f"deleted {i} of {len(failed)} failed pipeline runs")
        hint(f"deleted {len(failed)} failed pipeline run(s) of registry {registry}")
    return failed
