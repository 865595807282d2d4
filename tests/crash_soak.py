"""The kill -9 soak: the app as real processes (web processes and dialer workers) killed at random moments while
the Twilio sandbox plays a busy floor. Shared by `benchmarks/crash_soak.py` (the long run) and the short run in the
test suite (tests/e2e/test_crash_soak.py).

The sandbox (the carrier) and the simulated agents live in the calling process; the web processes and the dialer
workers are child processes on the same PostgreSQL database, started with the production settings module. The
workers run the Procfile's `worker:` line; a web process is daphne, or the Procfile's `web:` line (a gunicorn
master and its WEB_CONCURRENCY uvicorn workers). A killer sends SIGKILL to one of them every few seconds and starts
it again a moment later; a gunicorn loses either one of its workers (the master starts another by itself) or
everything at once, master and workers, as when its host or container dies. When the killing stops,
the campaign is paused and the run waits for the carrier to finish its calls, then checks:
- calls still live in the app one reconcile interval after they were due (the carrier has no live line);
- humans held past the hold limit plus one reconcile interval (AMD "human" to the agent, the safe-harbor
  message, or their own hang-up), as the carrier's timeline says they heard it;
- contacts with two calls live at the carrier at once; agents who held two customers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SoakConfig:
    duration_s: float = 120.0  # how long the killer runs
    agents: int = 6
    web: int = 1  # web processes; with more than one, a small TCP balancer in front (as in production)
    web_command: str = "daphne"  # or "procfile": the Procfile's web line (gunicorn supervising uvicorn workers)
    web_concurrency: int | None = None  # WEB_CONCURRENCY of each Procfile web process (unset: gunicorn_conf's)
    workers: int = 2
    redis_url: str = ""  # REDIS_URL of the app's processes (events and throttle counters through Redis)
    kills: bool = True  # False: the same floor for duration_s, nothing killed (the baseline)
    kill_every_s: tuple[float, float] = (2.0, 6.0)
    down_s: tuple[float, float] = (0.3, 1.5)
    time_scale: float = 10.0
    seed: int = 5
    reconcile_every_s: float = 5.0
    reconcile_margin_s: int = 3
    stuck_s: float = 4.0
    max_hold_s: float = 3.0
    ring_timeout_s: int = 15
    amd_timeout_s: int = 30
    settle_timeout_s: float = 180.0
    # Keep killing past duration_s (up to 4x) until this many kills and ended calls: a loaded machine starts
    # processes slowly, and a run with too few kills or calls would prove little.
    min_kills: int = 0
    min_calls: int = 0
    log: bool = True


@dataclass
class SoakReport:
    web: int = 1
    serving: str = "daphne"
    workers: int = 1
    kills: Counter = field(default_factory=Counter)
    exited: Counter = field(default_factory=Counter)  # processes found dead that nobody killed (restarted)
    calls: int = 0
    outcomes: Counter = field(default_factory=Counter)
    live_after_window: int = 0
    window_s: float = 0.0
    last_closed_after_s: float = 0.0
    humans: int = 0
    hold_s: list[float] = field(default_factory=list)  # what each person heard (the carrier's timeline)
    known_hold_s: list[float] = field(default_factory=list)  # until the app knew they had left hold
    held_too_long: list[tuple[int, float]] = field(default_factory=list)
    dialed_twice_at_once: int = 0
    agents_with_two_customers: int = 0
    effects: Counter = field(default_factory=Counter)
    app_errors_heard: int = 0
    timelines: list[str] = field(default_factory=list)  # what happened to each call that broke a rule
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.live_after_window or self.held_too_long or self.dialed_twice_at_once
                    or self.agents_with_two_customers)

    def lines(self) -> list[str]:
        holds, known = sorted(self.hold_s), sorted(self.known_hold_s)

        def pct(p: float, values: list[float] | None = None) -> float:
            values = holds if values is None else values
            return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0

        return [
            f"crash soak: {self.calls} calls in {self.elapsed_s:.0f} s; {self.web} web process(es) ({self.serving}), "
            f"{self.workers} worker(s); SIGKILLs: {dict(self.kills)}; exited unkilled: {dict(self.exited)}",
            f"  outcomes: {dict(sorted(self.outcomes.items()))}",
            f"  outbox rows: {dict(sorted(self.effects.items()))}",
            f"  calls live in the app {self.window_s:.0f} s after the carrier's last line ended: "
            f"{self.live_after_window} (the last one closed after {self.last_closed_after_s:.1f} s)",
            f"  humans: {self.humans}; hold heard (AMD human -> agent / safe-harbor / hang-up) s: "
            f"p50 {pct(0.5):.2f}  p90 {pct(0.9):.2f}  p99 {pct(0.99):.2f}  max {holds[-1] if holds else 0:.2f}; "
            f"past the hold limit + one reconcile interval: {len(self.held_too_long)} {self.held_too_long[:5]}; "
            f"known to the app after p99 {pct(0.99, known):.2f}  max {known[-1] if known else 0:.2f}",
            f"  contacts with two live calls at the carrier at once: {self.dialed_twice_at_once}",
            f"  agents with two customers at once: {self.agents_with_two_customers}",
            "  callers who heard an application error (no web process answered a TwiML fetch): "
            f"{self.app_errors_heard}",
            *self.timelines,
        ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.strip() for name, command in (line.split(":", 1) for line in lines
                                                        if re.match(r"^\w+:", line))}


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Fleet:
    """The app's processes: web processes and dialer workers (the Procfile's `worker:` line), each restartable
    after a SIGKILL. Each runs in a process group of its own: a web process is daphne, or a gunicorn master with
    its workers (`web_command="procfile"`: the Procfile's `web:` line, run by a shell as a platform runs it)."""

    def __init__(self, env: dict[str, str], web_ports: list[int], workers: int, web_command: str = "daphne") -> None:
        self.env = env
        self.web_command = web_command
        self.web_ports = {f"web{i}": port for i, port in enumerate(web_ports)}
        self.procs: dict[str, subprocess.Popen | None] = {
            **dict.fromkeys(self.web_ports), **{f"worker{i}": None for i in range(workers)}}

    def command(self, name: str) -> list[str]:
        if name in self.web_ports and self.web_command == "daphne":
            return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_ports[name]),
                    "dialer.asgi:application"]
        return ["/bin/sh", "-c", "exec " + procfile()["web" if name in self.web_ports else "worker"]]

    def start(self, name: str) -> None:
        env = {**self.env, "PORT": str(self.web_ports[name])} if name in self.web_ports else self.env
        self.procs[name] = subprocess.Popen(self.command(name), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)
        if name in self.web_ports:
            self.wait_for(self.web_ports[name])

    def restart_exited(self) -> list[str]:
        """Start again the processes that died without being killed (as a platform restarts them); their names."""
        dead = [name for name, proc in self.procs.items() if proc is not None and proc.poll() is not None]
        for name in dead:
            self.kill(name)  # whatever is left of its group
            self.start(name)
        return dead

    def start_all(self) -> None:
        for name in self.procs:
            self.start(name)

    @staticmethod
    def wait_for(port: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("a web process did not start")

    def kill(self, name: str) -> None:
        """SIGKILL the process and its group (a gunicorn master and its workers die together)."""
        proc = self.procs[name]
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_gunicorn_worker(self, name: str, rng: random.Random) -> bool:
        """SIGKILL one worker of the gunicorn `name` (its master starts another); False if it has none now."""
        proc = self.procs[name]
        if self.web_command != "procfile" or proc is None or proc.poll() is not None:
            return False
        try:
            children = (Path("/proc") / str(proc.pid) / "task" / str(proc.pid) / "children").read_text().split()
        except OSError:
            return False
        if not children:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(rng.choice(children)), signal.SIGKILL)
        return True

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            self.kill(name)  # and whatever is left of its group


class Balancer:
    """A tiny TCP load balancer in front of the web processes, as production's proxy: each new connection goes to
    the next web process that accepts it. A connection to a process that dies breaks, like behind a real one."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.port, self.backends = port, backends
        self._next = itertools.cycle(range(len(backends)))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="balancer", daemon=True).start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        with contextlib.suppress(Exception):
            self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.backends:
            port = self.backends[next(self._next)]
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def run_crash_soak(config: SoakConfig) -> SoakReport:
    """Run the soak against the current Django database (its schema must exist). Returns the report."""
    from django.conf import settings
    from django.db import close_old_connections

    from campaigns.models import AgentSession, Campaign, Contact
    from tests import factories
    from voice import floor as campaign_services
    from voice import gateway
    from voice.models import Call, CallEffect, CallEvent
    from voice.pacing.population import Population
    from voice.sandbox import Sandbox, SandboxConfig

    say = print if config.log else (lambda *a, **k: None)
    rng = random.Random(config.seed)
    population = Population(human=0.3, machine=0.25, fax=0.02, unknown=0.02, no_answer=0.31, busy=0.05,
                            failed=0.05, human_pickup_s=(2, 10), machine_pickup_s=(3, 12), talk_mean_s=30,
                            talk_cv=0.6, patience_s=(60, 120))
    sandbox = Sandbox(SandboxConfig(
        account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN,
        application_sid=settings.TWILIO_TWIML_APP_SID, cps=50.0, time_scale=config.time_scale, seed=config.seed,
        population=population, machine_hangup_after_s=60.0))
    sandbox.start()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"  # the balancer when there are several web processes
    web_ports = [port] if config.web == 1 else [_free_port() for _ in range(config.web)]
    balancer = Balancer(port, web_ports) if config.web > 1 else None
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "dialer.settings", "DATABASE_URL": _database_url(),
        "DATABASE_POOL_MAX": "10", "PUBLIC_BASE_URL": base_url, "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TWILIO_API_BASE_URL": sandbox.base_url, "TWILIO_SANDBOX": "true",
        "TWILIO_ACCOUNT_SID": settings.TWILIO_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": settings.TWILIO_AUTH_TOKEN,
        "TWILIO_TWIML_APP_SID": settings.TWILIO_TWIML_APP_SID, "TWILIO_CPS": "50",
        "RECONCILE_EVERY_S": str(config.reconcile_every_s), "RECONCILE_MARGIN_S": str(config.reconcile_margin_s),
        "RECONCILE_STUCK_S": str(config.stuck_s), "OUTBOX_INLINE": "false",
        # The simulated agents have no browser: presence by console is off, presence by phone leg stays on.
        "PRESENCE_REQUIRE_CONSOLE": "false", "LOG_LEVEL": "CRITICAL", "REDIS_URL": config.redis_url,
        # The Procfile's commands run `python` and `gunicorn`: this interpreter's, on this checkout's code.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("WEB_CONCURRENCY", None)
    if config.web_concurrency:
        env["WEB_CONCURRENCY"] = str(config.web_concurrency)
    # This process acts too (the simulated agents' dispositions route waiting humans): same carrier, same app URL.
    saved = {name: getattr(settings, name) for name in ("PUBLIC_BASE_URL", "TWILIO_API_BASE_URL", "TWILIO_SANDBOX")}
    settings.PUBLIC_BASE_URL, settings.TWILIO_API_BASE_URL, settings.TWILIO_SANDBOX = base_url, sandbox.base_url, True
    gateway._client_for.cache_clear()
    fleet = Fleet(env, web_ports, config.workers, config.web_command)
    serving = "daphne" if config.web_command == "daphne" else (
        f"Procfile: gunicorn, WEB_CONCURRENCY={config.web_concurrency or 'unset (one per core)'}")
    report = SoakReport(web=config.web, serving=serving + (", Redis" if config.redis_url else ", no Redis"),
                        workers=config.workers)
    stop = threading.Event()
    started = time.monotonic()
    try:
        campaign = factories.make_campaign(
            dial_mode=Campaign.DialMode.PARALLEL, lines_per_agent=3, min_ring_s=0,
            ring_timeout_s=config.ring_timeout_s, amd_timeout_s=config.amd_timeout_s, max_hold_s=config.max_hold_s,
            voicemail_drop=True,
            voicemail_text="Hello from the crash soak.", max_attempts=1, status=Campaign.Status.PAUSED)
        Contact.objects.bulk_create([
            Contact(campaign=campaign, phone=f"+1{404 + i // 9000:03d}555{i % 9000 + 1000:04d}",
                    time_zone="America/New_York") for i in range(3000)])
        campaign.window_start = campaign.window_start.replace(hour=0)
        campaign.window_end = campaign.window_end.replace(hour=23, minute=59)
        campaign.save()
        fleet.start_all()
        sessions = [factories.make_session(campaign=campaign, in_room=False) for _ in range(config.agents)]
        for session in sessions:
            sandbox.place_agent_leg(f"agent-{session.agent_id}", base_url + "/api/voice/dial",
                                    params={"session": str(session.pk)},
                                    status_callback=base_url + f"/api/voice/agent-status?session={session.pk}")
        deadline = time.monotonic() + 30
        while AgentSession.objects.filter(campaign=campaign, in_room=True).count() < config.agents:
            if time.monotonic() > deadline:
                raise RuntimeError("the agents' phones did not join their rooms")
            time.sleep(0.2)
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)

        def agents_work() -> None:
            while not stop.is_set():
                for session in AgentSession.objects.filter(campaign=campaign, state=AgentSession.State.WRAP_UP):
                    # A disposition racing the end of the call fails: it is tried again next round.
                    with contextlib.suppress(Exception):
                        campaign_services.disposition_record(session=session, code="not-interested")
                close_old_connections()
                time.sleep(0.1)

        threading.Thread(target=agents_work, daemon=True).start()

        kill_until = time.monotonic() + config.duration_s
        hard_stop = time.monotonic() + 4 * config.duration_s

        def enough() -> bool:
            kills = sum(report.kills.values())
            ended = Call.objects.filter(campaign=campaign, state="ended").count()
            return time.monotonic() >= kill_until and kills >= config.min_kills and ended >= config.min_calls

        while not enough() and time.monotonic() < hard_stop:
            time.sleep(rng.uniform(*config.kill_every_s))
            for name in fleet.restart_exited():
                report.exited[name] += 1
            if config.kills:
                victim = rng.choice(list(fleet.procs))
                if (config.web_command == "procfile" and victim in fleet.web_ports and rng.random() < 0.5
                        and fleet.kill_gunicorn_worker(victim, rng)):
                    report.kills["gunicorn worker"] += 1  # its master starts another by itself
                else:
                    fleet.kill(victim)
                    report.kills["web" if victim.startswith("web") else "worker"] += 1
                    time.sleep(rng.uniform(*config.down_s))
                    fleet.start(victim)
            ended = Call.objects.filter(campaign=campaign, state="ended").count()
            say(f"\r{time.monotonic() - started:5.0f}s  {ended} calls ended, kills {dict(report.kills)}   ",
                end="", flush=True)
        say()
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)

        # The carrier finishes its calls (talks end, machines hang up) ...
        settle = time.monotonic()
        while time.monotonic() - settle < config.settle_timeout_s:
            live = [c for c in sandbox.calls() if c["identity"] is None and c["status"] not in
                    ("completed", "busy", "no-answer", "failed", "canceled")]
            if not live:
                break
            time.sleep(0.5)
        carrier_quiet = time.monotonic()
        # ... and every call must be closed in the app within the time a silent call takes to become overdue
        # (voice.reconcile._overdue) plus one reconcile interval and a second, whatever was lost in the kills.
        overdue_s = max(config.ring_timeout_s, config.amd_timeout_s) + config.reconcile_margin_s
        report.window_s = overdue_s + config.reconcile_every_s + 1.0
        while time.monotonic() - carrier_quiet < report.window_s:
            if not Call.objects.filter(campaign=campaign).exclude(state="ended").exists():
                break
            time.sleep(0.25)
        report.last_closed_after_s = time.monotonic() - carrier_quiet
        report.live_after_window = Call.objects.filter(campaign=campaign).exclude(state="ended").count()
        stop.set()
        report.elapsed_s = time.monotonic() - started
        _measure(report, campaign, sandbox, config, Call, CallEvent, CallEffect)
    finally:
        stop.set()
        fleet.stop_all()
        if balancer is not None:
            balancer.stop()
        sandbox.stop()
        for name, value in saved.items():
            setattr(settings, name, value)
        gateway._client_for.cache_clear()
    return report


def _measure(report: SoakReport, campaign, sandbox, config: SoakConfig, Call, CallEvent, CallEffect) -> None:
    calls = list(Call.objects.filter(campaign=campaign))
    report.calls = len(calls)
    report.outcomes = Counter(c.outcome or c.state for c in calls)
    report.effects = Counter(CallEffect.objects.filter(call__campaign=campaign).values_list("status", flat=True))
    limit_s = config.max_hold_s + config.reconcile_every_s
    heard = _holds_heard(sandbox, config.time_scale)
    leaving = defaultdict(list)
    for call_id, at in CallEvent.objects.filter(call__campaign=campaign, to_state__in=["connected", "releasing",
                                                                                           "ended"]
                                                ).values_list("call_id", "created_at"):
        leaving[call_id].append(at)
    for call in calls:
        if call.answered_by != "human" or call.amd_at is None:
            continue
        report.humans += 1
        after = [at for at in leaving[call.pk] if at >= call.amd_at]
        end = min(after) if after else None
        known = (end - call.amd_at).total_seconds() if end else float("inf")
        report.known_hold_s.append(known)
        # What the person heard, from the carrier's timeline. The app's own view can lag it: when a killed web
        # process lost both the redirected leg's TwiML fetch and its final callback, the carrier had hung up at
        # once while the app learned it only from the reconciler.
        hold = heard.get(call.sid, known)
        report.hold_s.append(hold)
        if hold > limit_s:
            report.held_too_long.append((call.pk, round(hold, 2)))
            report.timelines.append(_timeline(call, CallEvent))
    lines = [c for c in sandbox.calls() if c["identity"] is None]
    by_number = defaultdict(list)
    for line in lines:
        by_number[line["to"]].append((line["created_t"], line["ended_t"] if line["ended_t"] is not None else 1e18))
        report.app_errors_heard += int(bool(line.get("application_error")))
    for spans in by_number.values():
        spans.sort()
        report.dialed_twice_at_once += sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)
    # An agent holds a customer from the bridge until the call leaves bridging/connected (a person whose redirect
    # failed hears the safe-harbor message on their own while the agent, freed, takes the next one).
    left = defaultdict(list)
    for call_id, at in CallEvent.objects.filter(call__campaign=campaign, from_state__in=["bridging", "connected"]
                                                ).exclude(to_state__in=["bridging", "connected"]
                                                          ).values_list("call_id", "created_at"):
        left[call_id].append(at)
    intervals = defaultdict(list)
    for call in calls:
        if call.bridged_to_id and call.bridged_at:
            end = min(left[call.pk]) if left[call.pk] else (call.ended_at or dt.datetime.max.replace(tzinfo=dt.UTC))
            intervals[call.bridged_to_id].append((call.bridged_at, end))
    for spans in intervals.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                report.agents_with_two_customers += 1
                report.timelines.append(f"agent overlap at {start:%H:%M:%S.%f}")


def _holds_heard(sandbox, time_scale: float) -> dict[str, float]:
    """Per answered-by-a-person line, in real seconds: its AMD verdict -> the first thing it heard after our
    redirect (the TwiML we answered its fetch with: the agent's room or the safe-harbor message), its joining a
    room, or its end, whichever came first. (A redirect whose fetch hangs is still hold.)"""
    heard = {}
    for line in sandbox.calls():
        timeline = line.get("timeline") or []
        verdict = next((e for e in timeline if e["event"] == "amd" and e["detail"].get("answered_by") == "human"),
                       None)
        if verdict is None:
            continue
        redirected = False
        for entry in timeline:
            if entry["sim_t"] < verdict["sim_t"]:
                continue
            redirected = redirected or entry["event"] == "redirected"
            if entry["event"] in ("conference-join", "ended") or (redirected and entry["event"] == "twiml"):
                heard[line["sid"]] = (entry["sim_t"] - verdict["sim_t"]) / time_scale
                break
    return heard


def _timeline(call, CallEvent) -> str:
    events = CallEvent.objects.filter(call=call).order_by("created_at", "id")
    steps = [f"{e.created_at:%H:%M:%S.%f} {e.kind} {e.from_state}->{e.to_state} {e.detail}" for e in events]
    return f"call {call.pk} ({call.outcome}):\n    " + "\n    ".join(steps)

