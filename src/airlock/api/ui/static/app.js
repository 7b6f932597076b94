// The dashboard's one script: live run updates from the API's server-sent event stream, and the
// actions (re-run, cancel, trigger on/off) through the JSON API's own routes. The session cookie
// authenticates (the page never sees the token); the CSRF header comes from the page's <meta>.
(() => {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const API_VERSION = meta("api-version");
  const TERMINAL = ["Succeeded", "Failed", "Canceled"];
  const REFRESH_MS = 3000;

  function say(message, isError) {
    const el = document.getElementById("status");
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("error", Boolean(isError));
  }

  function size(n) {
    let value = Number(n) || 0;
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (value < 1024 || unit === "GiB") return unit === "B" ? `${value.toFixed(0)} B` : `${value.toFixed(1)} ${unit}`;
      value /= 1024;
    }
    return `${value.toFixed(1)} TiB`;
  }

  async function api(method, path, body) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": meta("csrf-token") },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const answer = await fetch(`${path}?api-version=${encodeURIComponent(API_VERSION)}`, options);
    let doc = null;
    try { doc = await answer.json(); } catch (_) { doc = null; }
    if (!answer.ok) {
      const message = doc && doc.error && doc.error.message ? doc.error.message : `${answer.status} ${answer.statusText}`;
      throw new Error(message);
    }
    return doc;
  }

  const actions = {
    async rerun(button) {
      const run = await api("GET", button.dataset.run);
      await api("PUT", button.dataset.run, {
        properties: { request: run.properties.request, forceUpdateTag: `dashboard-${Date.now()}` },
      });
      return "run started again";
    },
    async cancel(button) {
      await api("POST", `${button.dataset.run}/cancel`);
      return "cancel requested: the run stops at its next check";
    },
    async trigger(button) {
      const pipeline = await api("GET", button.dataset.pipeline);
      const properties = Object.assign({}, pipeline.properties);
      delete properties.warnings;
      properties.trigger = { sourceTrigger: { status: button.dataset.enable === "true" ? "Enabled" : "Disabled" } };
      await api("PUT", button.dataset.pipeline, { identity: pipeline.identity, properties });
      return `trigger ${properties.trigger.sourceTrigger.status.toLowerCase()}`;
    },
  };

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !actions[button.dataset.action]) return;
    button.disabled = true;
    say("working…");
    try {
      say(await actions[button.dataset.action](button));
      window.setTimeout(() => window.location.reload(), 300);
    } catch (error) {
      say(`refused: ${error.message}`, true);
      button.disabled = false;
    }
  });

  // -- lists that keep themselves current: [data-live] elements are re-read from the page every few seconds
  const live = document.querySelectorAll("[data-live]");
  if (live.length) {
    window.setInterval(async () => {
      if (document.hidden) return;
      const answer = await fetch(window.location.href, { credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      live.forEach((el) => {
        const now = fresh.getElementById(el.id);
        if (now && now.innerHTML !== el.innerHTML) el.innerHTML = now.innerHTML;
      });
    }, REFRESH_MS);
  }

  // -- a run's page: follow it live ----------------------------------------------------------------
  // The rate over the last RATE_WINDOW_MS (so a stalled run shows as stalled, not at its average
  // speed) and the ETA at that rate; recomputed every second between events.
  const RATE_WINDOW_MS = 10000;
  const samples = []; // [time in ms, bytes done], oldest first
  let totalBytes = 0;
  function rate() {
    if (!samples.length) return;
    const now = Date.now();
    const done = samples[samples.length - 1][1];
    // Keep one sample from before the window's start, so that the window is covered.
    while (samples.length > 1 && samples[1][0] <= now - RATE_WINDOW_MS) samples.shift();
    const [since, from] = samples[0];
    const seconds = (now - since) / 1000;
    const perSecond = seconds > 0 ? (done - from) / seconds : 0;
    const ended = TERMINAL.includes(document.getElementById("run-state").textContent);
    document.getElementById("run-rate").textContent = `${size(perSecond)}/s`;
    let eta = "ended";
    if (!ended) eta = perSecond > 0 ? `${Math.max(0, Math.round((totalBytes - done) / perSecond))} s` : "stalled (no bytes lately)";
    document.getElementById("run-eta").textContent = eta;
  }

  function showState(state) {
    const stateEl = document.getElementById("run-state");
    stateEl.textContent = state;
    stateEl.className = `state state-${state.toLowerCase()}`;
  }

  function show(card, doc) {
    const ended = doc.properties.provisioningState !== "Creating";
    const state = ended ? doc.properties.provisioningState : document.getElementById("run-state").textContent;
    if (ended) showState(state);
    const response = doc.properties.response || {};
    const progress = response.progress || {};
    const pct = Number(progress.percentage || 0);
    document.getElementById("run-progress").value = pct;
    document.getElementById("run-percentage").textContent = `${pct}%`;
    if (progress.bytesTotal) {
      const done = Number(progress.bytesDone || 0);
      const total = Number(progress.bytesTotal);
      document.getElementById("run-bytes").textContent = `${size(done)} of ${size(total)}`;
      if (!samples.length && card.dataset.started) samples.push([Date.parse(card.dataset.started), 0]);
      samples.push([Date.now(), done]);
      totalBytes = total;
      rate();
    }
    const rows = document.querySelectorAll("#run-artifact-rows tr[data-artifact]");
    const finished = new Set([...(progress.doneArtifacts || []), ...(response.exportedArtifacts || []), ...(response.importedArtifacts || [])]);
    if (progress.blobsTotal) {
      document.getElementById("run-blobs").textContent = `${Number(progress.blobsDone || 0)} of ${Number(progress.blobsTotal)}`;
    }
    if (progress.artifactsDone !== undefined) {
      document.getElementById("run-artifacts").textContent = `${progress.artifactsDone} of ${rows.length || "?"}`;
    }
    rows.forEach((row) => {
      const cell = row.querySelector(".artifact-state");
      if (finished.has(row.dataset.artifact)) cell.textContent = "done";
      else if (state === "Running") cell.textContent = "in progress";
    });
    if (response.pipelineRunErrorMessage) {
      document.getElementById("run-error").hidden = false;
      document.getElementById("run-error-text").textContent = response.pipelineRunErrorMessage;
    }
  }

  const card = document.getElementById("run");
  if (card && !TERMINAL.includes(card.dataset.state) && window.EventSource) {
    const stream = new EventSource(`${card.dataset.runPath}/events?api-version=${encodeURIComponent(API_VERSION)}`);
    stream.addEventListener("state", (event) => {
      const { state, worker } = JSON.parse(event.data);
      if (state) showState(state);
      if (worker) document.getElementById("run-worker").textContent = worker;
    });
    stream.addEventListener("run", (event) => show(card, JSON.parse(event.data)));
    stream.addEventListener("end", () => { stream.close(); window.location.reload(); });
    stream.addEventListener("deleted", () => { stream.close(); say("the run's record was deleted", true); });
    const marker = document.getElementById("run-live");
    stream.addEventListener("open", () => { marker.textContent = "● live"; });
    stream.onerror = () => { marker.textContent = "reconnecting…"; };
    window.setInterval(() => rate(), 1000);
  }
})();
