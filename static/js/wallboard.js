/* The manager's wallboard: every agent and line of the campaign, live; the rates refreshed as calls end.
 * Renders from the socket's snapshot and versioned events; pausing/resuming goes through the JSON API. */
(function () {
  "use strict";

  const D = window.Dialer;
  const cfg = JSON.parse(document.getElementById("wallboard-config").textContent);
  const $ = (id) => document.getElementById(id);

  const AGENT_STATES = {offline: "Offline", ready: "Ready", on_call: "On a call", wrap_up: "Wrap-up", paused: "Paused"};
  const store = new D.VersionedStore();
  const state = {stats: null, busy: false};

  const socket = new D.LiveSocket(cfg.wsPath, {
    onSnapshot: (snapshot) => {
      store.replace([snapshot.campaign, ...snapshot.agents, ...snapshot.calls,
                     ...(snapshot.dialing ? [snapshot.dialing] : [])]);
      state.stats = snapshot.stats;
      render();
    },
    onEvent: (event) => {
      if (!store.apply(event)) return;
      if (event.type === "campaign" && event.status === "ended") {
        socket.reconnectNow(); // ending signs every agent out at once: take the fresh picture
        return;
      }
      // Ended calls and agents leaving wrap-up (a disposition) move the rates: fetch them again.
      if ((event.type === "call" && event.state === "ended") || event.type === "agent") refreshStats();
      render();
    },
    onStatus: ({state: socketState, text}) => {
      $("socket-state").textContent = socketState === "live" ? "connected" : text;
      $("socket-dot").dataset.tone = {live: "ok", refused: "problem"}[socketState] || "warn";
    },
    onRefused: (code, text) => showAlert(text),
  }, {refreshEveryMs: 60000});

  const refreshStats = D.debounce(async () => {
    try {
      state.stats = (await D.api.get(cfg.statsUrl)).stats;
      renderStats();
    } catch (err) {
      /* retried on the next event or tick */
    }
  }, 1000);

  function showAlert(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
  }

  function since(iso) {
    const at = Date.parse(iso || "");
    return Number.isNaN(at) ? 0 : (socket.serverNow() - at) / 1000;
  }

  function agentName(id) {
    const agent = store.get("agent", id);
    return agent ? agent.name : null;
  }

  function liveCalls() {
    return store.all("call").filter((c) => c.state !== "ended").sort((a, b) => a.id - b.id);
  }

  function waiting(call) {
    return call.state === "answered" && D.isHuman(call) && !call.bridged_to;
  }

  // -- actions --------------------------------------------------------------------------------------------------

  // The campaign's allowed moves come from the server's transition table (campaigns/states.py), not from here.
  function nextStatus(status) {
    const allowed = cfg.transitions[status] || [];
    const wanted = status === "running" ? "paused" : "running";
    return allowed.includes(wanted) ? wanted : null;
  }

  async function toggleCampaign() {
    const c = store.get("campaign", cfg.campaignId);
    if (!c || state.busy) return;
    const next = nextStatus(c.status);
    if (!next) return;
    state.busy = true;
    render();
    try {
      $("alert").hidden = true;
      const data = await D.api.post(cfg.api.status, {status: next});
      const fresh = data.campaign;
      // The socket's campaign event confirms it; show the answer at once meanwhile.
      store.apply({...c, status: fresh.status, version: c.version});
    } catch (err) {
      showAlert(`Could not ${next === "paused" ? "pause" : "resume"} the campaign: ${err.message}`);
    } finally {
      state.busy = false;
      render();
    }
  }

  // -- rendering -------------------------------------------------------------------------------------------------

  function render() {
    renderCampaign();
    renderTiles();
    renderAgents();
    renderCalls();
    renderStats();
    tick();
  }

  function renderCampaign() {
    const c = store.get("campaign", cfg.campaignId);
    if (!c) return;
    const badge = $("campaign-status");
    badge.textContent = {draft: "Draft", running: "Running", paused: "Paused", ended: "Ended"}[c.status] || c.status;
    badge.className = `badge badge-${c.status}`;
    const button = $("btn-campaign");
    button.textContent = {running: "Pause campaign", paused: "Resume campaign", draft: "Start campaign",
                          ended: "Campaign ended"}[c.status];
    button.className = c.status === "running" ? "button button-quiet" : "button button-primary";
    button.disabled = state.busy || !nextStatus(c.status);
    const dialing = store.get("dialing", cfg.campaignId);
    const held = dialing && dialing.held;
    $("campaign-hint").textContent = c.status === "running" && held ? held.text : {
      running: "Dialing. Pausing stops new dials; calls in progress carry on.",
      paused: "Paused: no new dials.",
      draft: "Not started yet.",
      ended: "This campaign has ended.",
    }[c.status];
    const warning = $("opt-out-warning");
    warning.hidden = !c.abandon_cap_opt_out;
    warning.textContent = c.abandon_cap_opt_out ?
      "The abandonment cap does not hold back parallel dialing here: a manager opted this campaign out." : "";
  }

  function renderTiles() {
    const agents = store.all("agent");
    const count = (st) => agents.filter((a) => a.state === st).length;
    const working = agents.filter((a) => a.state !== "offline").length;
    $("tile-agents").textContent = String(working);
    $("tile-agents-note").textContent =
      `${count("ready")} ready · ${count("on_call")} on a call · ${count("wrap_up")} wrap-up · ${count("paused")} paused`;
    const live = liveCalls();
    $("tile-lines").textContent = String(live.length);
    const ringing = live.filter((c) => ["created", "dialing", "ringing"].includes(c.state)).length;
    const detecting = live.filter((c) => c.state === "answered" && !c.answered_by).length;
    const talking = live.filter((c) => c.state === "connected").length;
    $("tile-lines-note").textContent = `${ringing} dialing · ${detecting} detecting · ${talking} talking`;
    $("tile-waiting").textContent = String(live.filter(waiting).length);
  }

  function renderAgents() {
    const body = $("agents");
    const agents = store.all("agent").sort((a, b) => (a.state === "offline") - (b.state === "offline") ||
                                                       a.name.localeCompare(b.name));
    const live = liveCalls();
    const rows = agents.map((agent) => {
      const lines = live.filter((c) => c.dialed_for === agent.id).length;
      const talking = live.find((c) => c.bridged_to === agent.id && ["bridging", "connected"].includes(c.state));
      let label = AGENT_STATES[agent.state] || agent.state;
      if (agent.state === "paused" && agent.pause_reason) label += ` (${agent.pause_reason})`;
      return D.el("tr", {dataset: {agentId: agent.id, state: agent.state}},
        D.el("th", {scope: "row"}, agent.name),
        D.el("td", {}, D.el("span", {className: "state-pill", dataset: {state: agent.state}}, label)),
        D.el("td", {}, D.el("span", {className: "timer", "aria-hidden": "true",
                                     dataset: {since: agent.state !== "offline" ? agent.state_changed_at || "" : ""}})),
        D.el("td", {}, agent.state === "offline" ? "–" : agent.in_room ? "In room" : "Not connected"),
        D.el("td", {}, String(lines)),
        D.el("td", {}, talking ? talking.contact.name || talking.contact.phone : "–"));
    });
    body.replaceChildren(...rows);
    $("agents-empty").hidden = rows.length > 0;
  }

  function renderCalls() {
    const rows = liveCalls().map((call) => {
      const info = D.describeLine(call, null, agentName);
      return D.el("tr", {dataset: {callId: call.id, tone: info.tone}},
        D.el("th", {scope: "row"}, call.contact.name || call.contact.phone,
             D.el("span", {className: "meta"}, call.contact.name ? ` ${call.contact.phone}` : "")),
        D.el("td", {}, D.el("span", {className: "line-label", dataset: {tone: info.tone}}, info.label)),
        D.el("td", {}, D.el("span", {className: "timer", "aria-hidden": "true", dataset: {since: info.since || ""}})),
        D.el("td", {}, call.dialed_for ? agentName(call.dialed_for) || "–" : "pool"));
    });
    $("calls").replaceChildren(...rows);
    $("calls-empty").hidden = rows.length > 0;
  }

  function renderStats() {
    const stats = state.stats;
    if (!stats) return;
    const {abandonment, today, last_hour: hour} = stats;
    const cap = abandonment.cap;
    const rolling = abandonment.rolling_30d;
    const day = abandonment.today;
    $("tile-abandon-today").textContent = D.percent(day.rate);
    const over = rolling.rate > cap;
    const near = !over && rolling.rate > 0.8 * cap;
    $("tile-abandon").dataset.tone = over ? "problem" : near ? "warn" : "ok";
    $("tile-abandon-note").textContent =
      `${day.abandoned} of ${day.humans} people · 30 days ${D.percent(rolling.rate)} · cap ${D.percent(cap)}` +
      (over ? " — over the cap" : near ? " — near the cap" : "");
    $("rate-abandon-30d").textContent = `${D.percent(rolling.rate)} (${rolling.abandoned} of ${rolling.humans})` +
      (over ? " — over the cap" : "");
    $("rate-cap").textContent = D.percent(cap);
    $("rate-dials").textContent = String(hour.dials);
    $("rate-humans").textContent = String(hour.humans);
    $("rate-conversations").textContent = String(hour.conversations);
    $("rate-today").textContent = `${today.dials} · ${today.humans} · ${today.conversations}`;
    $("rate-talk").textContent = D.duration(today.talk_s);
    const asOf = new Date(stats.as_of);
    $("stats-as-of").textContent = `Rates as of ${asOf.toLocaleTimeString()}.`;
  }

  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = node.dataset.since ? D.clock(since(node.dataset.since)) : "";
    }
  }

  $("btn-campaign").addEventListener("click", toggleCampaign);
  $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
  setInterval(tick, 1000);
  setInterval(refreshStats, 30000);
  socket.start();
  window.dialerWallboard = {store, state, socket};
})();
