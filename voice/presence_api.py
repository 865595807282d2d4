"""The console's "I am gone" beacon: the page sends it when its tab closes (voice.presence)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from campaigns import services as campaign_services
from campaigns.models import AgentSession
from voice import presence
from voice.api import api


@api("POST")
def campaign_gone(request: HttpRequest, body: dict, campaign_id: int):
    """The agent closed the console: leave the campaign whatever they were doing (a live talk is hung up)."""
    campaign = campaign_services.access_campaign(request.user, campaign_id)
    session = AgentSession.objects.filter(agent=request.user, campaign=campaign).first()
    if session is None or session.state == AgentSession.State.OFFLINE:
        return JsonResponse({"state": AgentSession.State.OFFLINE})
    session = presence.agent_gone(session=session)
    return JsonResponse({"state": session.state})
