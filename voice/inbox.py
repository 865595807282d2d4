"""The webhook inbox: store every accepted webhook raw, deduplicate, process it, replay it (rule 7).

Processing is split from the HTTP view so a stored row can be replayed (admin action, command) with
exactly the code that handled it the first time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from django.db import IntegrityError, transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from campaigns.consent import recording_announcement_for
from voice import compiled, floor, presence, recordings, services, states, supervision, twiml
from voice.models import Call, WebhookEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

Kind = WebhookEvent.Kind
Processing = WebhookEvent.Processing
VOICE_KINDS = (Kind.VOICE, Kind.DIAL)
KEPT_HEADERS = ("X-Twilio-Signature", "I-Twilio-Idempotency-Token", "User-Agent", "Content-Type")


class Malformed(ValueError):
    """A signed webhook that lacks what its kind needs. Recorded, ignored, answered with 400 / TwiML."""


def _one(params: dict, name: str) -> str:
    value = params.get(name, "")
    return value[0] if isinstance(value, list) else value


# Twilio's counters (sequence numbers, durations) fit in a PostgreSQL integer; anything larger is hostile.
MAX_INT = 2**31 - 1
DEDUPE_KEY_MAX = 120


def _int(params: dict, name: str) -> int | None:
    raw = _one(params, name)
    if raw == "":
        return None
    try:
        value = int(float(raw))
    except (ValueError, OverflowError) as exc:
        raise Malformed(f"{name} is not a number: {raw[:40]!r}") from exc
    if not 0 <= value <= MAX_INT:
        raise Malformed(f"{name} is out of range: {raw[:40]!r}")
    return value


def _clean(value):
    """What PostgreSQL can store of a raw value: NUL (which text and jsonb refuse) becomes U+FFFD, so a hostile
    webhook is still recorded, as close to what arrived as the database allows."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def dedupe_key(kind: str, params: dict, headers: dict) -> str | None:
    sid = _one(params, "CallSid")
    token = headers.get("I-Twilio-Idempotency-Token", "")
    key = None
    if kind == Kind.STATUS and sid and _one(params, "SequenceNumber"):
        key = f"status:{sid}:{_one(params, 'SequenceNumber')}"
    elif kind == Kind.AMD and sid:
        key = f"amd:{sid}:{_one(params, 'AnsweredBy')}"
    elif kind == Kind.CONFERENCE and _one(params, "ConferenceSid"):
        key = "conf:{}:{}:{}:{}".format(
            _one(params, "ConferenceSid"), _one(params, "SequenceNumber"),
            _one(params, "StatusCallbackEvent"), sid,
        )
    elif token:
        key = f"{kind}:{token}"
    if key is not None and len(key) > DEDUPE_KEY_MAX:
        # Real SIDs keep keys short; an oversized one is still deduplicated, by its digest.
        key = f"{kind}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"
    return key


def _raw_row(*, kind: str, route: str, path: str, params: dict, headers: dict) -> WebhookEvent:
    kept = _clean({name: headers[name] for name in KEPT_HEADERS if name in headers})
    params = _clean(params)
    path = _clean(path)
    return WebhookEvent(
        kind=kind, route=route[:40], path=path[:200], call_sid=_one(params, "CallSid")[:34], params=params,
        headers=kept, signature_valid=True, dedupe_key=dedupe_key(kind, params, kept),
    )


def _store_duplicate(row: WebhookEvent) -> WebhookEvent:
    """Same report again (Twilio retried, or two deliveries raced): keep it, marked, unapplied."""
    row.pk = None
    row.dedupe_key = None
    row.status = Processing.DUPLICATE
    row.processed_at = timezone.now()
    row.save()
    return row


def webhook_record(*, kind: str, route: str, path: str, params: dict, headers: dict) -> tuple[WebhookEvent, bool]:
    """Store the raw webhook before anything else; `route` is the URL name it arrived on (it picks the handler).
    Returns (row, is_duplicate)."""
    row = _raw_row(kind=kind, route=route, path=path, params=params, headers=headers)
    try:
        with transaction.atomic():
            row.save()
        return row, False
    except IntegrityError:
        if _take_key_from_failed(row):
            return row, False
        return _store_duplicate(row), True


@dataclass(frozen=True)
class Received:
    event: WebhookEvent
    duplicate: bool
    answer: str | None  # TwiML for voice kinds
    malformed: str = ""  # why a signed webhook was refused (answered 400 / polite TwiML)


def webhook_receive(*, kind: str, route: str, path: str, params: dict, headers: dict) -> Received:
    """The request path: store the raw row, apply it and record the outcome in ONE transaction (one commit).

    The raw row is the transaction's first write, so everything the webhook changed commits with it or not at
    all. When processing fails, that transaction is rolled back whole (no half-applied fact) and the raw row is
    stored again on its own with the error, so a failed webhook is still kept and can be replayed (rule 7).
    A duplicate is detected by the raw row's unique key before anything else ran. Effects (Twilio requests,
    realtime events) run after the commit, as always.
    """
    row = _raw_row(kind=kind, route=route, path=path, params=params, headers=headers)
    voice = kind in VOICE_KINDS
    try:
        return _receive(row, voice, inline=True)
    except services.Restart:
        pass
    # The fact's first attempt, made in this transaction without a savepoint, had to take its locks again in order:
    # everything was rolled back, the raw row with it. Once more, each attempt in a savepoint. (Outside the except
    # block: what this run logs must not read as happening while handling the Restart.)
    row.pk = None
    return _receive(row, voice, inline=False)


def _receive(row: WebhookEvent, voice: bool, *, inline: bool) -> Received:
    stored = False
    try:
        # first_attempts_inline holds inside this transaction only: not in its on-commit callbacks, nor in the
        # transactions the paths below open after it (a Restart there would find nobody to run it again).
        with transaction.atomic(), services.first_attempts_inline(inline):
            # Written with the outcome it will almost always have: the transaction makes that true or takes the
            # row back, so it costs no second write (the rare other outcomes below rewrite it).
            _mark(row, Processing.PROCESSED, "")
            row.attempts = 1
            compiled.insert(row)
            stored = True
            handler = HANDLERS.get(_route(row))
            if handler is None:
                _remark(row, Processing.IGNORED, f"no handler for {row.path}")
                return Received(row, False, twiml.polite_hangup() if voice else None)
            answer, applied = handler(row)
            if not applied:
                _remark(row, Processing.IGNORED, "unknown call")
            return Received(row, False, answer)
    except IntegrityError:
        if stored:
            return _failed(row, voice)
        # Not stored: the row goes back to what it is before anything was applied.
        row.status, row.processed_at, row.attempts = Processing.PENDING, None, 0
        if _take_key_from_failed(row):
            # Twilio's retry of a report whose first processing failed: apply it now (the failed row is kept).
            try:
                return Received(row, False, webhook_process(event=row))
            except Malformed as exc:
                return Received(row, False, None, malformed=str(exc))
        duplicate = _store_duplicate(row)
        if not voice:
            return Received(duplicate, True, None)
        # A voice URL fetched twice still needs its TwiML: answer by the call's state, as the first time.
        return Received(duplicate, True, _answer_again(duplicate))
    except Malformed as exc:
        _store_after_rollback(row, Processing.IGNORED, str(exc))
        return Received(row, False, None, malformed=str(exc))
    except services.Restart:
        raise  # rolled back whole, to be run again (webhook_receive): not a failure
    except Exception:
        return _failed(row, voice)


def _answer_again(event: WebhookEvent) -> str | None:
    """A voice URL fetched twice still needs its TwiML: the handler answers by the call's state, as the first
    time (its fact is idempotent), and the row stays marked as the duplicate it is."""
    handler = HANDLERS.get(_route(event))
    if handler is None:
        return None
    try:
        answer, _applied = handler(event)
    except Malformed:
        return None
    except Exception:
        log.exception("answering duplicate webhook %s failed", event.pk)
        return None
    return answer


def _failed(row: WebhookEvent, voice: bool) -> Received:
    log.exception("webhook %s %s failed", row.kind, row.path)
    _store_after_rollback(row, Processing.FAILED, traceback.format_exc()[-4000:])
    return Received(row, False, twiml.polite_hangup() if voice else None)


def _store_after_rollback(row: WebhookEvent, status: str, error: str) -> None:
    """The transaction that held the raw row was rolled back: store it again, with what happened."""
    row.pk = None
    row.status = status
    row.error = error
    row.processed_at = timezone.now()
    row.attempts = 1
    try:
        row.save()
    except IntegrityError:
        # A twin delivery committed meanwhile: this one is a duplicate after all.
        _store_duplicate(row)


def _take_key_from_failed(row: WebhookEvent) -> bool:
    """Twilio's retry of a report whose first processing FAILED is processed again, not skipped: the failed row
    (kept, with its error) gives up its dedupe key to the new delivery. Deduplication is against rows that were
    processed (or are being processed) only. Two retries racing: the row lock lets one take the key; the other
    no longer finds a failed holder and is recorded as a duplicate."""
    row.pk = None
    with transaction.atomic():
        holder = (WebhookEvent.objects.select_for_update()
                  .filter(dedupe_key=row.dedupe_key, status=Processing.FAILED).first())
        if holder is None:
            return False
        holder.dedupe_key = None
        holder.save(update_fields=["dedupe_key"])
        row.save()
    return True


def webhook_process(*, event: WebhookEvent) -> str | None:
    """Apply a stored webhook. Returns TwiML for voice kinds. Errors are kept on the row, never raised."""
    handler = HANDLERS.get(_route(event))
    if handler is None:
        _finish(event, Processing.IGNORED, f"no handler for {event.path}")
        return twiml.polite_hangup() if event.kind in VOICE_KINDS else None
    try:
        answer, applied = handler(event)
    except Malformed as exc:
        _finish(event, Processing.IGNORED, str(exc))
        raise
    except Exception:
        log.exception("webhook %s failed", event.pk)
        _finish(event, Processing.FAILED, traceback.format_exc()[-4000:])
        return twiml.polite_hangup() if event.kind in VOICE_KINDS else None
    _finish(event, Processing.PROCESSED if applied else Processing.IGNORED, "" if applied else "unknown call")
    return answer


def webhook_replay(*, event: WebhookEvent) -> str:
    """Process a stored row again (admin action, `replay_webhooks`). Facts are idempotent, so replaying a
    processed row changes nothing; a failed one gets its effect."""
    if event.status == Processing.DUPLICATE:
        return Processing.DUPLICATE
    with contextlib.suppress(Malformed):
        webhook_process(event=event)
    event.refresh_from_db(fields=["status"])
    return event.status


def _mark(event: WebhookEvent, status: str, error: str) -> None:
    event.status = status
    event.error = error
    event.processed_at = timezone.now()


def _remark(event: WebhookEvent, status: str, error: str) -> None:
    """Another outcome than the one the row was written with (same attempt)."""
    _mark(event, status, error)
    event.save(update_fields=["status", "error", "processed_at"])


def _finish(event: WebhookEvent, status: str, error: str) -> None:
    _mark(event, status, error)
    event.attempts += 1
    event.save(update_fields=["status", "error", "processed_at", "attempts"])


def _route(event: WebhookEvent) -> str | None:
    """The URL name the row arrived on; rows stored before it was kept are resolved from their path."""
    if event.route:
        return event.route
    try:
        return resolve(urlsplit(event.path).path).url_name
    except Resolver404:
        return None


def _query(event: WebhookEvent, name: str) -> str | None:
    values = parse_qs(urlsplit(event.path).query).get(name)
    return values[0] if values else None


def _on_call(event: WebhookEvent, apply: Callable[[int], T]) -> T | None:
    """`apply(call_id)` to the call a webhook is about, None if there is none: by our id in the URL, straight
    into the fact's locked read (no read before it); else, or when that id is unknown, by the leg's SID."""
    call_id = _query(event, "call")
    if call_id and call_id.isdigit():
        with contextlib.suppress(services.UnknownCall):
            return apply(int(call_id))
    found = services.call_id_by_sid(_one(event.params, "CallSid"))
    return apply(found) if found is not None else None


# -- handlers: (event) -> (answer, applied) ------------------------------------------------------------


def _on_status(event: WebhookEvent) -> tuple[None, bool]:
    status = _one(event.params, "CallStatus")
    if status not in states.CALL_STATUSES:
        raise Malformed(f"CallStatus {status!r} is not a Twilio call status")
    sequence = _int(event.params, "SequenceNumber")
    duration = _int(event.params, "CallDuration")
    applied = _on_call(event, lambda call_id: services.call_on_status(
        call_id=call_id, status=status, sequence=sequence, duration_s=duration, webhook=event))
    return None, applied is not None


def _on_amd(event: WebhookEvent) -> tuple[None, bool]:
    answered_by = _one(event.params, "AnsweredBy")
    if answered_by not in states.ANSWERED_BY_VALUES:
        raise Malformed(f"AnsweredBy {answered_by!r} is not an AMD verdict")
    duration = _int(event.params, "MachineDetectionDuration")
    applied = _on_call(event, lambda call_id: services.call_on_amd(
        call_id=call_id, answered_by=answered_by, duration_ms=duration, webhook=event))
    return None, applied is not None


def _twiml_for(call: Call, kind: states.Twiml) -> str:
    campaign = call.campaign
    if kind is states.Twiml.HOLD:
        return twiml.hold(audio_url=campaign.hold_audio_url)
    if kind is states.Twiml.CONFERENCE and call.bridged_to_id:
        session = call.bridged_to  # loaded with the call by the redirect fetch; one read otherwise
        return twiml.conference(room=session.conference_room, session_id=session.pk, agent=False,
                                announcement=recording_announcement_for(campaign, call.contact.phone))
    if kind is states.Twiml.VOICEMAIL:
        return twiml.message_then_hangup(text=campaign.voicemail_text, audio_url=campaign.voicemail_audio_url)
    if kind is states.Twiml.SAFE_HARBOR:
        return twiml.message_then_hangup(text=campaign.safe_harbor_message, audio_url=campaign.safe_harbor_audio_url)
    if call.state == states.State.ENDED:
        return twiml.polite_hangup()
    return twiml.hangup()


def _on_customer_answer(event: WebhookEvent) -> tuple[str, bool]:
    fetched = _on_call(event, lambda call_id: services.call_on_voice_fetch(call_id=call_id, webhook=event))
    if fetched is None:
        return twiml.polite_hangup(), False
    return _twiml_for(*fetched), True


def _on_redirect_fetch(event: WebhookEvent) -> tuple[str, bool]:
    """A redirected leg fetches its new TwiML: answer with where the call is now (it may have moved on)."""
    call_id = _query(event, "call")
    sid = _one(event.params, "CallSid")
    # One read: the leg was redirected by its SID, so the row has it (no SID to fill in as call_find would).
    found = Call.objects.select_related("campaign", "bridged_to", "contact")
    call = found.filter(pk=int(call_id)).first() if call_id and call_id.isdigit() else None
    if call is None and sid:
        call = found.filter(sid=sid).first()
    if call is None:
        return twiml.polite_hangup(), False
    return _twiml_for(call, states.twiml_for(services.call_view(call))), True


def _on_conference(event: WebhookEvent) -> tuple[None, bool]:
    what = _one(event.params, "StatusCallbackEvent")
    if what not in ("participant-join", "participant-leave"):
        return None, True  # conference-start/end and the rest change nothing we track
    joined = what == "participant-join"
    call_sid = _one(event.params, "CallSid")
    call = Call.objects.filter(sid=call_sid).first() if call_sid else None
    if call is not None:
        services.call_on_conference_event(call=call, joined=joined, webhook=event)
        if joined:
            recordings.recording_start_for_call(call_id=call.pk)
        else:
            supervision.supervisions_end_with_talk(call=call)
        return None, True
    if supervision.supervision_on_conference_event(call_sid=call_sid, joined=joined,
                                                   conference_sid=_one(event.params, "ConferenceSid")):
        return None, True
    session_id = _query(event, "session")
    if not (session_id and session_id.isdigit()):
        return None, False
    presence.agent_leg_in_room(session_id=int(session_id), call_sid=call_sid, in_room=joined)
    return None, True


def _on_agent_dial(event: WebhookEvent) -> tuple[str, bool]:
    """The agent's browser softphone (TwiML App voice URL): put the agent in their room. A manager's softphone
    (a `supervise` ticket) joins an agent's room to supervise."""
    session_id = _one(event.params, "session")
    identity = _one(event.params, "From").removeprefix("client:")
    if _one(event.params, "supervise"):
        answer = supervision.supervisor_dialed(ticket=_one(event.params, "supervise"), identity=identity,
                                               call_sid=_one(event.params, "CallSid"))
        return (answer, True) if answer else (twiml.polite_hangup(), False)
    if not session_id.isdigit():
        return twiml.polite_hangup(), False
    session = floor.agent_leg_dialed(
        session_id=int(session_id), identity=identity, call_sid=_one(event.params, "CallSid"),
    )
    if session is None:
        return twiml.polite_hangup(), False
    return twiml.conference(room=session.conference_room, session_id=session.pk, agent=True), True


def _on_agent_status(event: WebhookEvent) -> tuple[None, bool]:
    if _one(event.params, "CallStatus") not in states.TERMINAL_STATUSES:
        return None, True
    session_id = _query(event, "session") or _one(event.params, "session")
    if not (session_id and session_id.isdigit()):
        return None, False
    presence.agent_leg_in_room(session_id=int(session_id), call_sid=_one(event.params, "CallSid"), in_room=False)
    return None, True


def _on_recording(event: WebhookEvent) -> tuple[None, bool]:
    status = _one(event.params, "RecordingStatus")
    if status not in recordings.TWILIO_STATUSES:
        raise Malformed(f"RecordingStatus {status!r} is not a recording status")
    sid = _one(event.params, "RecordingSid")
    if not sid:
        raise Malformed("RecordingSid is missing")
    # Twilio sends RecordingDuration=-1 while the recording is not finished: unknown yet, not malformed.
    duration = None if _one(event.params, "RecordingDuration").strip() == "-1" else _int(event.params,
                                                                                         "RecordingDuration")
    call_id = _query(event, "call")
    applied = recordings.recording_on_status(
        call_id=int(call_id) if call_id and call_id.isdigit() else None, sid=sid, status=status,
        duration_s=duration if duration is not None and duration >= 0 else None,
        channels=_int(event.params, "RecordingChannels"), media_url=_one(event.params, "RecordingUrl"), webhook=event,
    )
    return None, applied


HANDLERS: dict[str, Callable[[WebhookEvent], tuple[str | None, bool]]] = {
    "status": _on_status,
    "amd-status": _on_amd,
    "customer-queue": _on_customer_answer,
    "fallback": _on_customer_answer,
    "customer-join-conference": _on_redirect_fetch,
    "voicemail": _on_redirect_fetch,
    "safe-harbor": _on_redirect_fetch,
    "conference-events": _on_conference,
    "dial": _on_agent_dial,
    "agent-status": _on_agent_status,
    "recording-status": _on_recording,
}
