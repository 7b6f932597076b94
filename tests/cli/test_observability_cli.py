"""Metrics and logs of a real `airlock serve` (issue 11, "Metrics and logs"), driven through the
console script: `GET /metrics` in Prometheus text format, open to anonymous scrapers and showing
counts only (ARCHITECTURE.md's threat-model row); `AIRLOCK_LOG_FORMAT=json`, one JSON object per
line with the caller's correlation id and principal, and never a secret.

One server for the module, with `-v` (so request and run lines are logged) and JSON logs, after an
export run that read a SAS token and a registry password from its vault and one that failed with a
read-only SAS: every planted secret then had its chance to reach the metrics or the log.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from airlock.testing import azurite as az
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
RG = "obsrg"
REG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/"
API = "?api-version=2025-06-01-preview"
PASSWORD = "Obs3rved-Pa55word-planted"
VAULT = "https://obskv.vault.azure.net/secrets/"
# Resource names and ids: a scrape must show none of them.
NAMES = ("obsrg", "obsreg", "obskv", "goodpipe", "readonlypipe", "obsrun0", "obsrun1", "obsci", SUB)
OPEN_PATHS = {"/metrics", "/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "unmatched"}


@dataclass
class Observed:
    server: AirlockServer
    owner: Console
    log: Path
    secrets: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)  # the SAS tokens' sig= values, decoded
    runs: dict[str, str] = field(default_factory=dict)  # name -> provisioningState

    def scrape(self) -> tuple[str, dict[str, Metric]]:
        """``GET /metrics`` without a token: (text, families by name)."""
        r = httpx.get(self.server.url + "/metrics", timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version="), r.headers
        return r.text, {f.name: f for f in text_string_to_metric_families(r.text)}

    def lines(self) -> list[dict[str, Any]]:
        """Every line the server wrote to stderr and stdout, each parsed as a JSON object."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            parsed = json.loads(line)  # a line that is not JSON fails the test here
            assert isinstance(parsed, dict) and {"time", "level", "logger", "message"} <= set(parsed), line
            out.append(parsed)
        return out


def requests_counted(families: dict[str, Metric], **labels: str) -> float:
    family = families.get("airlock_http_requests")
    samples = family.samples if family else []
    return sum(
        s.value for s in samples if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer, workdir: Path) -> Iterator[Observed]:
    root = tmp_path_factory.mktemp("observed")
    with ExitStack() as stack:
        registry = stack.enter_context(
            RegistryServer.start(workdir / "obs-registry", name="obsauth", htpasswd=("robot", PASSWORD))
        )
        push_oci_image(registry.url, "obs/app", "1", seed=71, auth=("robot", PASSWORD))
        az.create_container(azurite, "srcacct", "observed")
        sas = az.container_sas(azurite, "srcacct", "observed", permissions="racwdl")
        read_only = az.container_sas(azurite, "srcacct", "observed", permissions="rl")
        signatures = {unquote(dict(p.split("=", 1) for p in t.split("&"))["sig"]) for t in (sas, read_only)}
        secrets = {PASSWORD, *signatures, *(quote(s, safe="") for s in signatures)}

        server = AirlockServer(
            root / "home",
            env={"AIRLOCK_STORAGE_HOSTS": azurite.storage_host, "AIRLOCK_LOG_FORMAT": "json"},
            args=["-v"],
        ).start()
        stack.callback(server.stop)
        token = (root / "home" / "api-token").read_text().strip()
        owner = Console(
            home=root / "cli", env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token, "AIRLOCK_SUBSCRIPTION": SUB}
        )
        (root / "cli").mkdir()
        owner.ok("keyvault", "create", "-g", RG, "-n", "obskv")
        for name, value in (("sas", "?" + sas), ("readonly", read_only), ("regpass", PASSWORD)):
            owner.ok("keyvault", "secret", "set", "--vault-name", "obskv", "--name", name, "--value", value)
        owner.ok(
            "acr", "create", "-g", RG, "-n", "obsreg", "--login-server", registry.url, "--username", "robot",
            "--password-secret-uri", VAULT + "regpass",
        )  # fmt: skip
        container = az.container_url(azurite, "srcacct", "observed")
        for pipe, secret in (("goodpipe", "sas"), ("readonlypipe", "readonly")):
            created = owner.ok(
                "acr", "export-pipeline", "create", "-g", RG, "-r", "obsreg", "-n", pipe, "-m", "SasToken",
                "-s", VAULT + secret, "-c", container,
            ).stdout  # fmt: skip
            principal = json.loads(created)["identity"]["principalId"]
            owner.ok("keyvault", "set-policy", "-n", "obskv", "--object-id", principal, "--secret-permissions", "get")
        runs = {}
        for i, pipe in enumerate(("goodpipe", "readonlypipe")):
            run = owner(
                "acr", "pipeline-run", "create", "-g", RG, "-r", "obsreg", "-p", pipe, "-t", "export",
                "-n", f"obsrun{i}", "-b", f"obs{i}.tar", "-a", "obs/app:1",
            )  # fmt: skip
            assert "Traceback" not in run.stderr, run.where()
            runs[f"obsrun{i}"] = server.get(REG + f"obsreg/pipelineRuns/obsrun{i}")["properties"]["provisioningState"]
        assert runs == {"obsrun0": "Succeeded", "obsrun1": "Failed"}, runs  # the read-only SAS cannot write
        ci = server.http.post("/airlock/tokens", json={"name": "obsci", "role": "Reader"})
        assert ci.status_code == 201, ci.text
        secrets |= {token, ci.json()["token"]}
        yield Observed(server, owner, root / f"serve-{server.port}.log", secrets, signatures, runs)


def test_metrics_count_api_requests_by_route_template_and_status_never_by_path(observed: Observed) -> None:
    templates = set(httpx.get(observed.server.url + "/openapi.json").json()["paths"])
    registry_route = next(p for p in templates if re.fullmatch(r".*/registries/\{\w+\}", p))
    _, before = observed.scrape()
    missing = observed.owner("acr", "show", "-g", RG, "-n", "nosuchreg")
    assert "not found" in missing.only_error(1)
    observed.owner.ok("acr", "show", "-g", RG, "-n", "obsreg")
    assert httpx.get(observed.server.url + "/nosuch/obs-unrouted-4711").status_code == 404
    # A body over the limit is refused (413) before routing: still counted under its route's template.
    with socket.create_connection(("127.0.0.1", observed.server.port), timeout=10) as raw:
        raw.sendall(
            f"PUT {REG}bigreg{API} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 50000000\r\n\r\n".encode()
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 413 "), "no 413"
    text, after = observed.scrape()

    def delta(**labels: str) -> float:
        return requests_counted(after, **labels) - requests_counted(before, **labels)

    assert delta(method="GET", route=registry_route, status="404") >= 1
    assert delta(method="GET", route=registry_route, status="200") >= 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert delta(method="PUT", route=registry_route, status="413") == 1
    assert requests_counted(after, route="/metrics", status="200") >= 1  # the scrape before this one
    routes = {s.labels["route"] for s in after["airlock_http_requests"].samples}
    assert routes <= templates | OPEN_PATHS, routes - templates - OPEN_PATHS
    assert "nosuchreg" not in text and "obs-unrouted-4711" not in text and "bigreg" not in text


def test_anonymous_metrics_scrape_shows_counts_only_no_ids_names_tokens_or_sas(observed: Observed) -> None:
    """The threat-model row: /metrics needs no token, and after runs that read SAS tokens and a
    registry password (one failing with its SAS), it shows no secret, no resource name or id."""
    text, families = observed.scrape()
    assert "airlock_http_requests" in families and text.count("\n") > 20
    for secret in observed.secrets:
        assert secret not in text, f"a planted secret is in /metrics: {secret[:6]}…"
    for name in NAMES:
        assert name not in text.lower(), f"a resource name or id is in /metrics: {name}"
    label_names = {k for f in families.values() for s in f.samples for k in s.labels}
    assert label_names <= {"kind", "state", "method", "route", "status", "le"}, label_names
    assert "sig=" not in text.lower() and "bearer" not in text.lower()


def test_metrics_count_pipeline_runs_by_kind_and_final_state_and_what_they_moved(observed: Observed) -> None:
    _, families = observed.scrape()
    runs = {(s.labels["kind"], s.labels["state"]): s.value for s in families["airlock_pipeline_runs"].samples}
    assert runs.get(("export", "Succeeded"), 0) >= 1 and runs.get(("export", "Failed"), 0) >= 1, runs
    counts = {s.name: s.value for s in families["airlock_pipeline_run_duration_seconds"].samples}
    assert counts.get("airlock_pipeline_run_duration_seconds_count", 0) >= 1
    moved = {(s.name, s.labels.get("kind")): s.value for f in ("airlock_transfer_bytes", "airlock_transfer_blobs")
             for s in families[f].samples}  # fmt: skip
    assert moved.get(("airlock_transfer_bytes_total", "export"), 0) > 0, moved
    assert moved.get(("airlock_transfer_blobs_total", "export"), 0) >= 2, moved  # a config and its layers


def test_json_log_lines_carry_the_callers_correlation_id_and_principal(observed: Observed) -> None:
    correlation = f"obs-corr-{uuid.uuid4()}"
    r = observed.server.http.get(REG + "obsreg" + API, headers={"x-ms-correlation-request-id": correlation})
    assert r.status_code == 200 and r.headers["x-ms-correlation-request-id"] == correlation

    def logged() -> list[dict[str, Any]]:
        return [line for line in observed.lines() if line.get("correlation_id") == correlation]

    (line,) = wait_until(logged, timeout=30, what="the request's log line")
    assert line["logger"] == "airlock.api.requests" and line["level"] == "INFO", line
    assert line["principal"] == "owner", line  # the token's name, never the token
    assert line["message"].startswith("GET ") and " answered 200 in " in line["message"], line
    # A caller without a correlation id gets one, and its lines carry that one.
    r = httpx.get(observed.server.url + "/healthz")
    given = r.headers["x-ms-correlation-request-id"]
    wait_until(lambda: [x for x in observed.lines() if x.get("correlation_id") == given], what="the healthz line")


def test_json_run_log_lines_carry_the_run_id_pipeline_principal_and_the_puts_correlation_id(
    observed: Observed,
) -> None:
    # Each run logs its artifact as done (airlock.pipelines.execution) and its export's end (airlock.transfer).
    done = [line for line in observed.lines() if line["message"].startswith("obs/app:1 (sha256:")]
    ended = [line for line in observed.lines() if line["message"].startswith("exported 1 artifacts to ")]
    assert len(done) == 2 and ended, done + ended
    by_run = {line.get("run_id", "").rsplit("/", 1)[-1]: line for line in done + ended}
    assert set(by_run) == {"obsrun0", "obsrun1"}, done + ended
    assert {by_run[r].get("pipeline") for r in ("obsrun0", "obsrun1")} == {"goodpipe", "readonlypipe"}, by_run
    assert all(len(line.get("principal", "")) == 36 for line in done + ended), done  # the pipeline's identity
    for name in ("obsrun0", "obsrun1"):  # the PUT's correlation id, kept on the run, is on its lines too
        run = observed.server.get(REG + f"obsreg/pipelineRuns/{name}")
        assert by_run[name].get("correlation_id") == run["properties"]["response"]["correlationId"], by_run[name]


def test_json_logs_never_show_a_sas_signature_bearer_token_or_password(observed: Observed) -> None:
    """Security regression: every line of the server's log, in JSON, after SAS-token runs, requests
    whose path carries a SAS signature, a wrong bearer token and an invalid HTTP request, parses
    and shows none of the planted secrets."""
    signature = sorted(observed.signatures)[0]
    r = httpx.get(observed.server.url + "/leak/" + quote(f"x?sig={signature}", safe=""))
    assert r.status_code == 404
    bogus = "alt_" + "P" * 43  # an API token of airlock's shape, unknown to the server
    observed.secrets.add(bogus)
    r = httpx.get(observed.server.url + REG + "obsreg" + API, headers={"Authorization": f"Bearer {bogus}"})
    assert r.status_code == 401
    with socket.create_connection(("127.0.0.1", observed.server.port), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        raw.recv(1024)  # uvicorn answers 400 and logs a warning
    wait_until(
        lambda: any(line["logger"].startswith("uvicorn") for line in observed.lines()), what="uvicorn's warning line"
    )
    wait_until(lambda: any("/leak/" in line["message"] for line in observed.lines()), what="the /leak/ request line")
    lines = observed.lines()
    loggers = {line["logger"] for line in lines}
    assert {"airlock.api.requests", "airlock.serve"} <= loggers, loggers
    assert any(x.startswith("airlock.pipelines") for x in loggers), loggers  # the runs logged too
    text = observed.log.read_text(errors="replace")
    for secret in observed.secrets:
        assert secret not in text, f"a planted secret is in the JSON log: {secret[:6]}…"
    assert "sig=REDACTED" in text  # the /leak/ path was logged, with its signature taken out


def test_an_unknown_log_format_is_refused_in_one_line(tmp_path: Path) -> None:
    cli = Console(home=tmp_path, env={"AIRLOCK_LOG_FORMAT": "xml"})
    message = cli("acr", "list", "-g", "rg").only_error(2)
    assert message == "AIRLOCK_LOG_FORMAT 'xml': expected one of text, json", message
