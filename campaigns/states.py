"""Campaign states as data: the one place that says which moves a campaign may make.

The services enforce these tables; admin's buttons and the pages' JavaScript read them (they are handed to the
pages as JSON), so a button is never offered for a move the service would refuse.
"""

from __future__ import annotations

from campaigns.models import Campaign

Status = Campaign.Status

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

