"""Live supervision: a manager listens to, whispers to or barges into an agent's talk, from the wallboard.

The manager's own softphone (the Voice SDK, or the sandbox's emulated leg) calls `/api/voice/dial` with a signed
`supervise` parameter, and is answered with `<Dial><Conference>` into the agent's room: muted to listen,
`coach=<the agent's leg>` to whisper (Twilio's coaching: only the agent hears them), neither to barge. Switching
later changes the participant through Twilio's Participants REST API; leaving takes the participant out, and the
talk carries on. When the talk ends, its supervisors are taken out of the room too, so nobody overhears the
agent's next customer.

Locks: the supervision row alone. REST requests run before the row is written (a command whose effect the
manager must hear at once) or after commit, never under the lock (rule 6); taking the supervisors out when the
talk ends is an outbox effect (voice.outbox), so the leave event's webhook never waits for Twilio.
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.exceptions import BadInput, IllegalAction, NotAllowed
from campaigns.models import Campaign
from realtime import events
from voice import gateway, outbox, twiml
from voice.gateway import Softphone
from voice.models import Call, CallEffect, Supervision
from voice.states import State

log = logging.getLogger(__name__)

Mode = Supervision.Mode
SIGNING_SALT = "voice.supervision"
# The softphone dials within seconds of being handed its parameters; an old one is refused.
TOKEN_MAX_AGE_S = 300


def supervisor_identity(user) -> str:
    return f"supervisor-{user.pk}"


def _flags(mode: str, agent_leg_sid: str) -> tuple[bool, str | None]:
    """(muted, call sid to coach) for a mode."""
    if mode == Mode.LISTEN:
        return True, None
    if mode == Mode.WHISPER:
        return False, agent_leg_sid or None
    return False, None


def _phone(supervision: Supervision, user) -> Softphone:
    identity = supervisor_identity(user)
    ticket = signing.dumps({"s": supervision.pk, "m": user.pk}, salt=SIGNING_SALT)
    return Softphone(token=gateway.softphone_token(identity=identity), identity=identity,
                           params={"supervise": ticket}, sandbox=settings.TWILIO_SANDBOX)


def notice_for(supervision: Supervision) -> str | None:
    """The agent's notice under SUPERVISION_NOTICE: a sentence, "" to clear it, None when the agent is not told."""
    policy = settings.SUPERVISION_NOTICE
    if policy == "off":
        return None
    if supervision.ended_at is not None or supervision.joined_at is None:
        return ""
    name = supervision.manager.get_full_name() or supervision.manager.get_username()
    if supervision.mode == Mode.LISTEN:
        return "" if policy == "audible" else f"{name} is listening to this call."
    if supervision.mode == Mode.WHISPER:
        return f"{name} is coaching you: only you can hear them."
    return f"{name} has joined the call: the customer hears them too."


def _publish(supervision: Supervision) -> None:
    call = Call.objects.only("pk", "campaign_id", "bridged_to_id").get(pk=supervision.call_id)
    events.publish_supervision(supervision, call, notice=notice_for(supervision))


def _bump(supervision: Supervision, *fields: str) -> None:
    supervision.version += 1
    supervision.save(update_fields=[*fields, "version"])
    _publish(supervision)


# -- reads ------------------------------------------------------------------------------------------------


def supervision_json(supervision: Supervision) -> dict:
    return {"id": supervision.pk, "call_id": supervision.call_id, "mode": supervision.mode,
            "joined": supervision.joined_at is not None, "active": supervision.ended_at is None}


def _live_talk(campaign: Campaign, call_id) -> Call:
    if isinstance(call_id, bool) or not isinstance(call_id, int | str) or not str(call_id).isdigit():
        raise BadInput("call_id must be a call's id", {"call_id": "a number"})
    call = Call.objects.select_related("bridged_to").filter(pk=int(call_id), campaign=campaign).first()
    if call is None:
        raise BadInput("no such call in this campaign", {"call_id": "not a call of this campaign"})
    if call.state != State.CONNECTED or call.bridged_to is None or not call.bridged_to.agent_call_sid:
        raise IllegalAction("that call is not a live talk with an agent")
    return call


# -- the manager's commands ---------------------------------------------------------------------------------


def supervision_start(*, user, campaign: Campaign, call_id, mode: str) -> tuple[Supervision, Softphone | None]:
    """Listen, whisper or barge on a live talk, or switch to that mode. Returns the supervision and, when the
    manager's leg still has to dial in, the softphone parameters for it."""
    if not campaign_services.user_is_manager(user):
        raise NotAllowed("only managers supervise calls")
    if mode not in Mode.values:
        raise BadInput("unknown mode", {"mode": "listen, whisper, barge or leave"})
    call = _live_talk(campaign, call_id)
    current = Supervision.objects.filter(manager=user, ended_at__isnull=True).first()
    if current is not None and current.call_id == call.pk:
        return _switch(current, mode, call), (None if current.leg_sid else _phone(current, user))
    if current is not None:
        _leave(current)
    try:
        with transaction.atomic():
            supervision = Supervision.objects.create(call=call, manager=user, mode=mode, version=1)
            _publish(supervision)
    except IntegrityError as exc:  # the same manager, twice at once: the other request won
        raise IllegalAction("you are already supervising a call") from exc
    return supervision, _phone(supervision, user)


def _switch(supervision: Supervision, mode: str, call: Call) -> Supervision:
    if supervision.mode == mode:
        return supervision
    if supervision.leg_sid:
        # Twilio first: the row says what the manager's leg really is.
        muted, coach = _flags(mode, call.bridged_to.agent_call_sid)
        gateway.update_participant(conference_sid=_conference_sid(supervision, call), call_sid=supervision.leg_sid,
                                   muted=muted, coach_call_sid=coach)
    with transaction.atomic():
        locked = Supervision.objects.select_for_update().select_related("manager").get(pk=supervision.pk)
        if locked.ended_at is None and locked.mode != mode:
            locked.mode = mode
            _bump(locked, "mode")
    return locked


def _conference_sid(supervision: Supervision, call: Call) -> str:
    if supervision.conference_sid:
        return supervision.conference_sid
    sid = gateway.conference_sid_for(room=call.bridged_to.conference_room)
    if sid is None:
        raise IllegalAction("the agent's room has ended")
    return sid


def supervision_stop(*, user, campaign: Campaign) -> Supervision:
    """Leave the talk the manager supervises in this campaign; the agent and the customer carry on."""
    if not campaign_services.user_is_manager(user):
        raise NotAllowed("only managers supervise calls")
    current = Supervision.objects.filter(manager=user, ended_at__isnull=True, call__campaign=campaign).first()
    if current is None:
        raise IllegalAction("you are not supervising a call in this campaign")
    return _leave(current)


def _leave(supervision: Supervision) -> Supervision:
    if supervision.leg_sid:
        _take_out(supervision)
    with transaction.atomic():
        locked = Supervision.objects.select_for_update().select_related("manager").get(pk=supervision.pk)
        if locked.ended_at is None:
            locked.ended_at = timezone.now()
            _bump(locked, "ended_at")
    return locked


def _take_out(supervision: Supervision) -> None:
    """Kick the manager's leg from the room (it then hangs up: nothing follows its <Dial>)."""
    call = Call.objects.select_related("bridged_to").get(pk=supervision.call_id)
    conference_sid = supervision.conference_sid or (
        gateway.conference_sid_for(room=call.bridged_to.conference_room) if call.bridged_to else None)
    if conference_sid:
        gateway.remove_participant(conference_sid=conference_sid, call_sid=supervision.leg_sid)
    else:
        gateway.hangup_call(sid=supervision.leg_sid)


# -- Twilio's side: the leg dials in, joins, leaves -----------------------------------------------------------


def supervisor_dialed(*, ticket: str, identity: str, call_sid: str) -> str | None:
    """The manager's softphone called the TwiML App: TwiML into the agent's room, or None to refuse (a forged or
    stale ticket, someone else's softphone, a talk that is over)."""
    try:
        data = signing.loads(ticket, salt=SIGNING_SALT, max_age=TOKEN_MAX_AGE_S)
    except signing.BadSignature:
        return None
    with transaction.atomic():
        supervision = (Supervision.objects.select_for_update(of=("self",)).select_related("manager")
                       .filter(pk=data.get("s"), manager_id=data.get("m"), ended_at__isnull=True).first())
        if supervision is None or identity != supervisor_identity(supervision.manager):
            return None
        call = Call.objects.select_related("bridged_to").get(pk=supervision.call_id)
        if call.state != State.CONNECTED or call.bridged_to is None:
            supervision.ended_at = timezone.now()
            _bump(supervision, "ended_at")
            return None
        supervision.leg_sid = call_sid
        supervision.save(update_fields=["leg_sid"])
        muted, coach = _flags(supervision.mode, call.bridged_to.agent_call_sid)
        return twiml.supervisor(room=call.bridged_to.conference_room, muted=muted, coach_call_sid=coach)


def supervision_on_conference_event(*, call_sid: str, conference_sid: str, joined: bool) -> bool:
    """A conference event about a supervisor's leg (False: the leg is no supervisor's)."""
    if not call_sid:
        return False
    supervision = Supervision.objects.filter(leg_sid=call_sid).order_by("-pk").first()
    if supervision is None:
        return False
    with transaction.atomic():
        locked = Supervision.objects.select_for_update(of=("self",)).select_related("manager").get(pk=supervision.pk)
        if joined and locked.joined_at is None and locked.ended_at is None:
            locked.joined_at, locked.conference_sid = timezone.now(), conference_sid
            _bump(locked, "joined_at", "conference_sid")
        elif not joined and locked.ended_at is None:
            locked.ended_at = timezone.now()
            _bump(locked, "ended_at")
    return True


def supervisions_end_with_talk(*, call: Call) -> None:
    """The customer left the room: its supervisors must leave too (they would hear the agent's next customer).
    Inside the leave event's transaction: Twilio is asked from the outbox once it commits, never on the webhook's
    thread nor under the call's lock."""
    if Supervision.objects.filter(call_id=call.pk, ended_at__isnull=True).exists():
        outbox.effect_enqueue(call=call, kind=outbox.TAKE_OUT_SUPERVISORS)


def supervisions_take_out(*, effect: CallEffect) -> tuple[str, str]:
    """The outbox's sender for TAKE_OUT_SUPERVISORS: end the talk's supervisions, then hang up their legs. Ended
    first, under their locks, so a leg still dialing in is refused (supervisor_dialed); then every leg of the talk
    is hung up, again on a retry (one that already ended is fine). Raises the GatewayError of a leg Twilio could
    not hang up, after trying the others (the outbox tries again)."""
    call_id = effect.call_id
    with transaction.atomic():
        live = Supervision.objects.select_for_update(of=("self",)).select_related("manager").filter(
            call_id=call_id, ended_at__isnull=True).order_by("pk")
        for supervision in live:
            supervision.ended_at = timezone.now()
            _bump(supervision, "ended_at")
    legs, failure = 0, None
    for leg_sid in Supervision.objects.filter(call_id=call_id).exclude(leg_sid="").values_list("leg_sid", flat=True):
        try:
            # Hung up, not taken out of the room: a leg that dialed in a moment ago may not have joined yet (a
            # removal would miss it, and it would join after). Nothing else follows a supervisor leg's <Dial>.
            with contextlib.suppress(gateway.NotFound):
                gateway.hangup_call(sid=leg_sid)
            legs += 1
        except gateway.GatewayError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return CallEffect.Status.DONE, f"{legs} leg(s) taken out"
