"""Short seeded pacing simulations: what a manager would notice when choosing a dial mode."""

import json

import pytest
from django.core.management import CommandError, call_command

from voice.pacing.population import REFERENCE_B2B
from voice.pacing.simulation import run


@pytest.fixture(scope="module")
def predictive_team():
    """Ten agents, predictive, 3 hours after warm-up: 30 agent-hours."""
    return run(agents=10, mode="predictive", hours=3, seed=7)


@pytest.fixture(scope="module")
def progressive_team():
    return run(agents=10, mode="progressive", hours=3, seed=7)


def test_predictive_keeps_abandonment_under_the_cap(predictive_team):
    assert predictive_team.humans > 300
    assert predictive_team.abandon_rate <= 0.03
    assert predictive_team.min_ring_violations == 0


def test_predictive_beats_progressive(predictive_team, progressive_team):
    assert progressive_team.abandon_rate == 0.0
    assert predictive_team.conversations_per_agent_hour > 1.5 * progressive_team.conversations_per_agent_hour
    assert predictive_team.mean_agent_wait_s < progressive_team.mean_agent_wait_s / 3
    assert predictive_team.conversations_per_agent_hour < predictive_team.upper_bound


def test_progressive_matches_the_closed_form():
    # shared/reference/pacing-and-performance.md §6.2: 7.45 conversations per agent-hour, ~273 s wait.
    result = run(agents=5, mode="progressive", hours=10, seed=3)
    assert result.conversations_per_agent_hour == pytest.approx(7.45, rel=0.08)
    assert result.mean_agent_wait_s == pytest.approx(273, rel=0.12)


def test_more_parallel_lines_give_more_conversations_and_more_abandonment():
    one, three = (run(agents=1, mode="parallel", lines=k, hours=30, seed=5) for k in (1, 3))
    assert three.conversations_per_agent_hour > one.conversations_per_agent_hour + 2.0
    assert one.abandon_rate == 0.0
    assert three.abandon_rate > 0.02
    assert three.released > 0
    assert three.min_ring_violations == 0


def test_a_seed_reproduces_a_run():
    first, second = (run(agents=3, mode="predictive", hours=1, seed=11, warmup_s=0) for _ in range(2))
    assert first.as_dict() | {"wall_s": 0} == second.as_dict() | {"wall_s": 0}
    other = run(agents=3, mode="predictive", hours=1, seed=12, warmup_s=0)
    assert other.dials != first.dials


def test_a_livelier_list_gives_more_conversations():
    lively = REFERENCE_B2B.with_overrides(human=0.2, no_answer=0.45)
    reference = run(agents=5, mode="parallel", lines=2, hours=6, seed=2)
    better = run(agents=5, mode="parallel", lines=2, hours=6, seed=2, population=lively)
    assert better.conversations_per_agent_hour > reference.conversations_per_agent_hour


def test_command_prints_one_json_object(capsys):
    call_command("simulate_pacing", "--agents", "2", "--mode", "parallel", "--lines", "2", "--hours", "2", "--json")
    payload = json.loads(capsys.readouterr().out)
    for key in (
        "conversations_per_agent_hour",
        "abandon_rate",
        "utilisation",
        "mean_agent_wait_s",
        "dials_per_agent_hour",
        "upper_bound",
    ):
        assert key in payload
    assert payload["agents"] == 2
    assert payload["upper_bound"] == pytest.approx(17.1, abs=0.05)


def test_command_reports_the_mean_over_several_seeds(capsys):
    call_command("simulate_pacing", "--agents", "2", "--hours", "2", "--seeds", "3", "--jobs", "1", "--json")
    payload = json.loads(capsys.readouterr().out)
    runs = payload["runs"]
    assert [r["seed"] for r in runs] == [1, 2, 3] == payload["seeds"]
    rates = [r["conversations_per_agent_hour"] for r in runs]
    assert len(set(rates)) > 1  # the seeds really differ
    assert payload["conversations_per_agent_hour"] == pytest.approx(sum(rates) / 3)
    assert payload["abandon_rate_max"] == max(r["abandon_rate"] for r in runs)
    assert payload["agent_hours"] == pytest.approx(12.0)


def test_command_refuses_nonsense(capsys):
    with pytest.raises(CommandError, match="--seeds"):
        call_command("simulate_pacing", "--seeds", "0")
    with pytest.raises(CommandError, match="--agents"):
        call_command("simulate_pacing", "--agents", "0")


def test_command_human_readable_by_default(capsys):
    call_command("simulate_pacing", "--agents", "1", "--mode", "progressive", "--hours", "1", "--human", "0.2")
    out = capsys.readouterr().out
    assert "conversations per agent-hour" in out
    assert "abandonment" in out
