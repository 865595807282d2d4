"""What a forged webhook flood costs, next to Twilio's own signed webhooks, and the API's rate limit at work.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/forged_webhooks.py \
        [--requests 2000]

In this process, through Django's full request stack (middleware included) on PostgreSQL (a throwaway database
`dialer_bench`): N status webhooks with a forged signature, N signed ones (each a new SequenceNumber, for a call
that exists, so each is stored and applied), then one user's JSON API requests past API_THROTTLE_RATE.
Prints latency distributions (ms), database queries per request, and the API answers by status.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from urllib.parse import urlencode

from _bench import bench_database


def _dist(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (f"p50 {p(0.50):.2f}  p90 {p(0.90):.2f}  p99 {p(0.99):.2f}  max {ordered[-1]:.2f}  "
            f"mean {statistics.fmean(ordered):.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args) -> int:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from twilio.request_validator import RequestValidator

    from tests import factories
    from voice.models import Call, WebhookEvent

    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    campaign = factories.make_campaign()
    session = factories.make_session(campaign=campaign)
    contact = factories.make_contact(campaign=campaign, status="dialing")
    call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, state="ringing",
                               sid="CA" + "b" * 32)
    validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
    path = "/api/voice/status"

    def post(params, signature):
        body = urlencode(params)
        connection.queries_log.clear()
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            response = client.post(path, body, content_type="application/x-www-form-urlencoded",
                                   HTTP_X_TWILIO_SIGNATURE=signature)
        return (time.perf_counter() - start) * 1000, len(queries), response.status_code

    for label, signed in (("forged", False), ("signed", True)):
        latencies, queries, codes = [], [], Counter()
        for i in range(args.requests):
            params = {"CallSid": call.sid, "CallStatus": "ringing", "SequenceNumber": str(i + (0 if signed else
                                                                                             10**6))}
            signature = validator.compute_signature(settings.PUBLIC_BASE_URL + path, params) if signed else "forged"
            ms, n, code = post(params, signature)
            latencies.append(ms)
            queries.append(n)
            codes[code] += 1
        print(f"{label:6} webhooks x{args.requests}: {_dist(latencies)}; queries/request "
              f"{statistics.fmean(queries):.1f} (max {max(queries)}); answers {dict(codes)}")
    print(f"webhook rows stored: {WebhookEvent.objects.count()} (forged ones store nothing)")

    settings.API_THROTTLE_RATE, settings.API_THROTTLE_WINDOW_S = 120, 60
    user = factories.make_user()
    campaign.agents.add(user)
    client.force_login(user)
    answers, retry_after = Counter(), set()
    for _ in range(200):
        response = client.get(f"/api/campaign/{campaign.pk}")
        answers[response.status_code] += 1
        if response.status_code == 429:
            retry_after.add(int(response["Retry-After"]))
    print(f"API: 200 requests by one user at {settings.API_THROTTLE_RATE}/{settings.API_THROTTLE_WINDOW_S}s: "
          f"{dict(answers)}; Retry-After {min(retry_after)}-{max(retry_after)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
