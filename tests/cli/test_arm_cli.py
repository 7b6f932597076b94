"""ARM fidelity of `airlock serve` (issue 10, sections 2 and 3), each guard through the console
script: the server is `airlock serve`, and requests go through `airlock rest` where the CLI can say
it, through HTTP where only headers can.

The Azure SDK's own run of the same server is tests/api/test_azure_sdk.py; the schemathesis run of
its OpenAPI is tests/api/test_openapi_fuzz.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.pipelines import arm
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

EXE = str(Path(sys.executable).parent / "airlock")
SUB = "00000000-0000-0000-0000-000000000000"
V = "?api-version=" + arm.DEFAULT_API_VERSION
REG = f"/subscriptions/{SUB}/resourceGroups/armrg/providers/Microsoft.ContainerRegistry/registries/armreg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    home = tmp_path_factory.mktemp("arm") / "home"
    home.mkdir()
    s = AirlockServer(home, trigger_interval=3600).start()
    s.put(REG, {"properties": {"loginServer": "https://registry.example"}})
    yield s
    s.stop()


def rest(server: AirlockServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`airlock rest ARGS` through AIRLOCK_ENDPOINT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "AZURE_"))}
    env.update(AIRLOCK_HOME=str(server.home), AIRLOCK_ENDPOINT=server.url, AIRLOCK_NO_PROGRESS="1")
    return subprocess.run([EXE, "rest", *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body  # ARM's envelope, never FastAPI's {"detail": ...}
    err: dict[str, Any] = body["error"]
    assert err["code"] and err["message"] and "\n" not in err["message"]
    return err


def test_pipeline_run_lro_sends_retry_after_and_its_operation_has_start_and_end_times(
    server: AirlockServer, source_registry: RegistryServer, tmp_path: Path
) -> None:
    push_oci_image(source_registry.url, "arm/app", "1", layers=1, layer_size=1024, seed=81)
    server.put(REG.replace("armreg", "armrunreg"), {"properties": {"loginServer": source_registry.url}})
    base = REG.replace("armreg", "armrunreg")
    export = server.put(base + "/exportPipelines/armexport", {"properties": {"target": {"uri": tmp_path.as_uri()}}})
    version = "2025-03-01-preview"  # the Azure SDK's: echoed in the operation URL
    body = {"properties": {"request": {"pipelineResourceId": export["id"], "artifacts": ["arm/app:1"]}}}
    body["properties"]["request"]["target"] = {"name": "arm.tar"}
    r = server.http.put(base + f"/pipelineRuns/armrun1?api-version={version}", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Retry-After"] == "1"
    op_url = r.headers["Azure-AsyncOperation"]
    assert op_url.endswith(f"/pipelineRuns/armrun1/operationStatuses/run?api-version={version}")

    def finished() -> httpx.Response | None:
        op = server.http.get(op_url)
        assert op.status_code == 200, op.text
        assert op.json()["startTime"]
        if op.json()["status"] == "InProgress":
            assert op.headers["Retry-After"] == "1" and "endTime" not in op.json()
            return None
        return op

    op = wait_until(finished, timeout=60, what="run armrun1's operation to finish")
    status = op.json()
    assert status["status"] == "Succeeded", status
    assert status["endTime"] >= status["startTime"] and "Retry-After" not in op.headers
    run = server.get(base + "/pipelineRuns/armrun1")
    assert status["endTime"] == run["properties"]["response"]["finishTime"]

    # Operations that completed before their answer: Succeeded, with both times, on the caller's version.
    r = server.http.delete(base + f"/pipelineRuns/armrun1?api-version={version}")
    assert r.status_code == 202 and r.headers["Retry-After"] == "1"
    assert (
        r.headers["Location"] == r.headers["Azure-AsyncOperation"] and f"api-version={version}" in r.headers["Location"]
    )
    done = server.http.get(r.headers["Location"]).json()
    assert done["status"] == "Succeeded" and done["startTime"] == done["endTime"]


def test_an_identical_re_put_of_a_failed_run_points_at_the_runs_own_operation(
    server: AirlockServer, source_registry: RegistryServer, tmp_path: Path
) -> None:
    """Review finding: the no-op re-PUT got a done-<ms> operation, which always says Succeeded, so the
    SDK's begin_create().result() returned without error for a failed (or still running) run."""
    base = REG.replace("armreg", "armfailreg")
    server.put(base, {"properties": {"loginServer": source_registry.url}})
    export = server.put(base + "/exportPipelines/armexport", {"properties": {"target": {"uri": tmp_path.as_uri()}}})
    request = {"pipelineResourceId": export["id"], "artifacts": ["arm/missing:1"], "target": {"name": "f.tar"}}
    body = {"properties": {"request": request}}
    first = server.http.put(base + f"/pipelineRuns/armfail1?api-version={arm.DEFAULT_API_VERSION}", json=body)
    assert first.status_code == 201, first.text
    wait_until(
        lambda: (
            server.get(base + "/pipelineRuns/armfail1")["properties"]["provisioningState"] in ("Failed", "Succeeded")
        ),
        timeout=60,
        what="run armfail1 to finish",
    )
    again = server.http.put(base + f"/pipelineRuns/armfail1?api-version={arm.DEFAULT_API_VERSION}", json=body)
    assert again.status_code == 200, again.text
    assert "/pipelineRuns/armfail1/operationStatuses/run?" in again.headers["Azure-AsyncOperation"]
    assert server.http.get(again.headers["Azure-AsyncOperation"]).json()["status"] == "Failed"


def test_api_version_missing_unknown_or_ancient_is_refused_and_every_transfer_version_accepted(
    server: AirlockServer,
) -> None:
    missing = server.http.get(REG)
    assert missing.status_code == 400 and error_of(missing)["code"] == "MissingApiVersionParameter"
    assert error_of(server.http.get(REG + "?api-version="))["code"] == "MissingApiVersionParameter"
    for bad in ("1900-01-01", "2025-04-01", "2099-01-01-preview", "latest"):
        r = server.http.get(REG + f"?api-version={bad}")
        assert r.status_code == 400 and error_of(r)["code"] == "InvalidApiVersionParameter", bad
        assert "2026-09-01-preview" in error_of(r)["message"]  # says what would do
    for version in arm.API_VERSIONS:
        assert server.http.get(REG + f"?api-version={version}").status_code == 200, version
    assert "2019-12-01-preview" in arm.API_VERSIONS and "2026-09-01-preview" in arm.API_VERSIONS

    # The CLI keeps a version the caller wrote, and fails as a usage error (exit 2) on a bad one.
    done = rest(server, "--url", REG + "?api-version=1900-01-01")
    assert done.returncode == 2 and "api-version '1900-01-01' is not supported" in done.stderr, done.stderr
    assert rest(server, "--url", REG + "?api-version=2026-09-01-preview").returncode == 0


def test_every_answer_carries_request_and_correlation_ids(server: AirlockServer) -> None:
    answers = [
        server.http.get(REG + V),
        server.http.get(REG + V, headers={"x-ms-correlation-request-id": "caller-chosen-id-42"}),
        server.http.get("/subscriptions/nope" + V),
        server.http.post(REG + V),
        httpx.get(server.url + REG + V),  # anonymous: 401
        server.http.get("/healthz"),
    ]
    ids = set()
    for r in answers:
        ids.add(r.headers["x-ms-request-id"])
        assert r.headers["x-ms-correlation-request-id"]
    assert len(ids) == len(answers)  # one per request
    assert answers[1].headers["x-ms-correlation-request-id"] == "caller-chosen-id-42"
    assert answers[0].headers["x-ms-correlation-request-id"] != "caller-chosen-id-42"


def test_unknown_routes_wrong_methods_big_and_non_json_bodies_get_arm_envelopes(server: AirlockServer) -> None:
    nope = server.http.get(f"/subscriptions/{SUB}/resourceGroups/armrg/providers/Microsoft.Web/sites/x" + V)
    assert nope.status_code == 404 and error_of(nope)["code"] == "NotFound"
    post = server.http.post(REG + V, json={})
    assert post.status_code == 405 and error_of(post)["code"] == "MethodNotAllowed"
    assert post.headers["Allow"] == "DELETE, GET, PATCH, PUT"  # every method of the path, not one route's
    runs = server.http.patch(REG + "/pipelineRuns" + V)
    assert runs.status_code == 405 and runs.headers["Allow"] == "GET"
    big = server.http.put(REG + "/exportPipelines/bigbody1" + V, json={"x": "y" * (5 << 20)})  # over the 4 MiB default
    assert big.status_code == 413 and error_of(big)["code"] == "RequestEntityTooLarge"
    text = server.http.put(REG + V, content=b"loginServer=x", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and error_of(text)["code"] == "UnsupportedMediaType"
    top = server.http.get(REG.rsplit("/", 1)[0] + V + "&$top=0")
    assert top.status_code == 400 and error_of(top)["code"] == "InvalidRequestContent"
    # Each names the class the CLI raises for it, so the exit code is the same on both sides of the hop.
    infos = [error_of(r)["additionalInfo"][0] for r in (nope, post, big, text, top)]
    assert [i["info"]["class"] for i in infos] == [
        "ResourceNotFound",
        "UsageError",
        "UsageError",
        "UsageError",
        "UsageError",
    ]
    assert {i["type"] for i in infos} == {"AirlockError"}
    missing = server.http.get(REG + "/exportPipelines/nosuchpipe" + V)
    assert error_of(missing)["additionalInfo"] == [{"type": "AirlockError", "info": {"class": "ResourceNotFound"}}]


def test_registry_sku_subscription_wide_list_and_patch_through_airlock_rest(server: AirlockServer) -> None:
    got = rest(server, "--url", REG)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["sku"] == {"name": "Premium", "tier": "Premium"}
    listed = rest(server, "--url", "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries")
    assert listed.returncode == 0, listed.stderr
    assert "armreg" in [r["name"] for r in json.loads(listed.stdout)["value"]]
    patch = json.dumps({"tags": {"env": "test"}, "sku": {"name": "Standard"}, "properties": {"adminUserEnabled": True}})
    patched = rest(server, "--method", "patch", "--url", REG, "--body", patch)
    assert patched.returncode == 0, patched.stderr
    doc = json.loads(patched.stdout)
    assert doc["tags"] == {"env": "test"} and doc["sku"] == {"name": "Standard", "tier": "Standard"}
    assert doc["properties"]["adminUserEnabled"] is True
    assert doc["properties"]["loginServer"] == "https://registry.example"  # kept
    bad = rest(server, "--method", "patch", "--url", REG, "--body", '{"properties": [1]}')
    assert bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr


def test_served_openapi_declares_bodies_every_status_bearer_security_and_no_422(server: AirlockServer) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    text = json.dumps(doc)
    assert '"422"' not in text and "HTTPValidationError" not in text
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(operations) >= 30
    for method, path, op in operations:
        codes = set(op["responses"])
        assert {"400", "401"} <= codes, (method, path)
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
        if method in ("PUT", "PATCH") or (method == "POST" and not path.endswith("/cancel")):  # cancel takes none
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"], (method, path)
            assert {"413", "415"} <= codes, (method, path)
        if method == "DELETE":
            assert codes & {"202", "204"}, (method, path)
        if path.startswith("/subscriptions/"):
            version = next(p for p in op["parameters"] if p["name"] == "api-version")
            assert version["required"] and version["schema"]["enum"] == list(arm.API_VERSIONS)
    run_put = doc["paths"][arm.REGISTRY_PATH + "/pipelineRuns/{name}"]["put"]
    assert {"200", "201", "403", "404", "409"} <= set(run_put["responses"])
    assert "Retry-After" in run_put["responses"]["201"]["headers"]


# Regression guard for ad51a9f: a local command's in-process app served the dashboard too, which
# no browser can reach there, and loading its templates cost every command 25 ms.
def test_a_local_command_runs_the_api_in_process_without_loading_the_dashboard(tmp_path: Path) -> None:
    cli = Console(home=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    done = cli("acr", "list", "-g", "rg", "-o", "json")
    assert done.returncode == 0 and json.loads(done.stdout) == [], done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "airlock.api.app" in imported  # the ARM API ran in this process...
    # ...without the dashboard's pages and their templates (its session cookie, which the API's
    # auth dependency reads, is a small module of its own).
    dashboard = [m for m in imported if m.startswith(("airlock.api.ui.", "jinja2")) and m != "airlock.api.ui.session"]
    assert dashboard == []
