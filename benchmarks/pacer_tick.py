"""Pacer decision cost per tick at scale: 100 running campaigns, 1,000 agents, lines in flight.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/pacer_tick.py \
        [--campaigns 100] [--agents-per-campaign 10] [--ticks 50] [--mode predictive]

Builds the floor in a throwaway database (`dialer_bench`), then times `Dialer.decide_all` — the snapshot
queries plus `voice.pacing.decide` for every campaign — over many ticks. The first tick also computes
each campaign's measured statistics (cached for 30 s), so it is reported apart. Prints the distribution,
and that of the decision a campaign that acts takes again under its lock (its own snapshot only).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time

from _bench import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--agents-per-campaign", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--mode", default="predictive", choices=["predictive", "parallel", "progressive"])
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args) -> int:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from campaigns.models import AgentSession, Campaign, Contact
    from voice.dialer import Dialer
    from voice.models import Call
    from voice.states import State

    rng = random.Random(1)
    now = timezone.now()
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"agent{i}") for i in range(args.campaigns * args.agents_per_campaign)])
    states = ["ready", "on_call", "on_call", "on_call", "wrap_up", "paused"]
    for c in range(args.campaigns):
        campaign = Campaign.objects.create(name=f"Bench {c}", status="running", dial_mode=args.mode,
                                           window_days=[1, 2, 3, 4, 5, 6, 7])
        contacts = Contact.objects.bulk_create([
            Contact(campaign=campaign, phone=f"+1{c + 200:03d}555{i:04d}", time_zone="America/New_York")
            for i in range(60)])
        sessions = AgentSession.objects.bulk_create([
            AgentSession(agent=users[c * args.agents_per_campaign + a], campaign=campaign, state=rng.choice(states),
                         in_room=True, conference_room=f"room-{c}-{a}",
                         state_changed_at=now - timezone.timedelta(seconds=rng.uniform(0, 200)))
            for a in range(args.agents_per_campaign)])
        Call.objects.bulk_create([
            Call(campaign=campaign, contact=contacts[i], dialed_for=rng.choice(sessions),
                 state=rng.choice([State.DIALING, State.RINGING, State.RINGING, State.ANSWERED]),
                 ringing_at=now - timezone.timedelta(seconds=rng.uniform(0, 20)))
            for i in range(int(args.agents_per_campaign * 1.5))])

    dialer = Dialer()
    cold = time.perf_counter()
    dialer.decide_all(timezone.now())
    cold_ms = (time.perf_counter() - cold) * 1000
    gc.freeze()  # as `run_dialer` does once started
    timings = []
    for _ in range(args.ticks):
        start = time.perf_counter()
        decisions = dialer.decide_all(timezone.now())
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    again = []
    for pk in list(decisions) * 3:
        start = time.perf_counter()
        dialer.decide_all(timezone.now(), only=pk)
        again.append((time.perf_counter() - start) * 1000)
    again.sort()
    agents = args.campaigns * args.agents_per_campaign
    print(f"pacer decision per tick: {args.campaigns} campaigns, {agents} agents, mode {args.mode}, "
          f"{Call.objects.count()} lines in flight; {len(decisions)} campaigns want to act")
    print(f"  first tick (computes every campaign's statistics): {cold_ms:.0f} ms")
    print(f"  warm ticks: p50 {timings[len(timings) // 2]:.1f} ms   p90 {timings[int(len(timings) * 0.9)]:.1f} ms   "
          f"p99 {p99:.1f} ms   max {timings[-1]:.1f} ms   mean {statistics.mean(timings):.1f} ms")
    if again:
        print(f"  again under the lock, per acting campaign: p50 {again[len(again) // 2]:.2f} ms   "
              f"p90 {again[int(len(again) * 0.9)]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
