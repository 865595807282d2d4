"""The reconciler (DESIGN rule 8): every non-terminal call is closed from what Twilio says, whatever it says.

Twilio does not retry status callbacks, processes die between a decision and its request, and a restarted
carrier emulator forgets its calls. Every dialer worker runs `calls_reconcile` every RECONCILE_EVERY_S, and
once over every live call when it starts (a restarted demo shows no phantom line). Per call:
- no SID: the create is still in the outbox (wait), or it got no answer (ambiguous): look the call up at
  Twilio by its number and creation time before deciding; until then its contact is not dialed again (the
  call is live, and a contact has at most one live call);
- 404: Twilio does not know the call: close it with the reason recorded and release the contact;
- a final status: close it from that status (and the AMD verdict the resource carries);
- in progress while we are `bridging` (a person waits for the agent) or `voicemail` past a deadline: send
  the state's redirect again, and if that did not help either, safe-harbor message and `abandoned` (bridging)
  or hang up (voicemail);
- answered with no AMD verdict: the campaign's policy for `unknown` decides (a lost AMD callback);
- `releasing` but still live at Twilio: our hang-up was lost, send it again.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from voice import gateway, outbox, services, states
from voice.models import Call, CallEffect
from voice.states import Effect, Outcome, State

log = logging.getLogger(__name__)

OPEN = (CallEffect.Status.PENDING, CallEffect.Status.SENDING)
# How many times a redirect is re-sent for a call that stays stuck before we give up on it.
MAX_REISSUES = 1
# A call Twilio lists for the number counts as ours if it was created no earlier than this before our row.
LOOKUP_SLACK = dt.timedelta(minutes=2)


def calls_reconcile(*, now: dt.datetime | None = None, everything: bool = False) -> int:
    """Fetch overdue live calls (every live call with `everything`) and close them from what Twilio says.
    Returns how many calls changed state."""
    now = now or timezone.now()
    fixed = 0
    live = Call.objects.exclude(state=State.ENDED).select_related("campaign", "contact").order_by("pk")
    for call in live.iterator():
        if not everything and not _overdue(call, now):
            continue
        try:
            fixed += int(call_reconcile(call=call, now=now))
        except Exception:  # one bad call must not stop the others being reconciled
            log.exception("reconcile: call %s failed", call.pk)
    return fixed


def _overdue(call: Call, now: dt.datetime) -> bool:
    quiet = now - (call.last_event_at or call.created_at)
    margin = dt.timedelta(seconds=settings.RECONCILE_MARGIN_S)
    ring = dt.timedelta(seconds=call.campaign.ring_timeout_s)
    if call.state in (State.CREATED, State.DIALING, State.RINGING):
        return quiet > ring + margin
    if call.state == State.BRIDGING:
        # A person is waiting to hear the agent: a lost redirect must not leave them on hold music.
        return quiet > dt.timedelta(seconds=settings.RECONCILE_STUCK_S)
    if call.state == State.CONNECTED:
        # Talks are long and quiet, but a lost final callback would keep the agent "on a call" with nobody: a
        # fetch per talk per margin (once a minute by default) is cheap and frees them soon after.
        return quiet > margin
    return quiet > dt.timedelta(seconds=call.campaign.amd_timeout_s) + margin


def call_reconcile(*, call: Call, now: dt.datetime | None = None) -> bool:
    """Ask Twilio about one call and act on the answer; True when the call's state changed."""
    now = now or timezone.now()
    if not call.sid:
        return _reconcile_unplaced(call, now)
    try:
        info = gateway.fetch_call(sid=call.sid)
    except gateway.NotFound as exc:
        return _close_unknown(call, f"Twilio does not know the call ({exc})")
    except gateway.GatewayError as exc:
        services.call_record_error(call_id=call.pk, message=f"reconcile fetch: {exc}")
        return False
    return _apply_info(call, info)


def _apply_info(call: Call, info: gateway.CallInfo) -> bool:
    if info.status in states.TERMINAL_STATUSES:
        if info.answered_by:
            services.call_apply(call_id=call.pk, fact=states.AmdVerdict(answered_by=info.answered_by))
        result = services.call_on_status(call_id=call.pk, status=info.status, sequence=None, duration_s=info.duration_s)
        return result.changed
    if call.state == State.ANSWERED and not call.answered_by and info.status == "in-progress":
        # The AMD callback was lost (Twilio does not retry): go by what the call resource says, and treat
        # no verdict at all as "unknown" so the campaign's policy decides instead of endless hold music.
        # call_apply picks the agent for a human under the locks.
        fact = states.AmdVerdict(answered_by=info.answered_by or "unknown")
        _, result = services.call_apply(call_id=call.pk, fact=fact)
        return result.changed
    if info.status != "in-progress" and call.state != State.RELEASING:
        Call.objects.filter(pk=call.pk).update(last_event_at=timezone.now())
        return False
    if call.state == State.RELEASING:
        # We decided to end it and Twilio still has it live: our request was lost. Send it again.
        message = states.twiml_for(services.call_view(call)) is states.Twiml.SAFE_HARBOR
        _reissue(call, Effect.REDIRECT_SAFE_HARBOR if message else Effect.HANGUP, give_up=None)
        return False
    if call.state == State.BRIDGING:
        return _reissue(call, Effect.REDIRECT_CONFERENCE, give_up=states.Hangup(outcome=Outcome.ABANDONED))
    if call.state == State.VOICEMAIL:
        return _reissue(call, Effect.REDIRECT_VOICEMAIL, give_up=states.Hangup())
    Call.objects.filter(pk=call.pk).update(last_event_at=timezone.now())
    return False


def _reissue(call: Call, effect: Effect, *, give_up: states.Fact | None) -> bool:
    """Send the state's effect again, unless it is still queued; after MAX_REISSUES that did not help,
    apply `give_up` (the safe-harbor message for a waiting person). True when the state changed."""
    sent = CallEffect.objects.filter(call_id=call.pk, kind=effect)
    if sent.filter(status__in=OPEN).exists():
        return False  # the outbox has it (its sweep reclaims a dead sender's rows)
    if give_up is not None and sent.count() > MAX_REISSUES:
        services.call_record_error(call_id=call.pk, message=f"reconcile: still {call.state} at Twilio after "
                                                            f"{sent.count()} {effect} requests; giving up")
        _, result = services.call_apply(call_id=call.pk, fact=give_up)
        return result.changed
    with transaction.atomic():
        locked = Call.objects.select_for_update(no_key=True).get(pk=call.pk)
        if locked.state != call.state:
            return True
        locked.last_event_at = timezone.now()
        locked.save(update_fields=["last_event_at"])
        outbox.effect_enqueue(call=locked, kind=effect)
    log.warning("reconcile: call %s stuck %s at Twilio; sent %s again", call.pk, call.state, effect)
    return False


def _close_unknown(call: Call, reason: str) -> bool:
    """Twilio answers 404: close the call with the reason on record and release its contact (a call that
    never rang is canceled, so the contact is dialed again soon without losing an attempt)."""
    services.call_record_error(call_id=call.pk, message=f"reconcile: {reason}")
    status = "canceled" if call.state in states.UNANSWERED_STATES else "completed"
    result = services.call_on_status(call_id=call.pk, status=status, sequence=None, duration_s=None)
    return result.changed


def _reconcile_unplaced(call: Call, now: dt.datetime) -> bool:
    """A call without a SID: its create is queued, failed, or got no answer."""
    creates = CallEffect.objects.filter(call_id=call.pk, kind=outbox.CREATE)
    if creates.filter(status__in=OPEN).exists():
        return False  # still to be sent (or being sent): the outbox decides
    if call.state not in (State.CREATED, State.RELEASING):
        # Progress without a SID cannot happen (callbacks carry it); close it rather than keep it live.
        return _close_unknown(call, "a live call without a SID")
    try:
        candidates = gateway.find_calls(to=call.contact.phone)
    except gateway.GatewayError as exc:
        # Not knowing is not "not placed": keep the contact locked and ask again next round.
        services.call_record_error(call_id=call.pk, message=f"reconcile lookup: {exc}")
        return False
    known = set(Call.objects.filter(sid__in=[c.sid for c in candidates]).values_list("sid", flat=True))
    since = call.created_at - LOOKUP_SLACK
    ours = [c for c in candidates if c.sid not in known and (c.created_at is None or c.created_at >= since)]
    if not ours:
        services.call_record_error(call_id=call.pk, message="reconcile: Twilio has no call to this number "
                                                            "since the create; it was never placed")
        _, result = services.call_apply(call_id=call.pk, fact=states.CreateFailed())
        return result.changed
    info = ours[-1]  # the list is newest first: the oldest unclaimed call after our create is ours
    placed = outbox.call_attach_sid(call_id=call.pk, info=info)
    log.warning("reconcile: call %s had no SID; Twilio placed it as %s (%s)", call.pk, info.sid, info.status)
    _apply_info(placed, info)
    return True
