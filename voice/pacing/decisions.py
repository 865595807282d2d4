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
from dataclasses import dataclass
from operator import mul

from voice.pacing.exposure import Exposure
from voice.pacing.model import (
    PARALLEL_SLACK_PER_LINE,
    SLACK_SCALE,
    TARGET_SHARE,
    THETA_MAX,
    THETA_MIN,
    AgentView,
    LineView,
    PacingSettings,
    PacingStats,
    Row,
    model_for,
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
        return _per_agent(settings, agents, lines, governed_lines(settings, stats))
    if mode == "predictive":
        return _predictive(settings, stats, agents, lines)
    raise ValueError(f"unknown pacing mode {mode!r}")


def governed_lines(settings: PacingSettings, stats: PacingStats) -> int:
    """Lines per ready agent the abandonment cap allows in parallel mode (rule 3 holds in every mode).

    Integral action on the same budget as the predictive controller: slack = target x human-answered -
    abandoned. One line abandons (almost) nobody; each further line needs PARALLEL_SLACK_PER_LINE of slack, so a
    campaign with little history is careful, a campaign under its target earns its lines back, and the realised
    rate converges under the cap. Only an explicit opt-out dials every line regardless.
    """
    wanted = max(1, settings.lines_per_agent)
    if settings.cap_opt_out or wanted == 1:
        return wanted
    slack = settings.abandon_cap * TARGET_SHARE * stats.humans - stats.abandoned
    extra = math.floor(slack / PARALLEL_SLACK_PER_LINE) if slack > 0 else 0
    return max(1, min(wanted, 1 + extra))


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
    model = model_for(stats.model_key(), settings.max_hold_s, settings.ring_timeout_s, settings.min_ring_s)
    theta = threshold_for(settings, stats)
    exposure = Exposure(model.cells)
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

    answered_rows: list[Row] = []
    ringing: list[tuple[float, int, Row]] = []
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
            exposure = Exposure(model.cells, exposure.base, exposure.supply, answered_rows + kept)
            exposure.prepare()
    exposure.extend_demand([row for _, _, row in ringing[releasable:]])

    room = int(settings.max_lines_per_agent * staffed) - (len(lines) - len(release))
    dial = _most_fresh_lines(exposure, model.fresh_row, theta, room)
    return PacingDecision(dial_for=(None,) * dial, release=tuple(release), threshold=theta)


def _most_fresh_lines(exposure: Exposure, fresh: Row, theta: float, room: int) -> int:
    """The largest n <= room such that the n-th new line's abandon chance is <= theta (it grows with n).

    A human arriving in cell k finds nobody if capacity is short then (every line counts), or pushes out a
    later human if it runs short afterwards, counting only the humans that can no longer be avoided then.
    """
    committed: list[Exposure] = []

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


def _dial_pays(row: Row, worst: list[float], theta: float) -> bool:
    """Dial a line like `row` when abandons are at most theta of what its humans become (talks + abandons).

    Its unavoidable humans (picking up before it may be released) are abandoned where the capacity
    runs short; the later ones are released instead, so they cost a lost chance, not an abandon.
    """
    abandons = sum(map(mul, row.sure, worst))
    talks = row.total - sum(map(mul, row.mass, worst))
    return abandons <= theta * (abandons + talks)


def _release_pays(row: Row, worst: list[float], theta: float) -> bool:
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


