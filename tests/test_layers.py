"""The import rules of ARCHITECTURE.md, checked on the source (as go-containerregistry's depcheck)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "airlock"

# package -> airlock packages it may import (besides itself and airlock.errors / airlock.__init__)
ALLOWED = {
    "oci": set(),
    "db": set(),  # the schema and its migrations: below every store that uses a table
    "observability": set(),  # metrics, log format, redaction: below everything that reports through it
    "pipelines": {"oci", "registry", "archive", "storage", "secrets", "transfer", "db", "observability"},
    "api": {"oci", "registry", "archive", "storage", "secrets", "transfer", "pipelines", "db", "observability"},
    "registry": {"oci"},
    "archive": {"oci"},
    "storage": set(),
    "secrets": {"db"},
    "transfer": {"oci", "registry", "archive", "storage", "secrets", "observability"},
    "cli": {
        "oci", "registry", "archive", "storage", "secrets", "transfer", "pipelines", "api", "wiring", "home", "db",
        "observability",
    },
}  # fmt: skip
CLOUD_SDKS = ("azure", "boto3", "botocore", "hvac", "google")
SDK_HOMES = {
    "storage/azure_blob.py",
    "storage/azure_account.py",  # the account-key operations of `airlock storage container`, beside azure_blob
    "storage/azure_sdk.py",  # the SDK's errors, credential and session, shared by both
    "secrets/azure_key_vault.py",
    "secrets/hashicorp_vault.py",
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] in ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_only(path: Path) -> None:
    package = path.relative_to(SRC).parts[0]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "airlock" and len(parts) > 1 and parts[1] not in ("errors", package):
            assert parts[1] in ALLOWED[package], f"{path.relative_to(SRC)} imports {name}"
        if parts[0] in CLOUD_SDKS:
            assert str(path.relative_to(SRC)) in SDK_HOMES, f"{path.relative_to(SRC)} imports the SDK {name}"


def test_nothing_imports_the_test_harness_or_the_cli() -> None:
    for path in _modules():
        for name in _imports(path):
            assert not name.startswith("airlock.testing"), f"{path} imports {name}"
            if path.relative_to(SRC).parts[0] != "cli":
                assert not name.startswith("airlock.cli"), f"{path} imports {name}"
            if path.relative_to(SRC).parts[0] not in ("cli", "api"):
                assert not name.startswith(("airlock.api", "airlock.wiring")), f"{path} imports {name}"


# Inside the control plane: who may hold the database. The services own the repository; the
# composition root builds it; the run journal and execution are the run service's parts.
STORE_MODULES = ("airlock.pipelines.store", "airlock.pipelines.repository", "airlock.db.schema")
STORE_HOLDERS = {
    "pipelines/store.py",
    "pipelines/audit_store.py",  # the audit trail's adapter (its table only)
    "pipelines/repository.py",
    "pipelines/plane.py",
    "pipelines/execution.py",
    "pipelines/services/registries.py",
    "pipelines/services/identities.py",
    "pipelines/services/pipelines.py",
    "pipelines/services/runs.py",
    "api/tokens.py",  # the API tokens' own table (a service of the api layer)
    "wiring.py",  # picks the engine
}


def test_only_services_touch_the_store() -> None:
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel.startswith(("db/", "testing/", "secrets/embedded.py")) or rel in STORE_HOLDERS:
            continue
        for name in _imports(path):
            assert not name.startswith(STORE_MODULES), f"{rel} imports {name}: go through a service"


def test_routers_reach_the_control_plane_through_its_services_only() -> None:
    """A router calls ``p.<service>.<method>``; no router reads the plane's engine or the store."""
    for path in sorted((SRC / "api" / "routes").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "p":
                assert node.attr in {"registries", "identities", "vaults", "pipelines", "runs", "audit"}, (
                    f"{path.name} uses p.{node.attr}"
                )
