"""A small ARM REST client: what every control-plane command (acr, identity, keyvault, pipelines,
``rest``) talks through.

Two modes, same answers:

- ``AIRLOCK_ENDPOINT`` set (e.g. ``http://127.0.0.1:8080``, an ``airlock serve``): HTTP with
  ``Authorization: Bearer`` (``AIRLOCK_TOKEN``, else the file ``AIRLOCK_HOME/api-token``).
- otherwise, local mode: the same FastAPI app runs inside this process on ``AIRLOCK_HOME`` (no
  port is opened). Pipeline runs then execute in this process, so the command returns when they end.

Every request carries ``?api-version=2025-06-01-preview``. An ARM error envelope becomes the airlock
error it names in ``additionalInfo`` (``{"type": "AirlockError", "info": {"class": "BlobExists"}}``),
with the server's message, so a command fails with the same class and exit code with or without the
REST hop; an envelope that names none (another server, a proxy) is mapped by status (404 →
ResourceNotFound, 409 → ResourceConflict, 400 → UsageError, 401/403 → AccessDenied).

Defaults (``airlock configure --defaults group=RG``) live in ``AIRLOCK_HOME/config.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from airlock.errors import AccessDenied, AirlockError, ResourceConflict, ResourceNotFound, UsageError, error_class
from airlock.pipelines import arm

# The ARM constants live in airlock.pipelines.arm, shared with the API.
API_VERSION = arm.DEFAULT_API_VERSION
TERMINAL_STATES = arm.TERMINAL_STATES
REGISTRY_PROVIDER = arm.REGISTRY_TYPE
IDENTITY_PROVIDER = arm.IDENTITY_TYPE
VAULT_PROVIDER = arm.VAULT_TYPE
POLL_INTERVAL = 0.5
CONFIG_KEYS = ("group", "subscription")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- config


def _home() -> Path:
    # airlock.wiring pulls in the whole control plane (SQLAlchemy, ...): not for this, so the
    # data-plane commands and HTTP mode start fast.
    from airlock.home import home_dir

    return home_dir()


def config_path() -> Path:
    return _home() / "config.json"


def load_defaults() -> dict[str, str]:
    """The stored defaults (``group``, ``subscription``); {} when none are set."""
    try:
        data = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise UsageError(f"{config_path()} is not valid JSON; fix or delete it") from None
    defaults = data.get("defaults") if isinstance(data, dict) else None
    return {k: str(v) for k, v in (defaults or {}).items() if isinstance(k, str) and v not in (None, "")}


def save_defaults(updates: dict[str, str]) -> dict[str, str]:
    """Merge ``updates`` into the stored defaults (an empty value removes the key); returns the result."""
    defaults = load_defaults()
    for key, value in updates.items():
        if value:
            defaults[key] = value
        else:
            defaults.pop(key, None)
    path = config_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"defaults": defaults}, indent=2) + "\n")
    tmp.replace(path)
    return defaults


def resource_group(given: str | None) -> str:
    """``-g`` as given, else the configured default group; a UsageError saying how otherwise."""
    if given:
        return given
    default = load_defaults().get("group")
    if default:
        return default
    raise UsageError(
        "--resource-group/-g is required (or set a default once: airlock configure --defaults group=<name>)"
    )


_subscription_arg: str | None = None


def set_subscription(value: str | None) -> None:
    """The global ``--subscription`` of this command line (None: not given)."""
    global _subscription_arg
    _subscription_arg = value


def subscription() -> str:
    """``--subscription``, else ``AIRLOCK_SUBSCRIPTION``, else the configured default, else the all-zero
    subscription."""
    from airlock.wiring import DEFAULT_SUBSCRIPTION

    return (
        _subscription_arg
        or os.environ.get("AIRLOCK_SUBSCRIPTION")
        or load_defaults().get("subscription")
        or DEFAULT_SUBSCRIPTION
    )


def group_path(rg: str) -> str:
    return f"/subscriptions/{subscription()}/resourceGroups/{rg}"


def registry_path(rg: str, registry: str) -> str:
    return f"{group_path(rg)}/providers/{REGISTRY_PROVIDER}/{registry}"


# ---------------------------------------------------------------------------------------- client


class _Transport(Protocol):
    def request(
        self, method: str, url: str, *, params: dict[str, str], content: bytes | None, headers: dict[str, str]
    ) -> Any: ...


class ArmClient:
    """ARM requests against ``AIRLOCK_ENDPOINT`` or, without it, an in-process app. Use as a context
    manager: leaving it stops the in-process app (waiting for runs it started)."""

    def __init__(self, *, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = (endpoint if endpoint is not None else os.environ.get("AIRLOCK_ENDPOINT", "")).rstrip("/")
        self._token = token
        self._stack = contextlib.ExitStack()
        self._transport: _Transport | None = None
        self._headers: dict[str, str] = {}

    @property
    def local(self) -> bool:
        return not self.endpoint

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._transport = None

    def _open(self) -> _Transport:
        if self._transport is not None:
            return self._transport
        logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request at INFO
        if self.local:
            self._transport = self._open_local()
        else:
            self._transport = self._open_remote()
        return self._transport

    def _open_remote(self) -> _Transport:
        import httpx

        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"invalid AIRLOCK_ENDPOINT {self.endpoint!r}: expected http(s)://host:port")
        token = self._token or os.environ.get("AIRLOCK_TOKEN")
        if not token:
            path = _home() / "api-token"
            try:
                token = path.read_text().strip()
            except FileNotFoundError:
                raise UsageError(
                    f"no API token for {self.endpoint}: set AIRLOCK_TOKEN (the server's AIRLOCK_HOME/api-token) "
                    f"or copy that file to {path}"
                ) from None
        self._headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=self.endpoint, timeout=httpx.Timeout(60.0, connect=10.0))
        self._stack.enter_context(client)
        return client

    def _open_local(self) -> _Transport:
        with warnings.catch_warnings():
            # starlette's TestClient warns that it would prefer httpx2; httpx is what we have.
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        from airlock.api.app import create_app
        from airlock.home import home_dir
        from airlock.wiring import Adapters, api_token, database_url, open_control_plane

        if os.environ.get("AIRLOCK_DEBUG") != "1":
            # The in-process server shares our stderr: keep its error logs to one line, as ours are.
            for name in ("airlock.api", "airlock.pipelines"):
                if _no_traceback not in logging.getLogger(name).filters:
                    logging.getLogger(name).addFilter(_no_traceback)
        home = home_dir()
        token = api_token(home)
        # On PostgreSQL a local command queues its runs for the deployment's workers instead of
        # becoming one; it holds the database's credentials, so its own token is an Owner here.
        shared = database_url(home).startswith("postgres")
        adapters = Adapters(worker=not shared)
        app = create_app(
            lambda: open_control_plane(home, adapters),
            token=token,
            trigger_interval=None,
            trust_token=True,
            dashboard=False,
        )
        client = TestClient(
            app, base_url="http://airlock.local", raise_server_exceptions=os.environ.get("AIRLOCK_DEBUG") == "1"
        )
        self._stack.enter_context(client)
        self._headers = {"Authorization": f"Bearer {token}"}
        return client

    # -- requests ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; returns (status, parsed JSON or None).

        ``path`` is an ARM path (``/subscriptions/...``), optionally with a query; a full URL of
        this endpoint is accepted too (``nextLink``). Raises the airlock error of an error answer.
        """
        transport = self._open()
        parts = urlsplit(path)
        if parts.scheme and not self.local and not path.startswith(self.endpoint):
            raise UsageError(f"{path!r} is not on the airlock endpoint {self.endpoint}")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        params.setdefault("api-version", API_VERSION)
        headers = dict(self._headers)
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        where = parts.path or "/"
        try:
            resp = transport.request(method.upper(), where, params=params, content=content, headers=headers)
        except AirlockError:
            raise
        except Exception as exc:
            if self.local:
                raise
            raise AirlockError(
                f"cannot reach the airlock API at {self.endpoint} ({type(exc).__name__}); is `airlock serve` running?",
                transient=True,
            ) from None
        status = int(resp.status_code)
        data: Any = None
        if resp.content:
            try:
                data = resp.json()
            except ValueError:
                data = None
        if status >= 400:
            raise _error(status, data, method.upper(), where)
        return status, data

    def get(self, path: str) -> Any:
        return self.request("GET", path)[1]

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body if body is not None else {})[1]

    def delete(self, path: str) -> int:
        return self.request("DELETE", path)[0]

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)[1]

    def list(self, path: str) -> list[Any]:
        """Every item of an ARM list, following ``nextLink``."""
        items: list[Any] = []
        url: str | None = path
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            page = self.get(url) or {}
            items.extend(page.get("value") or [])
            url = page.get("nextLink")
            if url and self.local:
                url = _path_and_query(url)
        return items

    def wait_for_run(self, path: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll the run at ``path`` every 0.5 s until its provisioningState is Succeeded or Failed.

        Raises:
            AirlockError: ``timeout`` seconds passed first (the run goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.get(path)
            if (doc.get("properties") or {}).get("provisioningState") in TERMINAL_STATES:
                return doc
            if deadline is not None and time.monotonic() >= deadline:
                raise AirlockError(
                    f"pipeline run {doc.get('name', path)} is still running after {timeout:g} s; "
                    "check it later with: airlock acr pipeline-run show",
                    transient=True,
                )
            time.sleep(POLL_INTERVAL)


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _no_traceback(record: logging.LogRecord) -> bool:
    if record.exc_info:
        exc = record.exc_info[1]
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True


def _error(status: int, data: Any, method: str, path: str) -> AirlockError:
    """The airlock error an error answer stands for: the class its envelope names, else by status."""
    message = ""
    named: type[AirlockError] | None = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("code") or "")
            named = _named_class(err.get("additionalInfo"))
        elif isinstance(data.get("detail"), str):  # a route the server does not have
            message = f"{method} {path}: {data['detail']}"
    message = message or f"{method} {path}: HTTP {status}"
    transient = status >= 500 or status == 429
    if named is not None:
        rebuilt = named(message)  # every class of the tree takes its message alone
        if transient:
            rebuilt.transient = True
        return rebuilt
    if status == 404:
        return ResourceNotFound(message)
    if status == 409:
        return ResourceConflict(message)
    if status in (400, 413):
        return UsageError(message)
    if status in (401, 403):
        return AccessDenied(message)
    return AirlockError(message, transient=transient)


def _named_class(additional_info: Any) -> type[AirlockError] | None:
    """The error class an ARM ``additionalInfo`` list names (``type`` "AirlockError"), if it is one of ours."""
    for item in additional_info if isinstance(additional_info, list) else []:
        if isinstance(item, dict) and item.get("type") == "AirlockError" and isinstance(item.get("info"), dict):
            name = item["info"].get("class")
            if isinstance(name, str):
                return error_class(name)
    return None
