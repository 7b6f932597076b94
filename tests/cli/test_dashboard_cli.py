"""The web dashboard (issue 14) in a real browser: Debian's chromium driven by Playwright against a
real ``airlock serve`` with real registries, file containers and the source trigger.

One server, two registries (the source behind a fault proxy, to hold a run mid-transfer), one
browser per module. Screenshots of each page go to ``test-output/screenshots/`` (not committed;
``docs/screenshots/`` holds the README's copies).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
RG = "dashrg"
API = "?api-version=2025-06-01-preview"
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
SOURCE = ARM + "/Microsoft.ContainerRegistry/registries/dashsource"
CRED = ARM + "/Microsoft.ContainerRegistry/registries/dashcred"
TARGET = ARM + "/Microsoft.ContainerRegistry/registries/dashtarget"
VAULT = ARM + "/Microsoft.KeyVault/vaults/dashkv"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 30_000  # ms, for expectations on the page
expect.set_options(timeout=TIMEOUT)
EVENTS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{registry}"
EVENTS += "/pipelineRuns/{name}/events"


@dataclass
class Setup:
    server: AirlockServer
    proxy: FaultProxy
    image_registry: str
    image: PushedArtifact
    out: Path
    inbox: Path
    owner: str
    export_id: str
    cred_export: dict[str, Any]
    import_id: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("dashboard")
    out, inbox, home = work / "out", work / "inbox", work / "home"
    for d in (out, inbox, home):
        d.mkdir()
    with (
        RegistryServer.start(work / "source", name="dash-source") as source,
        RegistryServer.start(work / "target", name="dash-target") as target,
        FaultProxy(source.url) as proxy,
    ):
        image = push_oci_image(source.url, "dash/app", "1", layers=4, layer_size=24 * 1024, seed=141)
        server = AirlockServer(home, trigger_interval=0.5).start()
        try:
            server.put(SOURCE, {"properties": {"loginServer": proxy.url}})
            export = server.put(
                SOURCE + "/exportPipelines/dashexport",
                {"properties": {"target": {"uri": out.as_uri()}, "options": ["OverwriteBlobs"]}},
            )
            # A registry whose password the pipeline's identity may not read: its runs fail, naming the fix.
            server.put(VAULT, {})
            server.put(VAULT + "/secrets/regpw", {"properties": {"value": "not-a-real-password"}})
            server.put(
                CRED,
                {
                    "properties": {
                        "loginServer": source.url,
                        "credentials": {
                            "username": "puller",
                            "passwordSecretUri": "https://dashkv.vault.azure.net/secrets/regpw",
                        },
                    }
                },
            )
            cred_export = server.put(
                CRED + "/exportPipelines/credexport",
                {"properties": {"target": {"uri": out.as_uri()}, "options": ["OverwriteBlobs"]}},
            )
            server.put(TARGET, {"properties": {"loginServer": target.url}})
            imp = server.put(
                TARGET + "/importPipelines/dashimport",
                {"properties": {"source": {"uri": inbox.as_uri()}, "options": ["OverwriteTags"]}},
            )
            owner = (home / "api-token").read_text().strip()
            yield Setup(server, proxy, source.url, image, out, inbox, owner, export["id"], cred_export, imp["id"])
        finally:
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def owner_context(browser: Browser, setup: Setup) -> Iterator[BrowserContext]:
    """One Owner session for the module (signing in is tested on its own)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    sign_in(context, setup.server.url, setup.owner).close()
    yield context
    context.close()


@pytest.fixture
def owner_page(owner_context: BrowserContext, setup: Setup) -> Iterator[Page]:
    page = owner_context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(setup.server.url + "/ui")
    yield page
    page.close()


def sign_in(context: BrowserContext, url: str, token: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(url + "/ui")
    expect(page).to_have_url(url + "/ui/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url + "/ui")
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def start_run(setup: Setup, registry: str, name: str, properties: dict[str, Any]) -> str:
    setup.server.put(f"{registry}/pipelineRuns/{name}", {"properties": properties})
    return f"/ui/runs/{SUB}/{RG}/{registry.rsplit('/', 1)[-1]}/{name}"


def export_request(setup: Setup, pipeline_id: str, blob: str) -> dict[str, Any]:
    return {
        "request": {"pipelineResourceId": pipeline_id, "artifacts": [setup.image.reference], "target": {"name": blob}}
    }


def run_state(setup: Setup, registry: str, name: str) -> str:
    state: str = setup.server.get(f"{registry}/pipelineRuns/{name}")["properties"]["provisioningState"]
    return state


def test_dashboard_sign_in_sets_httponly_samesite_cookie_and_no_token_in_url(browser: Browser, setup: Setup) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(setup.server.url + "/ui")
    shot(page, "signin")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API token").fill(setup.owner)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(setup.server.url + "/ui")
    assert setup.owner not in page.url
    session = next(c for c in context.cookies() if c["name"] == "airlock_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert setup.owner not in session["value"]  # encrypted, not the token itself
    assert "airlock_session" not in page.evaluate("document.cookie")  # no script can read it
    # Keyboard: the first Tab reaches the skip link, Enter moves to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    expect(page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Overview")).to_have_attribute(
        "aria-current", "page"
    )
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(setup.server.url + "/ui/signin")
    page.goto(setup.server.url + "/ui")
    expect(page).to_have_url(setup.server.url + "/ui/signin")  # signed out
    context.close()


def test_dashboard_csp_header_forbids_inline_script(owner_page: Page, setup: Setup) -> None:
    answer = httpx.get(setup.server.url + "/ui/signin")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    ran = owner_page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("securitypolicyviolation", (e) => resolve(`refused ${e.violatedDirective}`));
            const s = document.createElement("script");
            s.textContent = "window.__injected = true";
            document.body.appendChild(s);
            setTimeout(() => resolve(window.__injected ? "ran" : "silent"), 2000);
        })"""
    )
    assert ran.startswith("refused script-src"), ran


def test_dashboard_post_without_csrf_token_is_refused(owner_page: Page, setup: Setup) -> None:
    path = setup.import_id + API
    status = owner_page.evaluate(
        """async (path) => {
            const doc = await (await fetch(path)).json();
            const body = JSON.stringify({identity: doc.identity, properties: {source: doc.properties.source}});
            const put = await fetch(path, {method: "PUT", headers: {"Content-Type": "application/json"}, body});
            return [put.status, (await put.json()).error.code];
        }""",
        path,
    )
    assert status == [403, "CsrfTokenInvalid"]
    doc = setup.server.get(setup.import_id)
    assert doc["properties"]["trigger"]["sourceTrigger"]["status"] == "Enabled"  # nothing changed
    # The sign-out form without its field is refused too; the session is still there.
    cookie = next(c for c in owner_page.context.cookies() if c["name"] == "airlock_session")
    answer = httpx.post(setup.server.url + "/ui/signout", cookies={"airlock_session": cookie["value"]}, data={})
    assert answer.status_code == 403
    # Without a session and without a bearer token the API answers 401, as it always did.
    assert httpx.get(setup.server.url + setup.import_id + API).status_code == 401


def test_dashboard_shows_running_export_progress_advancing(owner_page: Page, setup: Setup) -> None:
    manifest, layer = threading.Event(), threading.Event()
    setup.proxy.add(Fault("GET", "/manifests/", hold=manifest))
    setup.proxy.add(Fault("GET", setup.image.blobs[-1][0], hold=layer))
    try:
        page_path = start_run(setup, SOURCE, "liverun1", export_request(setup, setup.export_id, "live.tar"))
        owner_page.goto(setup.server.url + page_path)
        expect(owner_page.locator("#run-percentage")).to_have_text("0%")
        owner_page.evaluate("window.__sameDocument = true")
        manifest.set()  # every blob but the held layer moves
        expect(owner_page.locator("#run-state")).to_have_text("Running")
        expect(owner_page.locator("#run-percentage")).to_have_text(re.compile(r"^([1-9]|[1-9][0-9])%$"))
        expect(owner_page.locator("#run-bytes")).to_contain_text(" of ")
        # Every blob but the held layer is written: the count stops one short of the total.
        expect(owner_page.locator("#run-blobs")).to_have_text(re.compile(r"^\d+ of [1-9]\d*$"))
        done, total = (int(n) for n in owner_page.locator("#run-blobs").inner_text().split(" of "))
        assert done < total, (done, total)
        expect(owner_page.locator("#run-rate")).to_contain_text("/s")
        assert owner_page.evaluate("window.__sameDocument") is True  # updated by the event stream, not a reload
        shot(owner_page, "run-progress")
    finally:
        manifest.set()
        layer.set()
    expect(owner_page.locator("#run-state")).to_have_text("Succeeded")  # the page reloads itself once it ends
    expect(owner_page.locator("#run-percentage")).to_have_text("100%")
    details = owner_page.locator("dl.details")
    expect(details).to_contain_text("sha256:")
    expect(details).to_contain_text("live.tar")
    expect(owner_page.locator("#run-artifact-rows")).to_contain_text(setup.image.reference)
    expect(owner_page.locator("#run-artifact-rows")).to_contain_text("done")
    assert (setup.out / "live.tar").exists()
    shot(owner_page, "run-finished")


def test_dashboard_failed_run_shows_error_and_rerun(owner_page: Page, setup: Setup) -> None:
    page_path = start_run(setup, CRED, "credrun1", export_request(setup, setup.cred_export["id"], "cred.tar"))
    wait_until(lambda: run_state(setup, CRED, "credrun1") == "Failed", timeout=60, what="the run to fail")
    owner_page.goto(setup.server.url + "/ui?state=Failed")
    row = owner_page.locator("tr", has_text="credrun1")
    expect(row).to_contain_text("lacks the 'get' permission")
    principal = setup.cred_export["identity"]["principalId"]
    expect(row.locator(".fix")).to_contain_text(f"airlock keyvault set-policy -n dashkv --object-id {principal}")
    shot(owner_page, "overview-failed")
    row.get_by_role("link", name="credrun1").click()
    error = owner_page.locator("#run-error")
    expect(error).to_contain_text("key vault dashkv")  # the whole message
    expect(error.locator(".fix")).to_contain_text("--secret-permissions get")
    shot(owner_page, "run-failed")
    # Apply the fix the page names, then re-run from the page (a new forceUpdateTag, through the API).
    policy = {
        "objectId": principal,
        "tenantId": setup.cred_export["identity"]["tenantId"],
        "permissions": {"secrets": ["get"]},
    }
    setup.server.put(VAULT + "/accessPolicies/add", {"properties": {"accessPolicies": [policy]}})
    before = setup.server.get(CRED + "/pipelineRuns/credrun1")["properties"]["forceUpdateTag"]
    owner_page.get_by_role("button", name=re.compile("Re-run")).click()
    expect(owner_page.locator("#run-state")).to_have_text("Succeeded")
    after = setup.server.get(CRED + "/pipelineRuns/credrun1")["properties"]
    assert after["forceUpdateTag"] != before and after["forceUpdateTag"].startswith("dashboard-")
    assert owner_page.url.endswith(page_path)


def test_dashboard_triggered_import_appears_by_itself(owner_page: Page, setup: Setup, tmp_path: Path) -> None:
    start_run(setup, SOURCE, "forimport1", export_request(setup, setup.export_id, "carry.tar"))
    wait_until(lambda: run_state(setup, SOURCE, "forimport1") == "Succeeded", timeout=60, what="the export")
    owner_page.goto(setup.server.url + "/ui/trigger")
    section = owner_page.locator("section", has_text="dashimport")
    expect(section).to_contain_text("Nothing passed over")
    (setup.inbox / "notes.txt").write_text("not an archive")
    # A multi-volume bundle of which only volume 2 has landed waits, and says for what.
    cli = Console(home=tmp_path, env={})
    bundle = tmp_path / "bundle.tar"
    source = ("--source-registry", setup.image_registry, "-a", setup.image.reference)
    cli.ok("export", *source, "--target", bundle.as_uri(), "--volume-size", "64KiB")
    shutil.copy(bundle.with_name("bundle.tar.002"), setup.inbox / "bundle.tar.002")
    shutil.copy(setup.out / "carry.tar", setup.inbox / "carry.tar")
    # No reload: the page re-reads its lists by itself.
    expect(section.locator("table.runs")).to_contain_text("dashimport_", timeout=TIMEOUT)
    expect(section.locator("table.runs")).to_contain_text("Succeeded", timeout=TIMEOUT)
    expect(section).to_contain_text("notes.txt")
    expect(section).to_contain_text("not a transfer blob")
    waiting = section.locator("table", has_text="Missing volumes")
    expect(waiting).to_contain_text("bundle.tar")
    expect(waiting).to_contain_text(" s (since ")
    shot(owner_page, "trigger")
    owner_page.goto(setup.server.url + "/ui")
    expect(owner_page.locator("#live-runs")).to_contain_text("dashimport_")
    shot(owner_page, "overview")
    narrow = owner_page.context.new_page()
    narrow.set_viewport_size({"width": 420, "height": 800})
    narrow.goto(setup.server.url + "/ui")
    expect(narrow.get_by_role("heading", name="Latest runs")).to_be_visible()
    shot(narrow, "overview-narrow")
    narrow.close()


def test_dashboard_trigger_toggle_goes_through_the_pipeline_api(owner_page: Page, setup: Setup) -> None:
    owner_page.goto(setup.server.url + "/ui/trigger")
    section = owner_page.locator("section", has_text="dashimport")
    section.get_by_role("button", name="Disable trigger").click()
    expect(section.get_by_role("button", name="Enable trigger")).to_be_visible()
    doc = setup.server.get(setup.import_id)
    assert doc["properties"]["trigger"]["sourceTrigger"]["status"] == "Disabled"
    assert doc["properties"]["source"]["uri"] == setup.inbox.as_uri()  # the rest of the pipeline kept
    section.get_by_role("button", name="Enable trigger").click()
    expect(section.get_by_role("button", name="Disable trigger")).to_be_visible()
    assert setup.server.get(setup.import_id)["properties"]["trigger"]["sourceTrigger"]["status"] == "Enabled"


def test_dashboard_reader_sees_no_actions_and_api_refuses(browser: Browser, setup: Setup, tmp_path: Path) -> None:
    cli = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": setup.server.url, "AIRLOCK_TOKEN": setup.owner})
    reader = cli.ok("token", "create", "--name", "dashreader", "--role", "Reader").json()["token"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = sign_in(context, setup.server.url, reader)
    expect(page.locator("header")).to_contain_text("Reader")
    expect(page.locator("#live-runs")).to_contain_text("credrun1")
    assert page.get_by_role("button", name=re.compile("trigger")).count() == 0
    page.goto(setup.server.url + f"/ui/runs/{SUB}/{RG}/dashsource/liverun1")
    expect(page.locator("#run-state")).to_have_text("Succeeded")
    assert page.locator("button[data-action]").count() == 0
    page.goto(setup.server.url + "/ui/trigger")
    assert page.locator("button[data-action]").count() == 0
    # The page offers nothing, and the API refuses the action anyway (with the session's CSRF header).
    refused = page.evaluate(
        """async (path) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const answer = await fetch(path, {method: "POST", headers: {"X-CSRF-Token": csrf}});
            return [answer.status, (await answer.json()).error.code];
        }""",
        SOURCE + "/pipelineRuns/liverun1/cancel" + API,
    )
    assert refused == [403, "AuthorizationFailed"]
    # A Reader reads the audit trail, as the API lets it, and may download it.
    page.goto(setup.server.url + "/ui/audit")
    expect(page.locator("#audit-chain h2")).to_have_text("✔ Chain verified")
    expect(page.locator("#audit-entries tbody")).to_contain_text("pipelineRuns.write")
    assert page.request.get(setup.server.url + "/ui/audit/export").status == 200
    page.goto(setup.server.url + "/ui/throughput?window=1h")
    expect(page.locator("svg.chart.rate title").first).to_contain_text("MB/s")
    expect(page.locator("details table tbody tr").first).not_to_contain_text("No run ended")
    shot(page, "throughput")
    # Revoking the token ends its sessions at once.
    cli.ok("token", "revoke", "--name", "dashreader")
    page.goto(setup.server.url + "/ui")
    expect(page).to_have_url(setup.server.url + "/ui/signin")
    context.close()


def test_run_events_stream_route_emits_progress(setup: Setup) -> None:
    hold = threading.Event()
    setup.proxy.add(Fault("GET", setup.image.blobs[-1][0], hold=hold))
    start_run(setup, SOURCE, "streamrun1", export_request(setup, setup.export_id, "stream.tar"))
    events: list[tuple[str, Any]] = []
    url = setup.server.url + SOURCE + "/pipelineRuns/streamrun1/events" + API
    headers = {"Authorization": f"Bearer {setup.owner}"}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=60) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
                    progress = events[-1][1].get("properties", {}).get("response", {}).get("progress", {})
                    if kind == "run" and 0 < int(progress.get("percentage", 0)) < 100:
                        hold.set()  # seen mid-way: let it finish
                    if kind == "end":
                        break
    finally:
        hold.set()
    runs = [doc for kind, doc in events if kind == "run"]
    percentages = [int(d["properties"]["response"]["progress"]["percentage"]) for d in runs]
    assert percentages == sorted(percentages) and percentages[-1] == 100 and any(0 < p < 100 for p in percentages)
    assert runs[-1]["properties"]["provisioningState"] == "Succeeded" and events[-1][0] == "end"
    last = runs[-1]["properties"]["response"]["progress"]
    assert last["bytesDone"] == last["bytesTotal"] > 0 and last["artifactsDone"] == 1
    # Authorized like GET of the run (a Reader may follow it); documented in the OpenAPI.
    reader = setup.server.http.post("/airlock/tokens", json={"name": "streamreader", "role": "Reader"}).json()
    ended = httpx.get(url, headers={"Authorization": f"Bearer {reader['token']}"}, timeout=30)
    assert ended.status_code == 200 and ended.text.rstrip().endswith("event: end\ndata: {}")
    assert ended.text.count("event: run\n") == 1  # an ended run: sent once, then the stream ends
    assert httpx.get(url).status_code == 401
    assert httpx.get(url.replace("streamrun1", "norun1"), headers=headers).status_code == 404
    spec = setup.server.http.get("/openapi.json").json()
    operation = spec["paths"][EVENTS]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]


def test_dashboard_audit_page_shows_entries_chain_status_and_exports_jsonl(
    owner_page: Page, setup: Setup, tmp_path: Path
) -> None:
    owner_page.goto(setup.server.url + "/ui/audit")
    expect(owner_page.locator("#audit-chain h2")).to_have_text("✔ Chain verified")  # said in words, not colour
    head = owner_page.locator("#audit-head").inner_text()
    rows = owner_page.locator("#audit-entries tbody tr")
    expect(rows.first).to_be_visible()
    seqs = [int(s) for s in rows.locator("td:first-child").all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 10  # newest first
    run = rows.filter(has_text="export.run").filter(has_text="liverun1")
    expect(run).to_contain_text(setup.image.reference)
    expect(run).to_contain_text(re.compile(r"sha256:[0-9a-f]{12}\b"))  # digests shortened
    expect(run.locator("td[data-label=Time]")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    failed = rows.filter(has_text="credrun1").filter(has_text="Failed: ")  # before its fix and re-run
    expect(failed).to_contain_text("lacks the 'get' permission")
    assert "not-a-real-password" not in owner_page.content()  # the vault secret's URI at most, never its value
    shot(owner_page, "audit-all")
    # The filters are a labelled GET form, driven by the keyboard.
    owner_page.get_by_label("Action").fill("export.run")
    owner_page.get_by_label("Action").press("Enter")
    expect(owner_page).to_have_url(re.compile(r"/ui/audit\?.*\baction=export\.run$"))
    actions = rows.locator("td[data-label=Action]").all_inner_texts()
    assert actions and set(actions) == {"export.run"}
    shot(owner_page, "audit")
    owner_page.get_by_label("Action").fill("")
    owner_page.get_by_label("Since (UTC)").fill("2000-01-01")
    owner_page.get_by_role("button", name="Filter").click()
    expect(owner_page).to_have_url(re.compile(r"\?since=2000-01-01&until=&action=$"))
    # The period's export: a download through the session (no token in the URL), the JSONL of `audit export`.
    with owner_page.expect_download() as download:
        owner_page.get_by_role("link", name="Export this period as JSON lines").click()
    assert download.value.suggested_filename == "airlock-audit-2000-01-01-now.jsonl"
    assert setup.owner not in download.value.url
    path = tmp_path / "period.jsonl"
    download.value.save_as(path)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines][: len(seqs)] == sorted(seqs) and head in path.read_text()
    assert "not-a-real-password" not in path.read_text()
    cli = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": setup.server.url, "AIRLOCK_TOKEN": setup.owner})
    assert cli.ok("audit", "export", "--since", "2000-01-01").stdout.startswith(path.read_text())
    checked = cli.ok("audit", "verify", "--file", path).json()
    assert checked["verified"] is True and checked["entries"] == len(lines)
    # A time that does not parse is said in one line, on the page and by the export; no session, no export.
    owner_page.goto(setup.server.url + "/ui/audit?since=yesterday")
    expect(owner_page.get_by_role("alert")).to_have_text(re.compile(r"^since 'yesterday' is not an ISO 8601 time"))
    assert owner_page.request.get(setup.server.url + "/ui/audit/export?until=soon").status == 400
    anonymous = httpx.get(setup.server.url + "/ui/audit/export")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/signin"


def test_dashboard_audit_page_shows_a_broken_chain(owner_page: Page, setup: Setup) -> None:
    db = sqlite3.connect(setup.server.home / "airlock.db", isolation_level=None)
    (principal, until) = db.execute("SELECT principal, time FROM audit_entries WHERE seq = 3").fetchone()
    db.execute("UPDATE audit_entries SET principal = 'token:someone-else' WHERE seq = 2")
    try:
        owner_page.goto(setup.server.url + "/ui/audit?" + urlencode({"until": until}))
        chain = owner_page.locator("#audit-chain")
        expect(chain.locator("h2")).to_have_text("✘ Chain broken at entry 2")
        expect(chain).to_contain_text("audit entry 2 was edited (its content does not hash to its hash)")
        broken = owner_page.locator("#audit-entries tr.broken")
        expect(broken).to_contain_text("token:someone-else")
        expect(broken.locator("td").first).to_have_text("2 broken")
        shot(owner_page, "audit-broken")
    finally:
        db.execute("UPDATE audit_entries SET principal = ? WHERE seq = 2", (principal,))
        db.close()
    owner_page.reload()
    expect(owner_page.locator("#audit-chain h2")).to_have_text("✔ Chain verified")
