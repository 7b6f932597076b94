"""The plain transfer commands' audit entries (``export``, ``import``, ``copy`` without a server).

They run as the OS user and need no control plane, so they record to one only when one is
configured: ``AIRLOCK_DATABASE_URL``, or an ``AIRLOCK_HOME/airlock.db`` that exists already (any
control-plane command, or ``airlock serve``, creates it). A machine that only moves bundles gets no
database for it. The entry is written once the command has a result (succeeded, or partly with
ContinueOnErrors); a command that fails outright records nothing (nothing moved, or it left
nothing behind). The principal is ``user:<OS user>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from airlock.errors import AirlockError
from airlock.home import home_path
from airlock.transfer.provenance import os_principal


def configured() -> bool:
    """Whether this machine has a control-plane database to record to."""
    return bool(os.environ.get("AIRLOCK_DATABASE_URL")) or (home_path() / "airlock.db").exists()


def record(
    action: str,
    *,
    resources: Sequence[str],
    artifacts: Sequence[dict[str, Any]] = (),
    catalog_digest: str | None = None,
    failures: dict[str, str] | None = None,
) -> AirlockError | None:
    """Append the command's entry, when a database is configured (:func:`configured`). Returns the
    error when the entry could not be written (a database of another schema revision, or one that
    failed), for the command to print its result and then fail with it: the message says that the
    command itself did what it reports. Raises nothing.
    """
    if not configured():
        return None
    # Loaded only now: SQLAlchemy and the services would double a transfer command's start-up and memory.
    from sqlalchemy.exc import DBAPIError

    from airlock.pipelines.services.audit import AuditService
    from airlock.wiring import database_engine

    engine = database_engine()
    where = engine.url.render_as_string(hide_password=True)
    try:
        result = (
            "Succeeded"
            if not failures
            else f"Failed: {len(failures)} artifact(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
        )
        AuditService.on(engine).record(
            action,
            principal=os_principal(),
            resources=resources,
            artifacts=artifacts,
            catalog_digest=catalog_digest,
            result=result,
        )
    except (AirlockError, DBAPIError) as exc:
        said = str(exc) if isinstance(exc, AirlockError) else type(exc.orig or exc).__name__
        return AirlockError(
            f"{action} done, but its audit entry could not be written to {where}: {said.splitlines()[0]}"
        )
    finally:
        engine.dispose()
    return None
