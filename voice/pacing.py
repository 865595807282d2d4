"""The pacer's decision: how many lines to dial now, for which agents, and which ringing lines to release.

Pure code: no ORM, no network, no clock. The caller (the `run_dialer` worker, or the pacing simulator)
fills small frozen snapshots from its own state every tick and applies the returned `PacingDecision`:
every elapsed time is given in seconds, measured by the caller against its own `now`.

Modes:
- ``preview``: never dials by itself (the agent clicks dial-next).
- ``progressive``: one line per ready agent that has none in flight.
- ``parallel``: ``lines_per_agent`` lines per ready agent, dialed for that agent; lines whose agent is no
  longer ready are released once they have rung ``min_ring_s``.
- ``predictive``: pooled lines. Every tick the pacer predicts, on a grid of future instants, the
  distribution of (agents free by then) - (humans answered by then), from each busy agent's elapsed
  talk/wrap time (a lognormal talk hazard, the measured wrap distribution) and each line's age (Bayes on
  the survival of its pickup time, or on its pending AMD verdict). Lines are weighed oldest first. A new
  line is dialed while abandons stay under a share theta of what its humans would become: a human who
  picks up before the line may be released is abandoned where no agent is free at the verdict (plus the
  hold), or pushes out another such human later; a human who would pick up after that costs no abandon,
  since the line is released instead when no agent will be free. A line that has rung ``min_ring_s`` is
  released when a human answering before the next decision would be abandoned more than theta of the
  time. theta is governed by the abandonment budget (the rolling abandoned / human-answered counts
  against a target below the cap: integral action), so the realised rate is held under the cap whatever
  the team size or the list.

The decision costs O(agents + lines) per call with small constants (cached per-statistics tables).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from operator import mul
from typing import Literal, NamedTuple

Mode = Literal["preview", "progressive", "parallel", "predictive"]
AgentState = Literal["ready", "on_call", "wrap_up", "paused"]
LineState = Literal["dialing", "ringing", "answered", "holding"]

MODES: tuple[Mode, ...] = ("preview", "progressive", "parallel", "predictive")

# Quantile levels of every *_q field of PacingStats: 0 %, 10 %, ..., 100 %.
QUANTILE_LEVELS: tuple[float, ...] = tuple(i / 10 for i in range(11))

# The prediction grid: cells of GRID_STEP_S seconds from now. Wide enough for a fresh line's human verdict.
GRID_STEP_S = 2.0
MAX_HORIZON_S = 60.0

# The predictive controller. The threshold theta (the share of abandons tolerated among what a marginal
# line's humans become) starts at the cap and moves by a factor e for every SLACK_SCALE abandons the
# campaign is under (over) its target, TARGET_SHARE of the cap, so the statistical wobble of the realised
# rate stays under the cap. It stays within [THETA_MIN, THETA_MAX] x the cap. 0.90: over 40 simulated
# campaigns of 200 agent-hours (1 to 50 agents, reference list) the realised rate never passed 2.8 % at a
# 3 % cap; at 0.92 one reached 2.98 % for 0.05 more conversations per agent-hour, too close to the cap.
THETA_MIN = 1.0 / 15.0
THETA_MAX = 3.0
SLACK_SCALE = 10.0
TARGET_SHARE = 0.90
# The caller decides again within this many seconds: a line kept now can be released then.
RELEASE_LOOKAHEAD_S = 1.0
# A talk row integrates the end of the talk over steps of this length.
_TALK_STEP_S = 0.5


# -- inputs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    """One logged-in agent of the campaign.

    state: ``ready`` (waiting for a customer), ``on_call`` (talking), ``wrap_up`` (writing the
    disposition), ``paused``. state_s: seconds since the agent entered that state.
    """

    agent_id: int
    state: AgentState
    state_s: float


@dataclass(frozen=True, slots=True)
class LineView:
    """One customer leg in flight that is not (yet) bound to an agent.

    state: ``dialing`` (REST create accepted, not ringing yet), ``ringing``, ``answered`` (picked up,
    hold audio, AMD verdict pending), ``holding`` (AMD said human; waiting for an agent, at most
    max_hold_s). ringing_s: seconds since ringing began (0 while dialing); answered_s: seconds since the
    pickup (0 before). agent_id: the agent the line was dialed for (parallel/progressive), else None.
    """

    line_id: int
    state: LineState
    ringing_s: float = 0.0
    answered_s: float = 0.0
    agent_id: int | None = None


@dataclass(frozen=True, slots=True)
class PacingSettings:
    """The campaign's pacing settings."""

    mode: Mode = "predictive"
    lines_per_agent: int = 3  # parallel mode
    abandon_cap: float = 0.03  # abandoned / human-answered, rolling window
    min_ring_s: float = 15.0  # a line is never released before it has rung this long
    ring_timeout_s: float = 25.0
    max_hold_s: float = 2.0  # a human not given to an agent within this is abandoned (safe-harbor message)
    max_lines_per_agent: float = 8.0  # predictive: safety limit on lines in flight per staffed agent
    threshold: float | None = None  # predictive: fixed marginal-abandonment threshold (experiments); None = governed


@dataclass(frozen=True, slots=True)
class PacingStats:
    """What the campaign has measured, blended with priors (see `blend`).

    Shares are of finished dials. Pickup quantiles are of seconds from ringing to answer, at
    QUANTILE_LEVELS. AMD latencies are seconds from answer to verdict. Talk is modelled lognormal (mean,
    coefficient of variation), wrap by its quantiles. The counts are the sample sizes, and `humans` /
    `abandoned` are also the rolling-window counts the abandonment cap is measured on.
    """

    human: float = 0.08
    machine: float = 0.25
    no_answer: float = 0.57
    busy_failed: float = 0.10
    human_pickup_q: tuple[float, ...] = tuple(4.0 + 16.0 * p for p in QUANTILE_LEVELS)
    machine_pickup_q: tuple[float, ...] = tuple(15.0 + 10.0 * p for p in QUANTILE_LEVELS)
    amd_human_mean_s: float = 3.0
    amd_human_sd_s: float = 1.0
    amd_machine_mean_s: float = 4.0
    amd_machine_sd_s: float = 0.3
    talk_mean_s: float = 180.0
    talk_cv: float = 0.8
    wrap_q: tuple[float, ...] = tuple(20.0 + 20.0 * p for p in QUANTILE_LEVELS)
    dials: int = 0
    humans: int = 0
    machines: int = 0
    conversations: int = 0
    abandoned: int = 0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.humans if self.humans else 0.0

    def model_key(self) -> tuple:
        """Everything the prediction tables depend on (not the counts, which change every call)."""
        return (
            self.human, self.machine, self.no_answer, self.busy_failed, self.human_pickup_q,
            self.machine_pickup_q, self.amd_human_mean_s, self.amd_human_sd_s, self.amd_machine_mean_s,
            self.amd_machine_sd_s, self.talk_mean_s, self.talk_cv, self.wrap_q,
        )  # fmt: skip


# The reference B2B population (shared/reference/pacing-and-performance.md §6.1): the prior of every campaign.
REFERENCE_PRIOR = PacingStats()


def blend(
    measured: PacingStats,
    prior: PacingStats = REFERENCE_PRIOR,
    *,
    dials_weight: float = 300.0,
    answers_weight: float = 60.0,
    conversations_weight: float = 40.0,
) -> PacingStats:
    """Measured statistics shrunk towards the prior: each figure weighs n / (n + weight) on its own sample size.

    A fresh campaign paces by the prior; one with a few thousand dials by what it measured. Counts
    (sample sizes, abandoned, humans) are the measured ones.
    """

    def mix(n: int, weight: float, own: float, other: float) -> float:
        w = n / (n + weight) if n > 0 else 0.0
        return w * own + (1.0 - w) * other

    def mix_q(n: int, weight: float, own: tuple[float, ...], other: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(mix(n, weight, a, b) for a, b in zip(own, other, strict=True))

    d, h, m, c = measured.dials, measured.humans, measured.machines, measured.conversations
    return PacingStats(
        human=mix(d, dials_weight, measured.human, prior.human),
        machine=mix(d, dials_weight, measured.machine, prior.machine),
        no_answer=mix(d, dials_weight, measured.no_answer, prior.no_answer),
        busy_failed=mix(d, dials_weight, measured.busy_failed, prior.busy_failed),
        human_pickup_q=mix_q(h, answers_weight, measured.human_pickup_q, prior.human_pickup_q),
        machine_pickup_q=mix_q(m, answers_weight, measured.machine_pickup_q, prior.machine_pickup_q),
        amd_human_mean_s=mix(h, answers_weight, measured.amd_human_mean_s, prior.amd_human_mean_s),
        amd_human_sd_s=mix(h, answers_weight, measured.amd_human_sd_s, prior.amd_human_sd_s),
        amd_machine_mean_s=mix(m, answers_weight, measured.amd_machine_mean_s, prior.amd_machine_mean_s),
        amd_machine_sd_s=mix(m, answers_weight, measured.amd_machine_sd_s, prior.amd_machine_sd_s),
        talk_mean_s=mix(c, conversations_weight, measured.talk_mean_s, prior.talk_mean_s),
        talk_cv=mix(c, conversations_weight, measured.talk_cv, prior.talk_cv),
        wrap_q=mix_q(c, conversations_weight, measured.wrap_q, prior.wrap_q),
        dials=d,
        humans=h,
        machines=m,
        conversations=c,
        abandoned=measured.abandoned,
    )


# -- output ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PacingDecision:
    """What to do now.

    dial_for: one entry per new line, the agent it is dialed for (None: pooled, any ready agent).
    release: line ids to cancel now; each has rung at least min_ring_s and is not answered.
    threshold: the predictive marginal-abandonment threshold in force (for the wallboard), else 0.
    """

    dial_for: tuple[int | None, ...] = ()
    release: tuple[int, ...] = ()
    threshold: float = 0.0

    @property
    def dial(self) -> int:
        return len(self.dial_for)


NOTHING = PacingDecision()


def decide(
    settings: PacingSettings,
    stats: PacingStats,
    agents: tuple[AgentView, ...] | list[AgentView],
    lines: tuple[LineView, ...] | list[LineView],
) -> PacingDecision:
    """The pacer's decision for one campaign at one instant.

    `agents` are the campaign's logged-in agents, `lines` its customer legs in flight that are not bound
    to an agent (dialing, ringing, answered awaiting AMD, or a human on hold). Lines in ``release`` have
    all rung at least ``settings.min_ring_s``; the caller cancels them (a line answered meanwhile is not
    cancelled: its human is routed as usual).
    """
    mode = settings.mode
    if mode == "preview":
        return NOTHING
    if mode == "progressive":
        return _per_agent(settings, agents, lines, 1)
    if mode == "parallel":
        return _per_agent(settings, agents, lines, max(1, settings.lines_per_agent))
    if mode == "predictive":
        return _predictive(settings, stats, agents, lines)
    raise ValueError(f"unknown pacing mode {mode!r}")


def threshold_for(settings: PacingSettings, stats: PacingStats) -> float:
    """The predictive controller's marginal-abandonment threshold, from the campaign's abandonment budget.

    slack = target x human-answered - abandoned (target = TARGET_SHARE of the cap): every abandon under
    target makes the pacer bolder by a factor e^(1/SLACK_SCALE), every one over it more careful; it starts
    at the cap. It is
    integral action on the realised rate, so the rate converges to the target whatever the team size.
    """
    if settings.threshold is not None:
        return settings.threshold
    cap = settings.abandon_cap
    slack = cap * TARGET_SHARE * stats.humans - stats.abandoned
    scale = math.exp(max(-50.0, min(50.0, slack / SLACK_SCALE)))
    return cap * min(THETA_MAX, max(THETA_MIN, scale))


# -- progressive and parallel ---------------------------------------------------------------------------


def _per_agent(
    settings: PacingSettings, agents: tuple[AgentView, ...] | list[AgentView], lines, per_agent: int
) -> PacingDecision:
    """`per_agent` lines for every ready agent, dialed for that agent; orphaned lines released when legal.

    A pooled line (dialed for nobody) counts for the agents who have waited longest.
    """
    ready = [a for a in agents if a.state == "ready"]
    ready_ids = {a.agent_id for a in ready}
    own: dict[int, int] = dict.fromkeys(ready_ids, 0)
    pooled = 0
    release: list[int] = []
    for line in lines:
        if line.agent_id in own:
            own[line.agent_id] += 1
        elif line.agent_id is None:
            pooled += 1
        elif line.state in ("dialing", "ringing") and line.ringing_s >= settings.min_ring_s:
            release.append(line.line_id)
    # Longest-waiting agents first: they get their lines when pooled lines only cover some.
    ready.sort(key=lambda a: -a.state_s)
    dial_for: list[int | None] = []
    for agent in ready:
        missing = per_agent - own[agent.agent_id]
        if missing <= 0:
            continue
        covered = min(pooled, missing)
        pooled -= covered
        dial_for.extend([agent.agent_id] * (missing - covered))
    return PacingDecision(dial_for=tuple(dial_for), release=tuple(release))


# -- predictive -----------------------------------------------------------------------------------------


def _predictive(
    settings: PacingSettings,
    stats: PacingStats,
    agents: tuple[AgentView, ...] | list[AgentView],
    lines: tuple[LineView, ...] | list[LineView],
) -> PacingDecision:
    model = _model_for(stats.model_key(), settings.max_hold_s, settings.ring_timeout_s, settings.min_ring_s)
    theta = threshold_for(settings, stats)
    exposure = _Exposure(model.cells)
    staffed = 0
    for agent in agents:
        state = agent.state
        if state == "ready":
            exposure.base += 1
            staffed += 1
        elif state == "on_call":
            staffed += 1
            row = model.talk_row(agent.state_s)
            if row is not None:
                exposure.supply.append(row)
        elif state == "wrap_up":
            staffed += 1
            row = model.wrap_row(agent.state_s)
            if row is None:
                exposure.base += 1
            else:
                exposure.supply.append(row)

    answered_rows: list[_Row] = []
    ringing: list[tuple[float, int, _Row]] = []
    ripe: list[int] = []  # every line the rules allow to release
    releasable = 0  # the first `releasable` entries of `ringing` (once sorted) are ripe and may still be human
    for line in lines:
        state = line.state
        if state == "holding":
            exposure.base -= 1
        elif state == "answered":
            row = model.answered_row(line.ringing_s - line.answered_s, line.answered_s)
            if row is not None:
                answered_rows.append(row)
        else:
            ringing_s = line.ringing_s if state == "ringing" else 0.0
            if ringing_s >= settings.min_ring_s:
                ripe.append(line.line_id)
            row = model.ringing_row(ringing_s)
            if row is not None:
                ringing.append((ringing_s, line.line_id, row))
                if ringing_s >= settings.min_ring_s:
                    releasable += 1
    # Oldest first: a line has priority over the lines dialed after it, which were dialed knowing it was
    # there. Judging a line against younger ones would release it only to dial its replacement.
    ringing.sort(key=lambda entry: -entry[0])
    if staffed == 0:
        # Nobody will ever take these humans: let go of every line the rules allow.
        return PacingDecision(release=tuple(ripe), threshold=theta)

    if exposure.base <= 0:
        # Markov: P(E >= 1) <= P(S >= 1) <= E[S] at the horizon, so in every cell a human finds nobody with
        # probability at least short = 1 - E[S]. If even that bound makes a new line and keeping a ripe one
        # fail their tests (see _dial_pays, _release_pays), nothing is dialed and every such line goes.
        short = 1.0 - sum(row.p[-1] for row in exposure.supply)
        fresh = model.fresh_row
        if short > theta and short * sum(fresh.sure) * (1.0 - theta) > theta * (1.0 - short) * fresh.total:
            # Lines past every human's pickup time stay: their machines still get the voicemail drop.
            return PacingDecision(release=tuple(line_id for _, line_id, _ in ringing[:releasable]), threshold=theta)

    # The lines that may be released are the oldest; each is judged against them all and the answered
    # lines (slightly careful for the very oldest), never against the younger lines dialed after it.
    exposure.demand.extend(answered_rows)
    exposure.demand.extend(row for _, _, row in ringing[:releasable])
    exposure.prepare()
    release: list[int] = []
    if releasable:
        later = _suffix_max(exposure.with_demand([r.committed or r for r in exposure.demand]).p_short())
        worst = _worst(exposure.p_short(), later)
        for _, line_id, row in ringing[:releasable]:
            # Judged first against all the oldest lines, itself included (cheap); then again without itself.
            if _release_pays(row, worst, theta) and _release_pays(
                row, _worst(exposure.p_short_without(row), later), theta
            ):
                release.append(line_id)
        if release:
            kept = [row for _, line_id, row in ringing[:releasable] if line_id not in release]
            exposure = _Exposure(model.cells, exposure.base, exposure.supply, answered_rows + kept)
            exposure.prepare()
    exposure.extend_demand([row for _, _, row in ringing[releasable:]])

    room = int(settings.max_lines_per_agent * staffed) - (len(lines) - len(release))
    dial = _most_fresh_lines(exposure, model.fresh_row, theta, room)
    return PacingDecision(dial_for=(None,) * dial, release=tuple(release), threshold=theta)


def _most_fresh_lines(exposure: _Exposure, fresh: _Row, theta: float, room: int) -> int:
    """The largest n <= room such that the n-th new line's abandon chance is <= theta (it grows with n).

    A human arriving in cell k finds nobody if capacity is short then (every line counts), or pushes out a
    later human if it runs short afterwards, counting only the humans that can no longer be avoided then.
    """
    committed: list[_Exposure] = []

    def fits(n: int) -> bool:
        now = exposure.p_short(fresh, n - 1)
        if not _dial_pays(fresh, now, theta):
            return False  # worst >= now, and the test only gets harder as worst grows
        if not committed:
            committed.append(exposure.with_demand([row.committed or row for row in exposure.demand]))
        later = _suffix_max(committed[0].p_short(fresh.committed or fresh, n - 1))
        return _dial_pays(fresh, _worst(now, later), theta)

    if room <= 0 or not fits(1):
        return 0
    good, bad = 1, None
    while bad is None:
        probe = min(room, good * 2)
        if probe == good:
            return good
        if fits(probe):
            good = probe
        else:
            bad = probe
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


def _dial_pays(row: _Row, worst: list[float], theta: float) -> bool:
    """Dial a line like `row` when abandons are at most theta of what its humans become (talks + abandons).

    Its unavoidable humans (picking up before it may be released) are abandoned where the capacity
    runs short; the later ones are released instead, so they cost a lost chance, not an abandon.
    """
    abandons = sum(map(mul, row.sure, worst))
    talks = row.total - sum(map(mul, row.mass, worst))
    return abandons <= theta * (abandons + talks)


def _release_pays(row: _Row, worst: list[float], theta: float) -> bool:
    """Release a line (rung min_ring_s already) when a human answering before the next decision would be
    abandoned more than theta of the time."""
    sure = row.sure
    total = sum(sure)
    return total > 0.0 and sum(map(mul, sure, worst)) > theta * total


def _worst(now: list[float], later: list[float]) -> list[float]:
    """P(a human arriving in cell k is abandoned or pushes out one that can no longer be avoided).

    now: P(short in cell k), every line counted; later: suffix max of the same counting only the humans
    that can no longer be avoided (the others are released instead when it comes to that).
    """
    return [max(a, b) for a, b in zip(now, [*later[1:], 0.0], strict=True)]


def _suffix_max(values: list[float]) -> list[float]:
    """worst[k] = max of values[k:]: a human at cell k is absorbed only if capacity never runs out after k."""
    out = list(values)
    for k in range(len(out) - 2, -1, -1):
        if out[k + 1] > out[k]:
            out[k] = out[k + 1]
    return out


class _Exposure:
    """The grid distribution of E(t) = base + (busy agents free by t + hold) - (humans answered by t).

    base = ready agents - humans on hold; each supply / demand `_Row` is one agent / line, independent of
    the others. p_short()[k] = P(E(t_k) <= 0): a human arriving in cell k finds nobody.

    While at most EXACT_MAX_SUPPLY agents can be free, a normal approximation would badly miss the tails
    that decide a small team's abandonment, so the supply is exact (Poisson-binomial), the answered lines
    (likely humans) too, and the ringing lines (each a small chance) are Poisson, which errs on the
    careful side. Larger teams use a normal approximation refined with the skewness.
    """

    EXACT_MAX_SUPPLY = 4
    LIKELY = 0.25  # a line whose chance of a human verdict exceeds this is treated exactly

    def __init__(self, cells: int, base: int = 0, supply: list | None = None, demand: list | None = None) -> None:
        self.cells = cells
        self.base = base
        self.supply: list[_Row] = list(supply) if supply else []
        self.demand: list[_Row] = list(demand) if demand else []
        self.exact = False

    def prepare(self) -> None:
        self.top = self.base + len(self.supply)
        self.exact = self.top <= self.EXACT_MAX_SUPPLY and len(self.supply) <= self.EXACT_MAX_SUPPLY
        if self.exact:
            self._prepare_exact()
        else:
            self._prepare_moments()

    def with_demand(self, demand: list[_Row]) -> _Exposure:
        """A prepared exposure with the same agents and another demand (the supply side is reused)."""
        other = _Exposure(self.cells, self.base, self.supply, [])
        other.top, other.exact = self.top, self.exact
        if self.exact:
            other.supply_cols = self.supply_cols
            other._reset_demand_exact()
        else:
            other.mean, other.var, other.k3 = self._supply_moments
        other.extend_demand(demand)
        return other

    # exact ---------------------------------------------------------------------------------------------
    # Distributions are kept as columns: column i holds P(count = i) for every cell, so each step is one
    # pass over the cells. The demand's last column lumps "top or more" (more never matters).

    def _prepare_exact(self) -> None:
        cells = self.cells
        supply = [[1.0] * cells]
        for row in self.supply:
            p = row.p
            q = [1.0 - x for x in p]
            grown = [list(map(mul, supply[0], q))]
            for j in range(1, len(supply)):
                grown.append([a * y + b * x for a, b, x, y in zip(supply[j], supply[j - 1], p, q, strict=True)])
            grown.append(list(map(mul, supply[-1], p)))
            supply = grown
        self.supply_cols = supply
        self._reset_demand_exact()
        for row in self.demand:
            self._add_exact(row)

    def _reset_demand_exact(self) -> None:
        cells = self.cells
        self.likely_cols = [[1.0] * cells] + [[0.0] * cells for _ in range(max(1, self.top))]
        self.no_likely = True
        self.rate = [0.0] * cells

    def _add_exact(self, row: _Row) -> None:
        p_row = row.p
        if p_row[-1] > self.LIKELY or self.top <= 2:
            self.likely_cols = _push_columns(self.likely_cols, p_row)
            self.no_likely = False
        else:
            self.rate = [r + p for r, p in zip(self.rate, p_row, strict=True)]

    def _p_short_exact(self, extra: _Row | None, n: int) -> list[float]:
        base = self.base
        top = self.top
        cells = self.cells
        if top <= 0:
            return [1.0] * cells
        demand = self.likely_cols
        rate = self.rate
        if extra is not None:
            if top <= 2:
                for _ in range(n):
                    demand = _push_columns(demand, extra.p)
            else:
                rate = [r + n * p for r, p in zip(rate, extra.p, strict=True)]
        if any(rate):
            arrivals = _poisson_columns(rate, top)
            # Without likely lines the demand is the Poisson part alone.
            demand = arrivals if demand is self.likely_cols and self.no_likely else _convolve_columns(demand, arrivals)
        # P(E <= 0) = sum_j P(S = j) P(D >= base + j), with P(D >= i) peeled off column by column.
        out = [0.0] * cells
        at_least = [1.0] * cells
        need = 0
        for j, column in enumerate(self.supply_cols):
            target = base + j
            if target > top:
                break
            while need < target:
                at_least = [a - d for a, d in zip(at_least, demand[need], strict=True)]
                need += 1
            out = [o + c * t for o, c, t in zip(out, column, at_least, strict=True)]
        return [1.0 if x > 1.0 else 0.0 if x < 0.0 else x for x in out]

    # moments -------------------------------------------------------------------------------------------

    def _prepare_moments(self) -> None:
        cells = self.cells
        supply = _cumulant_sums(self.supply, cells)
        demand = _cumulant_sums(self.demand, cells)
        base = self.base
        self._supply_moments = ([base + a for a in supply[:cells]], supply[cells : 2 * cells], supply[2 * cells :])
        self.mean = [base + a - b for a, b in zip(supply[:cells], demand[:cells], strict=True)]
        self.var = [a + b for a, b in zip(supply[cells : 2 * cells], demand[cells : 2 * cells], strict=True)]
        self.k3 = [a - b for a, b in zip(supply[2 * cells :], demand[2 * cells :], strict=True)]

    def _p_short_moments(self, extra: _Row | None, n: int) -> list[float]:
        if extra is None:
            return list(map(_refined_normal_le_zero, self.mean, self.var, self.k3))
        cells = self.cells
        c = extra.cumulants
        return list(
            map(
                _refined_normal_le_zero,
                [m - n * x for m, x in zip(self.mean, c[:cells], strict=True)],
                [v + n * x for v, x in zip(self.var, c[cells : 2 * cells], strict=True)],
                [k - n * x for k, x in zip(self.k3, c[2 * cells :], strict=True)],
            )
        )

    # both ----------------------------------------------------------------------------------------------

    def extend_demand(self, rows: list[_Row]) -> None:
        if not rows:
            return
        self.demand.extend(rows)
        if self.exact:
            for row in rows:
                self._add_exact(row)
            return
        cells = self.cells
        d = _cumulant_sums(rows, cells)
        self.mean = [m - x for m, x in zip(self.mean, d[:cells], strict=True)]
        self.var = [v + x for v, x in zip(self.var, d[cells : 2 * cells], strict=True)]
        self.k3 = [k - x for k, x in zip(self.k3, d[2 * cells :], strict=True)]

    def p_short_without(self, row: _Row) -> list[float]:
        """p_short() with one of the demand rows taken out."""
        if not self.exact:
            return self._p_short_moments(row, -1)
        rest = list(self.demand)
        rest.remove(row)
        other = _Exposure(self.cells, self.base, self.supply, rest)
        other.prepare()
        return other.p_short()

    def p_short(self, extra: _Row | None = None, copies: int = 0) -> list[float]:
        """P(E <= 0) per cell, with `copies` more lines of row `extra` counted as demand."""
        if copies <= 0 or extra is None:
            extra, copies = None, 0
        if self.exact:
            return self._p_short_exact(extra, copies)
        return self._p_short_moments(extra, copies)


def _cumulant_sums(rows: list[_Row], cells: int) -> list[float]:
    """The cumulants of a sum of independent rows: the sums of theirs."""
    if not rows:
        return [0.0] * (3 * cells)
    return list(map(sum, zip(*[r.cumulants for r in rows], strict=True)))


def _push_columns(columns: list[list[float]], p: list[float]) -> list[list[float]]:
    """Add a Bernoulli (p per cell) to a count distribution in columns whose last column lumps the top."""
    q = [1.0 - x for x in p]
    last = len(columns) - 1
    out = [list(map(mul, columns[0], q))]
    for i in range(1, last):
        out.append([a * y + b * x for a, b, x, y in zip(columns[i], columns[i - 1], p, q, strict=True)])
    out.append([a + b * x for a, b, x in zip(columns[last], columns[last - 1], p, strict=True)])
    return out


def _poisson_columns(rate: list[float], top: int) -> list[list[float]]:
    """Poisson(rate per cell) in columns 0..top, the last lumping "top or more"."""
    term = [math.exp(-r) for r in rate]
    out = [term]
    for i in range(1, top):
        term = [t * r / i for t, r in zip(term, rate, strict=True)]
        out.append(term)
    below = list(map(sum, zip(*out, strict=True)))
    out.append([max(0.0, 1.0 - b) for b in below])
    return out


def _convolve_columns(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """The distribution of the sum of two counts in lumped columns of equal height."""
    top = len(a) - 1
    cells = len(a[0])
    out = [[0.0] * cells for _ in range(top + 1)]
    for i, column in enumerate(a):
        if not any(column):
            continue
        for j, other in enumerate(b):
            slot = out[min(top, i + j)]
            slot[:] = [s + x * y for s, x, y in zip(slot, column, other, strict=True)]
    return out


_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


def _refined_normal_le_zero(mean: float, var: float, k3: float) -> float:
    """P(X <= 0) for an integer sum of Bernoullis with these cumulants (continuity + skewness corrected)."""
    if var < 1e-9:
        return 1.0 if mean < 0.5 else 0.0
    sd = math.sqrt(var)
    z = (0.5 - mean) / sd
    gamma = k3 / (var * sd)
    p = _phi_cdf(z) + gamma * (1.0 - z * z) * math.exp(-0.5 * z * z) * _INV_SQRT_2PI / 6.0
    return 0.0 if p < 0.0 else 1.0 if p > 1.0 else p


# -- the prediction model -------------------------------------------------------------------------------


class _Quantiles:
    """A distribution given by its quantiles at QUANTILE_LEVELS, linear between them."""

    __slots__ = ("q", "steps")

    def __init__(self, q: tuple[float, ...]) -> None:
        self.q = tuple(sorted(max(0.0, x) for x in q))
        self.steps = len(self.q) - 1

    def cdf(self, x: float) -> float:
        q = self.q
        if x < q[0]:
            return 0.0
        if x >= q[-1]:
            return 1.0
        i = bisect_right(q, x) - 1
        return (i + (x - q[i]) / (q[i + 1] - q[i])) / self.steps

    def density(self, x: float) -> float:
        """Smoothed over one second, so point masses and flat quantiles stay usable for Bayes."""
        return self.cdf(x + 0.5) - self.cdf(x - 0.5)

    @property
    def mean(self) -> float:
        q = self.q
        return sum((a + b) / 2.0 for a, b in pairwise(q)) / self.steps

    @property
    def top(self) -> float:
        return self.q[-1]


class _Row(NamedTuple):
    """One agent or line on the prediction grid."""

    p: list[float]  # P(agent free / human verdict) by each cell's midpoint
    cumulants: list[float]  # [p | p(1-p) | p(1-p)(1-2p)] per cell, for the moments
    mass: list[float]  # a line: P(its human's verdict falls in the cell)
    total: float  # sum of mass: P(the line is a human still to come)
    sure: list[float]  # the part of mass the line can no longer avoid (released before the pickup)
    committed: _Row | None  # the line counting only those humans; None: all of them


def _row(p: list[float], mass: list[float] | None = None, sure: list[float] | None = None) -> _Row:
    p = [0.0 if x < 0.0 else 1.0 if x > 1.0 else x for x in p]
    cumulants = p + [x * (1.0 - x) for x in p] + [x * (1.0 - x) * (1.0 - 2.0 * x) for x in p]
    mass = mass if mass is not None else [0.0] * len(p)
    return _Row(p, cumulants, mass, sum(mass), sure if sure is not None else mass, None)


class _Model:
    """Per-statistics prediction tables, built lazily and cached: rows of per-cell probabilities.

    Agent rows: P(agent free by cell midpoint + hold). Line rows: P(a human verdict by the cell midpoint)
    plus the mass of its human verdict time in each cell.
    """

    def __init__(self, key: tuple, hold_s: float, ring_timeout_s: float, min_ring_s: float) -> None:
        (human, machine, no_answer, busy_failed, hp_q, mp_q, amd_h_mean, amd_h_sd, amd_m_mean, amd_m_sd,
         talk_mean, talk_cv, wrap_q) = key  # fmt: skip
        total = human + machine + no_answer + busy_failed
        if total <= 0:
            total, human = 1.0, 0.0
        self.p_human = human / total
        self.p_machine = machine / total
        self.p_no_answer = no_answer / total
        self.p_busy_failed = busy_failed / total
        self.human_pickup = _Quantiles(hp_q)
        self.machine_pickup = _Quantiles(mp_q)
        self.amd_h = (amd_h_mean, max(0.1, amd_h_sd))
        self.amd_m = (amd_m_mean, max(0.1, amd_m_sd))
        sigma2 = math.log(1.0 + max(0.01, talk_cv) ** 2)
        self.talk_mu = math.log(max(1.0, talk_mean)) - sigma2 / 2.0
        self.talk_sigma = math.sqrt(sigma2)
        self.wrap = _Quantiles(wrap_q)
        self.hold_s = hold_s
        self.ring_timeout_s = ring_timeout_s
        self.min_ring_s = min_ring_s
        latest_verdict = self.human_pickup.top + amd_h_mean + 3.0 * self.amd_h[1]
        horizon = min(MAX_HORIZON_S, max(10.0, latest_verdict + GRID_STEP_S))
        self.cells = math.ceil(horizon / GRID_STEP_S)
        self.edges = [k * GRID_STEP_S for k in range(self.cells + 1)]
        self.mids = [(k + 0.5) * GRID_STEP_S for k in range(self.cells)]
        self._talk: dict[int, _Row | None] = {}
        # Per cell, P(the wrap ends in time) for a talk ending in each step before the cell's midpoint (+ hold):
        # the same for every elapsed talk time, so a talk row is a few dot products (the simulator builds
        # over a thousand of them).
        self._talk_weights = []
        for mid in self.mids:
            t = mid + self.hold_s
            steps = math.ceil(t / _TALK_STEP_S - 0.5)  # steps whose midpoint (i + 0.5) x step is before t
            self._talk_weights.append([self.wrap.cdf(t - (i + 0.5) * _TALK_STEP_S) for i in range(steps)])
        self._wrap: dict[int, _Row | None] = {}
        self._ringing: dict[int, _Row | None] = {}
        self._answered: dict[tuple[int, int], _Row | None] = {}
        self.fresh_row = self.ringing_row(0.0)

    # agents --------------------------------------------------------------------------------------------

    def _talk_sf(self, x: float) -> float:
        if x <= 0.0:
            return 1.0
        return 0.5 * math.erfc((math.log(x) - self.talk_mu) / (self.talk_sigma * _SQRT2))

    def talk_row(self, elapsed_s: float) -> _Row | None:
        """P(free by t + hold | talking for elapsed_s): the rest of the talk (lognormal hazard), then wrap."""
        key = int(elapsed_s) if elapsed_s < 600 else 600 + int(min(elapsed_s, 7200.0) - 600) // 10 * 10
        if key not in self._talk:
            self._talk[key] = self._build_talk_row(float(key))
        return self._talk[key]

    def _build_talk_row(self, e: float) -> _Row | None:
        survive = self._talk_sf(e)
        if survive <= 0.0:
            return None
        weights = self._talk_weights
        # Survival ratios (not CDF differences) keep their precision deep in the lognormal tail.
        ends = [1.0 - self._talk_sf(e + i * _TALK_STEP_S) / survive for i in range(len(weights[-1]) + 1)]
        ends_at = [b - a for a, b in pairwise(ends)]
        p = [sum(map(mul, ends_at, w)) for w in weights]
        if max(p) < 1e-4:
            return None
        return _row(p)

    def wrap_row(self, elapsed_s: float) -> _Row | None:
        """P(free by t + hold | wrapping up for elapsed_s); None means "free any moment": count as ready."""
        key = int(elapsed_s * 2)
        if key not in self._wrap:
            self._wrap[key] = self._build_wrap_row(key / 2.0)
        return self._wrap[key]

    def _build_wrap_row(self, w: float) -> _Row | None:
        wrap = self.wrap
        if w >= wrap.top:
            # Longer than anyone measured: an agent lingering, expected back within a few seconds.
            scale = max(5.0, wrap.mean / 4.0)
            p = [1.0 - math.exp(-(mid + self.hold_s) / scale) for mid in self.mids]
        else:
            before = wrap.cdf(w)
            survive = 1.0 - before
            p = [(wrap.cdf(w + mid + self.hold_s) - before) / survive for mid in self.mids]
        if min(p) > 1.0 - 1e-6:
            return None
        return _row(p)

    # lines ---------------------------------------------------------------------------------------------

    def _verdict_cdf(self, shift: float) -> float:
        """P(AMD human verdict latency <= shift)."""
        mean, sd = self.amd_h
        return _phi_cdf((shift - mean) / sd)

    def ringing_row(self, ringing_s: float) -> _Row | None:
        """A line ringing for ringing_s (0 while still dialing): P(human) by Bayes on pickup-time survival."""
        key = int(ringing_s * 2)
        if key not in self._ringing:
            self._ringing[key] = self._build_ringing_row(key / 2.0)
        return self._ringing[key]

    def _build_ringing_row(self, a: float) -> _Row | None:
        if a >= self.ring_timeout_s:
            return None
        hp = self.human_pickup
        w_h = self.p_human * (1.0 - hp.cdf(a))
        w_m = self.p_machine * (1.0 - self.machine_pickup.cdf(a))
        w_bf = self.p_busy_failed if a <= 0.0 else 0.0
        denom = w_h + w_m + self.p_no_answer + w_bf
        if w_h <= 0.0 or denom <= 0.0:
            return None
        p_h = w_h / denom
        # The human's pickup, conditioned on being after a: sampled on a fine grid; then the AMD latency.
        step = 0.25
        pick: list[tuple[float, float]] = []
        prev = hp.cdf(a)
        x = a
        top = max(hp.top, a)
        while x < top:
            nxt = min(top, x + step)
            c = hp.cdf(nxt)
            if c > prev:
                pick.append(((x + nxt) / 2.0 - a, (c - prev)))
            prev, x = c, nxt
        norm = sum(w for _, w in pick)
        if norm <= 0.0:
            return None
        # Pickups before `committed` cannot be avoided: the line may not be released before min_ring_s,
        # and after that the pacer decides again at its next call.
        committed = self.min_ring_s - a if a < self.min_ring_s else RELEASE_LOOKAHEAD_S
        sure = [(u, w) for u, w in pick if u <= committed]

        def cdf(t: float, points: list[tuple[float, float]]) -> float:
            return sum(w * self._verdict_cdf(t - u) for u, w in points) / norm

        at_edges = [cdf(e, pick) for e in self.edges]
        sure_edges = [cdf(e, sure) for e in self.edges]
        return self._line_row(p_h, at_edges, sure_edges, sum(w for _, w in sure) / norm)

    def answered_row(self, pickup_at_s: float, answered_s: float) -> _Row | None:
        """A line picked up at ringing age pickup_at_s, answered_s ago, AMD verdict pending."""
        key = (int(max(0.0, pickup_at_s) * 2), int(answered_s * 4))
        if key not in self._answered:
            self._answered[key] = self._build_answered_row(key[0] / 2.0, key[1] / 4.0)
        return self._answered[key]

    def _build_answered_row(self, pickup_at: float, b: float) -> _Row | None:
        mean_h, sd_h = self.amd_h
        mean_m, sd_m = self.amd_m
        s_h = 1.0 - _phi_cdf((b - mean_h) / sd_h)
        s_m = 1.0 - _phi_cdf((b - mean_m) / sd_m)
        w_h = self.p_human * max(1e-4, self.human_pickup.density(pickup_at)) * s_h
        w_m = self.p_machine * max(1e-4, self.machine_pickup.density(pickup_at)) * s_m
        if w_h + w_m <= 0.0:
            # Past every machine's verdict and every human's: AMD is late; it is a human any moment now.
            p_h, s_h = 1.0, 0.0
        else:
            p_h = w_h / (w_h + w_m)
        if s_h < 1e-9:
            at_edges = [1.0] * len(self.edges)
        else:
            before = 1.0 - s_h
            at_edges = [(_phi_cdf((b + e - mean_h) / sd_h) - before) / s_h for e in self.edges]
        return self._line_row(p_h, at_edges)

    def _line_row(
        self, p_h: float, at_edges: list[float], sure_edges: list[float] | None = None, sure_total: float = 1.0
    ) -> _Row | None:
        """A line's row. `sure_edges` is the verdict CDF of the humans it can no longer avoid (default: all),
        who reach `sure_total` in the end."""
        if p_h < 1e-6:
            return None
        p = [p_h * (lo + hi) / 2.0 for lo, hi in pairwise(at_edges)]
        mass = self._mass(p_h, at_edges, 1.0)
        if sure_edges is None:
            return _row(p, mass)
        sure = self._mass(p_h, sure_edges, sure_total)
        sure_p = [p_h * (lo + hi) / 2.0 for lo, hi in pairwise(sure_edges)]
        return _row(p, mass, sure)._replace(committed=_row(sure_p, sure))

    def _mass(self, p_h: float, edges: list[float], total: float) -> list[float]:
        mass = [p_h * max(0.0, hi - lo) for lo, hi in pairwise(edges)]
        # A verdict past the horizon still needs an agent: credit it to the last cell.
        mass[-1] += p_h * max(0.0, total - edges[-1])
        return mass


@lru_cache(maxsize=256)
def _model_for(key: tuple, hold_s: float, ring_timeout_s: float, min_ring_s: float) -> _Model:
    return _Model(key, hold_s, ring_timeout_s, min_ring_s)
