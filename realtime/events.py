"""The one realtime choke point: every event is built here and sent by `publish()` after commit.

Only services call this module. An event is built when the service publishes it (so it is a picture of the
row as committed) and sent once the transaction commits; a rollback sends nothing.

Every event carries `type`, `id` and the row's `version`, so a client keeps the highest version it has seen
per (type, id) and drops anything older: events may arrive out of order (several daphne processes, a
snapshot racing an event), never as lies. `sent_at` (epoch milliseconds, stamped after commit) lets the
client measure latency and correct its clock for timers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from realtime.groups import agent_group, campaign_group, user_group, wallboard_group

log = logging.getLogger(__name__)

# The channel-layer message type; consumers handle it in `event_push`.
PUSH = "event.push"
ACCESS_CHECK = "access.check"  # a channel-layer message to the consumers, never sent to a browser


def _iso(value) -> str | None:
    return value.isoformat() if value else None


async def _group_send_all(layer, groups: tuple[str, ...], message: dict) -> None:
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:  # a realtime hiccup must never undo or fail a committed change
            log.exception("publish to %s failed", group)


# The event loop that serves this process's sockets and HTTP requests (set by the consumers and dialer.asgi).
# Events published from plain threads (HTTP requests, the pacer worker, hold timers) are handed to it: the
# in-memory layer's queues belong to that loop, and a foreign loop's put would sit unseen until something else
# woke it. With Redis it also saves a loop (and a connection) per event. The thread does not wait for the send:
# a Twilio callback's thread is free as soon as its transaction commits, whatever Redis or the loop is doing
# (it used to wait up to 5 s), and events carry versions, so sends finishing in another order change nothing.
# At most SENDS_IN_FLIGHT sends per process are outstanding: past that a publisher waits (SEND_TIMEOUT_S at most,
# then the event is dropped and logged), so a stalled Redis slows publishers instead of piling up sends and
# connections.
_server_loop: asyncio.AbstractEventLoop | None = None
SENDS_IN_FLIGHT = 64
SEND_TIMEOUT_S = 5.0
_in_flight = threading.BoundedSemaphore(SENDS_IN_FLIGHT)


def serve_on(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _send(groups: tuple[str, ...], event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event["sent_at"] = round(time.time() * 1000, 1)
    # Serialised once here, not once per connected page.
    message = {"type": PUSH, "text": json.dumps(event, cls=DjangoJSONEncoder)}
    _send_raw(groups, message)


def publish(event: dict, *, campaign_id: int, groups: tuple[str, ...] | None = None) -> None:
    """Send `event` once the current transaction commits: to `groups`, by default every page of the campaign
    (consoles and wallboards)."""
    targets = groups if groups is not None else (campaign_group(campaign_id), wallboard_group(campaign_id))
    transaction.on_commit(lambda: _send(targets, event))


# -- builders -------------------------------------------------------------------------------------------


def contact_brief(contact) -> dict:
    """What a line shows before the card is fetched: enough to pop the card at once."""
    return {"id": contact.pk, "name": contact.name, "phone": contact.phone, "company": contact.company,
            "time_zone": contact.time_zone}


def call_event(call) -> dict:
    contact = call.contact
    return {
        "type": "call",
        "id": call.pk,
        "version": call.version,
        "campaign": call.campaign_id,
        "state": call.state,
        "outcome": call.outcome,
        "answered_by": call.answered_by,
        "verdict": call.verdict,  # "human" / "machine" / "": decided by voice.states, never by the pages
        "dialed_for": call.dialed_for_id,
        "bridged_to": call.bridged_to_id,
        "contact": contact_brief(contact),
        "created_at": _iso(call.created_at),
        "dialed_at": _iso(call.dialed_at),
        "ringing_at": _iso(call.ringing_at),
        "answered_at": _iso(call.answered_at),
        "bridged_at": _iso(call.bridged_at),
        "connected_at": _iso(call.connected_at),
        "ended_at": _iso(call.ended_at),
        "duration_s": call.duration_s,
    }


def agent_event(session) -> dict:
    return {
        "type": "agent",
        "id": session.pk,
        "version": session.version,
        "campaign": session.campaign_id,
        "agent": session.agent_id,
        "name": session.agent.get_full_name() or session.agent.get_username(),
        "state": session.state,
        "pause_reason": session.pause_reason,
        "in_room": session.in_room,
        "state_changed_at": _iso(session.state_changed_at),
    }


def campaign_event(campaign) -> dict:
    # Campaigns have no version column; `updated_at` moves on every save, which orders their events.
    version = int(campaign.updated_at.timestamp() * 1_000_000) if campaign.updated_at else 0
    return {"type": "campaign", "id": campaign.pk, "version": version, "name": campaign.name,
            "status": campaign.status, "dial_mode": campaign.dial_mode,
            "abandon_cap_opt_out": campaign.abandon_cap_opt_out}


def dialing_event(campaign_id: int, held: dict | None) -> dict:
    """Why ready agents get no line (`held`: {"code", "text"}), or None once dialing goes on."""
    return {"type": "dialing", "id": campaign_id, "version": time.time_ns() // 1000, "campaign": campaign_id,
            "held": held}


# -- what services call ----------------------------------------------------------------------------------


def call_groups(call) -> tuple[str, ...]:
    sessions = {s for s in (call.dialed_for_id, call.bridged_to_id) if s is not None}
    return (wallboard_group(call.campaign_id), *(agent_group(s) for s in sorted(sessions)))


def publish_call(call) -> None:
    """A line changed: the wallboard and the consoles of the agent it was dialed for and the agent it reached."""
    publish(call_event(call), campaign_id=call.campaign_id, groups=call_groups(call))


def publish_agent(session) -> None:
    """An agent's state changed: their own console and the wallboard."""
    publish(agent_event(session), campaign_id=session.campaign_id,
            groups=(wallboard_group(session.campaign_id), agent_group(session.pk)))


def publish_campaign(campaign) -> None:
    """The campaign was started, paused, resumed or ended: every console and wallboard of it."""
    publish(campaign_event(campaign), campaign_id=campaign.pk)


def publish_dialing(campaign_id: int, held: dict | None) -> None:
    """Why nothing is being dialed (or that dialing goes on again): every console and wallboard of the campaign."""
    publish(dialing_event(campaign_id, held), campaign_id=campaign_id)
def recording_event(recording, call) -> dict:
    """Never carries Twilio's media URL: browsers play recordings through our own page."""
    return {"type": "recording", "id": recording.pk, "version": _stamp(), "campaign": call.campaign_id,
            "call": call.pk, "status": recording.status, "duration_s": recording.duration_s}


def supervision_event(supervision, call, notice: str) -> dict:
    return {"type": "supervision", "id": supervision.pk, "version": supervision.version,
            "campaign": call.campaign_id, "call": call.pk, "session": call.bridged_to_id,
            "manager": supervision.manager_id,
            "manager_name": supervision.manager.get_full_name() or supervision.manager.get_username(),
            "mode": supervision.mode, "active": supervision.ended_at is None,
            "joined": supervision.joined_at is not None, "notice": notice}


def _stamp() -> int:
    # For rows without a version column: microseconds, which order one row's events well enough.
    return int(time.time() * 1_000_000)


def publish_recording(recording, call) -> None:
    """A talk's recording started, paused, resumed, completed or was deleted: the agent's console and wallboard."""
    groups = (wallboard_group(call.campaign_id),) + ((agent_group(call.bridged_to_id),) if call.bridged_to_id else ())
    publish(recording_event(recording, call), campaign_id=call.campaign_id, groups=groups)


def publish_supervision(supervision, call, *, notice: str | None) -> None:
    """A manager started, changed or ended supervising a talk: the wallboards, and the agent's console with the
    notice the settings allow (None: the agent is not told at all)."""
    publish(supervision_event(supervision, call, ""), campaign_id=call.campaign_id,
            groups=(wallboard_group(call.campaign_id),))
    if call.bridged_to_id and notice is not None:
        publish(supervision_event(supervision, call, notice), campaign_id=call.campaign_id,
                groups=(agent_group(call.bridged_to_id),))


def access_revoked(*, user_id: int) -> None:
    """Tell every open socket of the user to check its access again (after commit); those that may no longer
    watch close themselves (voice.presence: removed from a campaign, deactivated)."""
    transaction.on_commit(lambda: _send_raw((user_group(user_id),), {"type": ACCESS_CHECK}))


def _send_raw(groups: tuple[str, ...], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    try:
        if loop is not None and loop.is_running() and loop is not _running_loop():
            _hand_over(loop, layer, groups, message)
        else:
            async_to_sync(_group_send_all)(layer, groups, message)
    except Exception:
        log.exception("sending %s to %s failed", message.get("type"), groups)


def _hand_over(loop: asyncio.AbstractEventLoop, layer, groups: tuple[str, ...], message: dict) -> None:
    in_flight = _in_flight
    if not in_flight.acquire(timeout=SEND_TIMEOUT_S):
        log.error("dropped %s to %s: %d realtime sends still in flight after %.0f s", message.get("type"), groups,
                  SENDS_IN_FLIGHT, SEND_TIMEOUT_S)
        return

    async def send() -> None:
        try:
            await _group_send_all(layer, groups, message)
        finally:
            in_flight.release()

    try:
        asyncio.run_coroutine_threadsafe(send(), loop)
    except RuntimeError:  # the loop closed meanwhile (shutdown)
        in_flight.release()
        raise
