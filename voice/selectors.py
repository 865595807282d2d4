"""Reads for calls and pacing."""

from __future__ import annotations

from campaigns.models import Campaign
from voice import dialer
from voice.pacing import simulation
from voice.pacing.population import REFERENCE_B2B, PopulationStats

# Quick enough to run inside an admin request (a few seconds for the whole comparison); indicative, not
# the 200 agent-hours of `simulate_pacing --table`.
PREVIEW_AGENT_HOURS = 12.0


def pacing_preview(*, campaign: Campaign, agents: int, seed: int = 1) -> list[simulation.SimulationResult]:
    """Simulate this campaign's own measured list (blended with the reference where it has little history)
    under each dial mode, so a manager can choose lines per agent before going live."""
    stats = dialer.measured_stats(campaign)
    population = PopulationStats(
        human=stats.human, machine=stats.machine, no_answer=stats.no_answer, busy_failed=stats.busy_failed,
        talk_mean_s=stats.talk_mean_s, wrap_mean_s=sum(stats.wrap_q) / len(stats.wrap_q),
    ).to_population(REFERENCE_B2B)
    hours = PREVIEW_AGENT_HOURS / agents
    rules = {"agents": agents, "hours": hours, "cap": campaign.max_abandon_rate, "seed": seed,
             "population": population, "min_ring_s": float(campaign.min_ring_s),
             "ring_timeout_s": float(campaign.ring_timeout_s), "max_hold_s": campaign.max_hold_s}
    results = [simulation.run(mode="progressive", **rules)]
    results += [simulation.run(mode="parallel", lines=lines, **rules) for lines in (2, 3, 4, 5)]
    results.append(simulation.run(mode="predictive", **rules))
    return results
