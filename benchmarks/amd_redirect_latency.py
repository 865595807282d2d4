"""How fast a human reaches an agent: AMD `human` webhook received -> redirect REST request leaving the app.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/amd_redirect_latency.py \
        [--calls 1000] [--agents 20]

The app runs on daphne (in this process) against PostgreSQL (a throwaway database `dialer_bench`); Twilio's
REST API is a local fake reached through the real twilio client. For each call, the AMD webhook is posted,
signed, over HTTP; the clock starts when the request is sent and stops when the fake Twilio receives the
redirect (so it includes one loopback hop each way, i.e. it slightly overstates the server's share).
Prints the distribution in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.parse
import urllib.request

from _bench import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args) -> int:
    from django.conf import settings
    from twilio.request_validator import RequestValidator

    from campaigns.models import AgentSession
    from tests import factories
    from tests.live import start_daphne
    from tests.twilio_fake import FakeTwilio
    from voice import gateway
    from voice.models import Call
    from voice.states import State

    fake = FakeTwilio().start()
    settings.TWILIO_API_BASE_URL = fake.base_url
    base = start_daphne()
    settings.PUBLIC_BASE_URL = base
    gateway._client_for.cache_clear()
    validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)

    campaign = factories.make_campaign()
    sessions = [factories.make_session(campaign=campaign) for _ in range(args.agents)]
    latencies_ms: list[float] = []
    for i in range(args.calls + 20):
        session = sessions[i % len(sessions)]
        contact = factories.make_contact(campaign=campaign, phone=f"+1202{i:07d}")
        call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, state=State.ANSWERED,
                                   twiml_fetched=True, sid=f"CA{i:032x}")
        path = f"/api/voice/amd-status?call={call.pk}"
        params = {"CallSid": call.sid, "AccountSid": settings.TWILIO_ACCOUNT_SID, "AnsweredBy": "human",
                  "MachineDetectionDuration": "2200"}
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(base + path, data=body, headers={
            "X-Twilio-Signature": validator.compute_signature(base + path, params),
            "Content-Type": "application/x-www-form-urlencoded"})
        sent = time.perf_counter()
        urllib.request.urlopen(request, timeout=10).read()
        deadline = time.monotonic() + 5
        while not fake.updates(call.sid) and time.monotonic() < deadline:
            time.sleep(0.0005)
        redirect = fake.updates(call.sid)
        if not redirect:
            print(f"call {call.pk}: no redirect", file=sys.stderr)
            continue
        if i >= 20:  # warm-up excluded
            latencies_ms.append((redirect[0].at - sent) * 1000)
        # Free the agent again for the next round.
        Call.objects.filter(pk=call.pk).update(state=State.ENDED, outcome="talked")
        AgentSession.objects.filter(pk=session.pk).update(state=AgentSession.State.READY)

    fake.stop()
    latencies_ms.sort()

    def pct(p: float) -> float:
        return latencies_ms[min(len(latencies_ms) - 1, round(p / 100 * (len(latencies_ms) - 1)))]

    print(f"AMD human webhook -> redirect REST request, {len(latencies_ms)} calls, {args.agents} agents ready")
    print(f"  p50 {pct(50):.1f} ms   p90 {pct(90):.1f} ms   p99 {pct(99):.1f} ms   max {latencies_ms[-1]:.1f} ms   "
          f"mean {statistics.mean(latencies_ms):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
