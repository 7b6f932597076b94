"""The rows of ARCHITECTURE.md's threat model that are about roles: what an anonymous caller, a
Reader and a TransferPipelineContributor can make a real `airlock serve` do (and not), each through
the console script with that caller's token; and what the server's AIRLOCK_HOME gives away.

The confused-deputy rows are in test_confused_deputy_cli.py; the import-container row in
tests/reliability/test_hostile.py and tests/pipelines.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console

SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
REG = ARM + "/Microsoft.ContainerRegistry/registries/"
KV = ARM + "/Microsoft.KeyVault/vaults/"
SECRET = "threat-model-secret-value-93b1"
PARAMS = {
    "sub": SUB,
    "rg": "rg",
    "registry": "threatreg",
    "name": "threatname1",
    "vault": "threatkv",
    "kind": "pipelineRuns",
    "op": "run",
    "operation": "add",
    "rest": f"{SUB}/resourceGroups/rg",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    home = tmp_path_factory.mktemp("threat-model") / "home"  # made by `airlock serve` itself
    srv = AirlockServer(home).start()
    try:
        srv.put(REG + "threatreg", {"properties": {"loginServer": "https://r.example"}})
        srv.put(KV + "threatkv", {})
        srv.put(KV + "threatkv/secrets/sas", {"properties": {"value": SECRET}})
        srv.put(ARM + "/Microsoft.ManagedIdentity/userAssignedIdentities/ownersidentity", {})
        yield srv
    finally:
        srv.stop()


def caller(server: AirlockServer, tmp_path: Path, role: str) -> tuple[Console, str]:
    name = f"{role.lower()[:12]}{len(list(tmp_path.iterdir()))}"
    r = server.http.post("/airlock/tokens", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token}), token


def test_anonymous_callers_get_401_on_every_route_whatever_the_body(server: AirlockServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    assert len(routes) > 30, routes
    hostile = [b"", b'{"x": NaN}', b"[" * 10_000, b'{"properties": {"loginServer": "x"}}']
    for method, template in routes:
        path = re.sub(r"\{(\w+)(:path)?\}", lambda m: PARAMS[m.group(1)], template)
        for body in hostile:
            for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic b3duZXI6eA=="}):
                r = httpx.request(
                    method, server.url + path + "?api-version=2025-06-01-preview", content=body, headers=headers
                )
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "AuthenticationFailed"
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.get(server.url + "/healthz").status_code == 200  # the one open route


def test_reader_reads_but_cannot_write_nor_see_secret_values_or_tokens(server: AirlockServer, tmp_path: Path) -> None:
    reader, _ = caller(server, tmp_path, "Reader")
    assert reader("acr", "show", "-n", "threatreg", "-g", "rg").json()["name"] == "threatreg"
    assert reader("keyvault", "show", "-n", "threatkv").json()["name"] == "threatkv"
    args: tuple[str, ...]  # both loops below: argument tuples of different lengths
    for args in (("list",), ("show", "--name", "sas")):  # a vault's secrets are data, not resources
        shown = reader("keyvault", "secret", *args, "--vault-name", "threatkv")
        assert "may not GET" in shown.only_error(1) and SECRET not in shown.stdout + shown.stderr
    for args in (
        ("acr", "create", "-g", "rg", "-n", "readerreg1", "--login-server", "https://r.example"),
        ("acr", "delete", "-g", "rg", "-n", "threatreg", "--yes"),
        ("keyvault", "secret", "set", "--vault-name", "threatkv", "--name", "x", "--value", "v"),
        ("token", "create", "-n", "escalate", "--role", "Owner"),
        ("token", "list"),
    ):
        message = reader(*args).only_error(1)
        assert "role Reader" in message, (args, message)
    assert server.get(REG + "threatreg")["name"] == "threatreg"


def test_contributor_cannot_touch_registries_identities_vaults_secrets_tokens_or_local_files(
    server: AirlockServer, tmp_path: Path
) -> None:
    contributor, _ = caller(server, tmp_path, "TransferPipelineContributor")
    principal = "11111111-2222-3333-4444-555555555555"
    for args in (
        ("acr", "create", "-g", "rg", "-n", "threatreg", "--login-server", "http://127.0.0.1:9"),
        ("identity", "create", "-g", "rg", "-n", "stolen-id"),
        ("keyvault", "create", "-g", "rg", "-n", "contribkv"),
        ("keyvault", "set-policy", "-n", "threatkv", "--object-id", principal, "--secret-permissions", "get"),
        ("keyvault", "secret", "set", "--vault-name", "threatkv", "--name", "sas", "--value", "replaced"),
        ("keyvault", "secret", "show", "--vault-name", "threatkv", "--name", "sas"),
        ("token", "create", "-n", "escalate", "--role", "Owner"),
    ):
        run = contributor(*args)
        message = run.only_error(1)
        assert "role TransferPipelineContributor" in message and SECRET not in run.stdout, (args, message)
    pipeline = ["acr", "export-pipeline", "create", "-g", "rg", "-r", "threatreg", "-n", "contribexport"]
    local = contributor(*pipeline, "-c", str(tmp_path)).only_error(1)
    assert "only an Owner may use a local file: container" in local
    storage = [
        "-c",
        "https://acct.blob.core.windows.net/transfer",
        "-s",
        "https://threatkv.vault.azure.net/secrets/sas",
    ]
    uai = contributor(*pipeline, *storage, "--assign-identity", "ownersidentity")
    assert "only an Owner may assign a user-assigned identity" in uai.only_error(1)
    # What the role is for: a pipeline of its own, whose new identity has no access to the vault.
    doc = contributor(*pipeline, *storage).json()
    policies = server.get(KV + "threatkv")["properties"]["accessPolicies"]
    assert doc["identity"]["principalId"] not in str(policies)


def test_airlock_home_is_private_and_its_database_alone_reveals_no_secret(server: AirlockServer) -> None:
    home = server.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("api-token", "vault.key"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    token = server.http.post("/airlock/tokens", json={"name": "dbcheck", "role": "Reader"}).json()["token"]
    database = b"".join(p.read_bytes() for p in home.glob("airlock.db*"))
    for secret in (SECRET, token, (home / "api-token").read_text().strip(), (home / "vault.key").read_text()):
        assert secret.strip().encode() not in database
