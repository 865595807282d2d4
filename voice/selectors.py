"""Reads for calls, campaigns' numbers and pacing."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
from campaigns.selectors import session_json
from campaigns.services import user_is_manager
from realtime import events
from voice.models import Call, human_answered_q
from voice.states import Outcome, State

ABANDON_WINDOW = dt.timedelta(days=30)


def abandonment(*, campaign: Campaign, since: dt.datetime | None = None) -> dict:
    """Abandoned / human-answered over the window (the FCC denominator), default the rolling 30 days."""
    since = since or timezone.now() - ABANDON_WINDOW
    counts = Call.objects.filter(campaign=campaign, created_at__gte=since).aggregate(
        abandoned=Count("pk", filter=Q(outcome=Outcome.ABANDONED)),
        humans=Count("pk", filter=human_answered_q()),
    )
    humans = counts["humans"]
    rate = counts["abandoned"] / humans if humans else 0.0
    return {"abandoned": counts["abandoned"], "humans": humans, "rate": rate, "cap": campaign.max_abandon_rate}


def campaign_detail(*, campaign: Campaign, user) -> dict:
    """The campaign for `GET /api/campaign/{id}`: settings, counts, abandonment, the caller's session and live
    calls (a manager's: all of them; an agent's: only their own)."""
    contacts = campaign.contacts.aggregate(
        total=Count("pk"), pending=Count("pk", filter=Q(status="pending")),
    )
    session = AgentSession.objects.select_related("agent").filter(campaign=campaign, agent=user).first()
    live = Call.objects.filter(campaign=campaign).exclude(state=State.ENDED).select_related("contact", "campaign")
    if not user_is_manager(user):
        # An agent never sees another agent's contacts (the sockets keep the same rule).
        live = live.filter(Q(dialed_for=session) | Q(bridged_to=session)) if session else live.none()
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "dial_mode": campaign.dial_mode,
        "lines_per_agent": campaign.lines_per_agent,
        "caller_id": campaign.effective_caller_id,
        "seller_name": campaign.seller_name,
        "opt_out_number": campaign.opt_out_number,
        "abandon_cap_opt_out": campaign.abandon_cap_opt_out,
        "contacts": contacts,
        "abandonment": abandonment(campaign=campaign),
        "session": session_json(session) if session else None,
        "live_calls": [events.call_event(c) for c in live],
        "disposition_codes": [
            {"code": c.code, "label": c.label, "hotkey": c.hotkey, "schedules_callback": c.schedules_callback}
            for c in campaign.disposition_codes.all()
        ],
    }
