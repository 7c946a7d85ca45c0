// modstream review UI: actions over the JSON API, keyboard shortcuts, blur, streamed analysis.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const itemEl = document.getElementById("item");
  const itemId = itemEl ? itemEl.dataset.item : null;
  let analysis = null;

  function say(message, isError) {
    const box = document.getElementById("status");
    if (!box) return;
    box.textContent = message;
    box.className = isError ? "error" : "ok";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || ("request failed: HTTP " + response.status));
    return data;
  }

  async function claimNext() {
    // On the queue page, "next" means next within the filtered view.
    const view = document.body.dataset.page === "queue" ? window.location.search : "";
    const data = await post("/api/claim-next" + view);
    if (!data.claimed) { say("The queue is empty."); return; }
    window.location.assign("/items/" + encodeURIComponent(data.claimed.item_id));
  }

  async function claim() {
    await post("/api/items/" + encodeURIComponent(itemId) + "/claim");
    window.location.reload();
  }

  async function release() {
    await post("/api/items/" + encodeURIComponent(itemId) + "/release");
    window.location.assign("/");
  }

  async function decide(verdict) {
    const categories = Array.from(document.querySelectorAll('input[name="category"]:checked'))
      .map(function (box) { return box.value; });
    const notes = document.getElementById("notes");
    const data = await post("/api/items/" + encodeURIComponent(itemId) + "/decide", {
      verdict: verdict, categories: categories, notes: notes ? notes.value : "",
    });
    say("Decided " + data.verdict + ".");
    window.location.assign("/?decided=" + encodeURIComponent(itemId));
  }

  function reveal() {
    const text = document.getElementById("post-text");
    if (text) text.classList.remove("blurred");
  }

  function toggleHelp(force) {
    const help = document.getElementById("help");
    if (!help) return;
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  function stopAnalysis(note) {
    if (!analysis) return;
    analysis.source.close();
    analysis = null;
    document.getElementById("analyze").disabled = false;
    document.getElementById("stop-analysis").disabled = true;
    if (note) say(note);
  }

  function startAnalysis() {
    if (analysis || !itemId) return;
    const out = document.getElementById("analysis-text");
    const ttft = document.getElementById("ttft");
    if (!out) return;
    out.textContent = "";
    ttft.textContent = "waiting for the first token…";
    const started = performance.now();
    const source = new EventSource("/api/items/" + encodeURIComponent(itemId) + "/analysis");
    analysis = { source: source };
    document.getElementById("analyze").disabled = true;
    document.getElementById("stop-analysis").disabled = false;
    source.addEventListener("first_token", function (event) {
      const server = JSON.parse(event.data).ttft_ms;
      ttft.textContent = "first token after " + Math.round(performance.now() - started) +
        " ms (model: " + server + " ms)";
      ttft.dataset.ttftMs = String(server);
    });
    source.addEventListener("delta", function (event) {
      out.textContent += JSON.parse(event.data).text;
    });
    source.addEventListener("done", function () {
      out.dataset.done = "true";
      stopAnalysis("Analysis complete.");
    });
    source.addEventListener("error", function (event) {
      let message = "Analysis failed or the connection dropped.";
      if (event.data) { try { message = JSON.parse(event.data).message; } catch (e) { /* keep */ } }
      stopAnalysis(message);
    });
  }

  async function logoutOthers() {
    const data = await post("/api/sessions/logout-others");
    say(data.ended === 1 ? "Logged out 1 other session." :
      "Logged out " + data.ended + " other sessions.");
  }

  const actions = {
    "logout-others": logoutOthers,
    "claim-next": claimNext,
    claim: claim,
    release: release,
    decide: function (el) { return decide(el.dataset.verdict); },
    reveal: reveal,
    help: function () { toggleHelp(); },
    analyze: startAnalysis,
    "stop-analysis": function () { stopAnalysis("Analysis stopped."); },
  };

  function run(name, el) {
    const action = actions[name];
    if (!action) return;
    Promise.resolve(action(el)).catch(function (err) { say(err.message, true); });
  }

  document.addEventListener("click", function (event) {
    const el = event.target.closest("[data-action]");
    if (el) run(el.dataset.action, el);
  });

  const appealForm = document.getElementById("appeal-form");
  if (appealForm) {
    appealForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const form = new FormData(appealForm);
      post("/api/appeals", { post_id: form.get("post_id"), statement: form.get("statement") })
        .then(function (data) {
          say(data.created ? "Appeal filed (item " + data.item_id + ")." : "This decision is already under appeal.");
        })
        .catch(function (err) { say(err.message, true); });
    });
  }

  const mine = itemEl && itemEl.dataset.mine === "true";
  const onItem = Boolean(itemEl);
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // Typing in a text field is never a shortcut; a focused checkbox does not block them.
    const tag = (event.target.tagName || "").toLowerCase();
    const type = (event.target.type || "").toLowerCase();
    if (tag === "textarea" || tag === "select") return;
    if (tag === "input" && type !== "checkbox" && type !== "radio") return;
    const keys = {
      "?": function () { toggleHelp(); },
      Escape: function () { toggleHelp(false); },
      n: function () { run("claim-next"); },
      q: function () { window.location.assign("/"); },
    };
    if (onItem) {
      keys.v = function () { reveal(); };
      keys.s = function () { if (analysis) stopAnalysis("Analysis stopped."); else startAnalysis(); };
      if (mine) {
        keys.a = function () { run("decide", { dataset: { verdict: "allow" } }); };
        keys.r = function () { run("decide", { dataset: { verdict: "remove" } }); };
        keys.u = function () { run("release"); };
      } else if (itemEl.dataset.state !== "decided") {
        keys.c = function () { run("claim"); };
      }
    }
    const handler = keys[event.key];
    if (handler) { event.preventDefault(); handler(); }
  });

  // Keep the lease alive while the reviewer has the item open.
  if (mine) {
    const every = Math.max(5, Number(itemEl.dataset.leaseSeconds) / 3) * 1000;
    window.setInterval(function () {
      post("/api/items/" + encodeURIComponent(itemId) + "/renew")
        .catch(function (err) { say(err.message, true); });
    }, every);
  }

  // Lead dashboard: the cost panel's window tabs (links that work without script too).
  const costTabs = Array.from(document.querySelectorAll("[data-cost-window]"));
  function showCost(name, focus) {
    costTabs.forEach(function (tab) {
      const on = tab.dataset.costWindow === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
      if (on && focus) tab.focus();
    });
  }
  costTabs.forEach(function (tab, i) {
    tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    tab.addEventListener("click", function (event) {
      event.preventDefault();
      showCost(tab.dataset.costWindow, false);
      history.replaceState(null, "", "/lead?cost=" + encodeURIComponent(tab.dataset.costWindow) + "#cost");
    });
    tab.addEventListener("keydown", function (event) {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = costTabs[(i + step + costTabs.length) % costTabs.length];
      showCost(next.dataset.costWindow, true);
    });
  });

  const params = new URLSearchParams(window.location.search);
  if (params.get("decided")) say("Decision recorded for item " + params.get("decided") + ".");
})();
