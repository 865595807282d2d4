"""Kill -9 soak: the web processes and the dialer workers killed at random moments during a busy floor.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/crash_soak.py \
        [--duration 300] [--agents 6] [--web 1] [--web-command procfile|daphne] [--web-concurrency N] \
        [--workers 2] [--redis-url redis://127.0.0.1:6379/0] [--kill-every 2 6 | --no-kills] \
        [--time-scale 10] [--seed 5]

Runs the web processes (`--web 2`: two of them behind a small TCP balancer) and the dialer workers (the
Procfile's `worker:` line) as child processes on a throwaway PostgreSQL database (`dialer_bench`, or
$BENCH_DATABASE), the Twilio sandbox and simulated agents in this process. A web process is the Procfile's
`web:` line (gunicorn and `--web-concurrency` uvicorn workers, default one per core), or daphne
(`--web-command daphne`); `--redis-url` sets REDIS_URL for the app's processes and this one (realtime events
and throttle counters through Redis, as in production). It SIGKILLs one of the app's processes every few
seconds and restarts it a moment later (of a gunicorn: one worker, which its master replaces, or the master with
its workers), or nothing with `--no-kills`. Then it pauses the campaign, waits for the carrier's calls to end
and prints (see tests/crash_soak.py): calls left live in the app one reconcile interval after they were due,
humans held past the hold limit plus one reconcile interval, contacts with two live calls at once at the carrier,
agents with two customers at once. Exit code 0 when all four are zero.
"""

from __future__ import annotations

import argparse
import os
import sys

from _bench import bench_database


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of killing")
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--web", type=int, default=1, help="web processes (more than one: behind a TCP balancer)")
    parser.add_argument("--web-command", choices=("procfile", "daphne"), default="procfile",
                        help="the Procfile's web line (gunicorn supervising uvicorn workers), or daphne")
    parser.add_argument("--web-concurrency", type=int, default=None,
                        help="WEB_CONCURRENCY of each Procfile web process (default: gunicorn_conf's, one per core)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default="", help="REDIS_URL for the app's processes (default: none)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    parser.add_argument("--no-kills", action="store_true", help="run the floor for --duration without killing")
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    # The simulated agents' dispositions run in this process: their realtime events take the same way.
    os.environ["REDIS_URL"] = args.redis_url
    with bench_database(log_level="ERROR", pool_max=20):
        from tests.crash_soak import SoakConfig, run_crash_soak

        report = run_crash_soak(SoakConfig(duration_s=args.duration, agents=args.agents, web=args.web,
                                           web_command=args.web_command, web_concurrency=args.web_concurrency,
                                           workers=args.workers, redis_url=args.redis_url, kills=not args.no_kills,
                                           kill_every_s=tuple(args.kill_every), time_scale=args.time_scale,
                                           seed=args.seed))
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
