"""API access control: anonymous → 401, a role without the permission → 403; tokens created and revoked."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.api.app import create_app
from airlock.wiring import open_control_plane

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OWNER = "owner-token-for-tests"
API = "?api-version=2025-06-01-preview"
BASE = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers"
REG = BASE + "/Microsoft.ContainerRegistry/registries/myregistry"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("home")
    app = create_app(lambda: open_control_plane(home), token=OWNER, trigger_interval=None)
    with TestClient(app) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_token(api: TestClient, name: str, role: str) -> str:
    r = api.post("/airlock/tokens", headers=auth(OWNER), json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def test_roles_reader_and_transfer_pipeline_contributor(api: TestClient, tmp_path: Path) -> None:
    r = api.put(REG + API, headers=auth(OWNER), json={"properties": {"loginServer": "https://registry.example"}})
    assert r.status_code == 201
    api.put(BASE + "/Microsoft.KeyVault/vaults/myvault" + API, headers=auth(OWNER))
    api.put(
        BASE + "/Microsoft.KeyVault/vaults/myvault/secrets/sas" + API,
        headers=auth(OWNER),
        json={"properties": {"value": "sv=1&sig=supersecret"}},
    )
    reader = make_token(api, "reader1", "Reader")
    contributor = make_token(api, "contrib1", "TransferPipelineContributor")
    pipeline = {
        "properties": {
            "target": {
                "uri": "https://acct.blob.core.windows.net/transfer",
                "keyVaultUri": "https://myvault.vault.azure.net/secrets/sas",
            }
        }
    }

    assert api.get(REG + API).status_code == 401
    assert api.get(REG + API, headers=auth(reader)).status_code == 200
    denied = api.put(REG + "/exportPipelines/pipeline1" + API, headers=auth(reader), json=pipeline)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "AuthorizationFailed"
    assert "Reader" in denied.json()["error"]["message"]
    secret = api.get(BASE + "/Microsoft.KeyVault/vaults/myvault/secrets/sas" + API, headers=auth(reader))
    assert secret.status_code == 403 and "supersecret" not in secret.text

    assert (
        api.put(REG + "/exportPipelines/pipeline1" + API, headers=auth(contributor), json=pipeline).status_code == 201
    )
    assert api.delete(REG + "/exportPipelines/pipeline1" + API, headers=auth(contributor)).status_code == 202
    assert api.put(REG + API, headers=auth(contributor), json={"properties": {"loginServer": "x"}}).status_code == 403
    local = {"properties": {"target": {"uri": tmp_path.as_uri()}}}
    r = api.put(REG + "/exportPipelines/pipeline2" + API, headers=auth(contributor), json=local)
    assert r.status_code == 403 and "file:" in r.json()["error"]["message"]
    assert api.put(BASE + "/Microsoft.KeyVault/vaults/other" + API, headers=auth(contributor)).status_code == 403
    assert (
        api.post("/airlock/tokens", headers=auth(contributor), json={"name": "x", "role": "Owner"}).status_code == 403
    )

    reserved = api.post("/airlock/tokens", headers=auth(OWNER), json={"name": "owner", "role": "Reader"})
    assert reserved.status_code == 400 and "Owner token" in reserved.json()["error"]["message"]
    listed = api.get("/airlock/tokens", headers=auth(OWNER)).json()["value"]
    assert {t["name"]: t["role"] for t in listed} == {
        "owner": "Owner",  # the bootstrap token, hashed in the database like the others
        "reader1": "Reader",
        "contrib1": "TransferPipelineContributor",
    }
    assert reader not in str(listed)
    assert api.delete("/airlock/tokens/reader1", headers=auth(OWNER)).status_code == 204
    assert api.get(REG + API, headers=auth(reader)).status_code == 401  # revoked


def test_bad_token_requests(api: TestClient) -> None:
    r = api.post("/airlock/tokens", headers=auth(OWNER), json={"name": "x", "role": "God"})
    assert r.status_code == 400 and "unknown role" in r.json()["error"]["message"]
    assert api.delete("/airlock/tokens/nosuch", headers=auth(OWNER)).status_code == 404


ROLE_TOKENS: dict[str, str] = {}


@pytest.mark.parametrize(
    ("role", "method", "path", "ok"),
    [
        ("Reader", "GET", REG + "/pipelineRuns/run12", True),
        ("Reader", "DELETE", REG + "/pipelineRuns/run12", False),
        ("TransferPipelineContributor", "PUT", REG + "/pipelineRuns/run12", True),
        ("TransferPipelineContributor", "PUT", REG, False),
        ("TransferPipelineContributor", "GET", BASE + "/Microsoft.KeyVault/vaults/v/secrets/s", False),
        ("Owner", "DELETE", REG, True),
        # Regressions: a pipeline-kind name elsewhere in the path must not grant anything.
        ("TransferPipelineContributor", "PUT", BASE + "/Microsoft.ContainerRegistry/registries/pipelineRuns", False),
        (
            "TransferPipelineContributor",
            "PUT",
            "/subscriptions/exportPipelines/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/secrets/s",
            False,
        ),
        (
            "TransferPipelineContributor",
            "DELETE",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/pipelineRuns/providers/Microsoft.KeyVault/vaults/v",
            False,
        ),
        (
            "TransferPipelineContributor",
            "PUT",
            REG + "/pipelineRuns/run12/../../../../Microsoft.KeyVault/vaults/v",
            False,
        ),
        ("TransferPipelineContributor", "PUT", REG + "//pipelineRuns/run12", False),
        ("Reader", "GET", BASE + "/microsoft.keyvault/vaults/v/SECRETS/s", False),
    ],
)
def test_role_table(api: TestClient, role: str, method: str, path: str, ok: bool) -> None:
    # The role each route declares (airlock.api.deps.require) decides, never the path's text: a
    # route that does not exist is a 404, whatever segments the path holds.
    if role != "Owner" and role not in ROLE_TOKENS:
        ROLE_TOKENS[role] = make_token(api, f"table{len(ROLE_TOKENS)}", role)
    token = OWNER if role == "Owner" else ROLE_TOKENS[role]
    r = api.request(method, path + API, headers=auth(token))
    if ok:
        assert r.status_code not in (401, 403), r.text
    else:
        assert r.status_code in (403, 404), r.text
    assert "supersecret" not in r.text
