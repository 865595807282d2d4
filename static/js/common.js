/* Shared by the agent console and the wallboard: the JSON API client, the live socket (snapshot, versioned
 * events, reconnect with backoff), and small formatting helpers. Plain browser JavaScript, no build step.
 *
 * Socket protocol (realtime/consumers.py):
 *   first message  {"type": "snapshot", "server_time", "campaign", ...}
 *   then events    {"type": "call" | "agent" | "campaign", "id", "version", ..., "sent_at"}
 *   close codes    4401 not signed in, 4403 not allowed: the page says so and does not retry;
 *                  anything else: reconnect with backoff, and the fresh snapshot catches the page up.
 *   client texts   "ping" -> {"type": "pong"}; "snapshot" -> a fresh snapshot (both reads, never actions)
 */
(function () {
  "use strict";

  // -- the JSON API ------------------------------------------------------------------------------------------

  function cookie(name) {
    const match = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
  }

  function sentence(text) {
    text = String(text || "").trim();
    if (!text) return "";
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(text) ? text : text + ".";
  }

  /** An API failure in plain words. `status` 0 means the request never reached the server. */
  class ApiError extends Error {
    constructor(status, body) {
      super(ApiError.describe(status, body));
      this.status = status;
      this.body = body || {};
    }

    static describe(status, body) {
      body = body || {};
      if (status === 0) return "The server cannot be reached. Check your network connection; nothing was changed.";
      if (status === 401) return "You are signed out. Reload the page to sign in again.";
      if (status === 403) return sentence(body.error || "You are not allowed to do that");
      if (status === 400 || status === 409) {
        let text = sentence(body.error || "That cannot be done right now");
        const fields = body.fields && typeof body.fields === "object" ? Object.values(body.fields) : [];
        const details = fields.filter((f) => typeof f === "string").map(sentence);
        if (details.length) text += " " + details.join(" ");
        return text;
      }
      return `The server had a problem (error ${status}). Try again in a moment.`;
    }
  }

  async function request(method, url, body) {
    const options = {method, headers: {Accept: "application/json"}, credentials: "same-origin"};
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = cookie("csrftoken");
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      throw new ApiError(0);
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const api = {
    get: (url) => request("GET", url),
    post: (url, body) => request("POST", url, body),
  };

  // -- versioned state ---------------------------------------------------------------------------------------

  /** Rows by type and id; an event older than what we hold is dropped (the server may deliver out of order). */
  class VersionedStore {
    constructor() {
      this.items = new Map(); // "type:id" -> event
    }

    static key(event) {
      return `${event.type}:${event.id}`;
    }

    /** Apply one event; false when it is stale. Equal versions are accepted: they only ever fill blanks. */
    apply(event) {
      const key = VersionedStore.key(event);
      const held = this.items.get(key);
      if (held && typeof held.version === "number" && event.version < held.version) return false;
      this.items.set(key, event);
      return true;
    }

    /** A snapshot replaces what we hold (rows it leaves out are gone), but never with something older. */
    replace(events) {
      const next = new Map();
      for (const event of events) {
        const key = VersionedStore.key(event);
        const held = this.items.get(key);
        next.set(key, held && held.version > event.version ? held : event);
      }
      this.items = next;
    }

    get(type, id) {
      return this.items.get(`${type}:${id}`);
    }

    all(type) {
      const out = [];
      for (const event of this.items.values()) if (event.type === type) out.push(event);
      return out;
    }

    drop(type, id) {
      this.items.delete(`${type}:${id}`);
    }
  }

  // -- the live socket ---------------------------------------------------------------------------------------

  const REFUSED = {
    4401: "You are signed out. Reload the page to sign in again.",
    4403: "You are not allowed to watch this campaign.",
  };

  class LiveSocket {
    /**
     * handlers: onSnapshot(snapshot), onEvent(event), onStatus({state, text}), onRefused(code, text)
     * states: "connecting", "live", "reconnecting", "refused"
     */
    constructor(path, handlers, options) {
      this.path = path;
      this.handlers = handlers;
      // A fresh snapshot now and then (and when the tab comes back into view) bounds how long a page could
      // show something stale if the server ever dropped an event under overload.
      this.refreshEveryMs = (options && options.refreshEveryMs) || 120000;
      setInterval(() => this.refresh(), this.refreshEveryMs);
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") this.refresh();
      });
      this.attempt = 0;
      this.ws = null;
      this.timer = null;
      this.heartbeat = null;
      this.lastMessageAt = 0;
      this.stopped = false;
      this.clockOffsetMs = 0;
      window.addEventListener("online", () => this.reconnectNow());
      // The browser knows the network is gone before TCP does: do not show a page that merely looks live.
      window.addEventListener("offline", () => this.dropped("The network is offline. Reconnecting when it is back…"));
    }

    url() {
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      return scheme + window.location.host + this.path;
    }

    status(state, text) {
      if (this.handlers.onStatus) this.handlers.onStatus({state, text});
    }

    start() {
      this.stopped = false;
      this.open();
    }

    /** Ask for a fresh snapshot on the open connection (a read; the server answers at most every 5 s). */
    refresh() {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send("snapshot");
    }

    /** Drop the current connection (if any) and open a new one now: a fresh snapshot follows. */
    reconnectNow() {
      if (this.stopped) return;
      clearTimeout(this.timer);
      this.attempt = 0;
      this.closeQuietly();
      this.open();
    }

    closeQuietly() {
      if (!this.ws) return;
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (err) {
        /* already closed */
      }
    }

    open() {
      clearTimeout(this.timer);
      this.status("connecting", this.attempt ? "Reconnecting…" : "Connecting…");
      const ws = new WebSocket(this.url());
      this.ws = ws;
      ws.onmessage = (message) => this.receive(message);
      ws.onclose = (event) => this.closed(ws, event);
      ws.onopen = () => {
        this.lastMessageAt = Date.now();
        this.startHeartbeat();
      };
    }

    receive(message) {
      this.lastMessageAt = Date.now();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (data.type === "pong") return;
      if (data.type === "snapshot") {
        this.attempt = 0;
        const serverNow = Date.parse(data.server_time);
        if (!Number.isNaN(serverNow)) this.clockOffsetMs = serverNow - Date.now();
        this.status("live", "Live");
        this.handlers.onSnapshot(data);
        return;
      }
      this.handlers.onEvent(data);
    }

    closed(ws, event) {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.heartbeat);
      if (REFUSED[event.code]) {
        this.stopped = true;
        this.status("refused", REFUSED[event.code]);
        if (this.handlers.onRefused) this.handlers.onRefused(event.code, REFUSED[event.code]);
        return;
      }
      this.retryLater();
    }

    /** The connection is gone (or cannot be trusted): drop it and retry with backoff. */
    dropped(text) {
      if (this.stopped) return;
      clearInterval(this.heartbeat);
      this.closeQuietly();
      this.retryLater(text);
    }

    retryLater(text) {
      if (this.stopped) return;
      clearTimeout(this.timer);
      // Backoff: 0.5 s, 1 s, 2 s ... 15 s, with jitter so a restarted server is not hit by every page at once.
      const base = Math.min(15000, 500 * Math.pow(2, this.attempt));
      const delay = Math.round(base * (0.75 + Math.random() * 0.5));
      this.attempt += 1;
      const seconds = Math.max(1, Math.round(delay / 1000));
      this.status("reconnecting", text || `Connection lost. Reconnecting in ${seconds} s…`);
      this.timer = setTimeout(() => this.open(), delay);
    }

    startHeartbeat() {
      clearInterval(this.heartbeat);
      // A quiet socket is pinged; one that stays silent after that is treated as dead (a laptop waking up,
      // a Wi-Fi switch) and replaced, instead of showing a frozen page.
      this.heartbeat = setInterval(() => {
        const ws = this.ws;
        if (!ws || ws.readyState !== WebSocket.OPEN) return;
        const quietMs = Date.now() - this.lastMessageAt;
        if (quietMs > 45000) {
          this.dropped("The connection stopped answering. Reconnecting…");
        } else if (quietMs > 20000) {
          ws.send("ping");
        }
      }, 5000);
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      clearInterval(this.heartbeat);
      this.closeQuietly();
    }

    /** Milliseconds since the epoch on the server's clock (timers must not depend on the laptop's clock). */
    serverNow() {
      return Date.now() + this.clockOffsetMs;
    }
  }

  // -- formatting ----------------------------------------------------------------------------------------------

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  /** 75 -> "1:15", 3725 -> "1:02:05". */
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }

  /** 4000 s -> "1 h 07 min" for totals. */
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds || 0));
    if (seconds < 60) return `${seconds} s`;
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    return h ? `${h} h ${pad(m)} min` : `${m} min ${pad(seconds % 60)} s`;
  }

  function percent(share) {
    return `${(100 * (share || 0)).toFixed(1)} %`;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  // -- what a line's state means to a person -------------------------------------------------------------------

  const OUTCOMES = {
    talked: ["Talked", "done"],
    no_answer: ["No answer", "quiet"],
    busy: ["Busy", "quiet"],
    failed: ["Failed", "problem"],
    canceled: ["Released", "quiet"],
    machine: ["Machine", "machine"],
    voicemail_left: ["Voicemail left", "machine"],
    fax: ["Fax", "machine"],
    abandoned: ["Abandoned", "problem"],
    hung_up_on_hold: ["Hung up on hold", "problem"],
    invalid_number: ["Invalid number", "problem"],
  };

  // The server says whether a verdict is a human or a machine (voice/states.py, with the campaign's policy for
  // "unknown"); the pages never decide it from raw AMD values.
  function isMachine(call) {
    return call.verdict === "machine";
  }

  function isHuman(call) {
    return call.verdict === "human";
  }

  /**
   * A line's label, tone and the time its current stage began. `me` is the viewer's agent session id
   * (null on the wallboard): a human sent to someone else is said so, never shown as yours.
   */
  function describeLine(call, me, agentName) {
    const otherAgent = (id) => (agentName && agentName(id)) || "another agent";
    const stamp = (...names) => {
      for (const name of names) if (call[name]) return call[name];
      return call.created_at;
    };
    switch (call.state) {
      case "created":
      case "dialing":
        return {label: "Dialing", tone: "progress", since: stamp("dialed_at", "created_at")};
      case "ringing":
        return {label: "Ringing", tone: "progress", since: stamp("ringing_at", "dialed_at")};
      case "answered":
        if (!call.answered_by) return {label: "Answered — detecting", tone: "progress", since: stamp("answered_at")};
        if (isMachine(call)) {
          return {label: call.answered_by === "fax" ? "Fax — hanging up" : "Machine — hanging up",
                  tone: "machine", since: stamp("answered_at")};
        }
        return {label: "Human — connecting", tone: "human", since: stamp("answered_at")};
      case "bridging":
        if (me === null || call.bridged_to === me) {
          return {label: me === null ? `Human — connecting to ${otherAgent(call.bridged_to)}` : "Human — connecting to you",
                  tone: "human", since: stamp("bridged_at", "answered_at")};
        }
        return {label: `Human — sent to ${otherAgent(call.bridged_to)}`, tone: "quiet", since: stamp("bridged_at")};
      case "connected":
        if (me === null) return {label: `Connected to ${otherAgent(call.bridged_to)}`, tone: "live",
                                 since: stamp("connected_at")};
        if (call.bridged_to === me) return {label: "Connected", tone: "live", since: stamp("connected_at")};
        return {label: `Connected to ${otherAgent(call.bridged_to)}`, tone: "quiet", since: stamp("connected_at")};
      case "voicemail":
        return {label: "Machine — leaving voicemail", tone: "machine", since: stamp("answered_at")};
      case "releasing":
        return {label: "Hanging up…", tone: "quiet", since: stamp("connected_at", "answered_at", "ringing_at")};
      case "ended": {
        const [label, tone] = OUTCOMES[call.outcome] || ["Ended", "quiet"];
        return {label, tone, since: stamp("ended_at"), ended: true};
      }
      default:
        return {label: call.state, tone: "quiet", since: call.created_at};
    }
  }

  window.Dialer = {api, ApiError, VersionedStore, LiveSocket, clock, duration, percent, el, debounce, sentence,
                   describeLine, isHuman, isMachine, OUTCOMES};
})();
