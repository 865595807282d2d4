"""The pacer's decision code, without a database: what it dials and releases for a given campaign state."""

from dataclasses import replace

import pytest

from voice.pacing import (
    REFERENCE_PRIOR,
    AgentView,
    LineView,
    PacingSettings,
    blend,
    decide,
    governed_lines,
    threshold_for,
)

PREDICTIVE = PacingSettings(mode="predictive")
FRESH = REFERENCE_PRIOR  # no history: no abandons yet, the threshold starts where it starts
EXHAUSTED = replace(REFERENCE_PRIOR, humans=200, abandoned=40)  # 20 % abandoned against a 3 % cap


def ready(agent_id: int, seconds: float = 5.0) -> AgentView:
    return AgentView(agent_id, "ready", seconds)


def talking(agent_id: int, seconds: float) -> AgentView:
    return AgentView(agent_id, "on_call", seconds)


def wrapping(agent_id: int, seconds: float) -> AgentView:
    return AgentView(agent_id, "wrap_up", seconds)


def ringing(line_id: int, seconds: float, agent_id: int | None = None) -> LineView:
    return LineView(line_id, "ringing", ringing_s=seconds, agent_id=agent_id)


# -- preview, progressive, parallel ---------------------------------------------------------------------


def test_preview_never_dials_by_itself():
    decision = decide(PacingSettings(mode="preview"), FRESH, [ready(1), ready(2)], [])
    assert decision.dial == 0
    assert decision.release == ()


def test_progressive_dials_one_line_per_idle_agent_minus_lines_in_flight():
    settings = PacingSettings(mode="progressive")
    agents = [ready(1, 30), ready(2, 20), ready(3, 10), talking(4, 60)]
    decision = decide(settings, FRESH, agents, [ringing(10, 5, agent_id=1)])
    assert sorted(decision.dial_for) == [2, 3]

    pooled = decide(settings, FRESH, agents, [ringing(10, 5), ringing(11, 5)])
    assert pooled.dial == 1


# A campaign that has reached many people and abandoned none: the governor grants every line.
EARNED = replace(REFERENCE_PRIOR, humans=1000, abandoned=0)


def test_parallel_dials_n_lines_per_ready_agent_for_that_agent():
    settings = PacingSettings(mode="parallel", lines_per_agent=3)
    agents = [ready(1), ready(2), talking(3, 40)]
    decision = decide(settings, EARNED, agents, [ringing(10, 4, agent_id=1)])
    assert sorted(decision.dial_for) == [1, 1, 2, 2, 2]


def test_parallel_releases_an_agents_other_lines_only_after_the_minimum_ring():
    settings = PacingSettings(mode="parallel", lines_per_agent=3, min_ring_s=15)
    # Agent 1 has just been connected: its two other lines are orphans.
    lines = [ringing(10, 16, agent_id=1), ringing(11, 9, agent_id=1), ringing(12, 16, agent_id=2)]
    decision = decide(settings, EARNED, [talking(1, 1), ready(2)], lines)
    assert decision.release == (10,)
    assert sorted(decision.dial_for) == [2, 2]


def test_the_cap_governs_parallel_lines_from_the_abandonment_budget():
    settings = PacingSettings(mode="parallel", lines_per_agent=3, abandon_cap=0.03)
    # No history: one line per agent, which abandons (almost) nobody.
    assert governed_lines(settings, FRESH) == 1
    assert sorted(decide(settings, FRESH, [ready(1), ready(2)], []).dial_for) == [1, 2]
    # Each abandon of budget under 90 % of the cap (0.027 x people reached - abandoned) buys one more line.
    assert governed_lines(settings, replace(REFERENCE_PRIOR, humans=40, abandoned=0)) == 2  # slack 1.08
    assert governed_lines(settings, replace(REFERENCE_PRIOR, humans=80, abandoned=0)) == 3  # slack 2.16
    assert governed_lines(settings, replace(REFERENCE_PRIOR, humans=1000, abandoned=30)) == 1  # over the target
    # Only an explicit opt-out dials every line whatever the rate.
    assert governed_lines(replace(settings, cap_opt_out=True), EXHAUSTED) == 3
    assert governed_lines(replace(settings, lines_per_agent=1), EARNED) == 1


# -- predictive -----------------------------------------------------------------------------------------


def test_predictive_dials_for_ready_agents_and_more_for_more_agents():
    one = decide(PREDICTIVE, FRESH, [ready(1)], [])
    five = decide(PREDICTIVE, FRESH, [ready(i) for i in range(5)], [])
    assert one.dial >= 1
    assert five.dial > one.dial
    assert all(agent is None for agent in five.dial_for)  # pooled


def test_predictive_dials_nothing_without_budget_when_no_agent_is_free_soon():
    agents = [talking(1, 10), talking(2, 20), talking(3, 5)]
    lines = [ringing(10, 16), ringing(11, 3)]
    decision = decide(PREDICTIVE, EXHAUSTED, agents, lines)
    assert decision.dial == 0
    # Nobody will be free for these humans: the line that has rung long enough is let go, the other not.
    assert decision.release == (10,)


def test_predictive_dials_ahead_for_agents_about_to_finish_wrap_up():
    lines = [ringing(10, 2)]
    just_started = decide(PREDICTIVE, FRESH, [wrapping(i, 1) for i in range(5)], lines)
    almost_done = decide(PREDICTIVE, FRESH, [wrapping(i, 36) for i in range(5)], lines)
    assert just_started.dial == 0
    assert almost_done.dial > 0


def test_predictive_holds_back_when_humans_are_already_waiting():
    agents = [ready(1), ready(2), talking(3, 100)]
    calm = decide(PREDICTIVE, FRESH, agents, [])
    busy = decide(PREDICTIVE, FRESH, agents, [LineView(10, "holding", 18, 4), LineView(11, "answered", 12, 1)])
    assert busy.dial < calm.dial


def test_predictive_is_bolder_with_budget_left_and_careful_without():
    agents = [wrapping(1, 30), wrapping(2, 30), talking(3, 150), ready(4)]
    lines = [ringing(10, 8)]
    generous = replace(REFERENCE_PRIOR, humans=2000, abandoned=0)
    assert decide(PREDICTIVE, generous, agents, lines).dial > decide(PREDICTIVE, EXHAUSTED, agents, lines).dial


def test_predictive_never_releases_a_line_before_the_minimum_ring():
    lines = [ringing(i, s) for i, s in enumerate((0.0, 5.0, 14.5, 14.9))]
    decision = decide(PREDICTIVE, EXHAUSTED, [talking(1, 2)], lines)
    assert decision.release == ()
    assert decide(PREDICTIVE, EXHAUSTED, [], lines).release == ()


def test_predictive_releases_every_ripe_line_when_nobody_is_logged_in():
    lines = [ringing(1, 20), ringing(2, 3), LineView(3, "answered", 17, 1)]
    decision = decide(PREDICTIVE, FRESH, [AgentView(9, "paused", 50)], lines)
    assert decision.dial == 0
    assert decision.release == (1,)


def test_predictive_keeps_a_ringing_line_while_an_agent_waits_for_it():
    decision = decide(PREDICTIVE, FRESH, [ready(1, 30)], [ringing(10, 16)])
    assert 10 not in decision.release


def test_predictive_respects_the_line_limit_per_agent():
    settings = replace(PREDICTIVE, max_lines_per_agent=2)
    decision = decide(settings, replace(REFERENCE_PRIOR, humans=5000), [ready(i) for i in range(3)], [ringing(9, 1)])
    assert decision.dial <= 2 * 3 - 1


# -- the controller and the statistics ------------------------------------------------------------------


def test_threshold_follows_the_abandonment_budget():
    settings = PacingSettings(abandon_cap=0.03)
    under = threshold_for(settings, replace(REFERENCE_PRIOR, humans=1000, abandoned=10))
    on_target = threshold_for(settings, replace(REFERENCE_PRIOR, humans=1000, abandoned=25))
    over = threshold_for(settings, replace(REFERENCE_PRIOR, humans=1000, abandoned=40))
    assert under > on_target > over > 0.0
    assert threshold_for(replace(settings, abandon_cap=0.01), replace(REFERENCE_PRIOR, humans=1000, abandoned=25)) < (
        on_target
    )


def test_fixed_threshold_overrides_the_budget():
    assert threshold_for(PacingSettings(threshold=0.05), EXHAUSTED) == 0.05


def test_blend_uses_the_prior_without_samples_and_the_measurement_with_many():
    measured = replace(REFERENCE_PRIOR, human=0.2, machine=0.3, no_answer=0.4, busy_failed=0.1, talk_mean_s=90.0,
                       wrap_q=(5.0,) * 11)
    assert blend(measured).human == pytest.approx(REFERENCE_PRIOR.human)
    many = blend(replace(measured, dials=100_000, conversations=10_000))
    assert many.human == pytest.approx(0.2, abs=0.001)
    assert many.talk_mean_s == pytest.approx(90.0, abs=1.0)
    few = blend(replace(measured, dials=300))
    assert REFERENCE_PRIOR.human < few.human < 0.2


def test_measured_statistics_change_the_pace():
    agents = [ready(i) for i in range(3)]
    lively = replace(REFERENCE_PRIOR, human=0.3, no_answer=0.35)
    assert decide(PREDICTIVE, lively, agents, []).dial < decide(PREDICTIVE, FRESH, agents, []).dial


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        decide(PacingSettings(mode="turbo"), FRESH, [], [])  # type: ignore[arg-type]
