"""schemathesis against the OpenAPI a real `airlock serve` serves, with an Owner token: a bounded run
of schema-valid and schema-violating requests on every operation, once with generated paths and once
on resources that exist (so that success answers are checked too). No answer may be a 5xx, and every
answer must be one the document declares: its status code, content type, headers and body schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from airlock.testing.airlock_server import AirlockServer

EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FRAMING = {"transfer-encoding", "content-length", "connection", "host", "te", "upgrade", "expect", "trailer"}
SUB, RG = "11111111-2222-3333-4444-555555555555", "fuzzrg"
REG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/fuzzreg"
PROVIDERS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    home.mkdir()
    s = AirlockServer(home, trigger_interval=3600).start()
    inbox = home.parent / "inbox"
    inbox.mkdir()
    # One of each resource. The registry's port is closed, so the run fails at once, with a message.
    s.put(REG, {"properties": {"loginServer": "http://127.0.0.1:9"}})
    export = s.put(REG + "/exportPipelines/fuzzexport", {"properties": {"target": {"uri": inbox.as_uri()}}})
    s.put(REG + "/importPipelines/fuzzimport", {"properties": {"source": {"uri": inbox.as_uri()}}})
    run = {"request": {"pipelineResourceId": export["id"], "artifacts": ["a/b:1"], "target": {"name": "x.tar"}}}
    s.put(REG + "/pipelineRuns/fuzzrun", {"properties": run})
    s.put(PROVIDERS + "/Microsoft.ManagedIdentity/userAssignedIdentities/fuzzid", {})
    s.put(PROVIDERS + "/Microsoft.KeyVault/vaults/fuzzkv", {})
    s.put(PROVIDERS + "/Microsoft.KeyVault/vaults/fuzzkv/secrets/fuzzsecret", {"properties": {"value": "v"}})
    s.wait_run(REG + "/pipelineRuns/fuzzrun")
    yield s
    s.stop()


def _existing(path: str) -> dict[str, str]:
    """Path parameters naming the resources the fixture made, for an operation's path template."""
    name = "fuzzsecret"
    for segment, value in (
        ("exportPipelines", "fuzzexport"),
        ("importPipelines", "fuzzimport"),
        ("pipelineRuns", "fuzzrun"),
        ("userAssignedIdentities", "fuzzid"),
    ):
        if f"/{segment}/" in path:
            name = value
    given = {"sub": SUB, "rg": RG, "registry": "fuzzreg", "vault": "fuzzkv", "name": name, "operation": "add"}
    return {k: v for k, v in given.items() if "{" + k + "}" in path}


def test_served_openapi_holds_for_generated_requests(server: AirlockServer) -> None:
    # Hypothesis drives each operation's strategy directly: schemathesis's pytest plugin does not
    # run under this pytest. A few examples per operation, mode and pass keep it to seconds.
    token = (server.home / "api-token").read_text().strip()
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the OpenAPI does not describe validly
        operations.append(result.ok())
    assert len(operations) >= 30, "the OpenAPI lost operations"
    for where in ("generated", "existing"):
        for operation in operations:
            fixed = _existing(operation.path) if where == "existing" else None
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

                @given(case=strategy)
                @settings(
                    max_examples=EXAMPLES,
                    derandomize=True,  # the same examples every run: a finding is reproducible, never a flake
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def check(case: Any) -> None:
                    # Undeclared framing headers (an empty Transfer-Encoding, say) are refused by the HTTP
                    # server itself, uvicorn, with its own text/plain 400, before the API sees the request.
                    for name in [h for h in case.headers or {} if h.lower() in FRAMING]:
                        del case.headers[name]
                    headers = {"Authorization": f"Bearer {token}"}
                    case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

                try:
                    check()
                except (Exception, BaseExceptionGroup) as exc:  # collect every failure, then report them all
                    failures.append(f"{operation.method.upper()} {operation.path} ({mode}, {where} paths): {exc}")
    assert not failures, "\n\n".join(failures)
