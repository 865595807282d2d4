"""What the pacer reads: the campaign's measured statistics and the snapshot of agents and lines that
`voice.pacing.decide` takes, filled from the database cheaply enough to run every tick at a thousand agents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from django.db import connection
from django.db.models import Avg, Count, Q, StdDev
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
from voice import pacing
from voice.models import Call, machine_q
from voice.pacing import simulation
from voice.pacing.population import REFERENCE_B2B, PopulationStats
from voice.selectors import ABANDON_WINDOW, abandonment
from voice.states import Outcome, State

# Quick enough to run inside an admin request (a few seconds for the whole comparison); indicative, not
# the 200 agent-hours of `simulate_pacing --table`.
PREVIEW_AGENT_HOURS = 12.0


# -- the snapshot the decision reads ----------------------------------------------------------------


def ages(now: dt.datetime, *fields: str) -> tuple[dict, tuple[str, ...]]:
    """Columns giving each timestamp's age in seconds. PostgreSQL computes them (parsing thousands of
    timestamps per tick in Python costs more than the pacing decision); elsewhere they are read as is."""
    if connection.vendor == "postgresql":
        # The column names are this module's constants, never input: no injection through RawSQL.
        ages = {f"{name}_s": RawSQL(f"COALESCE(EXTRACT(EPOCH FROM (%s - {name})), 0)::float8", [now])  # noqa: S611
                for name in fields}
        return ages, tuple(ages)
    return {}, fields


def seconds_since(value, now: dt.datetime) -> float:
    if isinstance(value, dt.datetime):
        return max(0.0, (now - value).total_seconds())
    return max(0.0, value or 0.0)


def agent_view(pk: int, state: str, in_room: bool, state_age, now: dt.datetime) -> pacing.AgentView:
    if state == AgentSession.State.READY and not in_room:
        state = AgentSession.State.PAUSED  # no softphone in the room: cannot take a customer
    return pacing.AgentView(agent_id=pk, state=state, state_s=seconds_since(state_age, now))


def line_view(pk: int, state: str, answered_by: str, ringing_age, answered_age, dialed_for: int | None,
               now: dt.datetime) -> pacing.LineView:
    if state in (State.CREATED, State.DIALING):
        kind = "dialing"
    elif state == State.RINGING:
        kind = "ringing"
    elif answered_by:
        kind = "holding"  # a human waiting for an agent
    else:
        kind = "answered"
    return pacing.LineView(line_id=pk, state=kind, ringing_s=seconds_since(ringing_age, now),
                           answered_s=seconds_since(answered_age, now), agent_id=dialed_for)


def pacing_settings(campaign: Campaign) -> pacing.PacingSettings:
    return pacing.PacingSettings(
        mode=campaign.dial_mode, lines_per_agent=campaign.lines_per_agent, abandon_cap=campaign.max_abandon_rate,
        min_ring_s=float(campaign.min_ring_s), ring_timeout_s=float(campaign.ring_timeout_s),
        max_hold_s=campaign.max_hold_s, cap_opt_out=campaign.abandon_cap_opt_out,
    )


def measured_stats(campaign: Campaign, *, now: dt.datetime | None = None, window: int = 2000) -> pacing.PacingStats:
    """The campaign's own figures from its last `window` finished calls, blended with the reference prior;
    abandoned / human-answered counts over the rolling 30 days (the regulated window)."""
    now = now or timezone.now()
    recent_ids = list(Call.objects.filter(campaign=campaign, state=State.ENDED).order_by("-ended_at")
                      .values_list("pk", flat=True)[:window])
    recent = Call.objects.filter(pk__in=recent_ids)
    counts = recent.aggregate(
        dials=Count("pk"),
        humans=Count("pk", filter=Q(answered_by="human")),
        machines=Count("pk", filter=machine_q()),
        no_answer=Count("pk", filter=Q(outcome=Outcome.NO_ANSWER)),
        busy_failed=Count("pk", filter=Q(outcome__in=[Outcome.BUSY, Outcome.FAILED, Outcome.INVALID_NUMBER])),
        talked=Count("pk", filter=Q(outcome=Outcome.TALKED)),
        talk_mean=Avg("duration_s", filter=Q(outcome=Outcome.TALKED)),
        talk_sd=StdDev("duration_s", filter=Q(outcome=Outcome.TALKED)),
        amd_mean=Avg("amd_duration_ms", filter=Q(answered_by="human")),
        amd_sd=StdDev("amd_duration_ms", filter=Q(answered_by="human")),
    )
    regulated = abandonment(campaign=campaign, since=now - ABANDON_WINDOW)
    prior = pacing.REFERENCE_PRIOR
    dials = counts["dials"] or 0
    share = (lambda n: n / dials) if dials else (lambda n: 0.0)
    talk_mean = float(counts["talk_mean"] or prior.talk_mean_s)
    talk_cv = float(counts["talk_sd"] / talk_mean) if counts["talk_sd"] and talk_mean else prior.talk_cv
    # What is not measured here (pickup, machine AMD latency, wrap quantiles) stays the prior's.
    measured = replace(
        prior, human=share(counts["humans"]), machine=share(counts["machines"]), no_answer=share(counts["no_answer"]),
        busy_failed=share(counts["busy_failed"]),
        amd_human_mean_s=(counts["amd_mean"] or prior.amd_human_mean_s * 1000) / 1000,
        amd_human_sd_s=(counts["amd_sd"] or prior.amd_human_sd_s * 1000) / 1000,
        talk_mean_s=talk_mean, talk_cv=talk_cv,
        dials=dials, humans=regulated["humans"], machines=counts["machines"], conversations=counts["talked"],
        abandoned=regulated["abandoned"],
    )
    return pacing.blend(measured, prior)


def pacing_preview(*, campaign: Campaign, agents: int, seed: int = 1) -> list[simulation.SimulationResult]:
    """Simulate this campaign's own measured list (blended with the reference where it has little history)
    under each dial mode, so a manager can choose lines per agent before going live."""
    stats = measured_stats(campaign)
    population = PopulationStats(
        human=stats.human, machine=stats.machine, no_answer=stats.no_answer, busy_failed=stats.busy_failed,
        talk_mean_s=stats.talk_mean_s, wrap_mean_s=sum(stats.wrap_q) / len(stats.wrap_q),
    ).to_population(REFERENCE_B2B)
    hours = PREVIEW_AGENT_HOURS / agents
    rules = {"agents": agents, "hours": hours, "cap": campaign.max_abandon_rate, "seed": seed,
             "population": population, "min_ring_s": float(campaign.min_ring_s),
             "ring_timeout_s": float(campaign.ring_timeout_s), "max_hold_s": campaign.max_hold_s,
             "cap_opt_out": campaign.abandon_cap_opt_out}
    results = [simulation.run(mode="progressive", **rules)]
    results += [simulation.run(mode="parallel", lines=lines, **rules) for lines in (2, 3, 4, 5)]
    results.append(simulation.run(mode="predictive", **rules))
    return results
