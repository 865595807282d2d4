"""Writes for campaigns, agent sessions, contacts and dispositions.

Lock order (shared with voice.services): campaign -> agent session -> call -> contact.
Commands that are illegal now raise `IllegalAction` (the API answers 409); they change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import BooleanField, Exists, F, OuterRef, Q
from django.forms import modelform_factory
from django.utils import timezone

from campaigns.exceptions import BadInput, IllegalAction, NotAllowed
from campaigns.imports import contacts_import_rows
from campaigns.models import AgentSession, Campaign, Contact, Disposition, DispositionCode, DoNotCall
from realtime import events
from voice import dialer, gateway, states
from voice import services as call_services
from voice.models import Call

log = logging.getLogger(__name__)

State = AgentSession.State

CAMPAIGN_TRANSITIONS = {
    Campaign.Status.DRAFT: {Campaign.Status.RUNNING, Campaign.Status.ENDED},
    Campaign.Status.RUNNING: {Campaign.Status.PAUSED, Campaign.Status.ENDED},
    Campaign.Status.PAUSED: {Campaign.Status.RUNNING, Campaign.Status.ENDED},
    Campaign.Status.ENDED: set(),
}


# -- permissions ------------------------------------------------------------------------------------


def user_is_manager(user) -> bool:
    """The manager role is a permission (the Managers and Administrators groups hold it, superusers have it);
    is_staff only lets an account into the admin."""
    return user.is_authenticated and user.has_perm("campaigns.manage_campaigns")


def user_is_administrator(user) -> bool:
    """Administrators grant roles and edit any account; managers edit agents only."""
    return user.is_authenticated and user.has_perm("campaigns.administer_accounts")


def user_make_agent(*, user) -> None:
    """Put an account in the Agents group (what a manager's new accounts are)."""
    user.groups.add(Group.objects.get_or_create(name="Agents")[0])


def access_campaign(user, campaign_id: int) -> Campaign:
    """The campaign if the user is a member or a manager; NotAllowed otherwise (also when it does not exist,
    so ids are not probed)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotAllowed("no such campaign")
    if user_is_manager(user) or campaign.agents.filter(pk=user.pk).exists():
        return campaign
    raise NotAllowed("you are not a member of this campaign")


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
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        events.publish_campaign(locked)
        if status == Campaign.Status.RUNNING:
            dialer.wake()
        if status == Campaign.Status.ENDED:
            # Every agent is signed out of it, each with an event so consoles and wallboards follow.
            for session in _sessions_for_update().filter(campaign=locked).exclude(state=State.OFFLINE).order_by("pk"):
                session.in_room = False
                session.left_at = timezone.now()
                _set_state(session, State.OFFLINE)
    if status == Campaign.Status.ENDED:
        call_services.calls_hang_up_all(campaign=locked)
    log.info("campaign %s is now %s (by %s)", locked.pk, status, by)
    return locked


# -- agent sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Softphone:
    """What the browser needs to put the agent's leg into their room."""

    token: str
    identity: str
    params: dict
    sandbox: bool


def agent_identity(user) -> str:
    return f"agent-{user.pk}"


def softphone_for(session: AgentSession) -> Softphone:
    identity = agent_identity(session.agent)
    return Softphone(
        token=gateway.softphone_token(identity=identity), identity=identity,
        params={"session": str(session.pk)}, sandbox=settings.TWILIO_SANDBOX,
    )


def _sessions_for_update():
    # FOR NO KEY UPDATE: strong enough to serialise writers, and it does not block the FOR KEY SHARE
    # locks PostgreSQL's deferred foreign-key checks take at commit (a deadlock source otherwise).
    return AgentSession.objects.select_for_update(of=("self",), no_key=True)


def _lock_session(session_id: int) -> AgentSession:
    return _sessions_for_update().select_related("agent", "campaign").get(pk=session_id)


def _set_state(session: AgentSession, state: str, *, reason: str = "") -> None:
    """Caller holds the session lock."""
    session.state = state
    session.pause_reason = reason if state == State.PAUSED else ""
    session.state_changed_at = timezone.now()
    session.version += 1
    session.save(update_fields=["state", "pause_reason", "state_changed_at", "version", "in_room",
                                "agent_call_sid", "joined_at", "left_at", "conference_room"])
    events.publish_agent(session)
    if state == State.READY:
        dialer.wake()
        campaign_id = session.campaign_id
        transaction.on_commit(lambda: call_services.calls_route_waiting(campaign_id=campaign_id))


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
        session = _lock_session(session.pk)
        if session.state == State.OFFLINE:
            session.conference_room = AgentSession.new_room_name()
            session.joined_at = timezone.now()
            session.left_at = None
            session.in_room = False
            session.agent_call_sid = ""
            _set_state(session, State.PAUSED, reason="joining")
    return session, softphone_for(session)


def agent_set_ready(*, session: AgentSession) -> AgentSession:
    with transaction.atomic():
        locked = _lock_session(session.pk)
        if locked.campaign.status == Campaign.Status.ENDED:
            raise IllegalAction("the campaign has ended")
        if locked.state == State.READY:
            return locked
        if locked.state not in (State.PAUSED, State.WRAP_UP):
            raise IllegalAction(f"cannot go ready while {locked.get_state_display().lower()}")
        if locked.state == State.WRAP_UP and _awaiting_disposition(locked):
            raise IllegalAction("write a disposition for your last call first")
        _set_state(locked, State.READY)
    return locked


def agent_pause(*, session: AgentSession, reason: str = "") -> AgentSession:
    with transaction.atomic():
        locked = _lock_session(session.pk)
        if locked.state == State.PAUSED:
            return locked
        if locked.state not in (State.READY, State.WRAP_UP):
            raise IllegalAction(f"cannot pause while {locked.get_state_display().lower()}")
        if locked.state == State.WRAP_UP and _awaiting_disposition(locked):
            raise IllegalAction("write a disposition for your last call first")
        _set_state(locked, State.PAUSED, reason=reason[:64] or "break")
    _release_lines(locked)
    return locked


def agent_leave(*, session: AgentSession) -> AgentSession:
    with transaction.atomic():
        locked = _lock_session(session.pk)
        if locked.state == State.OFFLINE:
            return locked
        if locked.state == State.ON_CALL:
            raise IllegalAction("hang up your call before leaving")
        if locked.state == State.WRAP_UP and _awaiting_disposition(locked):
            # The contact waits for this verdict (it is not dialed again meanwhile): ask for it first.
            raise IllegalAction("write a disposition for your last call first")
        locked.in_room = False
        locked.left_at = timezone.now()
        _set_state(locked, State.OFFLINE)
    _release_lines(locked)
    return locked


def _release_lines(session: AgentSession) -> None:
    """Lines dialed for an agent who stepped away go to other agents or are released (rule 4 holds)."""
    call_services.calls_release_due()


def _awaiting_disposition(session: AgentSession) -> bool:
    return Call.objects.filter(bridged_to=session, outcome=states.Outcome.TALKED, disposition__isnull=True,
                               state=states.State.ENDED).exists()


def agent_leg_dialed(*, session_id: int, identity: str, call_sid: str) -> AgentSession | None:
    """The agent's softphone called in (TwiML App voice URL). Only the session's own agent may."""
    with transaction.atomic():
        session = _sessions_for_update().select_related("agent").filter(pk=session_id).first()
        if session is None or identity != agent_identity(session.agent) or session.state == State.OFFLINE:
            return None
        session.agent_call_sid = call_sid
        # The TwiML we answer puts the leg straight into the room; the participant-join event confirms it.
        session.in_room = True
        _set_state(session, session.state, reason=session.pause_reason)
    transaction.on_commit(lambda: call_services.calls_route_waiting(campaign_id=session.campaign_id))
    return session


def agent_leg_in_room(*, session_id: int, call_sid: str, in_room: bool) -> None:
    """Conference participant events for the agent's own leg."""
    hang_up = None
    with transaction.atomic():
        session = _sessions_for_update().select_related("agent").filter(pk=session_id).first()
        if session is None or (session.agent_call_sid and call_sid and call_sid != session.agent_call_sid):
            return
        if session.in_room == in_room:
            return
        session.in_room = in_room
        if in_room and call_sid:
            session.agent_call_sid = call_sid
        _set_state(session, session.state, reason=session.pause_reason)
        if not in_room:
            hang_up = Call.objects.filter(bridged_to=session, state__in=list(states.AGENT_HOLDING_STATES)).first()
    if hang_up is not None:
        # The agent's leg dropped mid-talk: end the customer's call instead of leaving them alone.
        call_services.call_hangup(call=hang_up)


# -- contacts and dialing --------------------------------------------------------------------------------


def _dnc_hit():
    return Exists(DoNotCall.objects.filter(phone=OuterRef("phone")).filter(
        Q(campaign__isnull=True) | Q(campaign=OuterRef("campaign"))))


def contacts_claim_next(*, campaign: Campaign, count: int, now: dt.datetime | None = None) -> list[Contact]:
    """Claim the next dialable contacts. Concurrent callers never get the same row (SKIP LOCKED).

    Caller is inside transaction.atomic() and turns each claimed contact into a call before committing.
    """
    now = now or timezone.now()
    queryset = (
        Contact.objects.select_for_update(skip_locked=True)
        .filter(campaign=campaign, status=Contact.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(~_dnc_hit())
        .order_by("-priority", F("next_attempt_at").asc(nulls_first=True), "id")
    )
    return list(queryset[:count])


def dial_next(*, session: AgentSession) -> list[Call]:
    """Place the next lines for this agent: one in preview mode, else lines per agent minus lines in flight."""
    with transaction.atomic():
        locked = _lock_session(session.pk)
        campaign = locked.campaign
        if campaign.status != Campaign.Status.RUNNING:
            raise IllegalAction(f"the campaign is {campaign.status}")
        if locked.state not in (State.READY, State.PAUSED):
            raise IllegalAction(f"cannot dial while {locked.get_state_display().lower()}")
        in_flight = Call.objects.filter(dialed_for=locked).exclude(state=states.State.ENDED).count()
        wanted = 1 if campaign.dial_mode == Campaign.DialMode.PREVIEW else campaign.lines_per_agent
        if in_flight >= wanted:
            raise IllegalAction("your lines are already dialing")
        contacts = contacts_claim_next(campaign=campaign, count=wanted - in_flight)
        if not contacts:
            raise IllegalAction("no contacts are ready to be dialed")
        if locked.state == State.PAUSED:
            _set_state(locked, State.READY)
        return [call_services.call_create(campaign=campaign, contact=c, dialed_for=locked) for c in contacts]


# -- talks and dispositions ------------------------------------------------------------------------------


def disposition_record(*, session: AgentSession, code: str, notes: str = "", callback_at: dt.datetime | None = None,
                       call_id: int | None = None) -> Disposition:
    """The agent's verdict on their last talk. Ends wrap-up; the contact follows the code."""
    with transaction.atomic():
        locked = _lock_session(session.pk)
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
        _contact_after_disposition(call.contact, disposition_code, callback_at, locked)
        if locked.state == State.WRAP_UP:
            next_state = State.READY if locked.campaign.auto_ready else State.PAUSED
            _set_state(locked, next_state, reason="after call" if next_state == State.PAUSED else "")
    return disposition


def _contact_after_disposition(contact: Contact, code: DispositionCode, callback_at, session: AgentSession) -> None:
    contact = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
    fields = ["status", "next_attempt_at", "callback_agent"]
    if code.adds_to_dnc:
        DoNotCall.objects.get_or_create(phone=contact.phone, campaign=None,
                                        defaults={"reason": f"asked on a call ({code.label})",
                                                  "added_by": session.agent})
        contact.status = Contact.Status.DNC
    elif callback_at is not None:
        contact.status = Contact.Status.PENDING
        contact.next_attempt_at = callback_at
        if session.campaign.callbacks_to_same_agent:
            contact.callback_agent = session.agent
    elif code.closes_contact:
        contact.status = Contact.Status.DONE
    elif contact.attempts >= session.campaign.max_attempts:
        contact.status = Contact.Status.EXHAUSTED
    else:
        contact.status = Contact.Status.PENDING
        contact.next_attempt_at = timezone.now() + dt.timedelta(minutes=session.campaign.retry_no_answer_min)
    contact.save(update_fields=fields)


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
            locked = _lock_session(session.pk)
            if locked.state == State.ON_CALL:
                _set_state(locked, State.READY if locked.campaign.auto_ready else State.PAUSED)
    return call


# -- creating a campaign from the API ---------------------------------------------------------------------

DEFAULT_CODES = (
    ("interested", "Interested", "1", {}),
    ("not-interested", "Not interested", "2", {}),
    ("callback", "Call back later", "3", {"closes_contact": False, "schedules_callback": True}),
    ("wrong-number", "Wrong number", "4", {"is_conversation": False}),
    ("do-not-call", "Do not call", "5", {"adds_to_dnc": True}),
)


def disposition_codes_create_defaults(*, campaign: Campaign) -> None:
    DispositionCode.objects.bulk_create([
        DispositionCode(campaign=campaign, code=code, label=label, hotkey=key, order=i, **flags)
        for i, (code, label, key, flags) in enumerate(DEFAULT_CODES)
    ])


def _form_value(name: str, value):
    """A JSON value as a form reads it: form fields parse text (a bare number or boolean makes some of them
    raise), except the boolean ones."""
    if isinstance(value, dict | list):
        raise BadInput("bad value", {name: "text or a number, not a list or an object"})
    if value is None or isinstance(value, str) or isinstance(Campaign._meta.get_field(name), BooleanField):
        return value
    return str(value)


def campaign_create(*, data: dict, by=None) -> tuple[Campaign, dict]:
    """Create a campaign (settings validated like the admin form) with its contacts, all or nothing."""
    fields = [f for f in API_CAMPAIGN_FIELDS if f in data or f == "name"]
    form = modelform_factory(Campaign, fields=fields)(data={k: _form_value(k, data[k]) for k in fields if k in data})
    if not form.is_valid():
        raise BadInput("the campaign settings are not valid",
                       {name: " ".join(errors) for name, errors in form.errors.items()})
    raw_contacts = data.get("contacts", [])
    if not isinstance(raw_contacts, list):
        raise BadInput("contacts must be a list", {"contacts": "a list of numbers or objects"})
    if len(raw_contacts) > settings.CSV_MAX_ROWS:
        raise BadInput("too many contacts", {"contacts": f"at most {settings.CSV_MAX_ROWS} per request"})
    rows = []
    for i, item in enumerate(raw_contacts):
        if isinstance(item, str):
            rows.append({"phone": item})
        elif isinstance(item, dict):
            rows.append({str(k): "" if v is None else str(v) for k, v in item.items()})
        else:
            raise BadInput("bad contact", {f"contacts[{i}]": "a phone number or an object with a phone"})
    skip = bool(data.get("skip_invalid", False))
    region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
    with transaction.atomic():
        campaign = form.save(commit=False)
        campaign.created_by = by
        campaign.status = data.get("status", Campaign.Status.RUNNING)
        if campaign.status not in Campaign.Status.values:
            raise BadInput("unknown status", {"status": f"one of {', '.join(Campaign.Status.values)}"})
        campaign.save()
        if by is not None:
            campaign.agents.add(by)
        disposition_codes_create_defaults(campaign=campaign)
        report = contacts_import_rows(campaign=campaign, rows=rows, default_region=region, skip_invalid=skip)
        report_json = asdict(report)
        if report_json.get("invalid") and not skip:
            transaction.set_rollback(True)
            raise BadInput("some contacts are not valid; nothing was created",
                           {"contacts": report_json["invalid"]})
    return campaign, report_json


API_CAMPAIGN_FIELDS = (
    "name", "dial_mode", "lines_per_agent", "caller_id", "ring_timeout_s", "min_ring_s", "amd_mode",
    "amd_timeout_s", "amd_unknown_policy", "voicemail_drop", "voicemail_audio_url", "voicemail_text",
    "safe_harbor_text", "hold_audio_url", "max_hold_s", "max_abandon_rate", "window_start", "window_end",
    "max_attempts", "retry_no_answer_min", "retry_busy_min", "retry_machine_min", "retry_abandoned_min",
    "auto_ready",
)
