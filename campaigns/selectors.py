"""Reads for campaigns: JSON shapes for the API and the pages' snapshots."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
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


def session_json(session: AgentSession) -> dict:
    return {
        "id": session.pk,
        "campaign": session.campaign_id,
        "state": session.state,
        "pause_reason": session.pause_reason,
        "in_room": session.in_room,
        "conference_room": session.conference_room,
        "version": session.version,
        "state_changed_at": session.state_changed_at.isoformat() if session.state_changed_at else None,
    }


def call_json(call: Call) -> dict:
    return {
        "id": call.pk,
        "sid": call.sid,
        "state": call.state,
        "outcome": call.outcome,
        "answered_by": call.answered_by,
        "contact": {"id": call.contact_id, "phone": call.contact.phone, "name": call.contact.name},
        "dialed_for": call.dialed_for_id,
        "bridged_to": call.bridged_to_id,
        "version": call.version,
    }


def campaign_detail(*, campaign: Campaign, user) -> dict:
    contacts = campaign.contacts.aggregate(
        total=Count("pk"), pending=Count("pk", filter=Q(status="pending")),
    )
    session = AgentSession.objects.filter(campaign=campaign, agent=user).first()
    live = Call.objects.filter(campaign=campaign).exclude(state=State.ENDED).select_related("contact")
    if not user.has_perm("campaigns.manage_campaigns"):
        # An agent sees only the lines dialed for them or bridged to them, never another agent's customers.
        live = live.filter(Q(dialed_for__agent=user) | Q(bridged_to__agent=user))
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "dial_mode": campaign.dial_mode,
        "lines_per_agent": campaign.lines_per_agent,
        "caller_id": campaign.effective_caller_id,
        "contacts": contacts,
        "abandonment": abandonment(campaign=campaign),
        "session": session_json(session) if session else None,
        "live_calls": [call_json(c) for c in live],
        "disposition_codes": [
            {"code": c.code, "label": c.label, "hotkey": c.hotkey, "schedules_callback": c.schedules_callback}
            for c in campaign.disposition_codes.all()
        ],
    }
