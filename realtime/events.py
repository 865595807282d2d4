"""The one realtime choke point: every event is built here and sent by `publish()` after commit.

Only services call this module. Events carry the row's version so a client drops stale ones.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.groups import campaign_group, wallboard_group

log = logging.getLogger(__name__)


def _send(groups: tuple[str, ...], event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, {"type": "event.push", "event": event})
        except Exception:  # a realtime hiccup must never undo or fail a committed change
            log.exception("publish to %s failed", group)


def publish(event: dict, *, campaign_id: int) -> None:
    """Send `event` to the campaign's pages and wallboard once the current transaction commits."""
    groups = (campaign_group(campaign_id), wallboard_group(campaign_id))
    transaction.on_commit(lambda: _send(groups, event))


def call_event(call) -> dict:
    contact = call.contact
    return {
        "type": "call",
        "id": call.pk,
        "version": call.version,
        "state": call.state,
        "outcome": call.outcome,
        "answered_by": call.answered_by,
        "dialed_for": call.dialed_for_id,
        "bridged_to": call.bridged_to_id,
        "contact": {"id": contact.pk, "name": contact.name, "phone": contact.phone, "company": contact.company},
        "created_at": call.created_at.isoformat() if call.created_at else None,
        "ringing_at": call.ringing_at.isoformat() if call.ringing_at else None,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "connected_at": call.connected_at.isoformat() if call.connected_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
    }


def agent_event(session) -> dict:
    return {
        "type": "agent",
        "id": session.pk,
        "version": session.version,
        "agent": session.agent_id,
        "name": session.agent.get_full_name() or session.agent.get_username(),
        "state": session.state,
        "pause_reason": session.pause_reason,
        "in_room": session.in_room,
        "state_changed_at": session.state_changed_at.isoformat() if session.state_changed_at else None,
    }


def campaign_event(campaign) -> dict:
    return {"type": "campaign", "id": campaign.pk, "status": campaign.status, "dial_mode": campaign.dial_mode}


def publish_call(call) -> None:
    publish(call_event(call), campaign_id=call.campaign_id)


def publish_agent(session) -> None:
    publish(agent_event(session), campaign_id=session.campaign_id)


def publish_campaign(campaign) -> None:
    publish(campaign_event(campaign), campaign_id=campaign.pk)
