"""The agent time log: every session state change appended as one row, for the reports' talk / wrap / wait /
idle time. Called by the session-state setters, inside their transaction (caller holds the session lock)."""

from __future__ import annotations

import datetime as dt

from campaigns.models import AgentSession, AgentStateChange


def agent_state_log(*, session: AgentSession, at: dt.datetime) -> None:
    AgentStateChange.objects.create(session=session, state=session.state, at=at)
