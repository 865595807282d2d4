"""Reads for campaigns: agent sessions' JSON for the API, the home page's campaigns (calls and their numbers
are in voice)."""

from __future__ import annotations

from django.db.models import Case, Count, Q, Value, When

from campaigns.models import AgentSession, Campaign
from realtime import events


def session_json(session: AgentSession) -> dict:
    """An agent's session as the API returns it: the realtime event's shape plus the conference room."""
    return {**events.agent_event(session), "conference_room": session.conference_room}


def campaigns_for_home(*, user, manager: bool):
    """The campaigns a person's home page lists. Managers may open every campaign (see access_campaign), so they
    see all of them, ended ones last; agents see the ones they are on that have not ended."""
    if not manager:
        return (Campaign.objects.filter(agents=user).exclude(status=Campaign.Status.ENDED).order_by("name"))
    ended_last = Case(When(status=Campaign.Status.ENDED, then=Value(1)), default=Value(0))
    return (Campaign.objects.annotate(
        ended_last=ended_last,
        agents_in=Count("sessions", filter=~Q(sessions__state=AgentSession.State.OFFLINE), distinct=True),
    ).order_by("ended_last", "-created_at"))
