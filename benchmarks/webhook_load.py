"""The webhook hot path under load, against the production web command (the Procfile's `web:` line).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python benchmarks/webhook_load.py [--rates 30,50,80,120,150] [--seconds 20] [--consoles 50] \
        [--saturation-seconds 15] [--clients 64] [--workers N] [--command "daphne -b 127.0.0.1 -p $PORT ..."]

One run, four parts, on a throwaway PostgreSQL database (`<name>_webhook_bench`, dropped at the end):
1. the web command starts as production starts it (`$PORT` set, `WEB_CONCURRENCY` = `--workers` if given), with
   Twilio's REST API replaced by a local fake (tests/twilio_fake.py, in a process of its own, keeping connections
   alive as Twilio does) that timestamps every redirect it receives;
   `--consoles` agents are ready in their rooms with their consoles connected over WebSockets (cookies, Origin);
2. open loop, at each rate in turn: signed Twilio callbacks of whole calls (status initiated, ringing, answered,
   the voice URL fetch, the AMD verdict, the conference fetch of a routed human, completed; plus no-answer and busy
   calls), interleaved over 40 calls in flight, each request sent at its planned instant whether or not earlier
   ones came back. Latency counts from the planned instant (no coordinated omission). AMD `human` -> redirect is
   the planned instant of the verdict -> the fake receiving the redirect into the agent's conference.
   Consoles: commit -> event received (`sent_at` is stamped in the on-commit hook), all events of the phase.
   Agents are freed the way agents free themselves: a disposition (the service, from this process) once the talk
   has ended, so routed humans always find someone (50 agents, a few busy at a time);
3. closed loop: `--clients` clients post signed status callbacks back to back (each client walks its own calls
   through initiated -> ringing -> in-progress -> completed): signed callbacks per second, errors;
4. the stack's floor: the same clients with forged signatures (403 before any database work).

With several worker processes the consoles and the requests land on different processes: set REDIS_URL.
The client and the disposing agents share this process, and with the fake Twilio the machine's cores with the
server: note the machine's load (printed) and rerun when it is quiet. Each closed-loop phase also prints the CPU
a request cost the server and PostgreSQL (when it runs on this machine), which the machine's load moves less.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Production mode, as the Procfile runs it (DEBUG off, not the sandbox): the web command refuses the demo
# secrets there (dialer/checks.py), so the run gets throwaway ones of its own, shared with its children.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("TWILIO_AUTH_TOKEN", secrets.token_hex(16))

IN_FLIGHT = 40
# The server logs garbage collections that hold a worker this long (dialer/asgi.py); the run counts them.
GC_PAUSE_MS = 10
# Share of calls by how they end (each a few callbacks long).
MIX = (("human", 0.25), ("machine", 0.25), ("no-answer", 0.35), ("busy", 0.15))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def dist(values: list[float]) -> str:
    if not values:
        return "(no samples)"
    return (f"n={len(values):>5}  p50 {statistics.median(values):7.1f} ms  p90 {pct(values, 0.90):7.1f}  "
            f"p99 {pct(values, 0.99):7.1f}  max {max(values):7.1f}")


def web_command(args) -> str:
    if args.command:
        return args.command
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise SystemExit("no web: line in the Procfile")


# -- the database ---------------------------------------------------------------------------------------------


@dataclass
class Floor:
    campaign_id: int
    sessions: list[int]
    cookies: list[str]
    calls: list[tuple[int, str, str]]  # (pk, sid, phone), all dialing, never touched by a callback yet
    database: dict = field(default_factory=dict)
    postmaster: int | None = None  # PostgreSQL's, when it runs on this machine


def setup_database(args, calls_needed: int) -> Floor:
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    bench_name = f"{connection.settings_dict['NAME']}_webhook_bench"
    connection.settings_dict["TEST"]["NAME"] = bench_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)

    from django.test import Client

    from campaigns.models import Contact
    from tests import factories
    from voice.models import Call
    from voice.states import State

    # A campaign id no other run on a shared Redis is likely to use (group names carry it).
    campaign = factories.make_campaign(pk=random.randint(10_000, 9_999_999), min_ring_s=0, dial_mode="predictive",
                                       max_hold_s=2.0)
    sessions, cookies = [], []
    for _ in range(args.consoles):
        session = factories.make_session(campaign=campaign)
        client = Client()
        client.force_login(session.agent)
        sessions.append(session.pk)
        cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    contacts = Contact.objects.bulk_create(
        Contact(campaign=campaign, phone=f"+1303{i:07d}", time_zone="America/New_York", status="dialing", attempts=1)
        for i in range(calls_needed))
    # Pooled lines (predictive), dialed for no agent: the run's thousands of calls are made up front, and lines
    # dialed for an agent would all be that agent's "other lines", released when it gets a human.
    calls = Call.objects.bulk_create(
        Call(campaign=campaign, contact=contact, state=State.DIALING, sid=f"CA{i:032x}")
        for i, contact in enumerate(contacts))
    floor = Floor(campaign.pk, sessions, cookies, [(c.pk, c.sid, c.contact.phone) for c in calls],
                  {"old_name": old_name, "bench_name": bench_name}, database_postmaster())
    connection.close()
    return floor


def teardown_database(floor: Floor) -> None:
    from django.db import close_old_connections, connection

    close_old_connections()
    connection.creation.destroy_test_db(floor.database["old_name"], verbosity=0)


# -- the server ------------------------------------------------------------------------------------------------


class FakeTwilioProcess:
    """tests.twilio_fake.FakeTwilio in a process of its own, keeping connections alive as Twilio does.

    Why not in this process: here the load generator, fifty consoles and the disposing agents keep the GIL busy,
    and a redirect would be stamped when this process got round to reading it, not when it arrived; a process
    with nothing else to do stamps it on arrival. The stamps are time.perf_counter(), CLOCK_MONOTONIC on Linux:
    one clock for every process of the machine."""

    def __init__(self, timeout_s: float = 30.0):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a clean interpreter: no Django, no threads
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_serve_fake_twilio, args=(theirs,), daemon=True)
        self._process.start()
        theirs.close()  # only the child's end: if it dies, this end reads EOF instead of waiting forever
        if not self._pipe.poll(timeout_s):
            self.stop()
            raise RuntimeError("the fake Twilio did not start")
        self.base_url = self._pipe.recv()

    def redirects(self, url_part: str) -> dict[str, float]:
        """SID -> when the first redirect to a URL containing `url_part` arrived."""
        self._pipe.send(url_part)
        return self._pipe.recv()

    def stop(self) -> None:
        try:
            self._pipe.send(None)
        except OSError:
            pass  # already gone
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()


def _serve_fake_twilio(pipe) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.twilio_fake import FakeTwilio

    fake = FakeTwilio(keep_alive=True).start()
    pipe.send(fake.base_url)
    while (url_part := pipe.recv()) is not None:
        first: dict[str, float] = {}
        for update in fake.updates():
            if url_part in update.form.get("Url", [""])[0]:
                sid = update.path.rpartition("/")[2].removesuffix(".json")
                first.setdefault(sid, update.at)
        pipe.send(first)
    fake.stop()


def start_server(args, floor: Floor, fake_url: str) -> tuple[subprocess.Popen, str, Path]:
    """The web command, listening: (its process, its base URL, its log file)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = (f"postgres://{db['USER']}{':' + db['PASSWORD'] if db.get('PASSWORD') else ''}@{db['HOST'] or '127.0.0.1'}:"
           f"{db['PORT'] or 5432}/{floor.database['bench_name']}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port), "PUBLIC_BASE_URL": base,
           "TWILIO_API_BASE_URL": fake_url, "LOG_LEVEL": "WARNING", "GC_PAUSE_LOG_MS": str(GC_PAUSE_MS),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    command = web_command(args)
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server.
    log = tempfile.NamedTemporaryFile("w+b", prefix="webhook_load_server_", suffix=".log", delete=False)  # noqa: SIM115
    print(f"server log: {log.name}", file=sys.stderr)
    server = subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], cwd=ROOT, env=env,  # noqa: S603
                              stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the web command exited: {Path(log.name).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        stop_server(server)
        raise SystemExit("the web command did not listen within 30 s")
    time.sleep(2.0)  # every worker imported and listening, not only the first
    return server, base, Path(log.name)


def stop_server(server: subprocess.Popen, grace_s: float = 20.0) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def gc_pauses(log: Path) -> str:
    """The garbage collections that held a server process GC_PAUSE_MS or longer during the whole run (every
    request in that process waited for them), from the server's log."""
    pauses = sorted(float(m) for m in re.findall(r"held the process ([0-9.]+) ms", log.read_text(errors="replace")))
    if not pauses:
        return f"garbage collection pauses >= {GC_PAUSE_MS} ms in the server: none"
    return (f"garbage collection pauses >= {GC_PAUSE_MS} ms in the server: {len(pauses)}, "
            f"median {statistics.median(pauses):.0f} ms, max {pauses[-1]:.0f} ms")


# -- the callbacks ---------------------------------------------------------------------------------------------


@dataclass
class Request:
    kind: str  # status, voice, amd, conference-fetch
    path: str
    body: bytes
    headers: dict
    sid: str
    human: bool = False


class Signer:
    def __init__(self, base: str, forged: bool = False):
        from django.conf import settings
        from twilio.request_validator import RequestValidator

        self.base = base
        self.account = settings.TWILIO_ACCOUNT_SID
        self.validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        self.forged = forged

    def request(self, kind: str, name: str, call: tuple[int, str, str], params: dict, *, human: bool = False):
        pk, sid, phone = call
        path = f"/api/voice/{name}?call={pk}"
        params = {"CallSid": sid, "AccountSid": self.account, "From": "+12025550199", "To": phone,
                  "Direction": "outbound-api", "ApiVersion": "2010-04-01", **params}
        signature = "forged0000000000000000000000" if self.forged else \
            self.validator.compute_signature(self.base + path, params)
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        return Request(kind, path, urllib.parse.urlencode(params).encode(), headers, sid, human)


def lifecycle(signer: Signer, call: tuple[int, str, str], ending: str, rng: random.Random) -> list[Request]:
    """The callbacks Twilio sends for one call, in order."""

    def status(value: str, seq: int, **extra) -> Request:
        return signer.request("status", "status", call, {"CallStatus": value, "SequenceNumber": str(seq), **extra})

    steps = [status("initiated", 0), status("ringing", 1)]
    if ending in ("no-answer", "busy"):
        return [*steps, status(ending, 2, CallDuration="0")]
    steps += [signer.request("voice", "customer-queue", call, {"CallStatus": "in-progress"}),
              status("in-progress", 2)]
    verdict = "human" if ending == "human" else rng.choice(["machine_end_beep", "machine_end_silence", "fax"])
    steps.append(signer.request("amd", "amd-status", call, {"AnsweredBy": verdict,
                                                             "MachineDetectionDuration": "2300"},
                                human=ending == "human"))
    if ending == "human":
        steps.append(signer.request("conference-fetch", "customer-join-conference", call,
                                    {"CallStatus": "in-progress"}))
    return [*steps, status("completed", 3, CallDuration="42")]


def open_loop_schedule(signer: Signer, calls, rate: float, seconds: float, rng: random.Random) -> list[Request]:
    """`rate * seconds` requests from whole calls, IN_FLIGHT calls interleaved (each call's callbacks in order)."""
    endings = [name for name, _share in MIX]
    weights = [share for _name, share in MIX]
    flights: list[list[Request]] = []
    schedule: list[Request] = []
    while len(schedule) < int(rate * seconds):
        while len(flights) < IN_FLIGHT:
            flights.append(lifecycle(signer, next(calls), rng.choices(endings, weights)[0], rng))
        flight = rng.choice(flights)
        schedule.append(flight.pop(0))
        if not flight:
            flights.remove(flight)
    return schedule


# -- the consoles and the agents ---------------------------------------------------------------------------------


class Console:
    def __init__(self, cookie: str):
        self.cookie = cookie
        self.samples: list[tuple[float, float]] = []  # (received perf time, commit -> received ms)
        self.ready = asyncio.Event()

    async def run(self, session, host: str, campaign_id: int) -> None:
        import json

        headers = {"Origin": f"http://{host}", "Cookie": f"sessionid={self.cookie}"}
        async with session.ws_connect(f"ws://{host}/ws/campaigns/{campaign_id}/", headers=headers,
                                      heartbeat=None) as ws:
            async for message in ws:
                now = time.time()
                event = json.loads(message.data)
                if event["type"] == "snapshot":
                    self.ready.set()
                    continue
                if event["type"] in ("call", "agent") and "sent_at" in event:
                    self.samples.append((time.perf_counter(), now * 1000 - event["sent_at"]))


def agents_dispose(floor: Floor, stop: threading.Event) -> None:
    """Agents write a disposition once their talk has ended (auto-ready puts them back in the pool)."""
    from django.db import close_old_connections

    from campaigns.models import AgentSession
    from voice import floor as services

    while not stop.is_set():
        close_old_connections()
        for session in AgentSession.objects.filter(pk__in=floor.sessions, state=AgentSession.State.WRAP_UP):
            try:
                services.disposition_record(session=session, code="interested")
            except Exception:
                pass  # the call is not ended yet (out of order under load): next round
        stop.wait(0.1)
    close_old_connections()


class Report(list):
    """Lines printed as they come (a long run shows its progress) and kept for the caller."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)


# -- running the load --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    planned: float
    latency_ms: float
    status: int


async def fire(session, base: str, request: Request, planned: float, results: list[Outcome]) -> None:
    try:
        async with session.post(base + request.path, data=request.body, headers=request.headers) as response:
            await response.read()
            code = response.status
    except Exception:
        code = 599
    results.append(Outcome(request.kind, planned, (time.perf_counter() - planned) * 1000, code))


async def open_loop(session, base: str, schedule: list[Request], rate: float) -> tuple[list[Outcome], dict]:
    results: list[Outcome] = []
    human_planned: dict[str, float] = {}
    tasks = []
    start = time.perf_counter() + 0.2
    for i, request in enumerate(schedule):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if request.human:
            human_planned[request.sid] = planned
        tasks.append(asyncio.create_task(fire(session, base, request, planned, results)))
    await asyncio.gather(*tasks)
    return results, human_planned


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after "(comm)": state, ppid, pgrp, ..., utime (11), stime (12), cutime (13),
    cstime (14)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _processes():
    """(pid, parent pid, process group, CPU ticks of its own, CPU ticks of its reaped children) of every live
    process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(stat.parent.name)
        except OSError:
            continue  # gone meanwhile
        yield (int(stat.parent.name), int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]),
               int(fields[13]) + int(fields[14]))


def process_group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group: the web command runs in
    its own group (start_new_session), so this is the server's CPU, whatever else the machine is doing."""
    return sum(ticks for _, _, group, ticks, _ in _processes() if group == pgid) / os.sysconf("SC_CLK_TCK")


def database_cpu_s(postmaster: int) -> float:
    """CPU seconds used so far by PostgreSQL: the postmaster, its live children (backends, WAL writer,
    checkpointer, autovacuum) and the children it has reaped (an autovacuum worker or a backend that ended in
    between). Each child is a session of its own (setsid), hence by parent, not by group."""
    ticks = 0
    for pid, parent, _, own, reaped in _processes():
        if pid == postmaster:
            ticks += own + reaped
        elif parent == postmaster:
            ticks += own
    return ticks / os.sysconf("SC_CLK_TCK")


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def database_postmaster() -> int | None:
    """PostgreSQL's postmaster when the server runs on this machine, else None: its CPU is part of what a
    callback costs the machine. (A server in a container or on another host has pids this /proc does not show,
    or shows as other processes: both must be postgres.)"""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        postmaster = int(_stat(backend)[1])
    except (OSError, ValueError):
        return None
    return postmaster if _command_name(backend) == _command_name(postmaster) == "postgres" else None


def redis_cpu_s() -> float | None:
    """CPU seconds used so far by the Redis server(s) on this machine (the channel layer's), or None if none runs
    here."""
    ticks = [own for pid, _, _, own, _ in _processes() if _command_name(pid) == "redis-server"]
    return sum(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None


def database_ms_each(postmaster: int | None, before: float, requests: int) -> str:
    if postmaster is None:
        return "n/a"
    return f"{1000 * (database_cpu_s(postmaster) - before) / max(1, requests):.2f} ms"


async def closed_loop(session, base: str, signer: Signer, calls, clients: int, seconds: float) -> tuple[int, Counter]:
    codes: Counter = Counter()
    deadline = time.perf_counter() + seconds
    done = 0

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            call = next(calls)
            for seq, value in enumerate(("initiated", "ringing", "in-progress", "completed")):
                request = signer.request("status", "status", call, {"CallStatus": value, "SequenceNumber": str(seq)})
                try:
                    async with session.post(base + request.path, data=request.body, headers=request.headers) as r:
                        await r.read()
                        codes[r.status] += 1
                except Exception:
                    codes[599] += 1
                if time.perf_counter() >= deadline:
                    return
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return round(done / (time.perf_counter() - started)), codes


async def run_load(args, floor: Floor, base: str, fake, server_pid: int) -> list[str]:
    import aiohttp

    host = base.removeprefix("http://")
    calls = iter(floor.calls)
    rng = random.Random(11)
    signer = Signer(base)
    lines = Report()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        consoles = [Console(cookie) for cookie in floor.cookies]
        sockets = [asyncio.create_task(c.run(session, host, floor.campaign_id)) for c in consoles]
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in consoles)), timeout=60)
        lines.append(f"{len(consoles)} agent consoles connected over WebSockets, all agents ready in their rooms")
        # Warm-up: every worker has opened its connections and imported everything.
        warm = open_loop_schedule(signer, calls, 20, 3, rng)
        await open_loop(session, base, warm, 20)
        await asyncio.sleep(1.0)

        lines.append("\nopen loop (latency from the planned send instant):")
        lines.append(f"{'rate':>8} {'achieved':>9} {'errors':>7}  {'all callbacks':<60}  AMD human -> redirect sent")
        for rate in args.rates:
            schedule = open_loop_schedule(signer, calls, rate, args.seconds, rng)
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            results, human_planned = await open_loop(session, base, schedule, rate)
            elapsed = time.perf_counter() - started
            ended = time.perf_counter()
            await asyncio.sleep(1.5)  # redirects and events still on their way
            errors = sum(1 for r in results if r.status >= 400)
            arrived = fake.redirects("customer-join-conference")
            redirects = [(arrived[sid] - planned) * 1000 for sid, planned in human_planned.items() if sid in arrived]
            unrouted = len(human_planned) - len(redirects)
            events = [ms for c in consoles for at, ms in c.samples if started <= at <= ended + 1.5]
            lines.append(f"{rate:>6g}/s {len(results) / elapsed:>7.1f}/s {errors:>7}  "
                         f"{dist([r.latency_ms for r in results]):<60}  "
                         f"p50 {statistics.median(redirects) if redirects else float('nan'):6.1f} ms  "
                         f"p99 {pct(redirects, 0.99):6.1f} ms  (n={len(redirects)}, not routed {unrouted})")
            by_kind = defaultdict(list)
            for r in results:
                by_kind[r.kind].append(r.latency_ms)
            for kind in ("status", "voice", "amd", "conference-fetch"):
                lines.append(f"{'':>28}{kind:>17}: {dist(by_kind[kind])}")
            lines.append(f"{'':>28}{'commit->console':>17}: {dist(events)}")
            lines.append(f"{'':>28}{'load average':>17}: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
            if errors:
                codes = Counter(r.status for r in results if r.status >= 400)
                lines.append(f"{'':>28}{'error codes':>17}: {dict(codes)}")
            await asyncio.sleep(2.0)

        lines.append(f"\nclosed loop, {args.clients} clients back to back, {args.saturation_seconds:g} s each:")
        # The server's CPU per request does not depend on the machine's load the way a rate does: compare it too.
        phases = (("signed status callbacks", signer), ("forged (the stack floor)", Signer(base, forged=True)))
        for name, phase_signer in phases:
            cpu_before = process_group_cpu_s(server_pid)
            db_before = database_cpu_s(floor.postmaster) if floor.postmaster else 0.0
            redis_before, client_before = redis_cpu_s(), time.process_time()
            rate, codes = await closed_loop(session, base, phase_signer, calls, args.clients, args.saturation_seconds)
            answered = max(1, sum(codes.values()))
            server_ms = 1000 * (process_group_cpu_s(server_pid) - cpu_before) / answered
            # The rest of the machine's two cores: this load generator (and the consoles), and Redis.
            client_ms = 1000 * (time.process_time() - client_before) / answered
            redis_after = redis_cpu_s()
            redis_ms = "n/a" if redis_before is None or redis_after is None else \
                f"{1000 * (redis_after - redis_before) / answered:.2f} ms"
            lines.append(f"  {name:<24} {rate:>6}/s   answers {dict(codes)}  CPU a request: server {server_ms:.2f} ms, "
                         f"PostgreSQL {database_ms_each(floor.postmaster, db_before, answered)}, Redis {redis_ms}, "
                         f"load generator {client_ms:.2f} ms   load average {os.getloadavg()[0]:.2f}")
        for task in sockets:
            task.cancel()
        await asyncio.gather(*sockets, return_exceptions=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="30,50,80,120,150", help="open-loop rates, requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each open-loop phase")
    parser.add_argument("--consoles", type=int, default=50, help="agents, each with a console connected")
    parser.add_argument("--saturation-seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients")
    parser.add_argument("--workers", type=int, default=0, help="WEB_CONCURRENCY for the web command (0: its default)")
    parser.add_argument("--command", default="", help="the web command instead of the Procfile's ($PORT is set)")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test")
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL is not set: with several web processes consoles miss events from the others",
              file=sys.stderr)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    open_requests = sum(rate * args.seconds for rate in args.rates) + 60
    saturation_requests = 2 * 1500 * args.saturation_seconds  # generous: 1,500 req/s each, signed and forged
    calls_needed = int(open_requests / 3 + saturation_requests / 4) + 100
    floor = setup_database(args, calls_needed)
    fake = server = None
    stop = threading.Event()
    try:
        fake = FakeTwilioProcess()
        server, base, server_log = start_server(args, floor, fake.base_url)

        def terminated(*_args) -> None:
            # `timeout` or kill: the server (its own process group) must not outlive the run.
            stop_server(server, grace_s=0)
            raise SystemExit(143)

        signal.signal(signal.SIGTERM, terminated)
        agents = threading.Thread(target=agents_dispose, args=(floor, stop), daemon=True)
        agents.start()
        print(f"web command: {shlex.quote(web_command(args))}  (WEB_CONCURRENCY={args.workers or 'default'}, "
              f"{os.cpu_count()} cores, REDIS_URL {'set' if os.environ.get('REDIS_URL') else 'unset'})")
        print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        asyncio.run(run_load(args, floor, base, fake, server.pid))
        print(gc_pauses(server_log))
    finally:
        stop.set()
        if server is not None:
            stop_server(server)
        if fake is not None:
            fake.stop()
        teardown_database(floor)


if __name__ == "__main__":
    main()
