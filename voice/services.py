"""Writes to calls: apply facts under row locks, persist, then run effects after commit.

Concurrency policy (every function below keeps it):
- Twilio requests a transition decides are rows in the outbox (`voice.outbox`), written in the same
  transaction and run after commit off the request thread; a crash at any instant loses none.
- Locks are taken in one order: campaign -> agent sessions (by id) -> call -> contact. Nothing here
  locks a campaign; `campaigns.services` does, before calling in.
- A call's fact is decided by the pure `voice.states.transition` while the call row is locked.
- Twilio REST requests and realtime events run in `transaction.on_commit`, never under a lock (rule 6).
- Routing a human locks every ready agent session of the campaign first (SELECT ... FOR UPDATE), so
  two humans answered at the same instant are routed one after the other; PostgreSQL re-checks the
  `state = ready` condition after waiting, so the second never sees the agent the first took (rule 1).
  The `call_one_customer_per_agent` constraint is the last line of defence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace

from django.db import close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from campaigns.agent_log import agent_state_log
from campaigns.models import AgentSession, Campaign, Contact, DispositionCode, DoNotCall
from realtime import events
from voice import compiled, outbox, states
from voice.compiled import CompiledGet
from voice.models import Call, CallEvent, WebhookEvent
from voice.states import Effect, Outcome, State
from voice.wake import wake

log = logging.getLogger(__name__)

# Abandon a little before the hold limit: the safe-harbor message must *start* within it.
SAFE_HARBOR_LEAD_S = 0.5
ENTERED_AT = {
    State.DIALING: "dialed_at",
    State.RINGING: "ringing_at",
    State.ANSWERED: "answered_at",
    State.BRIDGING: "bridged_at",
    State.CONNECTED: "connected_at",
    State.ENDED: "ended_at",
}


class UnknownCall(LookupError):
    """No call has that id: raised by the locked read itself, so a caller can fall back (a webhook to its SID)
    without mistaking any other missing row for it."""


class _Moved(Exception):
    """The call's agent changed between the unlocked peek and the lock, or the few agents the first attempt
    locked could not take a human: take the locks again, on the ordered path."""


class Restart(Exception):
    """A fact's first attempt ran straight in its caller's transaction (`first_attempts_inline`) and must take its
    locks again, in order: only rolling that whole transaction back gives the call's lock back. The caller runs
    its transaction again, with `first_attempts_inline` off."""


_first_attempts_inline: ContextVar[bool] = ContextVar("first_attempts_inline", default=False)


@contextlib.contextmanager
def first_attempts_inline(on: bool):
    """Inside, when `on` (voice.inbox, inside a webhook's transaction, which it can run again whole), a fact that
    routes no human makes its first attempt straight in that transaction rather than in a savepoint of its own:
    SAVEPOINT and RELEASE were two of a status callback's eight statements. When that attempt must take its locks
    again (the call's agent was held by someone else, see call_lock), it raises Restart."""
    token = _first_attempts_inline.set(on)
    try:
        yield
    finally:
        _first_attempts_inline.reset(token)


def _inline(attempt: int, routes: bool) -> bool:
    """This attempt runs in the caller's transaction: the first, of a fact that routes no human (those often
    look again, at every ready agent), inside `first_attempts_inline`, and directly in the caller's outermost
    atomic block (a savepoint between the two is someone else's, who cannot run again whole)."""
    if attempt or routes or not _first_attempts_inline.get():
        return False
    connection = transaction.get_connection()
    return connection.in_atomic_block and not connection.savepoint_ids


# Ready agents a human's first routing attempt locks (the longest ready that nobody holds); see call_lock.
ROUTING_CANDIDATES = 4


# -- reading a call as the state machine sees it ----------------------------------------------------


def call_view(call: Call) -> states.CallView:
    campaign = call.campaign
    return states.CallView(
        state=State(call.state),
        outcome=Outcome(call.outcome),
        answered_by=call.answered_by,
        last_sequence=call.last_sequence,
        twiml_fetched=call.twiml_fetched,
        has_agent=call.bridged_to_id is not None,
        voicemail_drop=campaign.voicemail_drop and bool(campaign.voicemail_audio_url or campaign.voicemail_text),
        amd_mode=campaign.amd_mode,
        unknown_policy=campaign.amd_unknown_policy,
    )


# -- locking ----------------------------------------------------------------------------------------


def call_lock(call_id: int, *, with_ready_agents: bool, fast: bool = False) -> tuple[Call, dict[int, AgentSession]]:
    """Lock the sessions a fact may touch (the call's agent; with `with_ready_agents`, the ready agents of the
    campaign, by id), then the call. Caller is inside transaction.atomic(); raises _Moved when the call's
    agent changed between the unlocked peek and the locks (take them again).

    `fast` (the first attempt) takes fewer locks. A fact that needs no ready agents locks the call first and saves
    the unlocked peek: a call with no agent needs nothing else, and its agent's session is then taken with SKIP
    LOCKED, which never waits against the lock order; if someone holds that session, `_Moved` sends the caller
    round the ordered path. A fact that routes a human locks the call's own agents (as ordered) and the
    ROUTING_CANDIDATES longest-ready agents nobody holds at this instant (SKIP LOCKED: it never waits, so it keeps
    the lock order), not every ready agent of the campaign: with fifty agents ready, locking them all cost a
    human verdict three times a status callback's CPU and queued concurrent verdicts behind each other. If none
    of those can take the human, `call_apply` comes back on the ordered path, which sees every ready agent."""
    if fast and not with_ready_agents:
        call = _read_or_unknown(_locked_call, call_id)
        if call.bridged_to_id is None:
            return call, {}
        session = (AgentSession.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
                   .select_related("agent").filter(pk=call.bridged_to_id).first())
        if session is None:
            raise _Moved
        return call, {session.pk: session}
    peek = _read_or_unknown(_peeked_call, call_id)
    if with_ready_agents and fast:
        own = sorted({pk for pk in (peek.bridged_to_id, peek.dialed_for_id) if pk})
        # (An empty `own` asks the database nothing: Django answers an empty IN list itself.)
        locked = {s.pk: s for s in sessions_for_update().select_related("agent").filter(pk__in=own).order_by("pk")}
        mine = locked.get(peek.dialed_for_id)
        if not (mine and mine.state == AgentSession.State.READY and mine.in_room):  # else the line's agent takes it
            free = (AgentSession.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
                    .select_related("agent").exclude(pk__in=own)
                    .filter(campaign_id=peek.campaign_id, state=AgentSession.State.READY, in_room=True)
                    .order_by(F("state_changed_at").asc(nulls_first=True), "pk")[:ROUTING_CANDIDATES])
            locked.update((s.pk, s) for s in free)
    else:
        wanted = Q(pk=peek.bridged_to_id) if peek.bridged_to_id else Q(pk__in=[])
        if with_ready_agents:
            wanted |= Q(campaign_id=peek.campaign_id, state=AgentSession.State.READY, in_room=True)
        locked = {s.pk: s for s in sessions_for_update().select_related("agent").filter(wanted).order_by("pk")}
    call = _read_or_unknown(_locked_call, call_id)
    if call.bridged_to_id != peek.bridged_to_id:
        raise _Moved
    return call, locked


# The call as every fact reads it, locked, with what the rules need of its campaign and contact.
_locked_call = CompiledGet(
    lambda: Call.objects.select_for_update(of=("self",), no_key=True).select_related("campaign", "contact"))
# The unlocked look at whose locks a fact needs, before taking them in order.
_peeked_call = CompiledGet(lambda: Call.objects.only("campaign_id", "bridged_to_id", "dialed_for_id"))


# The contact a finished call schedules (after the call's lock: call -> contact).
_locked_contact = CompiledGet(lambda: Contact.objects.select_for_update(no_key=True))


def _read_or_unknown(read: CompiledGet[Call], call_id: int) -> Call:
    try:
        return read.get(call_id)
    except Call.DoesNotExist:
        raise UnknownCall(call_id) from None


def _pick_agent(call: Call, locked: dict[int, AgentSession]) -> AgentSession | None:
    """The agent the line was dialed for if they are ready, else the one ready longest. An agent with a line
    reserved for them (an abandoned person's call back) waits for that line only."""
    ready = [
        s for s in locked.values()
        if s.campaign_id == call.campaign_id and s.state == AgentSession.State.READY and s.in_room
    ]
    if not ready:
        return None
    for session in ready:
        if session.pk == call.dialed_for_id:
            return session
    reserved = set(Call.objects.filter(dialed_for__in=[s.pk for s in ready], reserved=True)
                   .exclude(state=State.ENDED).values_list("dialed_for_id", flat=True))
    ready = [s for s in ready if s.pk not in reserved]
    if not ready:
        return None
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return min(ready, key=lambda s: (s.state_changed_at or epoch, s.pk))


def _with_agent(call: Call, sessions: dict[int, AgentSession], fact: states.Fact) -> states.Fact | None:
    """Choose, under the locks, the agent a fact that routes a human needs. None: nothing to apply."""
    if isinstance(fact, states.AmdVerdict) and fact.agent is None:
        if states.is_human(fact.answered_by, call.campaign.amd_unknown_policy):
            agent = _pick_agent(call, sessions)
            return replace(fact, agent=agent.pk if agent else None)
        return fact
    if isinstance(fact, states.AgentFound) and fact.agent is None:
        if call.hold_deadline_at is None or call.hold_deadline_at <= timezone.now():
            return None
        agent = _pick_agent(call, sessions)
        return replace(fact, agent=agent.pk) if agent else None
    return fact


def _nobody_found(call: Call, fact: states.Fact, applied: states.Fact | None) -> bool:
    """A fact that routes a human found no agent among the sessions locked for it."""
    if isinstance(fact, states.AgentFound):
        return applied is None
    return (isinstance(applied, states.AmdVerdict) and applied.agent is None
            and states.is_human(applied.answered_by, call.campaign.amd_unknown_policy))


def _fill(call: Call, fact: states.Fact, fields: set[str]) -> None:
    """Blanks a fact fills on the row whatever the transition decides (late facts fill blanks too, rule 5)."""
    match fact:
        case states.Created(sid=sid) if sid:
            values = {"sid": sid}
        case states.Status(duration_s=duration) if duration is not None:
            values = {"duration_s": duration}
        case states.AmdVerdict(duration_ms=duration) if duration is not None:
            values = {"amd_duration_ms": duration}
        case states.TwimlFetched():
            values = {"twiml_fetched": True}
        case states.Hangup(corrected_machine=True):
            values = {"amd_corrected": True}
        case _:
            values = {}
    for name, value in values.items():
        if getattr(call, name) in (None, "", False):
            setattr(call, name, value)
            fields.add(name)


def call_apply(*, call_id: int, fact: states.Fact, webhook: WebhookEvent | None = None
               ) -> tuple[Call, states.Transition]:
    """Apply one fact to a call in its own transaction: lock (`call_lock`), choose an agent for a human
    (`_with_agent`), fill blanks (`_fill`), decide (`states.transition`), persist and queue the effects."""
    # Only a fact that may give the call to an agent locks the campaign's ready agents: machine and fax verdicts
    # (most verdicts) must not queue behind every routing of the campaign for locks they do not need. The
    # campaign's policy for "unknown" is read under the lock, so "unknown" counts as maybe human here.
    routes = isinstance(fact, states.AgentFound) or (
        isinstance(fact, states.AmdVerdict) and states.is_human(fact.answered_by, "connect"))
    for attempt in range(5):
        inline = _inline(attempt, routes)
        try:
            with contextlib.nullcontext() if inline else transaction.atomic():
                call, locked = call_lock(call_id, with_ready_agents=routes, fast=attempt == 0)
                applied = _with_agent(call, locked, fact)
                if routes and attempt == 0 and _nobody_found(call, fact, applied):
                    raise _Moved  # only a few agents were locked: look at them all before saying nobody is free
                if applied is None:
                    return call, states.Transition(state=State(call.state), outcome=Outcome(call.outcome))
                fields: set[str] = set()
                _fill(call, applied, fields)
                result = states.transition(call_view(call), applied)
                _persist(call, result, applied, locked, webhook, fields)
                return call, result
        except _Moved:
            if inline:
                raise Restart from None
            continue
    raise RuntimeError(f"call {call_id} kept changing agents while being locked")


def _persist(call: Call, result: states.Transition, fact: states.Fact, locked: dict[int, AgentSession],
             webhook: WebhookEvent | None, fields: set[str]) -> None:
    """Write the transition and queue its effects. Caller holds the call lock and the sessions' locks."""
    now = timezone.now()
    from_state = call.state
    if webhook is not None and webhook.call_sid and not call.sid:
        # A callback can beat the REST response that carries the SID: this leg's webhook says it.
        call.sid = webhook.call_sid
        fields.add("sid")
    fields.add("last_event_at")
    call.last_event_at = now
    if result.answered_by and not call.answered_by:
        call.answered_by = result.answered_by
        call.amd_at = call.amd_at or now
        fields |= {"answered_by", "amd_at"}
    if result.outcome != call.outcome:
        call.outcome = result.outcome
        fields.add("outcome")
    if result.sequence is not None and result.sequence > call.last_sequence:
        call.last_sequence = result.sequence
        fields.add("last_sequence")
    if isinstance(fact, states.Status):
        call.twilio_status = fact.status
        fields.add("twilio_status")
    if result.changed:
        call.state = result.state
        call.version += 1
        fields |= {"state", "version"}
        stamp = ENTERED_AT.get(result.state)
        if stamp and getattr(call, stamp) is None:
            setattr(call, stamp, now)
            fields.add(stamp)
    elif "answered_by" in fields:
        # A late verdict filling the blank is published too (below): a new picture of the call needs a new
        # version, or a page could keep whichever of the two equal versions reached it last.
        call.version += 1
        fields.add("version")
    after: list[Callable[[], None]] = []
    # Twilio requests are registered first so they leave before realtime events and wake-ups: the
    # human on hold waits for the redirect, the screens can wait a millisecond more.
    rest_first = sorted(result.effects, key=lambda effect: effect not in REST_EFFECTS)
    for effect in rest_first:
        _effect_in_transaction(effect, call, result, locked, now, fields, after)
    compiled.update(call, fields)
    compiled.insert(CallEvent(
        call=call, kind=type(fact).__name__, from_state=from_state, to_state=call.state,
        detail=(result.reason or "")[:200], webhook=webhook,
        data={"effects": [str(e) for e in result.effects], "outcome": call.outcome},
    ))
    if result.changed or "answered_by" in fields:
        events.publish_call(call)
    if result.changed and call.state == State.ENDED:
        wake()  # a line is free: the pacer may dial again at once
    for action in after:
        transaction.on_commit(action)


def _effect_in_transaction(effect: Effect, call: Call, result: states.Transition, locked: dict[int, AgentSession],
                           now: dt.datetime, fields: set[str], after: list[Callable[[], None]]) -> None:
    campaign = call.campaign
    if effect is Effect.ASSIGN_AGENT:
        session = locked[result.agent]
        call.bridged_to = session
        fields.add("bridged_to")
        session_set_state(session, AgentSession.State.ON_CALL, now=now)
    elif effect is Effect.AGENT_WRAP_UP:
        session = locked.get(call.bridged_to_id)
        if session is not None and session.state == AgentSession.State.ON_CALL:
            session_set_state(session, AgentSession.State.WRAP_UP, now=now)
    elif effect is Effect.AGENT_FREE:
        session = locked.get(call.bridged_to_id)
        if session is not None and session.state == AgentSession.State.ON_CALL:
            session_set_state(session, AgentSession.State.READY, now=now)
    elif effect is Effect.WAIT_FOR_AGENT:
        delay_s = max(0.0, campaign.max_hold_s - SAFE_HARBOR_LEAD_S)
        call.hold_deadline_at = now + dt.timedelta(seconds=delay_s)
        fields.add("hold_deadline_at")
        after.append(lambda: _start_timer(delay_s, call_hold_expired, call.pk))
    elif effect is Effect.CONTACT_FINISH:
        _contact_after_call(call, now)
    elif effect is Effect.RELEASE_SIBLINGS:
        session_id = result.agent
        after.append(lambda: calls_release_siblings(session_id=session_id))
    elif effect in REST_EFFECTS:
        outbox.effect_enqueue(call=call, kind=effect)


# -- agent sessions: the one state setter ------------------------------------------------------------

SESSION_FIELDS = ["state", "pause_reason", "state_changed_at", "version", "in_room", "agent_call_sid", "joined_at",
                  "left_at", "conference_room"]


def sessions_for_update():
    # FOR NO KEY UPDATE: strong enough to serialise writers, and it does not block the FOR KEY SHARE
    # locks PostgreSQL's deferred foreign-key checks take at commit (a deadlock source otherwise).
    return AgentSession.objects.select_for_update(of=("self",), no_key=True)


def lock_session(session_id: int) -> AgentSession:
    return sessions_for_update().select_related("agent", "campaign").get(pk=session_id)


def session_set_state(session: AgentSession, state: str, *, reason: str = "", now: dt.datetime | None = None) -> None:
    """The one setter of an agent session's state. Caller holds the session's lock.

    `state_changed_at` moves only when the state does: "ready longest" routing and the wallboard's timers read it.
    An agent who becomes ready wakes the pacer and is offered the humans waiting on hold."""
    changed = state != session.state
    if changed:
        session.state_changed_at = now or timezone.now()
    session.state = state
    session.pause_reason = reason if state == AgentSession.State.PAUSED else ""
    _session_save(session)
    if changed:
        agent_state_log(session=session, at=session.state_changed_at)  # the reports' agent time


def session_save_presence(session: AgentSession) -> None:
    """Save and publish what changed beside the state (the softphone leg, the room); the state's clock runs on.
    Caller holds the session's lock."""
    _session_save(session)


def _session_save(session: AgentSession) -> None:
    session.version += 1
    session.save(update_fields=SESSION_FIELDS)
    events.publish_agent(session)
    if session.state == AgentSession.State.READY and session.in_room:
        wake()
        campaign_id = session.campaign_id
        transaction.on_commit(lambda: calls_route_waiting(campaign_id=campaign_id))


# -- effects that talk to Twilio: rows in the outbox, run after commit by voice.outbox ----------------------

REST_EFFECTS = frozenset({Effect.REDIRECT_CONFERENCE, Effect.REDIRECT_VOICEMAIL, Effect.REDIRECT_SAFE_HARBOR,
                          Effect.HANGUP, Effect.CANCEL})


def call_record_error(*, call_id: int, message: str) -> None:
    with transaction.atomic():
        call = Call.objects.select_for_update(no_key=True).get(pk=call_id)
        call.error = (call.error + "\n" + message).strip()[-4000:]
        call.save(update_fields=["error"])
        CallEvent.objects.create(call=call, kind="rest_error", from_state=call.state, to_state=call.state,
                                 detail=message[:200])


def _start_timer(delay_s: float, func: Callable[..., object], *args) -> None:
    def run() -> None:
        close_old_connections()
        try:
            func(*args)
        except Exception:
            log.exception("timer %s failed", getattr(func, "__name__", func))
        finally:
            close_old_connections()

    timer = threading.Timer(delay_s, run)
    timer.daemon = True
    timer.start()


# -- placing calls ------------------------------------------------------------------------------------


def call_create(*, campaign: Campaign, contact: Contact, dialed_for: AgentSession | None,
                reserved: bool = False) -> Call:
    """Write the call row for a claimed contact; the REST create runs after commit. `reserved`: the line is
    `dialed_for`'s alone (an abandoned person's call back), and that agent takes no other human meanwhile.

    Only the dial gate (`voice.gate`) calls this, holding the contact's lock (claimed with SKIP LOCKED) inside a
    transaction: every rule about whether a contact may be called lives there.
    """
    now = timezone.now()
    contact.status = Contact.Status.DIALING
    contact.attempts = F("attempts") + 1
    contact.last_called_at = now
    contact.save(update_fields=["status", "attempts", "last_called_at"])
    call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=dialed_for, reserved=reserved,
                               last_event_at=now)
    CallEvent.objects.create(call=call, kind="Placed", to_state=call.state,
                             data={"dialed_for": dialed_for.pk if dialed_for else None})
    events.publish_call(call)
    outbox.effect_enqueue(call=call, kind=outbox.CREATE)
    return call


# -- facts from Twilio ------------------------------------------------------------------------------


def call_id_by_sid(sid: str) -> int | None:
    """The call a webhook is about when its URL carries no id of ours (or an unknown one)."""
    return Call.objects.filter(sid=sid).values_list("pk", flat=True).first() if sid else None


# These take the call's id and raise UnknownCall for an unknown one: a webhook's call is read once, locked.


def call_on_status(*, call_id: int, status: str, sequence: int | None, duration_s: int | None,
                   webhook: WebhookEvent | None = None) -> states.Transition:
    fact = states.Status(status=status, sequence=sequence, duration_s=duration_s)
    _, result = call_apply(call_id=call_id, fact=fact, webhook=webhook)
    return result


def call_on_voice_fetch(*, call_id: int, webhook: WebhookEvent | None = None) -> tuple[Call, states.Twiml]:
    """The customer picked up and Twilio asks what to play. Answers by the state after the fact."""

    locked, _ = call_apply(call_id=call_id, fact=states.TwimlFetched(), webhook=webhook)
    return locked, states.twiml_for(call_view(locked))


def call_on_amd(*, call_id: int, answered_by: str, duration_ms: int | None,
                webhook: WebhookEvent | None = None) -> states.Transition:
    fact = states.AmdVerdict(answered_by=answered_by, duration_ms=duration_ms)
    _, result = call_apply(call_id=call_id, fact=fact, webhook=webhook)
    return result


def call_on_conference_event(*, call: Call, joined: bool, webhook: WebhookEvent | None = None) -> None:
    fact = states.JoinedConference() if joined else states.LeftConference()
    call_apply(call_id=call.pk, fact=fact, webhook=webhook)


# -- waiting humans, hold limit, sibling lines ---------------------------------------------------------


def call_hold_expired(call_id: int) -> None:
    """The hold limit passed: a human still without an agent hears the safe-harbor message."""
    call_apply(call_id=call_id, fact=states.HoldExpired())


def calls_route_waiting(*, campaign_id: int) -> int:
    """Give humans waiting on hold to agents who just became ready. Returns how many were routed."""
    routed = 0
    now = timezone.now()
    waiting = Call.objects.filter(
        campaign_id=campaign_id, state=State.ANSWERED, bridged_to__isnull=True, hold_deadline_at__gt=now,
    ).exclude(answered_by="").order_by("amd_at").values_list("pk", flat=True)
    for call_id in waiting:
        _, result = call_apply(call_id=call_id, fact=states.AgentFound())
        if Effect.ASSIGN_AGENT not in result.effects:
            break  # no agent left, or the call moved on: the hold timer decides the rest
        routed += 1
    return routed


def calls_abandon_overdue(*, now: dt.datetime | None = None) -> int:
    """Backstop for the in-process hold timers (a restart loses them): abandon overdue waiting humans."""
    now = now or timezone.now()
    overdue = Call.objects.filter(state=State.ANSWERED, bridged_to__isnull=True, hold_deadline_at__lte=now)
    count = 0
    for call_id in overdue.values_list("pk", flat=True):
        _, result = call_apply(call_id=call_id, fact=states.HoldExpired())
        count += int(result.changed)
    return count


def calls_release_siblings(*, session_id: int | None, now: dt.datetime | None = None) -> int:
    """Rule 4: release the agent's other lines that are still ringing and have rung the minimum."""
    if session_id is None:
        return 0
    now = now or timezone.now()
    released = 0
    lines = Call.objects.filter(dialed_for_id=session_id, state__in=list(states.UNANSWERED_STATES))
    for call in lines.select_related("campaign"):
        if _rang_long_enough(call, now):
            _, result = call_apply(call_id=call.pk, fact=states.Release())
            released += int(result.changed)
    return released


def _rang_long_enough(call: Call, now: dt.datetime) -> bool:
    min_ring = call.campaign.min_ring_s
    if min_ring == 0:
        return True
    return call.ringing_at is not None and (now - call.ringing_at).total_seconds() >= min_ring


def calls_release_due(*, now: dt.datetime | None = None, session_id: int | None = None) -> int:
    """Lines dialed for an agent who is no longer ready (only that agent's, given `session_id`): once they have
    rung the minimum, hand them to a ready agent of the campaign with room for another line, else release them.
    Run every tick."""
    now = now or timezone.now()
    orphans = (
        # Pooled (predictive) lines belong to no agent: the pacer's own release decisions cover them.
        Call.objects.filter(state__in=list(states.UNANSWERED_STATES), campaign__status=Campaign.Status.RUNNING,
                            dialed_for__isnull=False)
        .exclude(dialed_for__state=AgentSession.State.READY)
        .select_related("campaign")
    )
    if session_id is not None:
        orphans = orphans.filter(dialed_for_id=session_id)
    released = 0
    for call in orphans:
        if not _rang_long_enough(call, now):
            continue
        # A reserved line waits for its own agent only: released, its contact keeps its place in line.
        adopter = None if call.reserved else _spare_ready_agent(call.campaign)
        if adopter is not None:
            Call.objects.filter(pk=call.pk, state__in=list(states.UNANSWERED_STATES)).update(dialed_for=adopter)
            continue
        _, result = call_apply(call_id=call.pk, fact=states.Release())
        released += int(result.changed)
    return released


def _spare_ready_agent(campaign: Campaign) -> AgentSession | None:
    for session in AgentSession.objects.filter(campaign=campaign, state=AgentSession.State.READY, in_room=True):
        lines = Call.objects.filter(dialed_for=session, state__in=list(states.UNANSWERED_STATES)).count()
        if lines < campaign.lines_per_agent:
            return session
    return None


# -- commands -----------------------------------------------------------------------------------------


def call_hangup(*, call: Call, outcome: Outcome | None = None, corrected_machine: bool = False) -> states.Transition:
    fact = states.Hangup(outcome=outcome, corrected_machine=corrected_machine)
    _, result = call_apply(call_id=call.pk, fact=fact)
    return result


def calls_hang_up_all(*, campaign: Campaign) -> int:
    count = 0
    for call in Call.objects.filter(campaign=campaign).exclude(state=State.ENDED):
        result = call_hangup(call=call)
        count += int(result.changed)
    return count


# -- contact bookkeeping --------------------------------------------------------------------------------

RETRY_MINUTES = {
    Outcome.NO_ANSWER: "retry_no_answer_min",
    Outcome.BUSY: "retry_busy_min",
    Outcome.MACHINE: "retry_machine_min",
    Outcome.VOICEMAIL_LEFT: "retry_machine_min",
    Outcome.ABANDONED: "retry_abandoned_min",
    Outcome.HUNG_UP_ON_HOLD: "retry_no_answer_min",
    Outcome.FAILED: "retry_failed_min",
}
ABANDONED_PRIORITY_BOOST = 100


def _contact_after_call(call: Call, now: dt.datetime) -> None:
    """Schedule the contact's next attempt from the call's outcome. Caller holds the call lock; the contact
    row is locked here (call -> contact order)."""
    contact = _locked_contact.get(call.contact_id)
    campaign = call.campaign
    outcome = Outcome(call.outcome)
    contact.last_outcome = outcome.value
    fields = ["last_outcome", "status", "next_attempt_at", "priority", "abandoned_at"]
    if call.reserved and outcome not in (Outcome.ABANDONED, Outcome.CANCELED):
        # The call back an abandoned person was owed has happened (an agent was kept free for it).
        contact.abandoned_at = None
        contact.priority = max(0, contact.priority - ABANDONED_PRIORITY_BOOST)
    if outcome is Outcome.TALKED:
        # The agent's disposition decides what happens next; until then nobody else dials it.
        contact.status = Contact.Status.DIALING
    elif outcome is Outcome.INVALID_NUMBER:
        contact.status = Contact.Status.INVALID
    elif outcome is Outcome.FAX:
        contact.status = Contact.Status.DONE
    elif outcome is Outcome.CANCELED:
        # Released by us before anyone answered: not the contact's fault, dial again soon.
        contact.status = Contact.Status.PENDING
        contact.next_attempt_at = now
        contact.attempts = max(0, contact.attempts - 1)
        fields.append("attempts")
    else:
        if outcome is Outcome.ABANDONED:
            # Owed a call back, first in line, but only on a line with an agent kept free for them (the gate).
            contact.abandoned_at = now
            contact.priority = max(contact.priority, ABANDONED_PRIORITY_BOOST)
        _retry_or_exhaust(contact, campaign, outcome, now)
    compiled.update(contact, fields)


def _retry_or_exhaust(contact: Contact, campaign: Campaign, outcome: Outcome, now: dt.datetime) -> None:
    """The one retry rule: out of attempts is final (except an abandoned person, who is owed a call back);
    otherwise the contact waits the campaign's delay for this outcome."""
    if contact.attempts >= campaign.max_attempts and contact.abandoned_at is None:
        contact.status = Contact.Status.EXHAUSTED
        return
    contact.status = Contact.Status.PENDING
    minutes = getattr(campaign, RETRY_MINUTES.get(outcome, "retry_no_answer_min"))
    contact.next_attempt_at = now + dt.timedelta(minutes=minutes)


def contact_after_disposition(*, contact: Contact, code: DispositionCode, callback_at: dt.datetime | None,
                              session: AgentSession) -> None:
    """The agent's disposition decides the contact's next step. Caller holds the session and call locks."""
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
    else:
        _retry_or_exhaust(contact, session.campaign, Outcome.NO_ANSWER, timezone.now())
    contact.save(update_fields=fields)


