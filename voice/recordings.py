"""Call recordings: started when the contact joins the agent's room, Twilio's recording callbacks applied
idempotently, paused and resumed by the agent, played back through our server, deleted here and at Twilio.

Twilio records the customer's leg from the moment it joins the room (REST `Calls/{CA}/Recordings`, dual-channel:
the customer on one channel, the room they hear on the other), so one recording is one talk, whatever the agent's
room did before or does after. A whisper is not in it: the customer never hears one.

Locks: a recording row alone (`select_for_update`), or the call row then its recording; never a REST request
while either is held (rule 6). Recording callbacks are facts: a late or repeated one changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.exceptions import IllegalAction, NotAllowed
from campaigns.models import AgentSession
from realtime import events
from voice import gateway, outbox
from voice.links import webhook_url
from voice.models import Call, CallEffect, CallEvent, Recording, WebhookEvent
from voice.states import State

log = logging.getLogger(__name__)

Status = Recording.Status
# How far along a recording is: a callback never moves it back (a late `in-progress` after `completed`).
RANK = {Status.STARTING: 0, Status.IN_PROGRESS: 1, Status.PAUSED: 1, Status.COMPLETED: 2, Status.ABSENT: 2,
        Status.FAILED: 2, Status.DELETED: 3}
TWILIO_STATUSES = {"in-progress": Status.IN_PROGRESS, "completed": Status.COMPLETED, "absent": Status.ABSENT,
                   "failed": Status.FAILED}
TIMELINE_KINDS = {Status.IN_PROGRESS: "RecordingInProgress", Status.COMPLETED: "RecordingCompleted",
                  Status.ABSENT: "RecordingAbsent", Status.FAILED: "RecordingFailed"}
LIVE = (Status.STARTING, Status.IN_PROGRESS, Status.PAUSED)


# -- reads ------------------------------------------------------------------------------------------------


def access_recording(user, recording_id: int) -> Recording:
    """The recording if `user` may hear it: managers, and the agent who had the talk. NotAllowed otherwise
    (also when it does not exist, so ids are not probed)."""
    recording = Recording.objects.select_related("call__campaign", "call__contact", "call__bridged_to__agent").filter(
        pk=recording_id).first()
    if recording is None or not user.is_authenticated:
        raise NotAllowed("no such recording")
    if campaign_services.user_is_manager(user):
        return recording
    session = recording.call.bridged_to
    if session is not None and session.agent_id == user.pk:
        return recording
    raise NotAllowed("only managers and the agent who made the call may hear this recording")


def recording_page_path(recording: Recording) -> str:
    """Our page for a recording (reports, exports and admin link here, never to Twilio's media URL)."""
    return reverse("recording-detail", args=[recording.pk])


def recording_audio(*, recording: Recording) -> tuple[str, Iterator[bytes]]:
    """(content type, chunks) of the audio, streamed from Twilio with the account's credentials."""
    if not recording.playable:
        raise IllegalAction(f"this recording cannot be played ({recording.get_status_display().lower()})")
    return gateway.recording_media(media_url=recording.media_url)


def _current_talk(session: AgentSession) -> Call:
    call = Call.objects.filter(bridged_to=session, state=State.CONNECTED).only("pk", "sid").first()
    if call is None:
        raise IllegalAction("you are not talking to anyone")
    return call


# -- starting -----------------------------------------------------------------------------------------------


def recording_start_for_call(*, call_id: int) -> Recording | None:
    """The contact joined the agent's room. If the campaign records, write the recording row (one per talk, so a
    repeated join event starts nothing) and, in the same transaction, the outbox's request to Twilio: it is sent
    after commit off the webhook's thread, and survives a crash in between."""
    with transaction.atomic():
        call = Call.objects.select_for_update(of=("self",), no_key=True).select_related("campaign").get(pk=call_id)
        if not call.campaign.record_calls or call.state != State.CONNECTED or not call.sid:
            return None
        try:
            with transaction.atomic():
                recording, created = Recording.objects.get_or_create(call=call)
        except IntegrityError:  # a concurrent join event won the row
            return Recording.objects.get(call=call)
        if created:
            outbox.effect_enqueue(call=call, kind=outbox.START_RECORDING)
    return recording


# A start whose answer was lost (or whose sender died) may still reach Twilio until the HTTP timeout has passed;
# the call's recordings are looked up only after that, and this margin.
LOOKUP_MARGIN_S = 2.0


def recording_send_start(*, effect: CallEffect) -> tuple[str, str]:
    """Ask Twilio to record the talk: the outbox's sender for START_RECORDING, once the join committed. Returns
    the outbox's (status, result).

    A start is not idempotent (a second one records the talk twice, a copy we would never delete), so it is sent
    blind only on the first attempt. After one that got no answer, or whose sender died mid-request: what Twilio's
    recording callback already told us, else (once that request can no longer arrive) the call's recordings at
    Twilio, are adopted; only when neither knows a recording is the start sent again."""
    call = effect.call
    recording = Recording.objects.get(call=call)
    if call.state != State.CONNECTED:
        _settle(recording.pk, Status.ABSENT, "the talk ended before recording started")
        return CallEffect.Status.SKIPPED, f"call is {call.state} now"
    if effect.attempts > 1:
        if recording.sid or recording.status != Status.STARTING:
            return CallEffect.Status.DONE, f"recording {recording.sid or '-'} is {recording.status} already"
        sent_at = effect.previous_started_at or effect.created_at
        wait_s = settings.TWILIO_HTTP_TIMEOUT_S + LOOKUP_MARGIN_S - (timezone.now() - sent_at).total_seconds()
        if wait_s > 0:
            raise outbox.NotYet("the previous start may still reach Twilio", seconds=wait_s)
    try:
        found = gateway.call_recordings(call_sid=call.sid) if effect.attempts > 1 else []
        info = found[0] if found else gateway.start_call_recording(
            call_sid=call.sid, status_callback=webhook_url("recording-status", call=call.pk))
    except gateway.CallAlreadyEnded:
        _settle(recording.pk, Status.ABSENT, "the call ended before recording started")
        return CallEffect.Status.SKIPPED, "the call had already ended"
    except gateway.GatewayError as exc:
        if exc.retryable and effect.attempts < settings.OUTBOX_MAX_ATTEMPTS:
            raise  # the outbox tries again after a backoff, looking first
        # Given up. If Twilio did record after all, its callback still brings the recording back (recording_on_status).
        log.warning("could not start recording call %s: %s", call.pk, exc)
        _settle(recording.pk, Status.FAILED, str(exc))
        return CallEffect.Status.FAILED, str(exc)
    _started(recording.pk, info, call_id=call.pk)
    return CallEffect.Status.DONE, f"recording {info.sid}" + (" (found at Twilio)" if found else "")


def _started(recording_id: int, info: gateway.RecordingInfo, *, call_id: int) -> None:
    status = TWILIO_STATUSES.get(info.status, Status.IN_PROGRESS)
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording_id)
        fields = []
        if not locked.sid:
            locked.sid = info.sid
            fields.append("sid")
        if locked.channels != info.channels:
            locked.channels = info.channels
            fields.append("channels")
        if RANK[Status(locked.status)] < RANK[status]:
            locked.status = status
            fields.append("status")
        if fields:
            locked.save(update_fields=fields)
        CallEvent.objects.create(call_id=call_id, kind="RecordingStarted", detail=f"recording {info.sid}")
        _publish(locked)


def _settle(recording_id: int, status: str, error: str) -> None:
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording_id)
        if RANK[Status(locked.status)] >= RANK[Status(status)]:
            return
        locked.status, locked.error = status, error[:2000]
        locked.save(update_fields=["status", "error"])
        CallEvent.objects.create(call_id=locked.call_id, kind="RecordingFailed", detail=error[:200])
        _publish(locked)


# -- Twilio's callbacks -------------------------------------------------------------------------------------


def recording_on_status(*, call_id: int | None, sid: str, status: str, duration_s: int | None, channels: int | None,
                        media_url: str, webhook: WebhookEvent | None = None) -> bool:
    """Apply a recording status callback. False when it names no recording of ours."""
    new = TWILIO_STATUSES[status]
    with transaction.atomic():
        recording = Recording.objects.select_for_update().filter(sid=sid).first()
        if recording is None and call_id is not None:
            recording = Recording.objects.select_for_update().filter(call_id=call_id).first()
        if recording is None:
            return False
        if recording.sid and recording.sid != sid:
            return True  # another recording of the call: not ours to track
        # A failure we settled without ever hearing of a recording is a belief, not a fact: Twilio's word wins.
        believed_failed = recording.status == Status.FAILED and not recording.sid
        fields = []
        if not recording.sid:
            recording.sid = sid
            fields.append("sid")
        moved = RANK[new] > RANK[Status(recording.status)] or (believed_failed and new != Status.FAILED)
        if moved:
            recording.status = new
            fields.append("status")
        if RANK[new] == 2 and recording.status != Status.DELETED:
            # Terminal facts fill blanks, even when they arrive twice or after a failed first attempt.
            if duration_s is not None and recording.duration_s is None:
                recording.duration_s = duration_s
                fields.append("duration_s")
            if channels and recording.channels != channels:
                recording.channels = channels
                fields.append("channels")
            if media_url and not recording.media_url:
                recording.media_url = media_url
                fields.append("media_url")
            if recording.completed_at is None:
                recording.completed_at = timezone.now()
                fields.append("completed_at")
        if fields:
            recording.save(update_fields=fields)
        if moved:
            CallEvent.objects.create(call_id=recording.call_id, kind=TIMELINE_KINDS[new],
                                     detail=f"recording {sid}: {status}"[:200], webhook=webhook,
                                     data={"duration_s": duration_s})
            _publish(recording)
    return True


# -- the agent's pause / resume ------------------------------------------------------------------------------


def recording_set_paused(*, session: AgentSession, paused: bool) -> Recording:
    """Pause (e.g. while the customer reads a card number) or resume the recording of the agent's talk. The
    pause is a gap of silence in the audio and an entry on the call's timeline."""
    call = _current_talk(session)
    recording = Recording.objects.filter(call=call).first()
    if recording is None or recording.status not in (Status.IN_PROGRESS, Status.PAUSED):
        raise IllegalAction("this talk is not being recorded")
    wanted = Status.PAUSED if paused else Status.IN_PROGRESS
    if recording.status == wanted:
        raise IllegalAction("the recording is already paused" if paused else "the recording is not paused")
    gateway.set_call_recording_status(call_sid=call.sid, recording_sid=recording.sid or gateway.CURRENT_RECORDING,
                                      status="paused" if paused else "in-progress")
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording.pk)
        if locked.status in (Status.IN_PROGRESS, Status.PAUSED) and locked.status != wanted:
            locked.status = wanted
            locked.save(update_fields=["status"])
            who = session.agent.get_username()
            CallEvent.objects.create(call_id=call.pk, kind="RecordingPaused" if paused else "RecordingResumed",
                                     detail=f"by {who}")
            _publish(locked)
    return locked


# -- deleting -----------------------------------------------------------------------------------------------


def recording_delete(*, recording: Recording, by=None) -> Recording:
    """Delete the recording at Twilio, then mark it deleted here (the row stays as the record that it existed).
    Raises GatewayError when Twilio cannot be told: nothing changes here then, so it can be retried."""
    if recording.status in LIVE:
        raise IllegalAction("the talk is still being recorded")
    if recording.status == Status.DELETED:
        return recording
    if recording.sid:
        gateway.delete_recording(sid=recording.sid)
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording.pk)
        if locked.status != Status.DELETED:
            locked.status, locked.deleted_at, locked.media_url = Status.DELETED, timezone.now(), ""
            locked.save(update_fields=["status", "deleted_at", "media_url"])
            who = by.get_username() if by is not None else "retention"
            CallEvent.objects.create(call_id=locked.call_id, kind="RecordingDeleted", detail=f"by {who}")
            _publish(locked)
    return locked


def recordings_purge(*, older_than_days: int | None = None, now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete (at Twilio too) every finished recording older than the retention. Returns (deleted, failed)."""
    days = settings.RECORDING_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    due = Recording.objects.filter(created_at__lt=cutoff).exclude(status__in=[*LIVE, Status.DELETED]).order_by("pk")
    deleted = failed = 0
    for recording in due.iterator():
        try:
            recording_delete(recording=recording)
            deleted += 1
        except gateway.GatewayError as exc:
            failed += 1
            log.warning("could not purge recording %s: %s", recording.pk, exc)
    return deleted, failed


def _publish(recording: Recording) -> None:
    call = Call.objects.only("pk", "campaign_id", "bridged_to_id", "dialed_for_id").get(pk=recording.call_id)
    events.publish_recording(recording, call)
