"""Misbehaviour on request, and the /sandbox/ control endpoints."""

from __future__ import annotations

import requests

from tests.sandbox.conftest import FROM
from tests.sandbox.fake_app import HOLD
from tests.sandbox.helpers import wait_status

HUMAN, BUSY = "+12025550100", "+12025550107"
OTHER = "+14155550123"  # not a magic number: drawn from the population unless overridden
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]



def control_client(sandbox) -> requests.Session:
    """A client of the control API: it sends the sandbox's per-run token."""
    session = requests.Session()
    session.headers.update(sandbox.control_headers)
    return session

def test_duplicates_repeat_body_and_idempotency_token(sandbox, app, client):
    sandbox.update_config(duplicate_rate=1.0)
    call = client.calls.create(
        to=BUSY, from_=FROM, url=app.url("/voice"), status_callback=app.url("/status"), status_callback_event=ALL_EVENTS
    )
    hits = app.wait_for("/status", count=6)  # initiated, ringing, busy: each twice
    by_sequence: dict[str, list] = {}
    for hit in hits:
        assert hit.signature_valid
        by_sequence.setdefault(hit.params["SequenceNumber"], []).append(hit)
    assert sorted(by_sequence) == ["0", "1", "2"]
    for pair in by_sequence.values():
        assert len(pair) == 2
        assert pair[0].params == pair[1].params
        assert pair[0].headers["I-Twilio-Idempotency-Token"] == pair[1].headers["I-Twilio-Idempotency-Token"]
    assert sandbox.stats()["webhooks"]["duplicated"] == 3
    assert [d["duplicate"] for d in sandbox.call(call.sid)["webhooks"]].count(True) == 3


def test_dropped_status_callbacks_never_touch_the_voice_url(sandbox, app, client):
    sandbox.update_config(drop_status_rate=1.0)
    app.routes["/voice"] = "<Response><Hangup/></Response>"
    call = client.calls.create(
        to=HUMAN,
        from_=FROM,
        url=app.url("/voice"),
        status_callback=app.url("/status"),
        status_callback_event=ALL_EVENTS,
    )
    wait_status(sandbox, call.sid)
    assert len(app.requests_to("/voice")) == 1
    assert app.requests_to("/status") == []
    deliveries = sandbox.call(call.sid)["webhooks"]
    assert [d["kind"] for d in deliveries if d["dropped"]] == ["status-callback"] * 4
    assert sandbox.stats()["webhooks"]["dropped"] == 4


def test_jitter_delays_callbacks_in_simulated_time(sandbox, app, client):
    sandbox.update_config(jitter_s=20.0)
    call = client.calls.create(
        to=BUSY, from_=FROM, url=app.url("/voice"), status_callback=app.url("/status"), status_callback_event=ALL_EVENTS
    )
    wait_status(sandbox, call.sid)
    hits = app.wait_for("/status", count=3)
    assert sorted(h.params["SequenceNumber"] for h in hits) == ["0", "1", "2"]  # all arrive, in whatever order
    delays = [d["delay_s"] for d in sandbox.call(call.sid)["webhooks"]]
    assert all(0.0 <= d <= 20.0 for d in delays) and any(d > 0 for d in delays)


def test_behaviour_override_via_control_endpoint(sandbox, app, client):
    http = control_client(sandbox)
    app.routes["/voice"] = HOLD
    response = http.post(
        f"{sandbox.base_url}/sandbox/behaviours", timeout=5, json={OTHER: {"kind": "busy", "reject_s": 2}}
    )
    assert response.status_code == 200
    assert response.json()["overrides"][OTHER]["kind"] == "busy"
    call = client.calls.create(to=OTHER, from_=FROM, url=app.url("/voice"))
    done = wait_status(sandbox, call.sid)
    assert (done["status"], done["behaviour_source"], done["behaviour"]["reject_s"]) == ("busy", "override", 2.0)

    bad = http.post(f"{sandbox.base_url}/sandbox/behaviours", json={OTHER: {"kind": "robot"}}, timeout=5)
    assert bad.status_code == 400


def test_inspection_endpoints(sandbox, app, client):
    http = control_client(sandbox)
    app.routes["/voice"] = HOLD
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"))
    wait_status(sandbox, call.sid, "in-progress")

    base = f"{sandbox.base_url}/sandbox"
    listed = http.get(f"{base}/calls", params={"live": "1"}, timeout=5).json()["calls"]
    assert [c["sid"] for c in listed] == [call.sid]
    view = http.get(f"{base}/calls/{call.sid}", timeout=5).json()
    assert view["behaviour_kind"] == "human" and view["behaviour_source"] == "magic"
    assert [w["kind"] for w in view["webhooks"]] == ["voice-url"] and view["webhooks"][0]["http_status"] == 200
    assert {"event", "sim_t", "sim_time", "wall", "detail"} <= set(view["timeline"][0])
    page = http.get(f"{base}/", timeout=5)
    assert page.status_code == 200 and call.sid in page.text
    # CORS only for the app's own origin (allowed_origins), never a wildcard.
    preflight = http.options(f"{base}/agent-legs", timeout=5, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers

    assert http.post(f"{base}/calls/{call.sid}/hangup", timeout=5).json()["status"] == "completed"
    stats = http.get(f"{base}/stats", timeout=5).json()
    assert stats["calls"]["by_status"] == {"completed": 1} and stats["seed"] == 7

    changed = http.post(f"{base}/config", json={"cps": 3, "population": {"human": 1.0}}, timeout=5).json()
    assert changed["cps"] == 3 and changed["population"]["human"] == 1.0
    assert http.post(f"{base}/config", json={"port": 1}, timeout=5).status_code == 400
    assert http.post(f"{base}/reset", timeout=5).status_code == 204
    assert http.get(f"{base}/calls", timeout=5).json() == {"calls": []}
    assert http.get(f"{base}/config", timeout=5).json()["cps"] == 1.0


def test_population_draws_are_reproducible_per_seed(sandbox, app, client):
    app.routes["/voice"] = HOLD
    numbers = [f"+1415555{n:04d}" for n in range(20)]

    def behaviours(order: list[str]) -> dict[str, dict]:
        return {
            n: sandbox.call(client.calls.create(to=n, from_=FROM, url=app.url("/voice")).sid)["behaviour"]
            for n in order
        }

    first = behaviours(numbers)
    sandbox.reset()
    assert behaviours(list(reversed(numbers))) == first  # same seed, same callees, whatever the dialling order
    assert len({b["kind"] for b in first.values()}) > 1


def test_the_control_api_wants_the_run_token_and_serves_only_the_apps_origin(sandbox):
    base = f"{sandbox.base_url}/sandbox"
    leg = {"identity": "agent-1", "voice_url": "https://victim.example/api/voice/dial"}
    assert requests.post(f"{base}/agent-legs", json=leg, timeout=5).status_code == 401
    wrong = {"X-Sandbox-Token": "guessed"}
    assert requests.post(f"{base}/agent-legs", json=leg, headers=wrong, timeout=5).status_code == 401
    assert requests.get(f"{base}/calls", timeout=5).status_code == 401
    assert requests.get(f"{base}/", timeout=5).status_code == 401
    assert requests.get(f"{base}/?token={sandbox.control_token}", timeout=5).status_code == 200
    assert requests.get(f"{base}/health", timeout=5).status_code == 200
    assert not sandbox.calls()
    # A web page on another origin gets no CORS grant, so a browser will not hand it the answer.
    hostile = requests.get(f"{base}/calls", headers={**sandbox.control_headers, "Origin": "https://evil.example"},
                           timeout=5)
    assert "Access-Control-Allow-Origin" not in hostile.headers


def test_the_control_api_answers_loopback_clients_only():
    from voice.sandbox.control import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("10.0.0.7") and not _is_loopback("203.0.113.5") and not _is_loopback(None)


def test_allowed_origins_get_cors():
    from voice.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(allowed_origins=("http://127.0.0.1:8000",))) as sandbox:
        response = requests.options(f"{sandbox.base_url}/sandbox/agent-legs", timeout=5,
                                    headers={"Origin": "http://127.0.0.1:8000"})
        assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
        assert "X-Sandbox-Token" in response.headers["Access-Control-Allow-Headers"]
        assert SandboxConfig().control_token != SandboxConfig().control_token  # fresh per run
