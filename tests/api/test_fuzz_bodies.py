"""Fuzzing every body-taking route with arbitrary JSON (hypothesis): never a 5xx, always an ARM envelope.

The values include what JSON parsers let through and renderers choke on: NaN, ±Infinity, lone
surrogates, deep nesting, keys and strings with control characters.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.api.app import create_app
from airlock.wiring import open_control_plane

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
REG = ARM + "/Microsoft.ContainerRegistry/registries/"
KV = ARM + "/Microsoft.KeyVault/vaults/"
H = {"Authorization": "Bearer fuzz", "Content-Type": "application/json"}
ROUTES = [
    ("POST", "/airlock/tokens"),
    ("PUT", KV + "fuzzkv/secrets/fuzzsecret"),
    ("PUT", KV + "fuzzkv/accessPolicies/add"),
    ("PUT", KV + "fuzzkv2"),
    ("PUT", ARM + "/Microsoft.ManagedIdentity/userAssignedIdentities/fuzzid"),
    ("PUT", REG + "fuzzreg2"),
    ("PUT", REG + "fuzzreg/exportPipelines/fuzzexport"),
    ("PUT", REG + "fuzzreg/importPipelines/fuzzimport"),
    ("PUT", REG + "fuzzreg/pipelineRuns/fuzzrun1"),
]
KEYS = st.sampled_from(
    ["properties", "location", "identity", "name", "role", "value", "accessPolicies", "objectId", "permissions",
     "secrets", "loginServer", "target", "source", "uri", "keyVaultUri", "request", "artifacts", "type", "tags"]
)  # fmt: skip
TEXT = st.text(st.characters(codec=None, categories=None), max_size=12)  # surrogates and controls included
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | TEXT, inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("fuzz-home")
    app = create_app(lambda: open_control_plane(home), token="fuzz", trigger_interval=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        reg = client.put(
            REG + "fuzzreg?api-version=2025-06-01-preview", headers=H, json={"properties": {"loginServer": "r.example"}}
        )
        assert reg.status_code == 201, reg.text
        assert client.put(KV + "fuzzkv?api-version=2025-06-01-preview", headers=H).status_code == 201
        yield client


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[p.rsplit("/", 2)[-2] for _, p in ROUTES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=VALUES | st.dictionaries(KEYS, VALUES, max_size=5))
def test_arbitrary_json_bodies_never_get_a_5xx(api: TestClient, method: str, path: str, body: Any) -> None:
    r = api.request(method, path + "?api-version=2025-06-01-preview", headers=H, content=_encode(body))
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert {"code", "message"} <= set(r.json()["error"])
