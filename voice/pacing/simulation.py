"""The pacing simulator: the population model played, in simulated time, against the real pacer.

A discrete-event simulation (heapq, no clock, no HTTP). Every `tick_s` of simulated time, whenever an
agent becomes ready, when a line dialed for a waiting agent ends and when a line comes of age (has rung
`min_ring_s`) between ticks, it hands `voice.pacing.decide` the snapshots the `run_dialer` worker would
build from the database and applies the decision the way the worker and the call services would:

- a line rings from the moment it is dialed; no answer ends it at the ring timeout, busy / failed after
  their carrier delay; a machine occupies it until its AMD verdict and never reaches an agent;
- a human's AMD verdict comes `amd_s` after the pickup; the human is a conversation only if an agent is
  really free (ready) within `max_hold_s` of that verdict, otherwise abandoned (safe-harbor message);
- a line is released only after it has rung `min_ring_s` (a release asked earlier is counted as a
  violation and refused); in parallel mode, when an agent connects, that agent's other lines that have
  rung long enough are released at once and the younger ones by the pacer when they come of age; a human
  answering on a line meanwhile goes to another ready agent or is abandoned;
- an agent talks for the human's drawn talk time, then wraps up, then is ready again.

Metrics are taken after a warm-up, over `agents x hours` agent-hours.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

from voice.pacing import (
    AgentView,
    LineView,
    Mode,
    PacingSettings,
    PacingStats,
    decide,
)
from voice.pacing.model import stats_from_population
from voice.pacing.population import REFERENCE_B2B, Behaviour, Population

MIN_AGENT_HOURS = 200.0
DEFAULT_WARMUP_S = 600.0

# Event kinds.
_PICKUP, _VERDICT, _LINE_END, _HOLD_END, _TALK_END, _WRAP_END, _RIPE = range(7)


def default_hours(agents: int) -> float:
    """Enough simulated hours for MIN_AGENT_HOURS agent-hours."""
    return MIN_AGENT_HOURS / max(1, agents)


@dataclass(frozen=True)
class SimulationResult:
    """What a run measured (after warm-up). Rates are per agent-hour of logged-in time."""

    mode: str
    agents: int
    lines: int
    hours: float
    seed: int
    cap: float
    agent_hours: float
    conversations: int
    humans: int
    abandoned: int
    dials: int
    released: int
    conversations_per_agent_hour: float
    abandon_rate: float
    utilisation: float
    mean_agent_wait_s: float
    dials_per_agent_hour: float
    talk_minutes_per_hour: float
    upper_bound: float
    min_ring_violations: int
    wall_s: float

    def as_dict(self) -> dict:
        return asdict(self)


class _Agent:
    __slots__ = ("agent_id", "ready_s", "since", "state", "talk_s", "wrap_s")

    def __init__(self, agent_id: int) -> None:
        self.agent_id = agent_id
        self.state = "ready"
        self.since = 0.0
        self.talk_s = 0.0
        self.wrap_s = 0.0
        self.ready_s = 0.0


class _Line:
    __slots__ = ("agent_id", "behaviour", "line_id", "picked_at", "rang_at", "state")

    def __init__(self, line_id: int, behaviour: Behaviour, now: float, agent_id: int | None) -> None:
        self.line_id = line_id
        self.behaviour = behaviour
        # Busy and failed numbers are rejected before they ever ring.
        self.state = "dialing" if behaviour.kind in ("busy", "failed") else "ringing"
        self.rang_at = now
        self.picked_at = 0.0
        self.agent_id = agent_id


class _Simulation:
    def __init__(
        self,
        *,
        population: Population,
        settings: PacingSettings,
        stats: PacingStats,
        agents: int,
        seed: int,
        duration_s: float,
        warmup_s: float,
        tick_s: float,
    ) -> None:
        self.population = population
        self.settings = settings
        self.stats = stats
        self.rng = random.Random(seed)
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.end_s = warmup_s + duration_s
        self.tick_s = tick_s
        self.now = 0.0
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = itertools.count()
        self.agents = [_Agent(i + 1) for i in range(agents)]
        self.lines: dict[int, _Line] = {}
        self.holding: list[_Line] = []
        self.line_ids = itertools.count(1)
        self.humans_total = 0
        self.abandoned_total = 0
        self.conversations = 0
        self.humans = 0
        self.abandoned = 0
        self.dials = 0
        self.released = 0
        self.violations = 0

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _counting(self) -> bool:
        return self.now >= self.warmup_s

    def _set_agent(self, agent: _Agent, state: str) -> None:
        lo = max(agent.since, self.warmup_s)
        hi = min(self.now, self.end_s)
        if hi > lo:
            if agent.state == "on_call":
                agent.talk_s += hi - lo
            elif agent.state == "wrap_up":
                agent.wrap_s += hi - lo
            elif agent.state == "ready":
                agent.ready_s += hi - lo
        agent.state = state
        agent.since = self.now

    def _schedule(self, at: float, kind: int, obj: object) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), kind, obj))

    def _budget_changed(self) -> None:
        self.stats = replace(self.stats, humans=self.humans_total, abandoned=self.abandoned_total)

    # -- the pacer -----------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.now
        agents = [AgentView(a.agent_id, a.state, now - a.since) for a in self.agents]  # type: ignore[arg-type]
        views = []
        for line in self.lines.values():
            state = line.state
            if state == "dialing":
                views.append(LineView(line.line_id, "dialing", 0.0, 0.0, line.agent_id))
            elif state == "ringing":
                views.append(LineView(line.line_id, "ringing", now - line.rang_at, 0.0, line.agent_id))
            else:
                views.append(
                    LineView(line.line_id, state, now - line.rang_at, now - line.picked_at, line.agent_id)  # type: ignore[arg-type]
                )
        decision = decide(self.settings, self.stats, agents, views)
        for line_id in decision.release:
            self._release(self.lines.get(line_id))
        for agent_id in decision.dial_for:
            self._dial(agent_id)

    def _release(self, line: _Line | None) -> None:
        if line is None or line.state not in ("dialing", "ringing"):
            return  # answered meanwhile: its human is routed as usual
        if line.state == "dialing" or self.now - line.rang_at < self.settings.min_ring_s - 1e-9:
            self.violations += 1
            return
        del self.lines[line.line_id]
        line.state = "ended"
        if self._counting():
            self.released += 1

    def _dial(self, agent_id: int | None) -> None:
        behaviour = self.population.draw(self.rng)
        line = _Line(next(self.line_ids), behaviour, self.now, agent_id)
        self.lines[line.line_id] = line
        if self._counting():
            self.dials += 1
        timeout = self.settings.ring_timeout_s
        ripe_at = self.now + self.settings.min_ring_s
        if abs(ripe_at / self.tick_s - round(ripe_at / self.tick_s)) > 1e-9 and line.state == "ringing":
            # The worker wakes when a line comes of age between its ticks, so a line it no longer wants
            # is released right at the minimum ring, not up to a tick later.
            self._schedule(ripe_at, _RIPE, line)
        if behaviour.reject_s is not None:
            self._schedule(self.now + behaviour.reject_s, _LINE_END, line)
        elif behaviour.pickup_s is not None and behaviour.pickup_s < timeout:
            self._schedule(self.now + behaviour.pickup_s, _PICKUP, line)
        else:
            self._schedule(self.now + timeout, _LINE_END, line)

    # -- events --------------------------------------------------------------------------------------

    def _on_pickup(self, line: _Line) -> None:
        if line.state != "ringing":
            return  # released before the pickup
        line.state = "answered"
        line.picked_at = self.now
        self._schedule(self.now + (line.behaviour.amd_s or 0.0), _VERDICT, line)

    def _on_verdict(self, line: _Line) -> None:
        if line.state != "answered":
            return
        if line.behaviour.kind in ("machine", "fax"):
            # Voicemail drop or hang-up: the line never concerns an agent again.
            self._end_line(line)
            return
        self.humans_total += 1
        if self._counting():
            self.humans += 1
        agent = self._free_agent(line.agent_id)
        if agent is not None:
            self._connect(agent, line)
        else:
            line.state = "holding"
            self.holding.append(line)
            self._schedule(self.now + self.settings.max_hold_s, _HOLD_END, line)
        self._budget_changed()

    def _on_hold_end(self, line: _Line) -> None:
        if line.state != "holding":
            return
        self.holding.remove(line)
        self._end_line(line)
        self.abandoned_total += 1
        if self._counting():
            self.abandoned += 1
        self._budget_changed()

    def _on_line_end(self, line: _Line) -> None:
        if line.state == "ended":
            return
        self._end_line(line)
        # The worker reacts at once when a line dialed for a waiting agent ends (progressive, parallel);
        # the end of a pooled line waits for the next tick.
        if line.agent_id is not None and any(a.state == "ready" for a in self.agents):
            self._tick()

    def _end_line(self, line: _Line) -> None:
        line.state = "ended"
        self.lines.pop(line.line_id, None)

    def _free_agent(self, preferred: int | None) -> _Agent | None:
        """The agent the line was dialed for if ready, else the agent ready the longest."""
        best = None
        for agent in self.agents:
            if agent.state != "ready":
                continue
            if agent.agent_id == preferred:
                return agent
            if best is None or agent.since < best.since:
                best = agent
        return best

    def _connect(self, agent: _Agent, line: _Line) -> None:
        self._end_line(line)
        self._set_agent(agent, "on_call")
        if self._counting():
            self.conversations += 1
        self._schedule(self.now + (line.behaviour.talk_s or 0.0), _TALK_END, agent)
        if self.settings.mode in ("parallel", "progressive"):
            for sibling in [s for s in self.lines.values() if s.agent_id == agent.agent_id]:
                if sibling.state == "ringing" and self.now - sibling.rang_at >= self.settings.min_ring_s:
                    self._release(sibling)

    def _on_ripe(self, line: _Line) -> None:
        if line.state == "ringing":
            self._tick()

    def _on_talk_end(self, agent: _Agent) -> None:
        self._set_agent(agent, "wrap_up")
        self._schedule(self.now + self.population.draw_wrap(self.rng), _WRAP_END, agent)

    def _on_wrap_end(self, agent: _Agent) -> None:
        self._set_agent(agent, "ready")
        if self.holding:
            self._connect(agent, self.holding.pop(0))
        else:
            self._tick()

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        heap = self.heap
        handlers = {
            _PICKUP: self._on_pickup,
            _VERDICT: self._on_verdict,
            _LINE_END: self._on_line_end,
            _HOLD_END: self._on_hold_end,
            _TALK_END: self._on_talk_end,
            _WRAP_END: self._on_wrap_end,
            _RIPE: self._on_ripe,
        }
        end = self.end_s
        next_tick = 0.0
        while True:
            if heap and heap[0][0] < next_tick:
                at, _, kind, obj = heapq.heappop(heap)
                if at > end:
                    break
                self.now = at
                handlers[kind](obj)
            else:
                if next_tick > end:
                    break
                self.now = next_tick
                self._tick()
                next_tick += self.tick_s
        self.now = end
        for agent in self.agents:
            self._set_agent(agent, agent.state)


def run(
    *,
    agents: int,
    mode: Mode = "predictive",
    lines: int = 3,
    hours: float | None = None,
    cap: float = 0.03,
    seed: int = 1,
    population: Population = REFERENCE_B2B,
    stats: PacingStats | None = None,
    min_ring_s: float = 15.0,
    ring_timeout_s: float = 25.0,
    max_hold_s: float = 2.0,
    tick_s: float = 1.0,
    warmup_s: float = DEFAULT_WARMUP_S,
    threshold: float | None = None,
    cap_opt_out: bool = False,
) -> SimulationResult:
    """Simulate `agents` agents for `hours` (after `warmup_s`) and measure what they got.

    `stats` are what the pacer is told (default: the population's own long-run statistics, as a
    campaign with a history has measured); the abandonment counts in it are replaced by the run's own.
    """
    if agents < 1:
        raise ValueError("agents must be >= 1")
    hours = default_hours(agents) if hours is None else hours
    settings = PacingSettings(
        mode=mode,
        lines_per_agent=lines,
        abandon_cap=cap,
        min_ring_s=min_ring_s,
        ring_timeout_s=ring_timeout_s,
        max_hold_s=max_hold_s,
        threshold=threshold,
     cap_opt_out=cap_opt_out,)
    given = stats if stats is not None else stats_from_population(population)
    sim = _Simulation(
        population=population,
        settings=settings,
        stats=replace(given, humans=0, abandoned=0),
        agents=agents,
        seed=seed,
        duration_s=hours * 3600.0,
        warmup_s=warmup_s,
        tick_s=tick_s,
    )
    started = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - started

    agent_hours = agents * hours
    talk = sum(a.talk_s for a in sim.agents)
    wrap = sum(a.wrap_s for a in sim.agents)
    ready = sum(a.ready_s for a in sim.agents)
    return SimulationResult(
        mode=mode,
        agents=agents,
        lines=lines if mode == "parallel" else 1 if mode == "progressive" else 0,
        hours=hours,
        seed=seed,
        cap=cap,
        agent_hours=agent_hours,
        conversations=sim.conversations,
        humans=sim.humans,
        abandoned=sim.abandoned,
        dials=sim.dials,
        released=sim.released,
        conversations_per_agent_hour=sim.conversations / agent_hours,
        abandon_rate=sim.abandoned / sim.humans if sim.humans else 0.0,
        utilisation=(talk + wrap) / (agent_hours * 3600.0),
        mean_agent_wait_s=ready / sim.conversations if sim.conversations else math.inf,
        dials_per_agent_hour=sim.dials / agent_hours,
        talk_minutes_per_hour=talk / 60.0 / agent_hours,
        upper_bound=population.upper_bound_per_agent_hour(),
        min_ring_violations=sim.violations,
        wall_s=wall,
    )


# The reference table: predictive pooling by team size, parallel lines per agent, progressive.
TABLE_POINTS: tuple[tuple[Mode, int, int], ...] = (
    ("predictive", 1, 0),
    ("predictive", 5, 0),
    ("predictive", 20, 0),
    ("predictive", 50, 0),
    *(("parallel", agents, lines) for agents in (1, 5) for lines in range(1, 6)),
    ("progressive", 1, 0),
    ("progressive", 5, 0),
)


def _run_point(kwargs: dict) -> SimulationResult:
    return run(**kwargs)


def run_many(points: list[dict], *, jobs: int | None = None) -> list[SimulationResult]:
    """Run each point (keyword arguments of `run`) over `jobs` processes (default: every core), in order."""
    workers = min(len(points), jobs if jobs is not None else (os.cpu_count() or 1))
    if workers <= 1:
        return [_run_point(p) for p in points]
    # The slowest points (fewest agents: the most simulated hours) first, so the pool does not end on one long run.
    order = sorted(range(len(points)), key=lambda i: points[i].get("agents", 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = dict(zip(order, pool.map(_run_point, [points[i] for i in order]), strict=True))
    return [done[i] for i in range(len(points))]


def run_table(*, seeds: tuple[int, ...] = (1,), jobs: int | None = None, **rules) -> list[list[SimulationResult]]:
    """Every TABLE_POINTS point at MIN_AGENT_HOURS agent-hours, once per seed: one list of runs per point."""
    points = [
        dict(agents=agents, mode=mode, lines=max(1, lines), seed=seed, **rules)
        for mode, agents, lines in TABLE_POINTS
        for seed in seeds
    ]
    results = run_many(points, jobs=jobs)
    return [results[i : i + len(seeds)] for i in range(0, len(results), len(seeds))]


def summary(runs: list[SimulationResult]) -> dict:
    """One point over several seeds. A single seed of 200 agent-hours wobbles by a few tenths of a
    conversation per agent-hour, so comparisons are made on the mean; abandonment also gives its worst."""
    first = runs[0]
    conversations = [r.conversations_per_agent_hour for r in runs]
    abandon = [r.abandon_rate for r in runs]
    return {
        "mode": first.mode,
        "agents": first.agents,
        "lines": first.lines,
        "cap": first.cap,
        "seeds": [r.seed for r in runs],
        "agent_hours": sum(r.agent_hours for r in runs),
        "conversations_per_agent_hour": statistics.fmean(conversations),
        "conversations_per_agent_hour_sd": statistics.stdev(conversations) if len(runs) > 1 else 0.0,
        "conversations_per_agent_hour_min": min(conversations),
        "conversations_per_agent_hour_max": max(conversations),
        "abandon_rate": statistics.fmean(abandon),
        "abandon_rate_max": max(abandon),
        "utilisation": statistics.fmean(r.utilisation for r in runs),
        "mean_agent_wait_s": statistics.fmean(r.mean_agent_wait_s for r in runs),
        "dials_per_agent_hour": statistics.fmean(r.dials_per_agent_hour for r in runs),
        "talk_minutes_per_hour": statistics.fmean(r.talk_minutes_per_hour for r in runs),
        "upper_bound": first.upper_bound,
        "min_ring_violations": sum(r.min_ring_violations for r in runs),
        "wall_s": sum(r.wall_s for r in runs),
    }
