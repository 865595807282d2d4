"""Kill -9 soak: the web process and the dialer workers killed at random moments during a busy floor.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/crash_soak.py \
        [--duration 300] [--agents 6] [--web 1] [--workers 2] [--kill-every 2 6] [--time-scale 10] [--seed 5]

Runs daphne (`--web 2`: two of them behind a small TCP balancer) and the dialer workers as child processes
on a throwaway PostgreSQL database (`dialer_bench`), the Twilio sandbox and simulated agents in this process,
and SIGKILLs one of the app's processes every few seconds (restarting it a moment later). Then it pauses the
campaign, waits for the carrier's calls to end and prints (see tests/crash_soak.py): calls left live in the
app one reconcile interval after they were due, humans held past the hold limit plus one reconcile interval,
contacts with two live calls at once at the carrier, agents with two customers at once. Exit code 0 when all
four are zero.
"""

from __future__ import annotations

import argparse
import sys

from _bench import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of killing")
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--web", type=int, default=1, help="web processes (more than one: behind a TCP balancer)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    with bench_database(log_level="ERROR", pool_max=20):
        from tests.crash_soak import SoakConfig, run_crash_soak

        report = run_crash_soak(SoakConfig(duration_s=args.duration, agents=args.agents, web=args.web,
                                           workers=args.workers,
                                           kill_every_s=tuple(args.kill_every), time_scale=args.time_scale,
                                           seed=args.seed))
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
