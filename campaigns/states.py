"""Campaign and agent-session states as data: the one place that says which moves are allowed.

The services enforce these tables; admin's buttons and the pages' JavaScript read them (they are handed to the
pages as JSON), so a button is never offered for a move the service would refuse.
"""

from __future__ import annotations

from campaigns.models import AgentSession, Campaign

Status = Campaign.Status
State = AgentSession.State

CAMPAIGN_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.DRAFT: frozenset({Status.RUNNING, Status.ENDED}),
    Status.RUNNING: frozenset({Status.PAUSED, Status.ENDED}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.ENDED}),
    Status.ENDED: frozenset(),
}

# What each move is called on a button, in the order buttons are shown.
CAMPAIGN_ACTIONS: tuple[tuple[str, str], ...] = (
    (Status.RUNNING, "Start"),
    (Status.PAUSED, "Pause"),
    (Status.ENDED, "End"),
)


def campaign_actions(status: str) -> list[dict]:
    """The buttons a campaign in `status` offers: `{"status", "label"}`, "Resume" for a paused one."""
    allowed = CAMPAIGN_TRANSITIONS[Status(status)]
    return [{"status": target, "label": "Resume" if (status, target) == (Status.PAUSED, Status.RUNNING) else label}
            for target, label in CAMPAIGN_ACTIONS if target in allowed]


def transitions_json() -> dict[str, list[str]]:
    """The campaign transition table for the pages' scripts."""
    return {str(source): sorted(str(t) for t in targets) for source, targets in CAMPAIGN_TRANSITIONS.items()}


# Agent sessions: what an agent may move to by their own command (the call flow moves them to on_call and
# wrap_up; leaving is always to offline).
AGENT_COMMANDS: dict[str, frozenset[str]] = {
    State.READY: frozenset({State.PAUSED, State.WRAP_UP}),
    State.PAUSED: frozenset({State.READY, State.WRAP_UP}),
    State.OFFLINE: frozenset({State.PAUSED, State.READY, State.WRAP_UP, State.ON_CALL}),
}
