"""What agents and managers do on the floor: start, pause and end a campaign; agents join, go ready, pause and
leave; their softphone legs; dial-next; hang-up; dispositions.

These are commands: one that is illegal now raises `IllegalAction` (the API answers 409) and changes nothing.
Lock order (as everywhere): campaign -> agent sessions -> call -> contact. An agent session's state changes only
through `voice.services.session_set_state` (the one setter); calls are created only by the dial gate.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.exceptions import BadInput, IllegalAction
from campaigns.models import AgentSession, Campaign, DispositionCode
from campaigns.states import CAMPAIGN_TRANSITIONS
from realtime import events
from voice import gate, gateway, states
from voice import services as call_services
from voice.gateway import Softphone
from voice.models import Call, Disposition
from voice.services import lock_session, session_save_presence, session_set_state, sessions_for_update
from voice.wake import wake

log = logging.getLogger(__name__)

State = AgentSession.State


# -- campaigns ---------------------------------------------------------------------------------------


def campaign_set_status(*, campaign: Campaign, status: str, by=None) -> Campaign:
    """Start, pause, resume or end a campaign. Ending hangs up every live call of the campaign."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        if status == locked.status:
            if status == Campaign.Status.ENDED:
                raise IllegalAction("the campaign has already ended")
            return locked
        if status not in CAMPAIGN_TRANSITIONS[Campaign.Status(locked.status)]:
            raise IllegalAction(f"a {locked.status} campaign cannot become {status}")
        if status == Campaign.Status.RUNNING and not locked.has_seller_identity:
            raise IllegalAction("name the seller and an opt-out number first: the safe-harbor message says both")
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        events.publish_campaign(locked)
        if status == Campaign.Status.RUNNING:
            wake()
        if status == Campaign.Status.ENDED:
            # Every agent is signed out of it, each with an event so consoles and wallboards follow.
            for session in sessions_for_update().filter(campaign=locked).exclude(state=State.OFFLINE).order_by("pk"):
                session.in_room = False
                session.left_at = timezone.now()
                session_set_state(session, State.OFFLINE)
    if status == Campaign.Status.ENDED:
        call_services.calls_hang_up_all(campaign=locked)
    log.info("campaign %s is now %s (by %s)", locked.pk, status, by)
    return locked


# -- agent sessions ------------------------------------------------------------------------------------


def agent_identity(user) -> str:
    return f"agent-{user.pk}"


def softphone_for(session: AgentSession) -> Softphone:
    identity = agent_identity(session.agent)
    return Softphone(
        token=gateway.softphone_token(identity=identity), identity=identity,
        params={"session": str(session.pk)}, sandbox=settings.TWILIO_SANDBOX,
    )


def agent_join(*, user, campaign: Campaign) -> tuple[AgentSession, Softphone]:
    """Start (or resume) working a campaign: a session, a conference room, a softphone token. The agent
    starts paused: ready comes once they say so."""
    if campaign.status == Campaign.Status.ENDED:
        raise IllegalAction("the campaign has ended")
    with transaction.atomic():
        other = AgentSession.objects.select_for_update(no_key=True).filter(agent=user).exclude(
            campaign=campaign).exclude(state=State.OFFLINE).first()
        if other is not None:
            raise IllegalAction(f"you are still working {other.campaign}; leave it first")
        session, _ = AgentSession.objects.get_or_create(
            agent=user, campaign=campaign, defaults={"conference_room": AgentSession.new_room_name()})
        session = lock_session(session.pk)
        if session.state == State.OFFLINE:
            session.conference_room = AgentSession.new_room_name()
            session.joined_at = timezone.now()
            session.left_at = None
            session.in_room = False
            session.agent_call_sid = ""
            session_set_state(session, State.PAUSED, reason="joining")
    return session, softphone_for(session)


def agent_set_ready(*, session: AgentSession) -> AgentSession:
    with transaction.atomic():
        locked = lock_session(session.pk)
        if locked.campaign.status == Campaign.Status.ENDED:
            raise IllegalAction("the campaign has ended")
        if locked.state == State.READY:
            return locked
        if locked.state not in (State.PAUSED, State.WRAP_UP):
            raise IllegalAction(f"cannot go ready while {locked.get_state_display().lower()}")
        if locked.state == State.WRAP_UP and _awaiting_disposition(locked):
            raise IllegalAction("write a disposition for your last call first")
        session_set_state(locked, State.READY)
    return locked


def agent_pause(*, session: AgentSession, reason: str = "") -> AgentSession:
    with transaction.atomic():
        locked = lock_session(session.pk)
        if locked.state == State.PAUSED:
            return locked
        if locked.state not in (State.READY, State.WRAP_UP):
            raise IllegalAction(f"cannot pause while {locked.get_state_display().lower()}")
        if locked.state == State.WRAP_UP and _awaiting_disposition(locked):
            raise IllegalAction("write a disposition for your last call first")
        session_set_state(locked, State.PAUSED, reason=reason[:64] or "break")
    _release_lines(locked)
    return locked


def agent_leave(*, session: AgentSession, force: bool = False) -> AgentSession:
    """force: the agent is gone (tab closed, signed out, removed, deactivated): leave whatever the state. The
    caller hangs up a live talk first; a disposition still owed stays owed (its contact is not dialed)."""
    with transaction.atomic():
        locked = lock_session(session.pk)
        if locked.state == State.OFFLINE:
            return locked
        if locked.state == State.ON_CALL and not force:
            raise IllegalAction("hang up your call before leaving")
        if locked.state == State.WRAP_UP and not force and _awaiting_disposition(locked):
            # The contact waits for this verdict (it is not dialed again meanwhile): ask for it first.
            raise IllegalAction("write a disposition for your last call first")
        locked.in_room = False
        locked.left_at = timezone.now()
        session_set_state(locked, State.OFFLINE)
    _release_lines(locked)
    return locked


def _release_lines(session: AgentSession) -> None:
    """This agent's lines go to other agents or are released once they have rung the minimum (rule 4); the
    pacer's tick takes care of the ones that have not rung long enough yet."""
    call_services.calls_release_due(session_id=session.pk)


def _awaiting_disposition(session: AgentSession) -> bool:
    return Call.objects.filter(bridged_to=session, outcome=states.Outcome.TALKED, disposition__isnull=True,
                               state=states.State.ENDED).exists()


def agent_leg_dialed(*, session_id: int, identity: str, call_sid: str) -> AgentSession | None:
    """The agent's softphone called in (TwiML App voice URL). Only the session's own agent may."""
    with transaction.atomic():
        session = sessions_for_update().select_related("agent").filter(pk=session_id).first()
        if session is None or identity != agent_identity(session.agent) or session.state == State.OFFLINE:
            return None
        session.agent_call_sid = call_sid
        # The TwiML we answer puts the leg straight into the room; the participant-join event confirms it.
        session.in_room = True
        # Saving a ready agent's presence offers them the humans waiting on hold (after commit).
        session_save_presence(session)
    return session


def agent_leg_in_room(*, session_id: int, call_sid: str, in_room: bool) -> None:
    """Conference participant events for the agent's own leg."""
    hang_up = None
    with transaction.atomic():
        session = sessions_for_update().select_related("agent").filter(pk=session_id).first()
        if session is None or (session.agent_call_sid and call_sid and call_sid != session.agent_call_sid):
            return
        if session.in_room == in_room:
            return
        session.in_room = in_room
        if in_room and call_sid:
            session.agent_call_sid = call_sid
        session_save_presence(session)
        if not in_room:
            hang_up = Call.objects.filter(bridged_to=session, state__in=list(states.AGENT_HOLDING_STATES)).first()
    if hang_up is not None:
        # The agent's leg dropped mid-talk: end the customer's call instead of leaving them alone.
        call_services.call_hangup(call=hang_up)


# -- dialing on the agent's command ----------------------------------------------------------------------


def dial_next(*, session: AgentSession) -> list[Call]:
    """Place the next lines for this agent (one in preview mode, else what the abandonment governor allows minus
    the lines in flight), through the dial gate like every other call."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update(no_key=True).get(pk=session.campaign_id)
        locked = lock_session(session.pk)
        if locked.state not in (State.READY, State.PAUSED):
            raise IllegalAction(f"cannot dial while {locked.get_state_display().lower()}")
        if locked.state == State.PAUSED:
            session_set_state(locked, State.READY)
        placed = gate.dial_for_agent(campaign=campaign, session=locked, now=timezone.now())
        if isinstance(placed, gate.Held):
            transaction.set_rollback(True)
            raise IllegalAction(placed.text)
        return placed


# -- talks and dispositions ------------------------------------------------------------------------------


def disposition_record(*, session: AgentSession, code: str, notes: str = "", callback_at: dt.datetime | None = None,
                       call_id: int | None = None) -> Disposition:
    """The agent's verdict on their last talk. Ends wrap-up; the contact follows the code."""
    with transaction.atomic():
        locked = lock_session(session.pk)
        calls = (Call.objects.select_for_update(of=("self",), no_key=True)
                 .select_related("contact").filter(bridged_to=locked))
        call = (calls.filter(pk=call_id) if call_id else calls.order_by("-bridged_at")).first()
        if call is None:
            raise IllegalAction("there is no call to dispose")
        if Disposition.objects.filter(call=call).exists():
            raise IllegalAction("this call already has a disposition")
        if call.state != states.State.ENDED:
            raise IllegalAction("the call is still going: hang up first")
        disposition_code = DispositionCode.objects.filter(campaign=locked.campaign, code=code).first()
        if disposition_code is None:
            raise BadInput("unknown disposition code", {"code": f"{code!r} is not a code of this campaign"})
        if disposition_code.schedules_callback and callback_at is None:
            raise BadInput("a callback needs a time", {"callback_at": "required for this code"})
        if callback_at is not None and callback_at <= timezone.now():
            raise BadInput("the callback time has passed", {"callback_at": "must be in the future"})
        disposition = Disposition.objects.create(call=call, contact=call.contact, agent=locked.agent,
                                                 code=disposition_code, notes=notes, callback_at=callback_at)
        call_services.contact_after_disposition(contact=call.contact, code=disposition_code, callback_at=callback_at,
                                                session=locked)
        if locked.state == State.WRAP_UP:
            next_state = State.READY if locked.campaign.auto_ready else State.PAUSED
            session_set_state(locked, next_state, reason="after call" if next_state == State.PAUSED else "")
    return disposition


def agent_hang_up(*, session: AgentSession, machine: bool = False) -> Call:
    """The agent ends their talk ("that was a machine" also records the AMD miss)."""
    call = Call.objects.filter(bridged_to=session, state__in=list(states.AGENT_HOLDING_STATES)).first()
    if call is None:
        raise IllegalAction("you have no call to hang up")
    outcome = states.Outcome.MACHINE if machine else None
    result = call_services.call_hangup(call=call, outcome=outcome, corrected_machine=machine)
    if machine and result.changed:
        # A machine is no talk: no disposition needed, the agent goes straight back to ready. (If the
        # customer hung up first, the talk stands and awaits its disposition like any other.)
        with transaction.atomic():
            locked = lock_session(session.pk)
            if locked.state == State.ON_CALL:
                session_set_state(locked, State.READY if locked.campaign.auto_ready else State.PAUSED)
    return call


