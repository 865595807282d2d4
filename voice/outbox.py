"""The transactional outbox: Twilio side effects that survive a crash at any instant (DESIGN rule 11).

A transition that decides a Twilio request (create, redirect, hang up, cancel; and, beside the state machine, a
talk's recording start and its supervisors' removal) writes a `CallEffect` row in the same transaction
(`effect_enqueue`). After commit the row is run off the request thread, on a small
thread pool of the process that committed it; every dialer worker sweeps the table as a backstop
(`effects_sweep`), so a process that dies between commit and send loses nothing.

Exactly-once where it matters:
- On PostgreSQL the executor holds a session advisory lock on the row while it talks to Twilio; nobody else
  sends a row whose lock is taken. A create and a recording start are also claimed before they leave (PENDING
  -> SENDING in one UPDATE): a SENDING row whose lock can be taken belongs to a process that died mid-request.
  The others stay PENDING until their outcome is written, and a sender's death leaves them for the sweep. On
  SQLite (the one-process demo, no advisory locks) every row is claimed, and a SENDING one is reclaimed after
  a lease.
- Redirects, hang-ups and cancels are idempotent at Twilio, and each is checked against the call's state just
  before it is sent (a redirect into the room only while the call is still bridging ...), so running one again
  after a crash, late or out of order, never changes an outcome.
- A create is not idempotent: one that got no answer (timeout, reset, 5xx, or a crash mid-request) is marked
  AMBIGUOUS and never re-sent; the reconciler looks the call up at Twilio by its number before deciding, and
  the contact stays locked (its call is not terminal) until then. Nor is a recording start: after one that got
  no answer, its next attempt lists the call's recordings at Twilio and adopts the one it finds.
- 429s, retryable errors and unexpected exceptions are retried with backoff, up to OUTBOX_MAX_ATTEMPTS; the
  outcome (done, skipped, failed, ambiguous, the error) stays on the row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from voice import gateway, services, states
from voice.compiled import CompiledGet
from voice.links import webhook_url
from voice.models import Call, CallEffect
from voice.states import Effect, Outcome, State

log = logging.getLogger(__name__)

CREATE = "create"
# Effects beside the state machine's: a talk's recording starts when the customer joins the agent's room, and its
# supervisors are taken out when the customer leaves it. Their modules sit above this one (they use the floor and
# the services), so voice.apps registers their senders (`sender_register`); tests/voice/test_outbox.py checks
# that every kind here has one.
START_RECORDING = "start_recording"
TAKE_OUT_SUPERVISORS = "take_out_supervisors"
SENT_ELSEWHERE = (START_RECORDING, TAKE_OUT_SUPERVISORS)
# sender(effect=...) -> (final status, result). A GatewayError it raises is retried when retryable; NotYet puts
# the effect back, uncounted, until a given time.
Sender = Callable[..., tuple[str, str]]
_senders: dict[str, Sender] = {}




class NotYet(Exception):
    """The effect cannot be sent yet: put it back, without counting an attempt, for `seconds`."""

    def __init__(self, reason: str, *, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
# SQLite has no advisory locks: a SENDING row older than this is taken for a dead executor's.
LEASE_S = 60.0
# The committing process runs its own rows at once; the sweep leaves them this long before stepping in.
SWEEP_GRACE_S = 0.5
LOCK_CLASS = 0x0B0C  # first key of the two-key advisory locks on outbox rows

Status = CallEffect.Status


# -- writing (inside the transition's transaction) -----------------------------------------------------


def effect_enqueue(*, call: Call, kind: str) -> CallEffect:
    """Write one effect for `call`; it runs after commit. Caller is inside the deciding transaction."""
    row = CallEffect.objects.create(call=call, kind=str(kind), not_before=timezone.now())
    transaction.on_commit(lambda: submit(row.pk))
    return row


# -- running --------------------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, settings.OUTBOX_THREADS), thread_name_prefix="outbox")
        return _pool


def submit(effect_id: int, *, delay_s: float = 0.0) -> None:
    """Run an effect the committing process queued: soon, off the calling thread (inline with OUTBOX_INLINE)."""
    if settings.OUTBOX_INLINE:
        if delay_s <= 0:
            effect_run(effect_id=effect_id)
        return  # a retry later is the sweep's (deterministic in tests: nothing runs behind their back)
    if delay_s > 0:
        timer = threading.Timer(delay_s, lambda: _dispatch(effect_id))
        timer.daemon = True
        timer.start()
        return
    _dispatch(effect_id)


def _dispatch(effect_id: int, *, reclaim: bool = False) -> None:
    if settings.OUTBOX_INLINE:
        effect_run(effect_id=effect_id, reclaim=reclaim)
    else:
        _executor().submit(_run_in_thread, effect_id, reclaim)


def _run_in_thread(effect_id: int, reclaim: bool = False) -> None:
    close_old_connections()
    try:
        effect_run(effect_id=effect_id, reclaim=reclaim)
    except Exception:
        log.exception("outbox effect %s failed", effect_id)
    finally:
        close_old_connections()


# Not idempotent at Twilio: a second request could place the call (start a recording) twice. Each is marked
# SENDING before it leaves, so a sender that dies mid-request leaves a row that says so: a create is never sent
# again (the reconciler looks the call up by its number), a recording start looks at the call's recordings first.
ONCE_ONLY = frozenset({CREATE, START_RECORDING})


def effect_run(*, effect_id: int, reclaim: bool = False) -> str | None:
    """Execute one effect unless someone else has it or it is not due. Returns its final status, or None.

    reclaim: also take a SENDING row whose executor died (only the sweep asks, after checking the lock)."""
    if not _hold(effect_id):
        return None
    try:
        try:
            effect = _effect.get(effect_id)
        except CallEffect.DoesNotExist:  # its call was deleted since
            return None
        # When the previous attempt began (a sender looking at what that attempt may have done reads it).
        effect.previous_started_at = effect.started_at
        effect.started_at = timezone.now()
        wanted = (Status.PENDING, Status.SENDING) if reclaim else (Status.PENDING,)
        if effect.status not in wanted or effect.not_before > effect.started_at:
            return None
        if (effect.status == Status.SENDING and connection.vendor != "postgresql"
                and effect.previous_started_at > effect.started_at - dt.timedelta(seconds=LEASE_S)):
            return None  # claimed again since the sweep listed it: its sender is alive
        effect.attempts += 1
        if effect.kind in ONCE_ONLY or connection.vendor != "postgresql":
            # Also without advisory locks (SQLite): the status is then what keeps the sweep from sending it too,
            # so the claim only succeeds on the row as it was read.
            claimed = CallEffect.objects.filter(
                pk=effect_id, status=effect.status, attempts=effect.attempts - 1, not_before=effect.not_before,
            ).update(status=Status.SENDING, started_at=effect.started_at, attempts=effect.attempts)
            if not claimed:
                return None
        # Else the advisory lock alone says who sends it, and the row stays PENDING until its outcome is written
        # (one commit fewer before a human's redirect leaves): a sender that dies mid-request leaves it for the
        # sweep, which sends it again, as it would a SENDING one.
        try:
            return _execute(effect, reclaimed=reclaim and effect.status == Status.SENDING)
        except NotYet as wait:
            return _put_back(effect, str(wait), seconds=wait.seconds)
        except Exception as exc:
            log.exception("outbox effect %s (%s for call %s) failed", effect_id, effect.kind, effect.call_id)
            if isinstance(exc, DatabaseError) and not (connection.connection and connection.is_usable()):
                raise  # nothing can be written on this connection; the sweep finds the row as it was
            if effect.kind == CREATE:
                # Twilio may have placed it before whatever failed here: never again; the reconciler looks.
                return _finish(effect, Status.AMBIGUOUS, f"{type(exc).__name__}: {exc}")
            if effect.kind == Effect.REDIRECT_CONFERENCE:
                return _abandon(effect, exc)
            return _retry_later(effect, exc)
    finally:
        _release(effect_id)


def _execute(effect: CallEffect, *, reclaimed: bool) -> str:
    if effect.kind == CREATE:
        if reclaimed:
            # The process that sent this create died before it recorded Twilio's answer: it may have placed
            # the call. Never send it twice; the reconciler looks the call up by its number.
            return _finish(effect, Status.AMBIGUOUS, "the sender died mid-request")
        return _create(effect)
    if effect.kind in _senders:
        return _send(effect)
    if effect.kind in ACTIONS:
        return _rest(effect)
    # A process of a newer release may know it (mid-deploy): not ours to settle, nor to count against it.
    raise NotYet(f"nothing in this process sends {effect.kind!r}", seconds=BACKOFF_S[-1])


# The row with its call, campaign and contact: a human's redirect waits on this read, every time.
_effect = CompiledGet(lambda: CallEffect.objects.select_related("call__campaign", "call__contact"))


def _finish(effect: CallEffect, status: str, result: str = "") -> str:
    CallEffect.objects.filter(pk=effect.pk).update(
        status=status, started_at=effect.started_at, attempts=effect.attempts, finished_at=timezone.now(),
        result=result[:200])
    return status


def _put_back(effect: CallEffect, reason: str, *, seconds: float) -> str:
    """As if this run had not happened (nothing was sent): the attempt is not counted, and the previous attempt's
    start stays the one a sender waits on."""
    return _pending_again(effect, reason, seconds=seconds, attempts=effect.attempts - 1,
                          started_at=effect.previous_started_at)


def _retry_later(effect: CallEffect, error: Exception) -> str:
    if effect.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        return _finish(effect, Status.FAILED, f"gave up after {effect.attempts} attempts: {error}")
    delay_s = BACKOFF_S[min(effect.attempts, len(BACKOFF_S)) - 1]
    return _pending_again(effect, str(error), seconds=delay_s, attempts=effect.attempts, started_at=effect.started_at)


def _pending_again(effect: CallEffect, result: str, *, seconds: float, attempts: int,
                   started_at: dt.datetime | None) -> str:
    CallEffect.objects.filter(pk=effect.pk).update(
        status=Status.PENDING, attempts=attempts, started_at=started_at,
        not_before=timezone.now() + dt.timedelta(seconds=seconds), result=result[:200])
    submit(effect.pk, delay_s=seconds)
    return Status.PENDING


# -- advisory lock: "this row is being sent by a live process" ---------------------------------------------


def _hold(effect_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, effect_id])
        return bool(cursor.fetchone()[0])


def _release(effect_id: int) -> None:
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            # Session-level: it must be released before the connection goes back to the pool.
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, effect_id])
    except DatabaseError:
        # A connection that may still hold the lock must never go back to the pool (the row would look
        # "being sent" for ever): closed, its session and the lock end with it.
        log.warning("outbox effect %s: could not release its lock; closing the connection", effect_id)
        with contextlib.suppress(Exception):
            connection.connection.close()  # the socket itself: the pool must not keep a session holding the lock
        connection.close()


# -- the create ------------------------------------------------------------------------------------------


def _create(effect: CallEffect) -> str:
    call = effect.call
    if call.sid or call.state not in (State.CREATED, State.RELEASING):
        return _finish(effect, Status.SKIPPED, f"call already {call.state}")
    if call.state == State.RELEASING:
        # Released before the create left: place nothing and close the call as canceled.
        services.call_apply(call_id=call.pk, fact=states.CreateFailed())
        return _finish(effect, Status.SKIPPED, "released before it was placed")
    campaign = call.campaign
    amd = gateway.AmdSettings(
        mode=campaign.amd_mode, timeout_s=campaign.amd_timeout_s,
        speech_threshold_ms=campaign.amd_speech_threshold_ms,
        speech_end_threshold_ms=campaign.amd_speech_end_threshold_ms,
        silence_timeout_ms=campaign.amd_silence_timeout_ms,
    )
    try:
        info = gateway.create_call(
            to=call.contact.phone, from_=campaign.effective_caller_id,
            url=webhook_url("customer-queue", call=call.pk),
            status_callback=webhook_url("status", call=call.pk),
            amd_callback=webhook_url("amd-status", call=call.pk),
            fallback_url=webhook_url("fallback", call=call.pk),
            amd=amd, timeout_s=campaign.ring_timeout_s,
        )
    except gateway.GatewayError as exc:
        services.call_record_error(call_id=call.pk, message=f"create: {exc}")
        not_processed = exc.status == 429 or exc.code == gateway.TOO_MANY_REQUESTS
        if not_processed:
            return _retry_later(effect, exc)
        if isinstance(exc, gateway.Ambiguous) or (exc.status or 0) >= 500:
            # Twilio may have placed it: the call stays non-terminal (its contact locked) until the
            # reconciler has looked it up.
            return _finish(effect, Status.AMBIGUOUS, str(exc))
        services.call_apply(call_id=call.pk, fact=states.CreateFailed(
            invalid_number=isinstance(exc, gateway.InvalidNumber)))
        return _finish(effect, Status.FAILED, str(exc))
    call = call_attach_sid(call_id=call.pk, info=info)
    return _finish(effect, Status.DONE, f"sid {info.sid}")


def call_attach_sid(*, call_id: int, info: gateway.CallInfo) -> Call:
    """Twilio placed the call: remember its SID (unless a callback already did) and mark it dialing."""

    with transaction.atomic():
        call, _ = services.call_apply(call_id=call_id, fact=states.Created(sid=info.sid))
        if call.state == State.RELEASING and call.outcome == Outcome.CANCELED:
            # Released while the create was in flight: cancel it now that it has a SID.
            effect_enqueue(call=call, kind=Effect.CANCEL)
    return call


# -- redirects, hang-ups, cancels ----------------------------------------------------------------------------


def _redirect(name: str) -> Callable[[Call], None]:
    return lambda call: gateway.redirect_call(sid=call.sid, url=webhook_url(name, call=call.pk))


ACTIONS: dict[str, Callable[[Call], None]] = {
    Effect.REDIRECT_CONFERENCE: _redirect("customer-join-conference"),
    Effect.REDIRECT_VOICEMAIL: _redirect("voicemail"),
    Effect.REDIRECT_SAFE_HARBOR: _redirect("safe-harbor"),
    Effect.HANGUP: lambda call: gateway.hangup_call(sid=call.sid),
    Effect.CANCEL: lambda call: gateway.hangup_call(sid=call.sid, ringing_only=True),
}


def still_wanted(kind: str, call: Call) -> bool:
    """Whether the call's state still asks for this effect. Checked just before sending, so an effect that
    runs late, twice or out of order (after a crash, from two processes) never undoes a later decision."""
    state, outcome = call.state, call.outcome
    if state == State.ENDED:
        return False
    return {
        Effect.REDIRECT_CONFERENCE: state == State.BRIDGING,
        Effect.REDIRECT_VOICEMAIL: state == State.VOICEMAIL,
        Effect.REDIRECT_SAFE_HARBOR: state == State.RELEASING and outcome == Outcome.ABANDONED,
        Effect.HANGUP: True,
        Effect.CANCEL: state == State.RELEASING,
    }.get(kind, False)


def _rest(effect: CallEffect) -> str:
    call = effect.call
    if not still_wanted(effect.kind, call):
        return _finish(effect, Status.SKIPPED, f"call is {call.state}/{call.outcome or '-'} now")
    if not call.sid:
        # The create has not been answered yet; the create acts on the state once it has the SID.
        return _finish(effect, Status.SKIPPED, "no SID yet")
    kind = Effect(effect.kind)
    try:
        ACTIONS[kind](call)
    except (gateway.CallAlreadyEnded, gateway.NotFound) as exc:
        services.call_apply(call_id=call.pk, fact=states.RedirectFailed(already_ended=True))
        return _finish(effect, Status.DONE, f"the call had already ended: {exc}")
    except gateway.GatewayError as exc:
        log.error("call %s: %s failed: %s", call.pk, kind, exc)
        if kind is Effect.REDIRECT_CONFERENCE:
            return _abandon(effect, exc)
        services.call_record_error(call_id=call.pk, message=f"{kind}: {exc}")
        if exc.retryable:
            return _retry_later(effect, exc)
        services.call_apply(call_id=call.pk, fact=states.RedirectFailed(already_ended=False))
        return _finish(effect, Status.FAILED, str(exc))
    return _finish(effect, Status.DONE)


def _abandon(effect: CallEffect, error: Exception) -> str:
    """A human is on hold for this redirect: better the safe-harbor message now than hold music while we retry
    (rule 3). Only while they are still on hold: a redirect whose answer was lost may have arrived, and its join
    made the call a talk meanwhile."""
    services.call_record_error(call_id=effect.call_id, message=f"{effect.kind}: {error}")
    services.call_apply(call_id=effect.call_id, fact=states.RedirectFailed(already_ended=False, into_room=True))
    return _finish(effect, Status.FAILED, str(error))


# -- recordings and supervisors ----------------------------------------------------------------------------


def sender_register(kind: str, sender: Sender) -> None:
    if _senders.get(kind, sender) is not sender:
        raise ValueError(f"{kind!r} has a sender already")
    _senders[kind] = sender


def _send(effect: CallEffect) -> str:
    try:
        status, result = _senders[effect.kind](effect=effect)
    except gateway.GatewayError as exc:
        log.warning("call %s: %s failed: %s", effect.call_id, effect.kind, exc)
        return _retry_later(effect, exc) if exc.retryable else _finish(effect, Status.FAILED, str(exc))
    return _finish(effect, status, result)


# -- the backstop sweep (every dialer worker, every tick) ------------------------------------------------------


def effects_sweep(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Run effects nobody is running: pending past their time (their process died after commit) and SENDING
    rows whose executor died mid-request. Returns how many were started."""
    now = now or timezone.now()
    grace = now - dt.timedelta(seconds=SWEEP_GRACE_S)
    started = 0
    pending = CallEffect.objects.filter(status=Status.PENDING, not_before__lte=grace).order_by("id")
    for effect_id in pending.values_list("pk", flat=True)[:limit]:
        if connection.vendor == "postgresql" and not _nobody_sending(effect_id):
            continue  # being sent right now (unclaimed: see ONCE_ONLY)
        _dispatch(effect_id)
        started += 1
    sending = CallEffect.objects.filter(status=Status.SENDING).order_by("id")
    if connection.vendor != "postgresql":
        sending = sending.filter(started_at__lte=now - dt.timedelta(seconds=LEASE_S))
    for effect_id in sending.values_list("pk", flat=True)[:limit]:
        if connection.vendor == "postgresql" and not _nobody_sending(effect_id):
            continue
        log.warning("outbox effect %s: its sender died mid-request; taking it over", effect_id)
        _dispatch(effect_id, reclaim=True)
        started += 1
    return started


def _nobody_sending(effect_id: int) -> bool:
    """A live executor holds the row's advisory lock while sending; if we can take it, nobody is (a SENDING
    row's sender died)."""
    if not _hold(effect_id):
        return False
    _release(effect_id)
    return True


def effects_for(*, call_id: int) -> list[CallEffect]:
    return list(CallEffect.objects.filter(call_id=call_id).order_by("id"))
