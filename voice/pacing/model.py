"""The pacer's inputs and its prediction model: the snapshots the caller fills, the measured statistics
(blended with the reference prior), and per-statistics tables of when agents free up and humans answer.

Pure code: no ORM, no network, no clock.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from operator import mul
from typing import Literal, NamedTuple

from voice.pacing.population import REFERENCE_B2B, Population

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
# The parallel-mode governor: every extra line per agent beyond the first needs this many abandons of budget
# (target x human-answered - abandoned). One line per agent abandons (almost) nobody, so a new campaign starts
# there and earns its extra lines as people are reached; an abandon takes one back. 1.0 (of 0.5, 1, 2): measured with
# `simulate_pacing` (1 x 3 and 5 x 5 lines at a 3 % cap stay under 3 % over 200 agent-hours).
PARALLEL_SLACK_PER_LINE = 1.0
# The caller decides again within this many seconds: a line kept now can be released then.
RELEASE_LOOKAHEAD_S = 1.0
# A talk row integrates the end of the talk over steps of this length.
TALK_STEP_S = 0.5

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
    cap_opt_out: bool = False  # parallel: dial every line whatever the abandonment (an explicit, recorded opt-out)


@dataclass(frozen=True, slots=True)
class PacingStats:
    """What the campaign has measured, blended with priors (see `blend`).

    Shares are of finished dials. Pickup quantiles are of seconds from ringing to answer, at
    QUANTILE_LEVELS. AMD latencies are seconds from answer to verdict. Talk is modelled lognormal (mean,
    coefficient of variation), wrap by its quantiles. The counts are the sample sizes, and `humans` /
    `abandoned` are also the rolling-window counts the abandonment cap is measured on.
    """

    human: float
    machine: float
    no_answer: float
    busy_failed: float
    human_pickup_q: tuple[float, ...]
    machine_pickup_q: tuple[float, ...]
    amd_human_mean_s: float
    amd_human_sd_s: float
    amd_machine_mean_s: float
    amd_machine_sd_s: float
    talk_mean_s: float
    talk_cv: float
    wrap_q: tuple[float, ...]
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


def stats_from_population(population: Population, *, amd_machine_sd_s: float = 0.0) -> PacingStats:
    """The statistics a campaign calling this population measures in the long run (what the pacer is given)."""

    def uniform_q(lo_hi: tuple[float, float]) -> tuple[float, ...]:
        lo, hi = lo_hi
        return tuple(lo + (hi - lo) * p for p in QUANTILE_LEVELS)

    return PacingStats(
        # Twilio's `unknown` is connected (the default policy), so it counts with the humans.
        human=population.human + population.unknown,
        machine=population.machine + population.fax,
        no_answer=population.no_answer,
        busy_failed=population.busy + population.failed,
        human_pickup_q=uniform_q(population.human_pickup_s),
        machine_pickup_q=uniform_q(population.machine_pickup_s),
        amd_human_mean_s=population.amd_human_s[0],
        amd_human_sd_s=population.amd_human_s[1],
        amd_machine_mean_s=population.amd_machine_s,
        amd_machine_sd_s=amd_machine_sd_s,
        talk_mean_s=population.talk_mean_s,
        talk_cv=population.talk_cv,
        wrap_q=uniform_q(population.wrap_s),
    )


# The prior of every campaign: the reference B2B population (shared/reference/pacing-and-performance.md §6.1),
# the one encoding the sandbox and the simulator play out too. Its machines all answer at one latency; the prior
# allows them a little spread (0.3 s), so a campaign's own machines are not judged against a point.
REFERENCE_PRIOR = stats_from_population(REFERENCE_B2B, amd_machine_sd_s=0.3)


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



SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def phi_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / SQRT2))


# -- the prediction model -------------------------------------------------------------------------------


class Quantiles:
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


class Row(NamedTuple):
    """One agent or line on the prediction grid."""

    p: list[float]  # P(agent free / human verdict) by each cell's midpoint
    cumulants: list[float]  # [p | p(1-p) | p(1-p)(1-2p)] per cell, for the moments
    mass: list[float]  # a line: P(its human's verdict falls in the cell)
    total: float  # sum of mass: P(the line is a human still to come)
    sure: list[float]  # the part of mass the line can no longer avoid (released before the pickup)
    committed: Row | None  # the line counting only those humans; None: all of them


def row(p: list[float], mass: list[float] | None = None, sure: list[float] | None = None) -> Row:
    p = [0.0 if x < 0.0 else 1.0 if x > 1.0 else x for x in p]
    cumulants = p + [x * (1.0 - x) for x in p] + [x * (1.0 - x) * (1.0 - 2.0 * x) for x in p]
    mass = mass if mass is not None else [0.0] * len(p)
    return Row(p, cumulants, mass, sum(mass), sure if sure is not None else mass, None)


class Model:
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
        self.human_pickup = Quantiles(hp_q)
        self.machine_pickup = Quantiles(mp_q)
        self.amd_h = (amd_h_mean, max(0.1, amd_h_sd))
        self.amd_m = (amd_m_mean, max(0.1, amd_m_sd))
        sigma2 = math.log(1.0 + max(0.01, talk_cv) ** 2)
        self.talk_mu = math.log(max(1.0, talk_mean)) - sigma2 / 2.0
        self.talk_sigma = math.sqrt(sigma2)
        self.wrap = Quantiles(wrap_q)
        self.hold_s = hold_s
        self.ring_timeout_s = ring_timeout_s
        self.min_ring_s = min_ring_s
        latest_verdict = self.human_pickup.top + amd_h_mean + 3.0 * self.amd_h[1]
        horizon = min(MAX_HORIZON_S, max(10.0, latest_verdict + GRID_STEP_S))
        self.cells = math.ceil(horizon / GRID_STEP_S)
        self.edges = [k * GRID_STEP_S for k in range(self.cells + 1)]
        self.mids = [(k + 0.5) * GRID_STEP_S for k in range(self.cells)]
        self._talk: dict[int, Row | None] = {}
        # Per cell, P(the wrap ends in time) for a talk ending in each step before the cell's midpoint (+ hold):
        # the same for every elapsed talk time, so a talk row is a few dot products (the simulator builds
        # over a thousand of them).
        self._talk_weights = []
        for mid in self.mids:
            t = mid + self.hold_s
            steps = math.ceil(t / TALK_STEP_S - 0.5)  # steps whose midpoint (i + 0.5) x step is before t
            self._talk_weights.append([self.wrap.cdf(t - (i + 0.5) * TALK_STEP_S) for i in range(steps)])
        self._wrap: dict[int, Row | None] = {}
        self._ringing: dict[int, Row | None] = {}
        self._answered: dict[tuple[int, int], Row | None] = {}
        self.fresh_row = self.ringing_row(0.0)

    # agents --------------------------------------------------------------------------------------------

    def _talk_sf(self, x: float) -> float:
        if x <= 0.0:
            return 1.0
        return 0.5 * math.erfc((math.log(x) - self.talk_mu) / (self.talk_sigma * SQRT2))

    def talk_row(self, elapsed_s: float) -> Row | None:
        """P(free by t + hold | talking for elapsed_s): the rest of the talk (lognormal hazard), then wrap."""
        key = int(elapsed_s) if elapsed_s < 600 else 600 + int(min(elapsed_s, 7200.0) - 600) // 10 * 10
        if key not in self._talk:
            self._talk[key] = self._build_talk_row(float(key))
        return self._talk[key]

    def _build_talk_row(self, e: float) -> Row | None:
        survive = self._talk_sf(e)
        if survive <= 0.0:
            return None
        weights = self._talk_weights
        # Survival ratios (not CDF differences) keep their precision deep in the lognormal tail.
        ends = [1.0 - self._talk_sf(e + i * TALK_STEP_S) / survive for i in range(len(weights[-1]) + 1)]
        ends_at = [b - a for a, b in pairwise(ends)]
        p = [sum(map(mul, ends_at, w)) for w in weights]
        if max(p) < 1e-4:
            return None
        return row(p)

    def wrap_row(self, elapsed_s: float) -> Row | None:
        """P(free by t + hold | wrapping up for elapsed_s); None means "free any moment": count as ready."""
        key = int(elapsed_s * 2)
        if key not in self._wrap:
            self._wrap[key] = self._build_wrap_row(key / 2.0)
        return self._wrap[key]

    def _build_wrap_row(self, w: float) -> Row | None:
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
        return row(p)

    # lines ---------------------------------------------------------------------------------------------

    def _verdict_cdf(self, shift: float) -> float:
        """P(AMD human verdict latency <= shift)."""
        mean, sd = self.amd_h
        return phi_cdf((shift - mean) / sd)

    def ringing_row(self, ringing_s: float) -> Row | None:
        """A line ringing for ringing_s (0 while still dialing): P(human) by Bayes on pickup-time survival."""
        key = int(ringing_s * 2)
        if key not in self._ringing:
            self._ringing[key] = self._build_ringing_row(key / 2.0)
        return self._ringing[key]

    def _build_ringing_row(self, a: float) -> Row | None:
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

    def answered_row(self, pickup_at_s: float, answered_s: float) -> Row | None:
        """A line picked up at ringing age pickup_at_s, answered_s ago, AMD verdict pending."""
        key = (int(max(0.0, pickup_at_s) * 2), int(answered_s * 4))
        if key not in self._answered:
            self._answered[key] = self._build_answered_row(key[0] / 2.0, key[1] / 4.0)
        return self._answered[key]

    def _build_answered_row(self, pickup_at: float, b: float) -> Row | None:
        mean_h, sd_h = self.amd_h
        mean_m, sd_m = self.amd_m
        s_h = 1.0 - phi_cdf((b - mean_h) / sd_h)
        s_m = 1.0 - phi_cdf((b - mean_m) / sd_m)
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
            at_edges = [(phi_cdf((b + e - mean_h) / sd_h) - before) / s_h for e in self.edges]
        return self._line_row(p_h, at_edges)

    def _line_row(
        self, p_h: float, at_edges: list[float], sure_edges: list[float] | None = None, sure_total: float = 1.0
    ) -> Row | None:
        """A line's row. `sure_edges` is the verdict CDF of the humans it can no longer avoid (default: all),
        who reach `sure_total` in the end."""
        if p_h < 1e-6:
            return None
        p = [p_h * (lo + hi) / 2.0 for lo, hi in pairwise(at_edges)]
        mass = self._mass(p_h, at_edges, 1.0)
        if sure_edges is None:
            return row(p, mass)
        sure = self._mass(p_h, sure_edges, sure_total)
        sure_p = [p_h * (lo + hi) / 2.0 for lo, hi in pairwise(sure_edges)]
        return row(p, mass, sure)._replace(committed=row(sure_p, sure))

    def _mass(self, p_h: float, edges: list[float], total: float) -> list[float]:
        mass = [p_h * max(0.0, hi - lo) for lo, hi in pairwise(edges)]
        # A verdict past the horizon still needs an agent: credit it to the last cell.
        mass[-1] += p_h * max(0.0, total - edges[-1])
        return mass


@lru_cache(maxsize=256)
def model_for(key: tuple, hold_s: float, ring_timeout_s: float, min_ring_s: float) -> Model:
    return Model(key, hold_s, ring_timeout_s, min_ring_s)
