"""Play the demo's agent over HTTP and time how long until they talk to a simulated human.

Start the demo first (`make demo`, or `python manage.py demo`), then:

    .venv/bin/python benchmarks/demo_agent.py [--app http://127.0.0.1:8000] [--timeout 60]

It logs in as the demo agent, joins the demo campaign, puts the agent's softphone leg in the room the way
the console does in sandbox mode (POST /sandbox/agent-legs), goes ready, and prints each change of the
agent's lines until one is connected to a human. Exit code 0 when that happened within the timeout.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import sys
import time
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="http://127.0.0.1:8000")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8100")
    parser.add_argument("--sandbox-token", required=True, help="the token the demo prints (?token=...)")
    parser.add_argument("--campaign", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    browser = Browser(args.app)
    browser.get("/accounts/login/")
    browser.post_form("/accounts/login/", {"username": "agent", "password": "agent-demo-pass"})
    campaign_id = args.campaign or 1
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


if __name__ == "__main__":
    sys.exit(main())
