/* The agent console. Renders only from the socket's snapshot and versioned events (never from guesses), and
 * acts only through the JSON API. Page flow: join -> phone into the room -> live socket -> ready -> calls. */
(function () {
  "use strict";

  const D = window.Dialer;
  const cfg = JSON.parse(document.getElementById("console-config").textContent);
  const $ = (id) => document.getElementById(id);

  // Ended lines stay on the grid this long, so the agent sees how each line finished.
  const ENDED_LINE_KEEP_MS = 60000;
  const LIVE_CARD_STATES = ["bridging", "connected", "releasing"];
  const LINES_EMPTY = $("lines-empty").textContent;

  const AGENT_STATES = {
    offline: cfg.watchOnly
      ? ["Watching", "Not taking calls: you are not counted as an agent."]
      : ["Offline", "You are not working this campaign. Join to start."],
    ready: ["Ready", "Waiting for the next call."],
    on_call: ["On a call", ""],
    wrap_up: ["Wrap-up", "Write a disposition for your call."],
    paused: ["Paused", ""],
  };

  const state = {
    sessionId: null,
    softphone: null, // the join response's softphone block
    phone: {state: "off", text: "not connected yet"},
    store: new D.VersionedStore(),
    stats: null,
    busy: false,
    socketStarted: false,
    card: {callId: null, details: null, result: "", disposed: false},
    cards: new Map(), // call id -> Promise of the card JSON (prefetched when a human answers)
    lineNodes: new Map(),
  };

  /** Notes typed for a call survive a reload of the page (the call does) until its disposition is saved. */
  const drafts = {
    key: (callId) => `dialer.notes.${cfg.campaignId}.${callId}`,
    get(callId) {
      try {
        return window.localStorage.getItem(drafts.key(callId)) || "";
      } catch (err) {
        return ""; // storage disabled: notes still work, they just do not survive a reload
      }
    },
    set(callId, text) {
      try {
        if (text) window.localStorage.setItem(drafts.key(callId), text);
        else window.localStorage.removeItem(drafts.key(callId));
      } catch (err) {
        /* storage full or disabled */
      }
    },
    drop(callId) {
      drafts.set(callId, "");
    },
  };

  const socket = new D.LiveSocket(cfg.wsPath, {
    onSnapshot: (snapshot) => {
      if (snapshot.session) state.sessionId = snapshot.session.id;
      // A watching manager who took calls earlier and reloaded: reattach the phone to that session.
      if (cfg.watchOnly && !state.softphone && snapshot.session && snapshot.session.state !== "offline") join();
      const rows = [snapshot.campaign, ...snapshot.calls, ...(snapshot.recordings || []),
                    ...(snapshot.supervisions || [])];
      if (snapshot.dialing) rows.push(snapshot.dialing);
      if (snapshot.session) rows.push(snapshot.session);
      state.store.replace(rows);
      state.stats = snapshot.stats;
      render();
    },
    onEvent: (event) => {
      const isNew = event.type === "call" && !state.store.get("call", event.id);
      if (!state.store.apply(event)) return; // stale: we already hold something newer
      if (event.type === "campaign" && event.status === "ended") {
        socket.reconnectNow(); // ending signs every agent out at once: take the fresh picture
        return;
      }
      if (isNew || (event.type === "call" && (event.state === "ended" || event.state === "connected"))) refreshStats();
      render();
    },
    onStatus: ({state: socketState, text}) => {
      $("socket-state").textContent = socketState === "live" ? "connected" : text;
      $("socket-dot").dataset.tone = {live: "ok", refused: "problem"}[socketState] || "warn";
    },
    onRefused: (code, text) => showAlert(text),
  }, {presencePing: true}); // the console's pings are its presence heartbeat: no pings, no customers

  const phone = new D.Softphone({
    config: cfg.softphone,
    tokenUrl: cfg.api.token,
    onState: (phoneState) => {
      state.phone = phoneState;
      renderPhone();
    },
  });

  // -- reading the store --------------------------------------------------------------------------------------

  /** The recording of a call, as its last event said (events only: a reload shows it from the next change). */
  function recordingOf(callId) {
    return state.store.all("recording").find((r) => r.call === callId) || null;
  }

  function session() {
    return state.sessionId ? state.store.get("agent", state.sessionId) : null;
  }

  function campaign() {
    return state.store.get("campaign", cfg.campaignId);
  }

  function myCalls() {
    const me = state.sessionId;
    return state.store.all("call").filter((c) => me !== null && (c.dialed_for === me || c.bridged_to === me));
  }

  function since(iso) {
    const at = Date.parse(iso || "");
    return Number.isNaN(at) ? 0 : (socket.serverNow() - at) / 1000;
  }

  /** The call the card is about: a live one bridged to me, else (in wrap-up) the talk awaiting a disposition. */
  function cardCall() {
    const mine = myCalls().filter((c) => c.bridged_to === state.sessionId).sort((a, b) => b.id - a.id);
    const live = mine.find((c) => LIVE_CARD_STATES.includes(c.state));
    if (live) return live;
    const s = session();
    if (s && (s.state === "wrap_up" || s.state === "on_call")) {
      return mine.find((c) => c.state === "ended" && c.outcome === "talked") || null;
    }
    return null;
  }

  // -- actions (HTTP API only) --------------------------------------------------------------------------------

  function showAlert(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
  }

  function hideAlert() {
    $("alert").hidden = true;
  }

  /** Apply the session an API answer returns right away; the socket's event (same version) agrees later. */
  function applySession(json) {
    if (!json) return;
    const held = state.store.get("agent", json.id) || {};
    state.store.apply({...held, ...json, type: "agent"});
  }

  async function act(failure, url, body) {
    if (state.busy) return null;
    state.busy = true;
    render();
    try {
      hideAlert();
      const data = await D.api.post(url, body);
      applySession(data.session);
      return data;
    } catch (err) {
      showAlert(`${failure}: ${err.message}`);
      return null;
    } finally {
      state.busy = false;
      render();
    }
  }

  // A watching manager who chose to take calls stays an agent across a reload of this tab (the tab-closed beacon
  // cannot tell a reload from a close): the choice is kept for the tab's life only.
  const TAKING_CALLS = `dialer.taking-calls.${cfg.campaignId}`;

  async function join() {
    const data = await act("Could not join the campaign", cfg.api.join);
    if (data) {
      if (cfg.watchOnly) sessionStorage.setItem(TAKING_CALLS, "1");
      const changed = state.sessionId !== data.session.id;
      state.sessionId = data.session.id;
      state.softphone = data.softphone;
      // The socket subscribes to the agent's own lines by session: (re)open it once the session exists.
      if (state.socketStarted && changed) socket.reconnectNow();
      connectPhone();
    }
    if (!state.socketStarted) {
      state.socketStarted = true;
      socket.start();
    }
  }

  async function connectPhone() {
    if (!state.softphone || !state.sessionId) return;
    try {
      await phone.start(state.softphone, state.sessionId);
    } catch (err) {
      /* shown by the phone's state */
    }
  }

  async function reconnectPhone() {
    if (state.softphone && !state.softphone.sandbox) {
      try {
        state.softphone = (await D.api.post(cfg.api.token)).softphone; // a fresh token
      } catch (err) {
        showAlert(`Could not reconnect the phone: ${err.message}`);
        return;
      }
    }
    await connectPhone();
  }

  async function leave() {
    const data = await act("Could not leave", cfg.api.leave);
    if (data) {
      sessionStorage.removeItem(TAKING_CALLS);
      await phone.stop();
    }
  }

  const refreshStats = D.debounce(async () => {
    try {
      state.stats = (await D.api.get(cfg.statsUrl)).stats;
      renderStats();
    } catch (err) {
      /* the next event or snapshot tries again */
    }
  }, 700);

  function codeInfo(code) {
    return cfg.codes.find((c) => c.code === code);
  }

  function defaultCallbackTime() {
    const at = new Date(Date.now() + 24 * 3600 * 1000);
    at.setMinutes(0, 0, 0);
    const local = new Date(at.getTime() - at.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  }

  const CALLBACK_FORMAT = {weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit"};

  /** "= Tue, Mar 4, 9:30 AM for the contact (Chicago)" for the callback time the agent picked (their own clock), at the contact. */
  function renderCallbackTheirTime() {
    const out = $("callback-their-time");
    const at = new Date($("callback-at").value);
    const zone = $("card-local-time").dataset.zone;
    if (!$("callback-at").value || Number.isNaN(at.getTime()) || !zone) {
      setText(out, "");
      return;
    }
    try {
      const time = new Intl.DateTimeFormat(undefined, {...CALLBACK_FORMAT, timeZone: zone}).format(at);
      setText(out, `= ${time} for the contact (${zone.split("/").pop().replace(/_/g, " ")})`);
    } catch (err) {
      setText(out, "");
    }
  }

  async function dispose(code) {
    const info = codeInfo(code);
    if (!info || $("dispositions").disabled || state.card.disposed) return;
    const body = {code, notes: $("notes").value, call_id: state.card.callId};
    if (info.schedules_callback) {
      const input = $("callback-at");
      if ($("callback-row").hidden || $("callback-row").dataset.code !== code) {
        $("callback-row").hidden = false;
        $("callback-row").dataset.code = code;
        if (!input.value) input.value = defaultCallbackTime();
        renderCallbackTheirTime();
        input.focus();
        return;
      }
      const at = new Date(input.value);
      if (!input.value || Number.isNaN(at.getTime())) {
        showAlert("Choose when to call back first.");
        input.focus();
        return;
      }
      body.callback_at = at.toISOString();
    }
    const data = await act("Could not save the disposition", cfg.api.disposition, body);
    if (data) {
      state.card.disposed = true;
      drafts.drop(state.card.callId);
      const theirs = $("callback-their-time").textContent;
      const mine = body.callback_at ? new Intl.DateTimeFormat(undefined, CALLBACK_FORMAT).format(new Date(body.callback_at)) : "";
      state.card.result = `Saved as “${info.label}”.` + (mine ? ` Callback ${mine} your time${theirs ? ` ${theirs}` : ""}.` : "");
      $("callback-row").hidden = true;
      refreshStats();
      render();
    }
  }

  // -- rendering ----------------------------------------------------------------------------------------------

  function render() {
    renderCampaign();
    renderAgent();
    renderLines();
    renderCard();
    renderSupervision();
    renderPhone();
    renderStats();
    tick();
  }

  function renderCampaign() {
    const c = campaign();
    if (!c) return;
    const badge = $("campaign-status");
    badge.textContent = {draft: "Draft", running: "Running", paused: "Paused", ended: "Ended"}[c.status] || c.status;
    badge.className = `badge badge-${c.status}`;
    const banner = $("campaign-banner");
    const text = {
      paused: "A manager paused this campaign: no new calls are dialed. Calls in progress carry on.",
      ended: "This campaign has ended.",
      draft: "This campaign has not started yet.",
    }[c.status];
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  function renderAgent() {
    const s = session();
    const c = campaign();
    const st = s ? s.state : "offline";
    const [label, hint] = AGENT_STATES[st] || [st, ""];
    let detail = hint;
    const held = dialingHeld();
    if (st === "ready" && held && !myCalls().some((call) => call.state !== "ended")) {
      detail = held.text; // the dial gate's own words: why no line is coming
    }
    if (st === "paused") {
      detail = {joining: "Press “Go ready” when you are set.", "after call": "Paused after your call."}[s.pause_reason] ||
        `Reason: ${s.pause_reason || "break"}.`;
    }
    $("agent-state").dataset.state = st;
    $("agent-state-label").textContent = label;
    $("agent-state-detail").textContent = detail;
    const timer = $("agent-state-timer");
    // On a call the card's clock is the one clock for the call: a second one here would disagree with it.
    timer.dataset.since = s && st !== "offline" && st !== "on_call" ? s.state_changed_at || "" : "";
    if (!timer.dataset.since) timer.textContent = "";

    const running = c && c.status === "running";
    const ended = c && c.status === "ended";
    const busy = state.busy;
    $("btn-join").hidden = st !== "offline";
    // A watching manager has no agent controls to press until they take calls.
    const watching = cfg.watchOnly && st === "offline";
    for (const id of ["btn-pause", "pause-reason", "btn-dial-next", "btn-leave"]) $(id).classList.toggle("watch-hidden", watching);
    setText($("lines-empty"), watching ? "You are watching, not taking calls. The wallboard shows every agent and line."
      : LINES_EMPTY);
    $("btn-join").disabled = busy || ended;
    $("btn-ready").hidden = st === "offline";
    $("btn-ready").disabled = busy || ended || !(st === "paused");
    $("btn-pause").disabled = busy || st !== "ready";
    $("pause-reason").disabled = st === "offline" || st === "on_call";
    const leaveWhy = {on_call: "Hang up your call before you leave.",
                      wrap_up: "Save a disposition for your call before you leave."}[st] || "";
    $("btn-leave").disabled = busy || st === "offline" || Boolean(leaveWhy);
    $("btn-leave").title = leaveWhy;
    setText($("leave-why"), leaveWhy);
    const liveLines = myCalls().filter((call) => call.dialed_for === state.sessionId && call.state !== "ended");
    $("btn-dial-next").disabled = busy || !running || !(st === "ready" || st === "paused") || liveLines.length > 0;
  }

  function dialingHeld() {
    const dialing = state.store.get("dialing", cfg.campaignId);
    return dialing ? dialing.held : null;
  }

  function renderLines() {
    const me = state.sessionId;
    const now = socket.serverNow();
    const calls = myCalls()
      .filter((c) => c.state !== "ended" || now - Date.parse(c.ended_at || 0) < ENDED_LINE_KEEP_MS ||
                     (state.card.callId === c.id && c.bridged_to === me))
      .sort((a, b) => (a.state === "ended") - (b.state === "ended") || a.id - b.id);
    const list = $("lines");
    const keep = new Set(calls.map((c) => c.id));
    for (const [id, node] of state.lineNodes) {
      if (!keep.has(id)) {
        node.remove();
        state.lineNodes.delete(id);
      }
    }
    calls.forEach((call, index) => {
      let node = state.lineNodes.get(call.id);
      if (!node) {
        node = D.el("li", {className: "line", dataset: {callId: call.id}},
          D.el("div", {className: "line-who"},
            D.el("span", {className: "line-name"}), D.el("span", {className: "line-phone meta"})),
          D.el("div", {className: "line-status"},
            D.el("span", {className: "line-label"}), D.el("span", {className: "timer line-timer", "aria-hidden": "true"})));
        state.lineNodes.set(call.id, node);
      }
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
      const info = D.describeLine(call, me);
      setText(node.querySelector(".line-name"), call.contact.name || call.contact.phone);
      setText(node.querySelector(".line-phone"), call.contact.name ? call.contact.phone : call.contact.company);
      setText(node.querySelector(".line-label"), info.label);
      node.dataset.tone = info.tone;
      node.dataset.state = call.state;
      const timer = node.querySelector(".line-timer");
      const clock = D.callClock(call, info);
      timer.dataset.since = clock.since || "";
      if (!clock.since) setText(timer, clock.text);
    });
    $("lines-empty").hidden = calls.length > 0;
    tick();
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function loadCard(callId) {
    if (!state.cards.has(callId)) {
      const promise = D.api.get(cfg.cardUrl.replace("{call}", callId)).catch((err) => {
        state.cards.delete(callId);
        throw err;
      });
      state.cards.set(callId, promise);
    }
    return state.cards.get(callId);
  }

  function prefetchCards() {
    // A human answered one of my lines: fetch the card now so it pops complete the moment they are bridged.
    for (const call of myCalls()) {
      if (call.state === "answered" && D.isHuman(call)) {
        loadCard(call.id).catch(() => {});
      }
    }
  }

  function renderCard() {
    prefetchCards();
    const call = cardCall();
    const s = session();
    if (call && call.id !== state.card.callId) {
      // A new call: the card pops now from the event; the rest of the card fills in when it arrives.
      state.card = {callId: call.id, details: null, result: "", disposed: false, contact: call.contact};
      $("notes").value = drafts.get(call.id);
      $("callback-row").hidden = true;
      $("callback-at").value = "";
      fillCardHead(call.contact);
      $("card-custom").replaceChildren();
      $("card-history").replaceChildren();
      $("card-history-empty").hidden = true;
      const callId = call.id;
      loadCard(callId).then((card) => {
        if (state.card.callId !== callId) return;
        state.card.details = card;
        fillCardDetails(card);
      }).catch((err) => showAlert(`Could not load the contact's details: ${err.message}`));
    }
    const shown = state.card.callId !== null;
    $("card").hidden = !shown;
    $("card-empty").hidden = shown;
    if (!shown) return;

    const current = state.store.get("call", state.card.callId);
    const info = current ? D.describeLine(current, state.sessionId) : {label: "", tone: "quiet"};
    $("card-state").dataset.tone = info.tone;
    setText($("card-state-label"), info.label);
    const cardTimer = $("card-timer");
    const clock = current ? D.callClock(current, info) : {since: "", text: ""};
    cardTimer.dataset.since = clock.since || "";
    if (!clock.since) setText(cardTimer, clock.text);

    const live = current && LIVE_CARD_STATES.includes(current.state);
    const awaiting = current && current.state === "ended" && current.outcome === "talked" && !state.card.disposed &&
      s && s.state === "wrap_up" && current.bridged_to === state.sessionId;
    $("call-actions").hidden = !live;
    $("btn-hangup").disabled = state.busy || !(current && ["bridging", "connected"].includes(current.state));
    $("btn-machine").disabled = $("btn-hangup").disabled;
    renderRecording(current, live);
    $("dispositions").disabled = state.busy || !awaiting;
    $("dispositions").hidden = !(live || awaiting);
    $("disposition-hint").textContent = awaiting
      ? "Choose how the call went. Shortcut: the number keys (Alt + key while typing notes)."
      : "Available when the call ends. Shortcut: the number keys (Alt + key while typing notes).";
    $("wrap-timer-wrap").hidden = !awaiting;
    $("wrap-timer").dataset.since = awaiting ? s.state_changed_at || "" : "";

    const notesClosed = state.card.disposed || Boolean(current && current.state === "ended" && !awaiting);
    $("notes").readOnly = notesClosed;
    $("notes-state").hidden = !notesClosed;
    setText($("notes-state"), state.card.disposed
      ? "Saved with the disposition. Add anything more on the contact's next call."
      : "This call needs no disposition, so notes are not kept.");
    if (notesClosed && !state.card.disposed) drafts.drop(state.card.callId);

    let result = state.card.result;
    if (!result && current && current.state === "ended" && !awaiting) {
      result = current.outcome === "talked"
        ? "The call has ended."
        : `The call ended: ${info.label.toLowerCase()}. No disposition needed.`;
    }
    $("card-outcome").hidden = !result;
    setText($("card-outcome"), result || "");
  }

  function renderRecording(current, live) {
    const recording = current ? recordingOf(current.id) : null;
    const pausable = Boolean(live && recording && ["in-progress", "paused"].includes(recording.status));
    $("recording-controls").hidden = !pausable;
    if (!pausable) return;
    const paused = recording.status === "paused";
    $("recording-controls").dataset.state = recording.status;
    setText($("recording-state"), paused ? "Recording paused" : "● Recording");
    const button = $("btn-recording");
    setText(button, paused ? "Resume recording" : "Pause recording");
    button.dataset.action = paused ? "resume" : "pause";
    button.disabled = state.busy;
  }

  async function toggleRecording() {
    const button = $("btn-recording");
    const data = await act("Could not change the recording", cfg.api.recording, {action: button.dataset.action});
    if (data && data.recording) {
      const held = state.store.all("recording").find((r) => r.id === data.recording.id);
      if (held) state.store.apply({...held, status: data.recording.status});
      render();
    }
  }

  function renderSupervision() {
    // Only what the server chose to tell this agent (SUPERVISION_NOTICE) arrives with a notice.
    const notices = state.store.all("supervision")
      .filter((s) => s.active && s.notice && s.session === state.sessionId)
      .map((s) => s.notice);
    $("supervision-notice").hidden = notices.length === 0;
    setText($("supervision-notice"), notices.join(" "));
  }

  function fillCardHead(contact) {
    setText($("card-name"), contact.name || contact.phone);
    setText($("card-company"), contact.company || "");
    setText($("card-phone"), contact.phone);
    const zoneNode = $("card-local-time");
    zoneNode.dataset.zone = contact.time_zone || "";
    zoneNode.dataset.guessed = contact.time_zone_guessed ? "yes" : "";
    zoneNode.title = contact.time_zone || "";
  }

  function localTime(zone) {
    if (!zone) return "Time zone unknown";
    try {
      const now = new Date(socket.serverNow());
      const time = new Intl.DateTimeFormat(undefined, {timeZone: zone, hour: "numeric", minute: "2-digit"}).format(now);
      const day = new Intl.DateTimeFormat(undefined, {timeZone: zone, weekday: "short"}).format(now);
      const place = zone.split("/").pop().replace(/_/g, " ");
      return `${time} ${day} · ${place}`;
    } catch (err) {
      return zone;
    }
  }

  function fillCardDetails(card) {
    const contact = card.contact;
    fillCardHead(contact);
    const custom = $("card-custom");
    custom.replaceChildren();
    if (contact.email) custom.append(D.el("div", {}, D.el("dt", {text: "Email"}), D.el("dd", {text: contact.email})));
    for (const [name, value] of Object.entries(contact.custom_fields || {})) {
      const label = name.replace(/_/g, " ").replace(/^./, (ch) => ch.toUpperCase());
      custom.append(D.el("div", {}, D.el("dt", {text: label}), D.el("dd", {text: String(value)})));
    }
    custom.append(D.el("div", {}, D.el("dt", {text: "Attempts"}), D.el("dd", {text: String(contact.attempts)})));
    const history = $("card-history");
    history.replaceChildren();
    for (const past of card.history) {
      const when = new Date(past.at).toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
      const outcome = (D.OUTCOMES[past.outcome] || [past.outcome || past.state])[0];
      const item = D.el("li", {},
        D.el("span", {className: "history-when"}, when),
        D.el("span", {className: "history-what"}, past.disposition || outcome, past.agent ? ` · ${past.agent}` : ""));
      if (past.notes) item.append(D.el("p", {className: "history-notes"}, past.notes));
      history.append(item);
    }
    $("card-history-empty").hidden = card.history.length > 0;
    tick();
  }

  function renderPhone() {
    const s = session();
    const phoneState = state.phone.state;
    let text = state.phone.text;
    let tone = "warn";
    if (phoneState === "connected") {
      if (s && s.in_room) {
        text = `${state.phone.text} — in your call room`;
        tone = "ok";
      } else if (s && s.state !== "offline") {
        text = `${state.phone.text} — joining your call room…`;
      }
    } else if (phoneState === "error") {
      tone = "problem";
    } else if (phoneState === "off") {
      tone = s && s.state !== "offline" ? "problem" : "idle";
    }
    setText($("phone-state"), text);
    $("phone-dot").dataset.tone = tone;
    const canReconnect = state.softphone && s && s.state !== "offline" && !state.busy;
    $("btn-phone").hidden = !(canReconnect && (phoneState === "error" || phoneState === "off"));
  }

  function renderStats() {
    const stats = state.stats;
    if (!stats) return;
    setText($("stat-dials"), String(stats.dials));
    setText($("stat-humans"), String(stats.humans));
    setText($("stat-conversations"), String(stats.conversations));
    setText($("stat-talk"), D.duration(stats.talk_s));
  }

  /** Every second: the timers (hidden from screen readers: they would be read out every second). */
  function tick() {
    for (const node of document.querySelectorAll("[data-since]")) {
      if (node.dataset.since) node.textContent = D.clock(since(node.dataset.since));
    }
    const zoneNode = $("card-local-time");
    if (!$("card").hidden) {
      const guessed = zoneNode.dataset.guessed ? " (guessed from the number)" : "";
      setText(zoneNode, localTime(zoneNode.dataset.zone) + guessed);
    }
  }

  // -- wiring ---------------------------------------------------------------------------------------------------

  function onKey(event) {
    if (event.ctrlKey || event.metaKey) return;
    const target = event.target;
    const typing = target && (["TEXTAREA", "INPUT", "SELECT"].includes(target.tagName) || target.isContentEditable);
    if (typing && !event.altKey) return;
    let key = event.key;
    if (event.altKey && /^Digit\d$/.test(event.code)) key = event.code.slice(5);
    if (event.altKey && /^Key[A-Z]$/.test(event.code)) key = event.code.slice(3);
    const code = cfg.codes.find((c) => c.hotkey && c.hotkey.toLowerCase() === String(key).toLowerCase());
    if (!code || $("dispositions").disabled) return;
    event.preventDefault();
    dispose(code.code);
  }

  function wire() {
    $("btn-join").addEventListener("click", join);
    $("btn-ready").addEventListener("click", () => act("Could not go ready", cfg.api.ready));
    $("btn-pause").addEventListener("click", () =>
      act("Could not pause", cfg.api.pause, {reason: $("pause-reason").value}));
    $("btn-leave").addEventListener("click", leave);
    $("btn-dial-next").addEventListener("click", () => act("Could not dial", cfg.api.dialNext));
    $("btn-hangup").addEventListener("click", () => act("Could not hang up", cfg.api.hangup, {}));
    $("btn-machine").addEventListener("click", () => act("Could not hang up", cfg.api.hangup, {machine: true}));
    $("btn-recording").addEventListener("click", toggleRecording);
    $("btn-phone").addEventListener("click", reconnectPhone);
    $("alert-close").addEventListener("click", hideAlert);
    for (const button of document.querySelectorAll("button.disposition")) {
      button.addEventListener("click", () => dispose(button.dataset.code));
    }
    $("btn-callback-save").addEventListener("click", () => dispose($("callback-row").dataset.code));
    $("callback-at").addEventListener("input", renderCallbackTheirTime);
    $("notes").addEventListener("input", () => {
      if (state.card.callId !== null && !state.card.disposed) drafts.set(state.card.callId, $("notes").value);
    });
    document.addEventListener("keydown", onKey);
    // Closing the tab (or navigating away) is leaving: no customer may be routed to an empty chair. A
    // keepalive request outlives the page; the server also pauses a ready agent whose socket goes quiet.
    // Not during a talk: a reload must not hang up on the customer (the browser asks first, below); a tab
    // really closed mid-talk takes the phone leg with it, and the leg leaving the room ends the call.
    window.addEventListener("pagehide", () => {
      const s = session();
      // A manager who took calls keeps them across a reload of this tab (TAKING_CALLS): no beacon for them; the
      // socket's presence rules still pause them when the console is really gone.
      if (!s || s.state === "offline" || s.state === "on_call" || cfg.watchOnly) return;
      fetch(cfg.api.gone, {
        method: "POST", keepalive: true, credentials: "same-origin", body: "{}",
        headers: {"Content-Type": "application/json", "X-CSRFToken": D.cookie("csrftoken")},
      });
    });
    window.addEventListener("beforeunload", (event) => {
      const s = session();
      if (s && s.state === "on_call") {
        event.preventDefault();
        event.returnValue = "";
      }
    });
    setInterval(() => {
      tick();
      renderLines(); // ended lines age out
    }, 1000);
  }

  wire();
  if (cfg.watchOnly && !sessionStorage.getItem(TAKING_CALLS)) {
    state.socketStarted = true;
    socket.start();
  } else {
    join();
  }
  window.dialerConsole = {state, socket, phone};
})();
