"""Play the demo's agent over HTTP and time how long until they talk to a simulated human.

Start the demo first (`make demo`, or `python manage.py demo`), then:

    .venv/bin/python benchmarks/demo_agent.py [--app http://127.0.0.1:8000] [--timeout 60]

It logs in as the demo agent, opens the console's live socket and pings it as the console does (an agent
without a connected console is paused: voice.presence), joins the demo campaign, puts the agent's softphone
leg in the room the way the console does in sandbox mode (POST /sandbox/agent-legs), goes ready, and prints
each change of the agent's lines until one is connected to a human. Exit code 0 when that happened within the
timeout.

With `--work SECONDS` the agent keeps working that long instead (every talk gets a disposition, so the agent goes
back to ready) and prints the campaign's figures at the end: people reached, conversations, abandoned and the
abandonment rate, and conversations per hour (of wall time, and of simulated time with `--time-scale`):

    .venv/bin/python manage.py demo --time-scale 5 &
    .venv/bin/python benchmarks/demo_agent.py --work 720 --time-scale 5     # one simulated hour
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


class Browser:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self) -> str:
        return next((c.value for c in self.jar if c.name == "csrftoken"), "")

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def post_form(self, path: str, data: dict) -> None:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self._csrf()}).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        self.opener.open(request, timeout=10).read()

    def api(self, path: str, payload: dict | None = None) -> dict:
        data = json.dumps(payload or {}).encode() if payload is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers={
            "Content-Type": "application/json", "X-CSRFToken": self._csrf(), "Referer": self.base + path})
        with self.opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")


def keep_console_open(app: str, campaign_id: int, jar: http.cookiejar.CookieJar) -> None:
    """The console's socket and its presence pings, on a thread of their own for the life of the script."""
    import aiohttp

    async def run() -> None:
        url = app.replace("http", "ws", 1) + f"/ws/campaigns/{campaign_id}/"
        headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in jar), "Origin": app}
        async with aiohttp.ClientSession() as client, client.ws_connect(url, headers=headers) as ws:
            while True:
                await ws.send_str("ping")
                deadline = time.monotonic() + 4
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        await ws.receive(timeout=left)
                    except TimeoutError:
                        break

    threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="http://127.0.0.1:8000")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8100")
    parser.add_argument("--sandbox-token", required=True, help="the token the demo prints (?token=...)")
    parser.add_argument("--campaign", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--work", type=float, default=0.0, help="keep working this many seconds, then report")
    parser.add_argument("--time-scale", type=float, default=1.0, help="the demo's --time-scale, for per-hour rates")
    args = parser.parse_args()

    browser = Browser(args.app)
    browser.get("/accounts/login/")
    browser.post_form("/accounts/login/", {"username": "agent", "password": "agent-demo-pass"})
    campaign_id = args.campaign or 1
    keep_console_open(args.app, campaign_id, browser.jar)
    start = time.monotonic()
    joined = browser.api(f"/api/campaign/{campaign_id}/join", {})
    session, softphone = joined["session"], joined["softphone"]
    leg = json.dumps({
        "identity": softphone["identity"], "voice_url": f"{args.app}/api/voice/dial", "params": softphone["params"],
        "status_callback": f"{args.app}/api/voice/agent-status?session={session['id']}",
    }).encode()
    urllib.request.urlopen(urllib.request.Request(f"{args.sandbox}/sandbox/agent-legs", data=leg,
                                                  headers={"Content-Type": "application/json",
                                                           "X-Sandbox-Token": args.sandbox_token}), timeout=10)
    browser.api(f"/api/campaign/{campaign_id}/ready", {})
    print(f"{time.monotonic() - start:6.1f}s agent joined, softphone in room, ready")
    if args.work:
        return work(browser, campaign_id, args.work, args.time_scale)
    seen: dict[int, str] = {}
    while time.monotonic() - start < args.timeout:
        detail = browser.api(f"/api/campaign/{campaign_id}")["campaign"]
        for call in detail["live_calls"]:
            label = f"{call['state']} {call['answered_by']}".strip()
            if seen.get(call["id"]) != label:
                seen[call["id"]] = label
                print(f"{time.monotonic() - start:6.1f}s line {call['id']} to {call['contact']['phone']}: {label}")
            if call["state"] == "connected" and call["bridged_to"] == session["id"]:
                print(f"{time.monotonic() - start:6.1f}s agent talking to a simulated human "
                      f"({call['contact']['name'] or call['contact']['phone']})")
                return 0
        time.sleep(0.5)
    print(f"no human within {args.timeout:.0f}s")
    return 1


def work(browser: Browser, campaign_id: int, seconds: float, time_scale: float) -> int:
    """Take every call for `seconds`, disposing each talk, then print what the campaign measured meanwhile."""
    before = browser.api(f"/api/campaign/{campaign_id}")["campaign"]["abandonment"]
    start = time.monotonic()
    talks = 0
    while time.monotonic() - start < seconds:
        session = browser.api(f"/api/campaign/{campaign_id}")["campaign"]["session"]
        if session and session["state"] == "wrap_up":
            try:
                browser.api(f"/api/campaign/{campaign_id}/disposition", {"code": "interested"})
                talks += 1
            except urllib.error.HTTPError:
                pass  # the talk is still ending: try again on the next poll
        elif session and session["state"] == "paused":
            browser.api(f"/api/campaign/{campaign_id}/ready", {})
        time.sleep(0.5)
    after = browser.api(f"/api/campaign/{campaign_id}")["campaign"]["abandonment"]
    humans = after["humans"] - before["humans"]
    abandoned = after["abandoned"] - before["abandoned"]
    hours = seconds / 3600
    print(f"worked {seconds:.0f} s ({seconds * time_scale / 60:.0f} simulated minutes): {humans} people reached, "
          f"{talks} conversations, {abandoned} abandoned ({abandoned / humans if humans else 0:.1%} of people; "
          f"30-day rate {after['rate']:.1%}, cap {after['cap']:.0%}); {talks / hours:.1f} conversations per hour, "
          f"{talks / (hours * time_scale):.1f} per simulated hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
