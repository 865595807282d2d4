"""Soak: the whole product against the sandbox with Twilio's misbehaviour turned on.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/soak.py \
        [--calls 1000] [--agents 10] [--time-scale 40] [--duplicate-rate 0.2] [--jitter 2] [--drop 0.05] \
        [--rest-errors 0.05]

Runs daphne, the dialer worker and the sandbox in this process against a throwaway PostgreSQL database
(`dialer_bench`). Simulated agents keep their softphones in their rooms and write a disposition as soon as
a talk ends. Callbacks are duplicated, reordered, dropped (the reconciler must close those calls) and the
REST API answers 429 now and then. When `--calls` calls have ended, it checks and prints:
- calls whose final state disagrees with what the sandbox says happened on the line;
- agents who ever held two customers at once (overlapping bridged intervals);
- HTTP 5xx answers from the app to the sandbox's webhooks, and webhook rows that failed to process.
Exit code 0 when all three are zero.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from collections import Counter, defaultdict

from _bench import bench_database

# Which app outcomes agree with the line's final status in the sandbox.
AGREES = {
    "busy": {"busy"},
    "no-answer": {"no_answer"},
    "failed": {"failed"},
    "canceled": {"canceled"},
    "completed": {"talked", "machine", "voicemail_left", "fax", "abandoned", "hung_up_on_hold"},
}
HUMAN_OUTCOMES = {"talked", "abandoned", "hung_up_on_hold"}
MACHINE_OUTCOMES = {"machine", "voicemail_left", "fax"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=40.0)
    parser.add_argument("--duplicate-rate", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=2.0)
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--rest-errors", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    with bench_database(log_level="ERROR", pool_max=30):
        return run(args)


def run(args) -> int:
    from django.conf import settings
    from django.db import close_old_connections

    settings.RECONCILE_MARGIN_S = 3

    from campaigns.models import AgentSession, Campaign, Contact
    from tests import factories
    from tests.live import start_live_app, stop_live_app
    from voice import floor
    from voice.dialer import Dialer
    from voice.models import Call, WebhookEvent
    from voice.pacing.population import Population

    population = Population(human=0.2, machine=0.3, fax=0.02, unknown=0.02, no_answer=0.36, busy=0.05,
                            failed=0.05, human_pickup_s=(2, 10), machine_pickup_s=(3, 12), talk_mean_s=40,
                            talk_cv=0.6, patience_s=(150, 300))
    app, saved = start_live_app(time_scale=args.time_scale, cps=50.0, seed=args.seed, population=population,
                                duplicate_rate=args.duplicate_rate, jitter_s=args.jitter,
                                drop_status_rate=args.drop, rest_error_rate=args.rest_errors,
                                rest_error_kind="429", machine_hangup_after_s=120.0)
    campaign = factories.make_campaign(dial_mode=Campaign.DialMode.PARALLEL, lines_per_agent=3, min_ring_s=0,
                                       ring_timeout_s=15, max_hold_s=3.0, voicemail_drop=True,
                                       voicemail_text="Hello from the soak test.", max_attempts=1)
    Contact.objects.bulk_create([
        Contact(campaign=campaign, phone=f"+1{303 + i // 9000:03d}555{i % 9000 + 1000:04d}",
                time_zone="America/New_York") for i in range(int(args.calls * 1.3))])
    campaign.window_start, campaign.window_end = campaign.window_start.replace(hour=0), \
        campaign.window_end.replace(hour=23, minute=59)
    campaign.save()
    sessions = []
    for _ in range(args.agents):
        session = factories.make_session(campaign=campaign, in_room=False)
        app.sandbox.place_agent_leg(f"agent-{session.agent_id}", app.url("/api/voice/dial"),
                                    params={"session": str(session.pk)},
                                    status_callback=app.url(f"/api/voice/agent-status?session={session.pk}"))
        sessions.append(session)

    stop = threading.Event()
    threading.Thread(target=Dialer(tick_s=0.2, cps=50.0).run, args=(stop,), daemon=True).start()

    def agents_work() -> None:
        while not stop.is_set():
            for session in AgentSession.objects.filter(campaign=campaign, state=AgentSession.State.WRAP_UP):
                try:
                    floor.disposition_record(session=session, code="not-interested")
                except Exception:  # a disposition racing the end of the call: try again next round
                    pass
            close_old_connections()
            time.sleep(0.1)

    threading.Thread(target=agents_work, daemon=True).start()
    started = time.monotonic()
    while time.monotonic() - started < args.timeout:
        ended = Call.objects.filter(campaign=campaign, state="ended").count()
        if ended >= args.calls:
            break
        print(f"\r{time.monotonic() - started:5.0f}s  {ended} calls ended", end="", flush=True)
        time.sleep(2)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    # Let the calls in flight finish; the reconciler closes the ones whose final callback was dropped.
    settle = time.monotonic()
    while Call.objects.filter(campaign=campaign).exclude(state="ended").exists() and time.monotonic() - settle < 60:
        time.sleep(1)
    stop.set()
    elapsed = time.monotonic() - started
    print()

    calls = list(Call.objects.filter(campaign=campaign).select_related("contact"))
    sandbox_calls = {c["sid"]: c for c in app.sandbox.calls()}
    wrong = []
    for call in calls:
        if call.state != "ended":
            wrong.append((call.pk, "not ended", call.state))
            continue
        line = sandbox_calls.get(call.sid)
        if line is None:
            if call.outcome not in ("failed", "invalid_number"):
                wrong.append((call.pk, "no line in the sandbox", call.outcome))
            continue
        if call.outcome not in AGREES.get(line["status"], set()):
            wrong.append((call.pk, f"sandbox {line['status']}", call.outcome))
        verdict = line.get("answered_by") or ""
        if call.outcome in MACHINE_OUTCOMES and verdict in ("human",):
            wrong.append((call.pk, "a human treated as a machine", verdict))
        if call.outcome == "talked" and (verdict.startswith("machine") or verdict == "fax"):
            wrong.append((call.pk, "a machine reached an agent", verdict))
    intervals = defaultdict(list)
    for call in calls:
        if call.bridged_to_id and call.bridged_at:
            intervals[call.bridged_to_id].append((call.bridged_at, call.ended_at or call.bridged_at))
    doubled = 0
    for spans in intervals.values():
        spans.sort()
        doubled += sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)
    deliveries = [d for c in app.sandbox.calls() for d in c.get("webhooks", [])]
    http_5xx = sum(1 for d in deliveries if (d.get("http_status") or 0) >= 500)
    failed_rows = WebhookEvent.objects.filter(status="failed").count()
    stats = app.sandbox.stats()
    outcomes = Counter(c.outcome for c in calls)
    print(f"soak: {len(calls)} calls in {elapsed:.0f} s ({args.agents} agents, time scale {args.time_scale}x, "
          f"duplicates {args.duplicate_rate:.0%}, jitter {args.jitter} s, dropped status {args.drop:.0%}, "
          f"REST 429s {args.rest_errors:.0%})")
    print(f"  outcomes: {dict(sorted(outcomes.items()))}")
    print(f"  webhooks delivered {len(deliveries)}, duplicates stored "
          f"{WebhookEvent.objects.filter(status='duplicate').count()}, sandbox stats: {stats.get('webhooks')}")
    print(f"  calls in a wrong final state: {len(wrong)}  {wrong[:5]}")
    print(f"  agents with two customers at once: {doubled}")
    print(f"  HTTP 5xx from the app: {http_5xx}   webhook rows failed: {failed_rows}")
    stop_live_app(app, saved)
    return 0 if not wrong and not doubled and not http_5xx and not failed_rows else 1


if __name__ == "__main__":
    sys.exit(main())
