"""How fast a manager is in an agent's talk, and how fast listen -> whisper -> leave take effect.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/supervision_latency.py \
        [--rounds 30]

The app runs on daphne (in this process) against PostgreSQL (a throwaway database, `BENCH_DB` or `dialer_bench`),
with the Twilio sandbox: an agent is talking to a (very patient) simulated contact. Each round, over real HTTP:
  join    POST /supervise {listen} -> the manager's emulated softphone dials /api/voice/dial with the ticket ->
          the sandbox's room has the manager hearing both sides (the clock stops when its who-hears-whom says so);
  switch  POST /supervise {whisper} -> the agent hears the manager and the contact does not;
  leave   DELETE /supervise -> the manager's leg is out of the room, the talk intact.
Times are wall-clock milliseconds, measured from the request being sent to the sandbox's state (polled every
2 ms), so they include the polling granularity. Prints the distributions.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time

from _bench import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args) -> int:
    import requests
    from django.test import Client

    from tests import factories
    from tests.live import start_live_app, stop_live_app, wait_until
    from voice import floor as floor_services
    from voice.models import Call
    from voice.states import State

    app, saved = start_live_app(time_scale=20.0, cps=50.0, seed=7)
    sandbox = app.sandbox
    customer = "+14155550100"
    sandbox.set_behaviour(customer, {"kind": "human", "pickup_s": 1, "amd_s": 1, "talk_s": 10**6,
                                     "patience_s": 10**6})
    campaign = factories.make_campaign(min_ring_s=0, lines_per_agent=1)
    factories.make_contact(campaign=campaign, phone=customer)
    session = factories.make_session(campaign=campaign, in_room=False)
    sandbox.place_agent_leg(f"agent-{session.agent_id}", app.url("/api/voice/dial"),
                            params={"session": str(session.pk)})
    assert wait_until(lambda: type(session).objects.get(pk=session.pk).in_room)
    [call] = floor_services.dial_next(session=session)
    assert wait_until(lambda: Call.objects.get(pk=call.pk).state == State.CONNECTED), "no talk"
    session.refresh_from_db()
    call.refresh_from_db()
    agent_leg, customer_leg = session.agent_call_sid, call.sid

    client = Client()
    client.force_login(factories.make_user(manager=True))
    http = requests.Session()
    http.cookies.set("sessionid", client.cookies["sessionid"].value)
    token = secrets.token_hex(16)
    http.cookies.set("csrftoken", token)
    http.headers["X-CSRFToken"] = token
    url = app.url(f"/api/campaign/{campaign.pk}/supervise")

    def hears() -> dict:
        rooms = [c for c in sandbox.conferences() if c["friendly_name"] == session.conference_room
                 and c["status"] == "in-progress"]
        return rooms[0]["hears"] if rooms else {}

    def until(predicate, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the sandbox never got there")
            time.sleep(0.002)

    timings: dict[str, list[float]] = {"join": [], "switch": [], "leave": []}
    for round_ in range(args.rounds + 3):
        started = time.perf_counter()
        phone = http.post(url, json={"call_id": call.pk, "mode": "listen"}, timeout=10).json()["softphone"]
        leg = sandbox.place_agent_leg(phone["identity"], app.url("/api/voice/dial"), params=phone["params"])["sid"]
        until(lambda leg=leg: sorted(hears().get(leg, [])) == sorted([agent_leg, customer_leg]))
        joined = time.perf_counter()
        http.post(url, json={"call_id": call.pk, "mode": "whisper"}, timeout=10).raise_for_status()
        until(lambda leg=leg: leg in hears().get(agent_leg, []) and leg not in hears().get(customer_leg, []))
        switched = time.perf_counter()
        http.delete(url, timeout=10).raise_for_status()
        until(lambda leg=leg: leg not in hears())
        left = time.perf_counter()
        assert hears() == {agent_leg: [customer_leg], customer_leg: [agent_leg]}, "the talk was disturbed"
        if round_ >= 3:  # warm-up excluded
            timings["join"].append((joined - started) * 1000)
            timings["switch"].append((switched - joined) * 1000)
            timings["leave"].append((left - switched) * 1000)
    stop_live_app(app, saved)

    print(f"supervision over real HTTP through the sandbox, {args.rounds} rounds (ms)")
    for name, values in timings.items():
        values.sort()

        def pct(p: float, values=values) -> float:
            return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

        print(f"  {name:<6} p50 {pct(50):6.1f}   p90 {pct(90):6.1f}   max {values[-1]:6.1f}   "
              f"mean {statistics.mean(values):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
