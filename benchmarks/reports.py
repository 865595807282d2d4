"""Manager reports over a million calls: page render time and CSV export throughput.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/reports.py \
        [--calls 1000000] [--days 30] [--agents 50] [--runs 20] [--keep]

Seeds one campaign with `seed_report_calls` in a throwaway database (`dialer_bench`), then, through the real
views (Django's test client: URL routing, permission checks, the selectors, template rendering, streaming):
- times the first report of the campaign, which rolls up every call (voice.reports.rollups);
- renders the reports page and the compliance page `--runs` times each for the default period (the last 7
  days) and for the whole seeded range, and prints the distribution (p50 / p95 / max, milliseconds);
- renders the reports page after `--active` calls changed since the previous look (a busy hour of live
  traffic), so each render first rolls those hours up again;
- downloads each CSV export for the whole range once and prints rows per second (the body is read chunk by
  chunk as a client would, never held whole).
Budgets (issue 13): pages <= 1 s at p95, exports >= 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time

from _bench import bench_database


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--active", type=int, default=4000, help="calls changed between two looks")
    parser.add_argument("--exports-only", action="store_true", help="skip the pages (and the first report)")
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args) -> int:
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from campaigns.models import Campaign
    from tests.factories import make_user

    call_command("seed_report_calls", calls=args.calls, days=args.days, agents=args.agents)
    campaign = Campaign.objects.order_by("-pk").first()
    manager = make_user(username="bench-manager", manager=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(manager)
    today = timezone.localdate()
    # The seeded days: the DAYS before today.
    whole = {"start": str(today - dt.timedelta(days=args.days)), "end": str(today - dt.timedelta(days=1)),
             "tz": "UTC"}
    periods = {"last 7 days": {"tz": "UTC"}, f"all {args.days} days": whole}
    budget_ok = True

    if not args.exports_only:
        budget_ok &= pages(args, client, campaign, periods, whole)

    print(f"\n{'export':<14} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'MB':>7}")
    for name in ("calls", "dispositions", "contacts", "agents", "compliance"):
        suffix = "reports/compliance.csv" if name == "compliance" else f"reports/{name}.csv"
        started = time.perf_counter()
        response = client.get(f"/campaigns/{campaign.pk}/{suffix}", whole)
        rows = size = 0
        for chunk in response.streaming_content:
            rows += chunk.count(b"\n")
            size += len(chunk)
        elapsed = time.perf_counter() - started
        rows -= 1  # the header
        if name in ("calls", "dispositions", "contacts"):
            budget_ok &= rows / elapsed >= 20_000
        print(f"{name:<14} {rows:>10,} {elapsed:8.2f} {rows / elapsed:>10,.0f} {size / 1e6:7.1f}")
    print("\nbudgets (pages p95 <= 1000 ms, exports >= 20,000 rows/s):", "met" if budget_ok else "NOT met")
    return 0 if budget_ok else 1


def pages(args, client, campaign, periods: dict, whole: dict) -> bool:
    from django.db import connection

    budget_ok = True
    reports_url = f"/campaigns/{campaign.pk}/reports/"
    started = time.perf_counter()
    client.get(reports_url, {"tz": "UTC"})
    print(f"\nfirst report of the campaign (rolls up all {args.calls:,} calls): "
          f"{time.perf_counter() - started:.1f} s")

    print(f"\n{args.calls:,} calls, {args.agents} agents, {args.days} days; {args.runs} runs each (ms)")
    print(f"{'page':<12} {'period':<14} {'p50':>8} {'p95':>8} {'max':>8}")
    for page, path in (("reports", "reports/"), ("compliance", "reports/compliance/")):
        url = f"/campaigns/{campaign.pk}/{path}"
        for label, params in periods.items():
            client.get(url, params)  # once unmeasured: the template and query plans warm up
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                response = client.get(url, params)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.status_code
            p95 = percentile(times, 0.95)
            budget_ok &= p95 <= 1000
            print(f"{page:<12} {label:<14} {statistics.median(times):8.0f} {p95:8.0f} {max(times):8.0f}")

    # Live traffic between two looks: the last ACTIVE calls changed since the last report (a busy hour of a
    # 50-agent floor is about 4,000 calls), so each report first rolls those hours up again.
    times = []
    with connection.cursor() as cursor:
        for _ in range(max(3, args.runs // 2)):
            cursor.execute("UPDATE voice_call SET last_event_at = now() WHERE id IN (SELECT id FROM voice_call "
                           "WHERE campaign_id = %s ORDER BY created_at DESC LIMIT %s)", [campaign.pk, args.active])
            started = time.perf_counter()
            assert client.get(reports_url, whole).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
    budget_ok &= percentile(times, 0.95) <= 1000
    print(f"{'reports':<12} {'after activity':<14} {statistics.median(times):8.0f} {percentile(times, 0.95):8.0f} "
          f"{max(times):8.0f}   ({args.active:,} calls changed before each look)")

    return budget_ok


if __name__ == "__main__":
    sys.exit(main())
