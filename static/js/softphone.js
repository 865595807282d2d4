/* The agent's phone: one interface, two drivers.
 *
 *   const phone = new Dialer.Softphone({config, tokenUrl, onState});
 *   await phone.start(joinResponse.softphone, sessionId);   // puts the agent's leg into their conference room
 *   await phone.stop();                                      // hangs the leg up (on leave)
 *   onState({state, text})   state: "off" | "connecting" | "connected" | "reconnecting" | "error"
 *
 * Twilio driver: the Voice JS SDK (npm @twilio/voice-sdk, served from our own static files), new Device(token),
 * register, device.connect({params}) -> the TwiML App voice URL /api/voice/dial puts the leg in the room; the
 * token is refreshed before it expires (tokenWillExpire -> POST /api/token -> device.updateToken).
 * Sandbox driver: the Twilio sandbox places an emulated agent leg that calls /api/voice/dial the same way.
 */
(function () {
  "use strict";

  const {api, ApiError} = window.Dialer;

  function report(handler, state, text) {
    if (handler) handler({state, text});
  }

  // -- sandbox -------------------------------------------------------------------------------------------------

  class SandboxDriver {
    constructor(config, onState) {
      this.base = (config.sandboxBaseUrl || "").replace(/\/$/, "");
      this.publicBase = (config.publicBaseUrl || "").replace(/\/$/, "");
      this.token = config.sandboxToken || "";
      this.onState = onState;
      this.sid = null;
      this.storageKey = null;
    }

    async fetchJson(method, url, body) {
      let response;
      try {
        response = await fetch(url, {
          method,
          headers: {
            "X-Sandbox-Token": this.token,
            ...(body ? {"Content-Type": "application/json"} : {}),
          },
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (err) {
        throw new Error("The phone sandbox cannot be reached. Is it running?");
      }
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(`The phone sandbox refused the call: ${data.error || response.status}.`);
      return data;
    }

    async start(softphone, sessionId) {
      if (!this.base) throw new Error("This page does not know where the phone sandbox is.");
      this.storageKey = `dialer.sandbox-leg.${sessionId}`;
      report(this.onState, "connecting", "Connecting your phone…");
      // After a reload, keep the leg that is still in the room: hanging it up would end a call in progress.
      const previous = window.sessionStorage.getItem(this.storageKey);
      if (previous) {
        try {
          const leg = await this.fetchJson("GET", `${this.base}/sandbox/calls/${previous}`);
          if (["queued", "initiated", "ringing", "in-progress"].includes(leg.status)) {
            this.sid = previous;
            report(this.onState, "connected", "Phone connected (sandbox)");
            return;
          }
        } catch (err) {
          /* gone: place a new leg */
        }
      }
      // A supervisor's leg has no agent session to report to: its room's conference events tell the server.
      const statusCallback = softphone.supervisor
        ? null : `${this.publicBase}/api/voice/agent-status?session=${encodeURIComponent(sessionId)}`;
      const leg = await this.fetchJson("POST", `${this.base}/sandbox/agent-legs`, {
        identity: softphone.identity,
        voice_url: `${this.publicBase}/api/voice/dial`,
        params: softphone.params,
        status_callback: statusCallback,
      });
      this.sid = leg.sid;
      window.sessionStorage.setItem(this.storageKey, leg.sid);
      report(this.onState, "connected", "Phone connected (sandbox)");
    }

    async stop() {
      const sid = this.sid;
      this.sid = null;
      if (this.storageKey) window.sessionStorage.removeItem(this.storageKey);
      if (sid) {
        try {
          await this.fetchJson("DELETE", `${this.base}/sandbox/agent-legs/${sid}`);
        } catch (err) {
          /* already gone */
        }
      }
      report(this.onState, "off", "Phone off");
    }
  }

  // -- Twilio Voice SDK -------------------------------------------------------------------------------------------

  // Voice SDK error codes -> what the agent can do about them.
  const TWILIO_ERRORS = [
    [[31208, 31401, 31402, 31400], "The browser is not allowed to use your microphone. Allow the microphone for " +
      "this site (the icon at the left of the address bar), then press “Reconnect phone”."],
    [[31201, 31202], "No microphone could be opened. Check that one is plugged in and not used by another app."],
    [[20101, 20104, 20157, 31204, 31205, 31206], "Your phone sign-in expired or was refused. Press “Reconnect " +
      "phone”; if it keeps happening, tell your manager."],
    [[31000, 31003, 31005, 31009, 53000, 53001, 53405], "The phone connection to Twilio failed. Check your " +
      "network, then press “Reconnect phone”."],
  ];

  function twilioErrorText(error) {
    const code = error && (error.code || (error.originalError && error.originalError.code));
    for (const [codes, text] of TWILIO_ERRORS) if (codes.includes(code)) return text;
    if (error && error.name === "NotAllowedError") return TWILIO_ERRORS[0][1];
    const detail = (error && (error.message || error.description)) || "unknown error";
    return `The phone had a problem (${detail}). Press “Reconnect phone” to try again.`;
  }

  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = () => reject(new Error("The phone library could not be loaded."));
      document.head.append(script);
    });
  }

  class TwilioDriver {
    constructor(config, tokenUrl, onState) {
      this.sdkUrl = config.sdkUrl;
      this.tokenUrl = tokenUrl;
      this.onState = onState;
      this.device = null;
      this.call = null;
    }

    async load() {
      if (window.Twilio && window.Twilio.Device) return window.Twilio.Device;
      if (!this.sdkUrl) {
        throw new Error("The phone library is not installed on the server (run `npm ci --omit=dev`). " +
                        "Tell your administrator.");
      }
      await loadScript(this.sdkUrl);
      if (!(window.Twilio && window.Twilio.Device)) throw new Error("The phone library could not be loaded.");
      return window.Twilio.Device;
    }

    async start(softphone) {
      report(this.onState, "connecting", "Connecting your phone…");
      const Device = await this.load();
      if (navigator.permissions && navigator.permissions.query) {
        try {
          const microphone = await navigator.permissions.query({name: "microphone"});
          if (microphone.state === "denied") throw {code: 31208};
          if (microphone.state === "prompt") {
            report(this.onState, "connecting", "Connecting your phone… allow the microphone when the browser asks");
          }
        } catch (error) {
          if (error && error.code === 31208) throw new Error(twilioErrorText(error));
          /* this browser cannot tell: the SDK will ask */
        }
      }
      const device = new Device(softphone.token, {closeProtection: true, codecPreferences: ["opus", "pcmu"]});
      this.device = device;
      device.on("error", (error) => report(this.onState, "error", twilioErrorText(error)));
      device.on("tokenWillExpire", async () => {
        try {
          const data = await api.post(this.tokenUrl);
          device.updateToken(data.softphone.token);
        } catch (err) {
          report(this.onState, "error", `Could not renew the phone sign-in: ${err.message}`);
        }
      });
      device.on("unregistered", () => {
        if (this.device === device && !this.call) report(this.onState, "reconnecting", "Phone offline…");
      });
      await device.register();
      // Values must be strings: they arrive as form fields on the TwiML App's voice URL.
      const params = {};
      for (const [key, value] of Object.entries(softphone.params || {})) params[key] = String(value);
      let call;
      try {
        call = await device.connect({params});
      } catch (error) {
        throw new Error(twilioErrorText(error));
      }
      this.call = call;
      call.on("accept", () => report(this.onState, "connected", "Phone connected"));
      call.on("reconnecting", () => report(this.onState, "reconnecting", "Phone connection unstable, reconnecting…"));
      call.on("reconnected", () => report(this.onState, "connected", "Phone connected"));
      call.on("warning", (name) => {
        if (name === "low-mos" || name === "high-packet-loss") {
          report(this.onState, "connected", "Phone connected — poor call quality; check your network");
        }
      });
      call.on("error", (error) => report(this.onState, "error", twilioErrorText(error)));
      call.on("disconnect", () => {
        if (this.call === call) {
          this.call = null;
          report(this.onState, "off", "Phone disconnected");
        }
      });
    }

    async stop() {
      const {call, device} = this;
      this.call = null;
      this.device = null;
      if (call) call.disconnect();
      if (device) device.destroy();
      report(this.onState, "off", "Phone off");
    }
  }

  // -- the interface -------------------------------------------------------------------------------------------

  class Softphone {
    constructor({config, tokenUrl, onState}) {
      this.config = config || {};
      this.tokenUrl = tokenUrl;
      this.onState = onState;
      this.driver = null;
      this.mode = null;
    }

    async start(softphone, sessionId) {
      if (this.driver) await this.stop();
      this.mode = softphone.sandbox ? "sandbox" : "twilio";
      this.driver = softphone.sandbox
        ? new SandboxDriver(this.config, this.onState)
        : new TwilioDriver(this.config, this.tokenUrl, this.onState);
      try {
        await this.driver.start(softphone, sessionId);
      } catch (err) {
        const text = err instanceof ApiError ? err.message : err.message || String(err);
        report(this.onState, "error", text);
        throw err;
      }
    }

    async stop() {
      const driver = this.driver;
      this.driver = null;
      if (driver) await driver.stop();
    }
  }

  window.Dialer.Softphone = Softphone;
  window.Dialer.twilioErrorText = twilioErrorText;
})();
