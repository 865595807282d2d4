"""Reads for campaigns: JSON shapes of agent sessions for the API (calls and their numbers are in voice)."""

from __future__ import annotations

from campaigns.models import AgentSession
from realtime import events


def session_json(session: AgentSession) -> dict:
    """An agent's session as the API returns it: the realtime event's shape plus the conference room."""
    return {**events.agent_event(session), "conference_room": session.conference_room}
