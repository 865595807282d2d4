"""Presence (DESIGN rule 10): a customer goes only to an agent whose phone leg is in their room AND whose
console is connected; losing either pauses the agent within seconds, and an agent who is gone is cut off.

- Console: every agent console socket is a `ConsoleSocket` row, renewed by the page's ping every few seconds.
  A socket that closes with no other one open for that agent and campaign pauses a ready agent at once
  ("console disconnected"); one that stops pinging (a crashed web process, a laptop that slept) is caught by
  the sweep every dialer worker runs each tick, after PRESENCE_TIMEOUT_S.
- Phone: the agent's leg leaving the room (conference participant-leave, or its call ending) pauses a ready
  agent at once ("phone left the room").
- Pausing goes through the normal pause: the agent's ringing lines are released by the usual rules (rule 4),
  a human meant for them goes to another ready agent or hears the safe-harbor message (rule 3).
- Gone: closing the tab, signing out, being removed from the campaign or deactivated makes the agent leave
  whatever they were doing (a live talk is hung up) and, for the last two, closes their open sockets.

Session state changes go through `campaigns.services` (agent_pause / agent_leave); this module only decides
when presence calls for them.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from campaigns.exceptions import IllegalAction
from campaigns.models import AgentSession, Campaign
from realtime import events
from voice import floor, gateway, services, states
from voice.models import Call, ConsoleSocket
from voice.states import Outcome

log = logging.getLogger(__name__)

State = AgentSession.State
CONSOLE_GONE = "console disconnected"
PHONE_GONE = "phone left the room"
# Stale socket rows (a crashed process never deleted them) are purged after this many timeouts.
PURGE_AFTER_TIMEOUTS = 20


# -- the console socket --------------------------------------------------------------------------------------


def console_connected(*, user_id: int, campaign_id: int, channel_name: str) -> None:
    ConsoleSocket.objects.update_or_create(channel_name=channel_name, defaults={
        "user_id": user_id, "campaign_id": campaign_id, "seen_at": timezone.now()})


def console_seen(*, channel_name: str) -> None:
    ConsoleSocket.objects.filter(channel_name=channel_name).update(seen_at=timezone.now())


def console_disconnected(*, channel_name: str) -> None:
    """A console socket closed. If it was the agent's last one for the campaign, a ready agent is paused now."""
    socket = ConsoleSocket.objects.filter(channel_name=channel_name).first()
    if socket is None:
        return
    socket.delete()
    if not settings.PRESENCE_REQUIRE_CONSOLE or _console_live(socket.user_id, socket.campaign_id):
        return
    session = AgentSession.objects.filter(agent_id=socket.user_id, campaign_id=socket.campaign_id,
                                          state=State.READY).first()
    if session is not None:
        _pause(session, CONSOLE_GONE)


def _fresh_since() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_S)


def _console_live(user_id: int, campaign_id: int) -> bool:
    return ConsoleSocket.objects.filter(user_id=user_id, campaign_id=campaign_id, seen_at__gt=_fresh_since()).exists()


# -- the phone leg -------------------------------------------------------------------------------------------


def agent_leg_in_room(*, session_id: int, call_sid: str, in_room: bool) -> None:
    """The agent's leg joined or left their room (conference event, or the leg's call ended)."""
    session = AgentSession.objects.filter(pk=session_id).first()
    if session is None:
        return
    stale = bool(session.agent_call_sid and call_sid and call_sid != session.agent_call_sid)  # an old leg's news
    if not in_room and not stale and session.in_room:
        _abandon_bridging(session_id)
    floor.agent_leg_in_room(session_id=session_id, call_sid=call_sid, in_room=in_room)
    if in_room:
        return
    session = AgentSession.objects.filter(pk=session_id, state=State.READY, in_room=False).first()
    if session is not None:
        _pause(session, PHONE_GONE)


def _abandon_bridging(session_id: int) -> None:
    """A person being redirected to an agent whose phone just left would be dropped into an empty room (or
    hung up on): they hear the safe-harbor message instead (rule 3)."""
    for call in Call.objects.filter(bridged_to_id=session_id, state=states.State.BRIDGING):
        services.call_hangup(call=call, outcome=Outcome.ABANDONED)


def agent_legs_reconcile() -> int:
    """Ask Twilio about the phone legs we believe are in their rooms: a leg it forgot (404, e.g. a restarted
    carrier) or that has ended (its callback lost while we were down) is out of the room. Run by every worker
    at start-up and with the reconciler. Returns how many legs were found gone."""
    gone = 0
    legs = AgentSession.objects.filter(in_room=True).exclude(agent_call_sid="").exclude(state=State.OFFLINE)
    for session_id, call_sid in legs.values_list("pk", "agent_call_sid"):
        try:
            ended = gateway.fetch_call(sid=call_sid).status in states.TERMINAL_STATUSES
        except gateway.NotFound:
            ended = True
        except gateway.GatewayError:
            continue  # not knowing is not "gone": ask again next round
        if ended:
            agent_leg_in_room(session_id=session_id, call_sid=call_sid, in_room=False)
            gone += 1
    return gone


# -- pausing and cutting off -----------------------------------------------------------------------------------


def _pause(session: AgentSession, reason: str) -> None:
    try:
        floor.agent_pause(session=session, reason=reason)
        log.info("presence: agent session %s paused (%s)", session.pk, reason)
    except IllegalAction:
        pass  # moved on meanwhile (on a call, already paused, left): nothing to do


def agent_gone(*, session: AgentSession) -> AgentSession:
    """The agent is gone (tab closed, signed out, removed, deactivated): hang up a live talk (a person still
    being bridged hears the safe-harbor message instead), leave."""
    _abandon_bridging(session.pk)
    for call in Call.objects.filter(bridged_to=session, state=states.State.CONNECTED):
        services.call_hangup(call=call)
    return floor.agent_leave(session=session, force=True)


def user_signed_out(*, user_id: int) -> int:
    """Sign-out is a leave of every campaign the user works."""
    count = 0
    for session in AgentSession.objects.filter(agent_id=user_id).exclude(state=State.OFFLINE):
        agent_gone(session=session)
        count += 1
    return count


def users_cut_off(*, user_ids: list[int] | None = None) -> int:
    """End the sessions of users who may no longer work their campaign (deactivated, or not a member and not
    a manager any more) and close their sockets. Runs after admin changes and in every worker's sweep."""
    sessions = _unauthorised_sessions()
    if user_ids is not None:
        sessions = sessions.filter(agent_id__in=user_ids)
    ended = list(sessions)
    for session in ended:
        log.warning("presence: user %s may no longer work campaign %s; ending their session",
                    session.agent_id, session.campaign_id)
        agent_gone(session=session)
    for user_id in set(user_ids or []) | {s.agent_id for s in ended}:
        events.access_revoked(user_id=user_id)
    return len(ended)


def _unauthorised_sessions():
    """Live sessions of users who may not work the campaign any more: inactive, or neither a member nor a
    manager (the same rule as campaigns.services.access_campaign)."""
    user_model = get_user_model()
    member = Campaign.agents.through.objects.filter(campaign_id=OuterRef("campaign_id"),
                                                    user_id=OuterRef("agent_id"))
    managers = user_model.objects.filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name="Managers"))
    return (AgentSession.objects.exclude(state=State.OFFLINE)
            .filter(Q(agent__is_active=False) | (~Exists(member) & ~Q(agent__in=managers))))


# -- the sweep (every dialer worker, every tick) ----------------------------------------------------------------


def sessions_sweep(*, now: dt.datetime | None = None) -> int:
    """Pause ready agents whose console or phone has been gone past the timeout; cut off agents who may no
    longer work. Returns how many sessions changed."""
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_S)
    changed = users_cut_off() if _unauthorised_sessions().exists() else 0
    # Grace for an agent who just went ready: their phone and socket may be a moment behind the click.
    ready = AgentSession.objects.filter(state=State.READY, state_changed_at__lt=since)
    for session in ready.filter(in_room=False):
        _pause(session, PHONE_GONE)
        changed += 1
    if settings.PRESENCE_REQUIRE_CONSOLE:
        live = ConsoleSocket.objects.filter(user_id=OuterRef("agent_id"), campaign_id=OuterRef("campaign_id"),
                                            seen_at__gt=since)
        for session in ready.filter(in_room=True).filter(~Exists(live)):
            _pause(session, CONSOLE_GONE)
            changed += 1
    purge_before = now - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_S * PURGE_AFTER_TIMEOUTS)
    ConsoleSocket.objects.filter(seen_at__lt=purge_before).delete()
    return changed


# -- admin and auth changes: cut off at once --------------------------------------------------------------------


def on_user_saved(sender, instance, created, **kwargs) -> None:
    if not created and not instance.is_active:
        user_id = instance.pk
        transaction.on_commit(lambda: users_cut_off(user_ids=[user_id]))


def on_membership_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in ("post_remove", "post_clear"):
        return
    if reverse:  # user.campaigns.remove(...): the instance is the user
        user_ids = [instance.pk]
    elif pk_set:
        user_ids = list(pk_set)
    else:  # campaign.agents.clear(): whoever worked it
        user_ids = list(AgentSession.objects.filter(campaign=instance).values_list("agent_id", flat=True))
    transaction.on_commit(lambda: users_cut_off(user_ids=user_ids))


def on_signed_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        user_signed_out(user_id=user.pk)


def connect_signals() -> None:
    """Thin receivers: they only hand the change to the functions above (called from VoiceConfig.ready)."""
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import m2m_changed, post_save

    post_save.connect(on_user_saved, sender=get_user_model(), dispatch_uid="presence.user_saved")
    m2m_changed.connect(on_membership_changed, sender=Campaign.agents.through, dispatch_uid="presence.members")
    user_logged_out.connect(on_signed_out, dispatch_uid="presence.signed_out")
