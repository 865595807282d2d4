"""CPU a webhook costs the app itself: signed Twilio callbacks through the handler production runs them on
(dialer.asgi.WebhookHandler: Django's WSGI handler with the webhooks' middleware), in this process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/callback_cpu.py \
        [--calls 400] [--profile 40]

No server, no client, no other process on this core: each request's CPU is this thread's CPU time
(`time.thread_time`), so the figures barely move with the machine's load, unlike a rate. What they leave out is
measured by benchmarks/webhook_load.py: the HTTP server and the hand-over to the request threads (about 1 ms, the
"forged" floor there) and realtime events (no channel layer here; the server hands them to
its event loop).

The callbacks are those of whole calls that reach no agent, as Twilio sends them (webhook_load's `lifecycle`):
status initiated, ringing, then busy / no-answer, or answered (the voice URL fetch, status in-progress, an AMD
machine or fax verdict, completed). Prints PostgreSQL's CPU per request (when it runs on this machine: all its
processes, the WAL writer's included), then this thread's CPU per request by kind (p50 / p90 / mean) and, with
`--profile N`, the N functions with the most CPU of their own and cumulative.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import webhook_load  # sets production mode's throwaway secrets before Django starts
from _bench import bench_database

ENDINGS = (("machine", 0.4), ("no-answer", 0.4), ("busy", 0.2))


def environ(base: str, request: webhook_load.Request) -> dict:
    """The WSGI environ a server would hand Django for this request."""
    url = urllib.parse.urlsplit(base + request.path)
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": url.path, "QUERY_STRING": url.query, "SERVER_NAME": url.hostname,
        "SERVER_PORT": str(url.port or (443 if url.scheme == "https" else 80)), "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": url.netloc, "wsgi.url_scheme": url.scheme, "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": request.headers["Content-Type"], "CONTENT_LENGTH": str(len(request.body)),
        "HTTP_X_TWILIO_SIGNATURE": request.headers["X-Twilio-Signature"], "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="whole calls (each 3-6 callbacks)")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cProfile)")
    args = parser.parse_args()

    from tests.twilio_fake import FakeTwilio

    # A verdict's hang-up goes to Twilio from the outbox's threads (not this one): a local fake answers it.
    fake = FakeTwilio().start()
    os.environ["TWILIO_API_BASE_URL"] = fake.base_url
    try:
        measure(args)
    finally:
        fake.stop()


def measure(args) -> None:
    with bench_database():
        from django.conf import settings

        from campaigns.models import Contact
        from dialer.asgi import WebhookHandler
        from tests import factories
        from voice.models import Call
        from voice.states import State

        settings.CHANNEL_LAYERS = {}  # realtime events are the server's event loop's work, not measured here
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        campaign = factories.make_campaign(min_ring_s=0, dial_mode="predictive", max_hold_s=2.0)
        contacts = Contact.objects.bulk_create(
            Contact(campaign=campaign, phone=f"+1303{i:07d}", time_zone="America/New_York", status="dialing",
                    attempts=1) for i in range(args.calls))
        calls = Call.objects.bulk_create(
            Call(campaign=campaign, contact=contact, state=State.DIALING, sid=f"CA{i:032x}")
            for i, contact in enumerate(contacts))
        signer = webhook_load.Signer(base)
        rng = random.Random(7)
        names, weights = zip(*ENDINGS, strict=True)
        requests = [request for call in calls
                    for request in webhook_load.lifecycle(signer, (call.pk, call.sid, call.contact.phone),
                                                          rng.choices(names, weights)[0], rng)]
        app = WebhookHandler()

        def send(request) -> str:
            statuses: list[str] = []
            body = app(environ(base, request), lambda status, _headers, _exc=None: statuses.append(status))
            b"".join(body)
            body.close()
            return statuses[0]

        warm, measured = requests[:60], requests[60:]
        for request in warm:
            send(request)
        cpu: dict[str, list[float]] = defaultdict(list)
        answers: dict[str, int] = defaultdict(int)
        profile = cProfile.Profile(time.thread_time) if args.profile else None
        postmaster = webhook_load.database_postmaster()
        db_before = webhook_load.database_cpu_s(postmaster) if postmaster else 0.0
        started = time.perf_counter()
        for request in measured:
            before = time.thread_time()
            if profile:
                profile.enable()
            answers[send(request)] += 1
            if profile:
                profile.disable()
            cpu[request.kind].append((time.thread_time() - before) * 1000)
        wall = time.perf_counter() - started
        db_each = webhook_load.database_ms_each(postmaster, db_before, len(measured))

    every = [ms for samples in cpu.values() for ms in samples]
    print(f"{len(every)} callbacks in {wall:.1f} s, answers {dict(answers)}; PostgreSQL's CPU per request (mean, "
          f"every process of the server, so run it on a quiet database): {db_each}; CPU of this thread per request:")
    for kind, samples in (("all", every), *sorted(cpu.items())):
        ordered = sorted(samples)
        print(f"  {kind:>8}: n={len(samples):>5}  p50 {statistics.median(samples):5.2f} ms  "
              f"p90 {ordered[int(0.9 * len(ordered))]:5.2f}  mean {statistics.fmean(samples):5.2f}")
    if profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
