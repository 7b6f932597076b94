"""``airlock serve``, ``airlock configure`` and ``airlock rest``: the API server, CLI defaults, raw requests."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from airlock.cli.arm import CONFIG_KEYS, config_path, load_defaults, save_defaults, subscription
from airlock.cli.common import hint
from airlock.cli.kernel import Arm
from airlock.errors import UsageError
from airlock.observability import logs


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM) to serve HTTPS.")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            min=1,
            max=64,
            envvar="AIRLOCK_CONCURRENCY",
            help="Pipeline runs this server executes at once (more wait, queued).",
        ),
    ] = 2,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Serve the API only; `airlock worker` processes execute the runs (PostgreSQL only).",
        ),
    ] = False,
) -> None:
    """Serve the ARM REST API (pipelines, runs, registries, identities, key vaults) and run the import
    source trigger every AIRLOCK_TRIGGER_INTERVAL seconds (default 10).

    Point the CLI at it with AIRLOCK_ENDPOINT=http://HOST:PORT; callers authenticate with the bearer
    token in AIRLOCK_HOME/api-token (the CLI reads that file, or AIRLOCK_TOKEN). GET /metrics answers
    Prometheus without a token (counts only); AIRLOCK_LOG_FORMAT=json logs one JSON object per line.

    Example:

        airlock serve --port 8080 &
        AIRLOCK_ENDPOINT=http://127.0.0.1:8080 airlock acr list -g myrg
    """
    import uvicorn

    from airlock.api.app import create_app
    from airlock.home import home_dir
    from airlock.wiring import Adapters, api_token, open_control_plane

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    from airlock.pipelines.trigger import trigger_interval

    interval = trigger_interval()
    home = home_dir()
    # Opened before the server starts: a database that is not current, or a vault key that is not
    # the deployment's, is one error line and an exit code, not a failed startup in uvicorn's log.
    plane = open_control_plane(adapters=Adapters(workers=concurrency, worker=not no_worker))
    # An API-only replica leaves the source trigger to the processes that execute runs.
    app = create_app(lambda: plane, token=api_token(home), trigger_interval=None if no_worker else interval)
    scheme = "https" if ssl_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    # With AIRLOCK_LOG_FORMAT=json every line on stderr is a JSON object: the notes become log lines.
    json_logs = logs.log_format() == "json"
    note = logging.getLogger("airlock.serve").info if json_logs else hint
    note(f"airlock API on {scheme}://{shown}:{port} (bearer token in {home / 'api-token'})")
    note(f"use it from the CLI with: export AIRLOCK_ENDPOINT={scheme}://{shown}:{port}")
    if scheme == "http" and not _loopback(host):
        warning = "serving plain HTTP beyond loopback sends the token in clear; use --ssl-certfile/--ssl-keyfile"
        if json_logs:
            logging.getLogger("airlock.serve").warning(warning)
        else:
            hint("warning: " + warning)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's own lines go through airlock's handler: redacted, text or JSON alike
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure(
    defaults: Annotated[
        list[str] | None,
        typer.Option(
            "--defaults",
            "-d",
            help="Space-separated name=value pairs: group=<resource group> (used when -g is left out), "
            "subscription=<id>. An empty value (group=) removes the default.",
        ),
    ] = None,
    list_defaults: Annotated[bool, typer.Option("--list-defaults", "-l", help="Print the stored defaults.")] = False,
) -> Any:
    """Store defaults for later commands in AIRLOCK_HOME/config.json (as `az configure --defaults`).

    Example:

        airlock configure --defaults group=myrg
    """
    if not defaults and not list_defaults:
        raise UsageError("give --defaults name=value ... or --list-defaults")
    updates: dict[str, str] = {}
    for pair in defaults or []:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in CONFIG_KEYS:
            raise UsageError(f"--defaults {pair!r}: expected one of {', '.join(k + '=<value>' for k in CONFIG_KEYS)}")
        updates[key.strip()] = value.strip()
    if updates:
        save_defaults(updates)
    if not list_defaults:
        return None
    return [{"name": k, "source": str(config_path()), "value": v} for k, v in load_defaults().items()]


def rest(
    url: Annotated[
        str,
        typer.Option(
            "--url",
            "--uri",
            "-u",
            help="ARM path, e.g. /subscriptions/{subscriptionId}/resourceGroups/myrg/providers/"
            "Microsoft.ContainerRegistry/registries/myregistry/pipelineRuns ({subscriptionId} is filled in).",
        ),
    ],
    arm: Arm,
    method: Annotated[
        str, typer.Option("--method", "-m", help="HTTP method: get, put, delete (and post, patch).")
    ] = "get",
    body: Annotated[
        str | None, typer.Option("--body", "-b", help="Request body: JSON text, or @file to read it from a file.")
    ] = None,
) -> Any:
    """Send one request to the ARM API and print the JSON answer (as `az rest`); ?api-version= is added.

    Example:

        airlock rest --method get \\
          --url /subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/vaults
    """
    verb = method.upper()
    if verb not in ("GET", "PUT", "DELETE", "POST", "PATCH"):
        raise UsageError(f"--method {method!r}: use get, put, delete, post or patch")
    payload: Any = None
    if body is not None:
        payload = _body(body)
    path = url.replace("{subscriptionId}", subscription())
    parts = urlsplit(path)
    if parts.scheme:  # a full URL: keep what follows the host (management.azure.com or the endpoint)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/"):
        raise UsageError(f"--url {url!r}: expected an ARM path starting with /subscriptions/...")
    return arm.client.request(verb, path, payload)[1]


def _body(text: str) -> Any:
    source = "--body"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8") if source != "-" else sys.stdin.read()
        except OSError as exc:
            raise UsageError(f"--body @{source}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    from airlock.api.limits import parse_json

    return parse_json(text.encode("utf-8", "surrogatepass"), what=source)
