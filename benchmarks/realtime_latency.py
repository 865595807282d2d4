"""Commit -> event received by the page: the realtime path's latency with 50 agent consoles and 5 wallboards open.

A real daphne server (a child process, `dialer.asgi:application`) on a throwaway PostgreSQL database; every page
is a WebSocket client (aiohttp) signed in with a session cookie, connected exactly as the browser connects.
Changes are made the way people make them, through the JSON API: agents go ready / pause (an agent event:
their console and every wallboard) and a manager pauses / resumes the campaign (a campaign event: all 55 pages).

Latency is measured from `sent_at`, which `realtime.events` stamps in the on-commit hook, to the moment the
client has the parsed event (same machine, same clock). Also shown: HTTP request start -> the acting agent's
page has the event (what the agent perceives after a click).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/realtime_latency.py \
        [--agents 50] [--wallboards 5] [--actions 600] [--rate 20] [--toggles 20] [--servers 1]

The database named in DATABASE_URL is not touched: a `<name>_realtime_bench` database is created next to it
and dropped at the end. With REDIS_URL set, the server uses channels-redis instead of the in-memory layer;
`--servers 2` (needs REDIS_URL) puts the HTTP requests on one daphne and the sockets on another.

Why that matters: one daphne runs every sync view in one thread, and a busy view thread starves the event loop
that feeds the sockets (the GIL). Past ~30 requests/s on a 2-core machine the wallboards (which get every
event) fall seconds behind and the in-memory layer starts dropping their messages (capacity 100 per page);
with the sockets on their own process the same load stays within a few hundred ms and loses nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
# Benchmarks run against the Twilio sandbox (and its published credentials): say so.
os.environ.setdefault("TWILIO_SANDBOX", "true")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<44} (no samples)"
    return (f"{name:<44} n={len(values):>5}  p50 {statistics.median(values):6.1f} ms  "
            f"p90 {percentile(values, 0.90):6.1f}  p99 {percentile(values, 0.99):6.1f}  max {max(values):6.1f}")


def histogram(values: list[float]) -> list[str]:
    edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, float("inf")]
    counts = [0] * len(edges)
    for value in values:
        counts[next(i for i, edge in enumerate(edges) if value <= edge)] += 1
    lines, low = [], 0.0
    for edge, count in zip(edges, counts, strict=True):
        label = f"{low:g}-{edge:g} ms" if edge != float("inf") else f"> {low:g} ms"
        bar = "#" * round(60 * count / max(1, len(values)))
        lines.append(f"  {label:>12} {count:>6}  {bar}")
        low = edge
    return lines


# -- setup (in this process, before the server starts) ----------------------------------------------------


def setup_database(agents: int, wallboards: int) -> tuple[dict, list, list, int]:
    """A fresh database with one running campaign, its agents (joined, paused) and managers; session cookies."""
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    bench_name = f"{connection.settings_dict['NAME']}_realtime_bench"
    connection.settings_dict["TEST"]["NAME"] = bench_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from campaigns import services
    from campaigns.models import Campaign
    from voice import floor

    users = get_user_model()
    managers_group, _ = Group.objects.get_or_create(name="Managers")
    campaign = Campaign.objects.create(name="Latency bench", status=Campaign.Status.RUNNING,
                                       dial_mode=Campaign.DialMode.PREVIEW)
    services.disposition_codes_create_defaults(campaign=campaign)

    def cookie_for(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    agent_logins = []
    for i in range(agents):
        user = users.objects.create_user(username=f"bench-agent-{i}", password=None, first_name=f"Agent {i}")
        campaign.agents.add(user)
        floor.agent_join(user=user, campaign=campaign)
        agent_logins.append(cookie_for(user))
    manager_logins = []
    for i in range(wallboards):
        user = users.objects.create_user(username=f"bench-manager-{i}", password=None, is_staff=True)
        user.groups.add(managers_group)
        manager_logins.append(cookie_for(user))
    database = {"old_name": old_name, "bench_name": bench_name}
    connection.close()
    return database, agent_logins, manager_logins, campaign.pk


def teardown_database(database: dict) -> None:
    from django.db import connection

    connection.creation.destroy_test_db(database["old_name"], verbosity=0)


def start_servers(bench_name: str, count: int) -> list[tuple[subprocess.Popen, str]]:
    servers = []
    try:
        for _ in range(count):
            servers.append(start_server(bench_name))
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[tuple[subprocess.Popen, str]]) -> None:
    for server, _host in servers:
        server.terminate()
    for server, _host in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def start_server(bench_name: str) -> tuple[subprocess.Popen, str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = (f"postgres://{db['USER']}{':' + db['PASSWORD'] if db.get('PASSWORD') else ''}@{db['HOST'] or '127.0.0.1'}:"
           f"{db['PORT'] or 5432}/{bench_name}")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "dialer.settings",
           "DATABASE_POOL_MAX": "20"}
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "dialer.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"daphne exited: {server.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("daphne did not start")


# -- the clients -------------------------------------------------------------------------------------------------


class Page:
    """One open console or wallboard: a WebSocket signed in with a session cookie, recording latencies."""

    def __init__(self, kind: str, index: int, cookie: str):
        self.kind, self.index, self.cookie = kind, index, cookie
        self.snapshot: dict | None = None
        self.samples: list[tuple[str, float, dict]] = []  # (event type, commit -> received ms, event)
        self.arrivals: dict[tuple, float] = {}  # (type, id, version) -> received (time.time())
        self.ready = asyncio.Event()

    async def run(self, session, host: str, path: str, campaign_id: int) -> None:
        headers = {"Origin": f"http://{host}", "Cookie": f"sessionid={self.cookie}"}
        async with session.ws_connect(f"ws://{host}{path}", headers=headers, heartbeat=None) as ws:
            async for message in ws:
                now = time.time()
                event = json.loads(message.data)
                if event["type"] == "snapshot":
                    self.snapshot = event
                    self.ready.set()
                    continue
                if event["type"] == "pong" or event.get("campaign", event["id"]) != campaign_id:
                    continue  # a shared Redis may carry another run's groups
                self.samples.append((event["type"], now * 1000 - event["sent_at"], event))
                self.arrivals[(event["type"], event["id"], event["version"])] = now


async def bench(args, hosts: list[str], campaign_id: int, agent_cookies: list[str],
                manager_cookies: list[str]) -> dict:
    import aiohttp

    csrf = "benchcsrftoken0123456789abcdefgh"  # any 32-character secret: sent as cookie and header
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        consoles = [Page("console", i, c) for i, c in enumerate(agent_cookies)]
        boards = [Page("wallboard", i, c) for i, c in enumerate(manager_cookies)]
        # With several servers, the first takes the HTTP requests and the others hold the sockets.
        http_host = hosts[0]
        socket_hosts = hosts[1:] or hosts
        tasks = [asyncio.create_task(p.run(session, socket_hosts[i % len(socket_hosts)],
                                           f"/ws/campaigns/{campaign_id}/", campaign_id))
                 for i, p in enumerate(consoles)]
        tasks += [asyncio.create_task(p.run(session, socket_hosts[i % len(socket_hosts)],
                                            f"/ws/campaigns/{campaign_id}/wallboard/", campaign_id))
                  for i, p in enumerate(boards)]
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in consoles + boards)), timeout=60)
        connect_s = time.monotonic() - started

        async def post(cookie: str, path: str, body: dict) -> dict:
            headers = {"Cookie": f"sessionid={cookie}; csrftoken={csrf}", "X-CSRFToken": csrf}
            async with session.post(f"http://{http_host}{path}", json=body, headers=headers) as response:
                data = await response.json()
                if response.status >= 400:
                    raise RuntimeError(f"{path}: {response.status} {data}")
                return data

        clicks: list[tuple[int, float, dict]] = []  # (agent index, request start, session json)
        states = ["paused"] * len(consoles)
        rng = random.Random(1)

        async def agent_action(i: int) -> None:
            action = "ready" if states[i] == "paused" else "pause"
            states[i] = "ready" if action == "ready" else "paused"
            t0 = time.time()
            data = await post(agent_cookies[i], f"/api/campaign/{campaign_id}/{action}", {"reason": "bench"})
            clicks.append((i, t0, data["session"]))

        async def campaign_toggle(n: int) -> None:
            status = "paused" if n % 2 == 0 else "running"
            await post(manager_cookies[0], f"/api/campaign/{campaign_id}/status", {"status": status})

        # Agent actions at a steady rate, a campaign toggle every `actions / toggles` actions.
        interval = 1.0 / args.rate
        every = max(1, args.actions // max(1, args.toggles))
        pending = []
        busy: set[int] = set()
        for n in range(args.actions):
            i = rng.choice([k for k in range(len(consoles)) if k not in busy] or [0])
            busy.add(i)
            task = asyncio.create_task(agent_action(i))
            task.add_done_callback(lambda _t, i=i: busy.discard(i))
            pending.append(task)
            if n % every == every // 2:
                pending.append(asyncio.create_task(campaign_toggle(n // every)))
            await asyncio.sleep(interval)
        await asyncio.gather(*pending)
        await asyncio.sleep(1.0)  # the last events land
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    click_latency = []
    for i, t0, session_json in clicks:
        arrived = consoles[i].arrivals.get(("agent", session_json["id"], session_json["version"]))
        if arrived is not None:
            click_latency.append((arrived - t0) * 1000)
    return {"consoles": consoles, "boards": boards, "connect_s": connect_s, "click_latency": click_latency,
            "clicks": len(clicks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--wallboards", type=int, default=5)
    parser.add_argument("--actions", type=int, default=600, help="agent ready/pause requests")
    parser.add_argument("--rate", type=float, default=20.0, help="agent requests per second")
    parser.add_argument("--toggles", type=int, default=20, help="campaign pause/resume requests")
    parser.add_argument("--servers", type=int, default=1,
                        help="daphne processes; more than 1 needs REDIS_URL: the first serves the HTTP requests, "
                             "the others the pages' sockets")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test")
    if args.servers > 1 and not os.environ.get("REDIS_URL"):
        raise SystemExit("several servers share events through Redis: set REDIS_URL (e.g. redis://127.0.0.1:6379/0)")

    database, agent_cookies, manager_cookies, campaign_id = setup_database(args.agents, args.wallboards)
    servers = []
    try:
        servers = start_servers(database["bench_name"], args.servers)
        hosts = [host for _server, host in servers]
        result = asyncio.run(bench(args, hosts, campaign_id, agent_cookies, manager_cookies))
    finally:
        stop_servers(servers)
        teardown_database(database)

    by = defaultdict(list)
    for page in result["consoles"] + result["boards"]:
        for kind, latency, _event in page.samples:
            by["all"].append(latency)
            by[f"{page.kind}:{kind}"].append(latency)
    expected_agent = result["clicks"] * (1 + args.wallboards)
    expected_campaign = args.toggles * (args.agents + args.wallboards)
    got_agent = len(by["console:agent"]) + len(by["wallboard:agent"])
    got_campaign = len(by["console:campaign"]) + len(by["wallboard:campaign"])
    layer = "channels-redis" if os.environ.get("REDIS_URL") else "in-memory channel layer"
    topology = ("1 process" if args.servers == 1 else
                f"{args.servers} processes: HTTP on one, sockets on {args.servers - 1}")
    print(f"daphne ({topology}, {layer}), PostgreSQL; {args.agents} agent consoles + {args.wallboards} wallboards "
          f"connected in {result['connect_s']:.2f} s (snapshot included)")
    print(f"{result['clicks']} agent ready/pause requests at {args.rate:g}/s and {args.toggles} campaign "
          f"pause/resume requests; events delivered: agent {got_agent}/{expected_agent}, "
          f"campaign {got_campaign}/{expected_campaign}")
    print("\ncommit -> event received by the page (sent_at stamped in the on-commit hook):")
    print(summary("all events, all pages", by["all"]))
    print(summary("agent event -> that agent's console", by["console:agent"]))
    print(summary("agent event -> wallboards", by["wallboard:agent"]))
    print(summary(f"campaign event -> {args.agents} consoles (fan-out)", by["console:campaign"]))
    print(summary("campaign event -> wallboards", by["wallboard:campaign"]))
    print("\nHTTP request start -> the acting agent's page has the event:")
    print(summary("ready/pause click -> own console", result["click_latency"]))
    print("\ndistribution, all events:")
    print("\n".join(histogram(by["all"])))


if __name__ == "__main__":
    main()
