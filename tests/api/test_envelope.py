"""Every error answer is one ARM envelope naming its error class, built in one place
(``airlock.api.error_body``): the exception handlers, the body limit and the 500 of a bug."""

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

TOKEN = "envelope-token"
REG = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers"
    "/Microsoft.ContainerRegistry/registries/envreg?api-version=2025-03-01-preview"
)


def _bug() -> None:
    raise RuntimeError("https://acct.blob.core.windows.net/c?sig=SECRETSIG")  # a bug that leaks a SAS


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("home")
    app = create_app(lambda: open_control_plane(home), token=TOKEN, trigger_interval=None)
    app.add_api_route("/test-bug", _bug)  # stands for any route with a bug in it
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _class(answer: dict[str, object]) -> str:
    error = answer["error"]
    assert isinstance(error, dict)
    info = error["additionalInfo"]
    assert isinstance(info, list) and info[0]["type"] == "AirlockError"
    name: str = info[0]["info"]["class"]
    return name


def test_a_bug_answers_a_500_envelope_naming_no_secret_and_carrying_request_ids(api: TestClient) -> None:
    r = api.get("/test-bug", headers={"x-ms-correlation-request-id": "corr-1"})
    assert r.status_code == 500
    body = r.json()
    assert body["error"]["code"] == "InternalServerError"
    assert body["error"]["message"] == "internal error (RuntimeError); see the server log"
    assert _class(body) == "AirlockError"
    assert "SECRETSIG" not in r.text
    assert r.headers["x-ms-correlation-request-id"] == "corr-1" and r.headers["x-ms-request-id"]


def test_the_body_limit_and_the_domain_answer_the_same_envelope(api: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    too_big = api.put(REG, headers={**auth, "Content-Length": str(64 * 1024 * 1024)}, content=b"{}")
    assert too_big.status_code == 413 and _class(too_big.json()) == "UsageError"
    invalid = api.put(REG, headers=auth, json={"properties": {"loginServer": ""}})
    assert invalid.status_code == 400 and _class(invalid.json()) == "UsageError"
    missing = api.get(REG.replace("envreg", "nosuchreg"), headers=auth)
    assert missing.status_code == 404 and _class(missing.json()) == "ResourceNotFound"
    for answer in (too_big, invalid, missing):
        assert set(answer.json()["error"]) == {"code", "message", "additionalInfo"}
