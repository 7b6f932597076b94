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

from airlock.pipelines.services.audit import AuditService
from airlock.transfer.provenance import os_principal
from airlock.wiring import database_engine, home_dir


def configured() -> bool:
    """Whether this machine has a control-plane database to record to."""
    return bool(os.environ.get("AIRLOCK_DATABASE_URL")) or (home_dir() / "airlock.db").exists()


def record(
    action: str,
    *,
    resources: Sequence[str],
    artifacts: Sequence[dict[str, Any]] = (),
    catalog_digest: str | None = None,
    failures: dict[str, str] | None = None,
) -> None:
    """Append the command's entry, when a database is configured (:func:`configured`).

    Raises:
        AirlockError: the database was written by a newer airlock.
        DBAPIError: the database failed.
    """
    if not configured():
        return
    engine = database_engine()
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
    finally:
        engine.dispose()
