"""The words people read for the codes the dialer stores: call results and call stages.

One home for them, used by model choices (so admin lists, filters and forms say "Hung up while waiting", not
`hung_up_on_hold`) and handed to the pages' JavaScript. Codes are plain strings here because this app sits
below `voice`, which owns the state machine; tests/voice check that every code there has a label here.
"""

from __future__ import annotations

OUTCOME_LABELS: dict[str, str] = {
    "talked": "Talked",
    "no_answer": "No answer",
    "busy": "Busy",
    "failed": "Could not connect",
    "canceled": "Stopped ringing (not needed)",
    "machine": "Answering machine",
    "voicemail_left": "Voicemail left",
    "fax": "Fax",
    "abandoned": "Abandoned (nobody free)",
    "hung_up_on_hold": "Hung up while waiting",
    "invalid_number": "Invalid number",
}

CALL_STATE_LABELS: dict[str, str] = {
    "created": "Being placed",
    "dialing": "Dialing",
    "ringing": "Ringing",
    "answered": "Answered, detecting",
    "bridging": "Connecting to an agent",
    "connected": "Talking",
    "voicemail": "Leaving voicemail",
    "releasing": "Hanging up",
    "ended": "Ended",
}


def outcome_choices(*, blank: str) -> list[tuple[str, str]]:
    """The choices of a result field; `blank` names the empty value (a contact not called yet, a call going on)."""
    return [("", blank), *OUTCOME_LABELS.items()]
