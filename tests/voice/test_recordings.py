"""Recordings and supervision on PostgreSQL: the signed recording webhook (duplicates, out of order, before the REST
answer), one recording per talk under concurrent join events, consent announcements, the agent's notice settings,
retention purge, and the supervise API's refusals. Twilio's REST side is counted in-process here; the e2e tests
drive the real wire format through the sandbox."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core import signing
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from campaigns.consent import recording_announcement_for, us_state_for
from campaigns.models import Campaign
from tests import factories
from tests.live import at_once, threads_calling, wait_until
from voice import gateway, outbox, recordings, supervision
from voice.models import Call, CallEffect, CallEvent, Recording, Supervision, WebhookEvent
from voice.states import State

pytestmark = pytest.mark.django_db


@pytest.fixture
def twilio(monkeypatch):
    """The REST calls recordings make, counted (and scriptable) instead of sent. `lose_answer`: the next this many
    starts are carried out at Twilio but their answer never arrives (a timeout)."""
    calls = {"start": [], "delete": [], "fail_delete": set(), "lookups": [], "lose_answer": 0, "refuse": 0}

    def start(*, call_sid, status_callback, dual=True):
        if calls["refuse"]:  # a 503 before Twilio did anything
            calls["refuse"] -= 1
            raise gateway.GatewayError("Twilio 503", status=503, retryable=True)
        calls["start"].append(call_sid)
        if calls["lose_answer"]:
            calls["lose_answer"] -= 1
            raise gateway.Ambiguous("Twilio unreachable: read timed out", retryable=True)
        return gateway.RecordingInfo(sid=f"RE{len(calls['start']):032d}", status="in-progress", channels=2)

    def recordings_of(*, call_sid):
        calls["lookups"].append(call_sid)
        return [gateway.RecordingInfo(sid=f"RE{n:032d}", status="in-progress", channels=2)
                for n, sid in reversed(list(enumerate(calls["start"], 1))) if sid == call_sid]

    def delete(*, sid):
        if sid in calls["fail_delete"]:
            raise gateway.GatewayError("Twilio 503", status=503, retryable=True)
        calls["delete"].append(sid)

    monkeypatch.setattr(gateway, "start_call_recording", start)
    monkeypatch.setattr(gateway, "call_recordings", recordings_of)
    monkeypatch.setattr(gateway, "delete_recording", delete)
    return calls


def talk(*, record: bool = True, phone: str = "+14155550123") -> Call:
    campaign = factories.make_campaign(record_calls=record)
    contact = factories.make_contact(campaign=campaign, phone=phone)
    session = factories.make_session(campaign=campaign, agent_call_sid="CA" + "a" * 32)
    sid = "CA" + phone.lstrip("+").rjust(32, "0")
    return Call.objects.create(campaign=campaign, contact=contact, sid=sid, state=State.CONNECTED,
                               bridged_to=session, dialed_for=session)


def recording_params(sid: str, status: str, **extra) -> dict:
    return {"AccountSid": "AC" + "0" * 32, "CallSid": "CA" + "c" * 32, "RecordingSid": sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Recordings/{sid}",
            "RecordingStatus": status, "RecordingDuration": extra.pop("duration", "-1"), "RecordingChannels": "2",
            "RecordingSource": "StartCallRecordingAPI", **extra}


@pytest.mark.django_db(transaction=True)  # real concurrent transactions
def test_concurrent_join_events_start_one_recording(twilio):
    call = talk()
    results, errors = at_once(lambda: recordings.recording_start_for_call(call_id=call.pk), 4)
    assert errors == []
    assert Recording.objects.filter(call=call).count() == 1
    assert twilio["start"] == [call.sid]  # Twilio was asked once
    assert len({r.pk for r in results}) == 1
    assert Recording.objects.get(call=call).status == "in-progress"


def test_unrecorded_campaign_and_a_call_that_is_not_talking_record_nothing(twilio):
    assert recordings.recording_start_for_call(call_id=talk(record=False).pk) is None
    call = talk(phone="+14155550124")
    Call.objects.filter(pk=call.pk).update(state=State.ENDED)
    assert recordings.recording_start_for_call(call_id=call.pk) is None
    assert twilio["start"] == [] and not Recording.objects.exists()


def test_recording_webhook_is_idempotent_in_any_order(twilio, webhook):
    call = talk()
    Recording.objects.create(call=call)  # the REST answer has not come back yet: no sid
    sid = "RE" + "1" * 32
    # `completed` first, matched by the call id in the callback URL; then a late `in-progress`; then a duplicate.
    done = webhook("recording-status", recording_params(sid, "completed", duration="42"), query={"call": call.pk})
    assert done.status_code == 204
    late = webhook("recording-status", recording_params(sid, "in-progress"), query={"call": call.pk})
    again = webhook("recording-status", recording_params(sid, "completed", duration="42"), query={"call": call.pk})
    assert late.status_code == again.status_code == 204
    recording = Recording.objects.get(call=call)
    assert (recording.sid, recording.status, recording.duration_s) == (sid, "completed", 42)
    assert recording.media_url.endswith(sid) and recording.playable
    assert CallEvent.objects.filter(call=call, kind="RecordingCompleted").count() == 1
    assert not CallEvent.objects.filter(call=call, kind="RecordingInProgress").exists()
    assert set(WebhookEvent.objects.filter(kind="recording").values_list("status", flat=True)) == {"processed"}


def test_recording_webhook_refuses_forgeries_and_records_malformed_and_unknown(webhook):
    params = recording_params("RE" + "2" * 32, "completed")
    assert webhook("recording-status", params, signature="forged").status_code == 403
    assert not WebhookEvent.objects.exists()
    assert webhook("recording-status", {**params, "RecordingStatus": "exploded"}).status_code == 400
    assert webhook("recording-status", params).status_code == 204  # a recording we never started
    statuses = list(WebhookEvent.objects.order_by("pk").values_list("status", "error"))
    assert statuses[0][0] == "ignored" and "RecordingStatus" in statuses[0][1]
    assert statuses[1] == ("ignored", "unknown call")


def test_delete_and_purge_delete_at_twilio_first(twilio):
    old, recent, live, failing = (talk(phone=f"+1415555013{i}") for i in range(4))
    ago = timezone.now() - dt.timedelta(days=100)
    rows = {}
    for call, status, sid in ((old, "completed", "RE" + "3" * 32), (recent, "completed", "RE" + "4" * 32),
                              (live, "in-progress", "RE" + "5" * 32), (failing, "completed", "RE" + "6" * 32)):
        rows[call.pk] = Recording.objects.create(call=call, sid=sid, status=status, media_url="https://x/" + sid)
    Recording.objects.exclude(call=recent).update(created_at=ago)
    twilio["fail_delete"].add("RE" + "6" * 32)

    with pytest.raises(CommandError, match="1 recording"):
        call_command("purge_recordings", "--days", "90")
    assert twilio["delete"] == ["RE" + "3" * 32]
    statuses = {r.call_id: r.status for r in Recording.objects.all()}
    assert statuses == {old.pk: "deleted", recent.pk: "completed", live.pk: "in-progress", failing.pk: "completed"}
    assert Recording.objects.get(call=old).media_url == ""  # Twilio's URL is forgotten with it
    assert CallEvent.objects.filter(call=old, kind="RecordingDeleted", detail="by retention").exists()

    twilio["fail_delete"].clear()
    call_command("purge_recordings", "--days", "90")
    assert Recording.objects.get(call=failing).status == "deleted"
    with pytest.raises(Exception, match="still being recorded"):
        recordings.recording_delete(recording=Recording.objects.get(call=live))


def test_playback_is_for_managers_and_the_calls_agent(twilio):
    call = talk()
    recording = Recording.objects.create(call=call, sid="RE" + "7" * 32, status="completed", media_url="https://x")
    manager = factories.make_user(manager=True)
    assert recordings.access_recording(manager, recording.pk) == recording
    assert recordings.access_recording(call.bridged_to.agent, recording.pk) == recording
    colleague = factories.make_session(campaign=call.campaign).agent  # same campaign, not their call
    with pytest.raises(Exception, match="only managers and the agent"):
        recordings.access_recording(colleague, recording.pk)
    with pytest.raises(Exception, match="no such recording"):
        recordings.access_recording(manager, recording.pk + 1000)


@pytest.mark.parametrize(("phone", "policy", "heard"), [
    ("+14155550123", "two_party", True),   # California: all-party consent
    ("+12125550123", "two_party", False),  # New York: one-party
    ("+12125550123", "always", True),
    ("+14155550123", "never", False),
    ("+442071838750", "two_party", False),  # not a US number
])
def test_announcement_follows_the_contacts_state(phone, policy, heard):
    campaign = factories.make_campaign(record_calls=True, announce_recording=policy, recording_announcement="Recorded.")
    assert recording_announcement_for(campaign, phone) == ("Recorded." if heard else "")
    campaign.record_calls = False
    assert recording_announcement_for(campaign, phone) == ""


def test_states_from_numbers():
    assert [us_state_for(n) for n in ("+14155550123", "+12155550123", "+12065550123", "+12025550123")] == [
        "CA", "PA", "WA", "DC"]


def test_api_takes_record_calls_and_refuses_an_empty_required_announcement(client):
    manager = factories.make_user(manager=True)
    client.force_login(manager)
    base = {"name": "Recorded", "contacts": ["+14155550123"], "record_calls": True, "seller_name": "Acme",
            "opt_out_number": "+12025550199"}
    bad = client.post("/api/campaign", {**base, "announce_recording": "always", "recording_announcement": " "},
                      content_type="application/json")
    assert bad.status_code == 400 and "recording_announcement" in bad.json()["fields"]
    good = client.post("/api/campaign", {**base, "announce_recording": "always"}, content_type="application/json")
    assert good.status_code == 201, good.content
    created = Campaign.objects.get(name="Recorded")
    assert created.record_calls and created.recording_announcement


@pytest.mark.parametrize(("policy", "mode", "notice"), [
    ("all", "listen", "Mia Chen is listening to this call."),
    ("all", "whisper", "Mia Chen is coaching you: only you can hear them."),
    ("audible", "listen", ""),
    ("audible", "barge", "Mia Chen has joined the call: the customer hears them too."),
    ("off", "whisper", None),
])
def test_agent_notice_follows_the_setting(settings, policy, mode, notice):
    settings.SUPERVISION_NOTICE = policy
    call = talk()
    manager = factories.make_user(manager=True, first_name="Mia", last_name="Chen")
    row = Supervision.objects.create(call=call, manager=manager, mode=mode, joined_at=timezone.now())
    assert supervision.notice_for(row) == notice


def test_supervise_refusals(client):
    call = talk()
    manager = factories.make_user(manager=True)
    client.force_login(manager)
    url = f"/api/campaign/{call.campaign_id}/supervise"
    other = talk(phone="+14155550999")
    assert client.post(url, {"call_id": other.pk, "mode": "listen"},
                       content_type="application/json").status_code == 400  # not this campaign's call
    Call.objects.filter(pk=call.pk).update(state=State.ENDED)
    assert client.post(url, {"call_id": call.pk, "mode": "listen"},
                       content_type="application/json").status_code == 409  # no live talk
    assert client.delete(url).status_code == 409  # nothing to leave
    assert not Supervision.objects.exists()


# -- Twilio is asked from the outbox: after the join or leave commits, never on the webhook's thread ---------------


def room_event(webhook, call: Call, event: str):
    return webhook("conference-events", {
        "ConferenceSid": "CF" + "1" * 32, "FriendlyName": call.bridged_to.conference_room,
        "StatusCallbackEvent": event, "CallSid": call.sid, "SequenceNumber": "5", "AccountSid": "AC" + "0" * 32,
    }, query={"session": call.bridged_to_id})


@pytest.mark.django_db(transaction=True)
def test_a_recording_is_started_off_the_webhook_thread_once_the_join_committed(twilio, webhook, settings,
                                                                                monkeypatch):
    settings.OUTBOX_INLINE = False
    threads = threads_calling(monkeypatch, gateway, "start_call_recording")
    call = talk()
    assert room_event(webhook, call, "participant-join").status_code == 204
    assert wait_until(lambda: Recording.objects.get(call=call).status == "in-progress")
    assert twilio["start"] == [call.sid] and threads and all(name.startswith("outbox") for name in threads)
    assert wait_until(lambda: CallEffect.objects.get(call=call, kind=outbox.START_RECORDING).status == "done")


def due(effect: CallEffect, *, status: str | None = None) -> None:
    """The effect's backoff has passed, and its previous attempt began long enough ago that its request can no
    longer reach Twilio (given a status: it was left in it, as a sender that died leaves it)."""
    ago = timezone.now() - dt.timedelta(minutes=1)
    fields = {"status": status, "attempts": 1} if status else {}
    CallEffect.objects.filter(pk=effect.pk).update(not_before=ago, started_at=ago, **fields)


@pytest.mark.django_db(transaction=True)
def test_a_recording_start_lost_in_a_crash_is_sent_by_the_sweep_and_a_half_sent_one_never_twice(twilio, webhook,
                                                                                                 monkeypatch):
    monkeypatch.setattr(outbox, "submit", lambda effect_id, delay_s=0.0: None)  # died right after each commit
    later = timezone.now() + dt.timedelta(seconds=2)
    lost = talk()
    room_event(webhook, lost, "participant-join")
    assert Recording.objects.get(call=lost).status == "starting" and twilio["start"] == []
    assert outbox.effects_sweep(now=later) == 1  # any surviving worker sends it
    assert twilio["start"] == [lost.sid] and Recording.objects.get(call=lost).status == "in-progress"
    assert outbox.effects_sweep(now=later) == 0
    assert twilio["lookups"] == []  # a first attempt is sent without looking

    # Died mid-request, after Twilio started recording: a second start would record the talk twice (a copy we
    # would never delete). The call's recordings are looked up first, and the one found is adopted.
    half = talk(phone="+14155550125")
    room_event(webhook, half, "participant-join")
    effect = CallEffect.objects.get(call=half, kind=outbox.START_RECORDING)
    twilio["start"].append(half.sid)  # what the dead sender's request did at Twilio
    CallEffect.objects.filter(pk=effect.pk).update(status="sending", started_at=timezone.now(), attempts=1)
    outbox.effects_sweep(now=later)
    # Taken over at once, but that request could still be on its way: nothing is looked up or sent until it can't.
    effect.refresh_from_db()
    assert (effect.status, effect.attempts) == ("pending", 1) and twilio["lookups"] == []
    due(effect)
    outbox.effects_sweep(now=later)
    effect.refresh_from_db()
    assert effect.status == "done" and "found at Twilio" in effect.result
    assert twilio["start"] == [lost.sid, half.sid] and twilio["lookups"] == [half.sid]
    recording = Recording.objects.get(call=half)
    assert (recording.sid, recording.status) == (f"RE{2:032d}", "in-progress")

    # Died mid-request before Twilio heard of it: nothing found, so it is sent now.
    unheard = talk(phone="+14155550126")
    room_event(webhook, unheard, "participant-join")
    effect = CallEffect.objects.get(call=unheard, kind=outbox.START_RECORDING)
    due(effect, status="sending")
    outbox.effects_sweep(now=later)
    assert twilio["start"].count(unheard.sid) == 1 and Recording.objects.get(call=unheard).status == "in-progress"


@pytest.mark.django_db(transaction=True)  # the effect runs once the join commits
def test_a_start_whose_answer_was_lost_is_looked_up_not_sent_twice(twilio, webhook):
    twilio["lose_answer"] = 1  # Twilio records, the answer times out
    call = talk()
    room_event(webhook, call, "participant-join")
    effect = CallEffect.objects.get(call=call, kind=outbox.START_RECORDING)
    assert effect.status == "pending" and effect.attempts == 1 and "timed out" in effect.result
    assert Recording.objects.get(call=call).status == "starting"  # not failed: it may well be recording
    CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now())
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=1))  # too soon to look: put back, not counted
    effect.refresh_from_db()
    assert (effect.status, effect.attempts) == ("pending", 1) and twilio["lookups"] == []
    due(effect)
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=1))
    effect.refresh_from_db()
    assert effect.status == "done" and effect.attempts == 2
    assert twilio["start"] == [call.sid] and twilio["lookups"] == [call.sid]
    assert Recording.objects.get(call=call).status == "in-progress"
    # Twilio's callbacks then find the row they expect.
    webhook("recording-status", recording_params(f"RE{1:032d}", "completed", duration="30"), query={"call": call.pk})
    assert Recording.objects.get(call=call).playable


@pytest.mark.django_db(transaction=True)
def test_a_start_that_never_gets_an_answer_fails_in_the_end(twilio, webhook, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    twilio["lose_answer"] = 5
    call = talk()
    room_event(webhook, call, "participant-join")
    effect = CallEffect.objects.get(call=call, kind=outbox.START_RECORDING)
    twilio["start"].clear()  # this time Twilio never got it: the lookup finds nothing, the start is sent again
    due(effect)
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=1))
    effect.refresh_from_db()
    recording = Recording.objects.get(call=call)
    assert effect.status == "failed" and effect.attempts == 2
    assert recording.status == "failed" and "timed out" in recording.error
    # Twilio did record after all (the last start's answer was lost too): its word wins over our belief.
    sid = "RE" + "9" * 32
    webhook("recording-status", recording_params(sid, "in-progress"), query={"call": call.pk})
    recording.refresh_from_db()
    assert (recording.sid, recording.status) == (sid, "in-progress")


@pytest.mark.django_db(transaction=True)
def test_a_retried_start_adopts_what_twilios_callback_already_said(twilio, webhook):
    twilio["lose_answer"] = 1
    call = talk()
    room_event(webhook, call, "participant-join")
    sid = "RE" + "7" * 32
    webhook("recording-status", recording_params(sid, "in-progress"), query={"call": call.pk})
    effect = CallEffect.objects.get(call=call, kind=outbox.START_RECORDING)
    due(effect)
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=1))
    effect.refresh_from_db()
    assert effect.status == "done" and twilio["lookups"] == [] and twilio["start"] == [call.sid]
    assert Recording.objects.get(call=call).sid == sid


def test_a_talk_over_before_its_recording_left_is_not_recorded(twilio, webhook, monkeypatch):
    monkeypatch.setattr(outbox, "submit", lambda effect_id, delay_s=0.0: None)
    call = talk()
    room_event(webhook, call, "participant-join")
    Call.objects.filter(pk=call.pk).update(state=State.ENDED)  # the customer hung up before the sweep came
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=2))
    assert twilio["start"] == [] and Recording.objects.get(call=call).status == "absent"
    assert CallEffect.objects.get(call=call, kind=outbox.START_RECORDING).status == "skipped"


@pytest.mark.django_db(transaction=True)
def test_supervisors_leave_with_the_customer_after_the_leave_committed_and_again_if_twilio_failed(
        webhook, monkeypatch):
    call = talk(record=False)
    manager = factories.make_user(manager=True)
    row = Supervision.objects.create(call=call, manager=manager, mode="listen", leg_sid="CA" + "9" * 32,
                                     conference_sid="CF" + "1" * 32, joined_at=timezone.now())
    # A second manager's softphone is still dialing in: once the talk is over it must be refused, not slip in
    # after the others were taken out.
    latecomer = factories.make_user(manager=True)
    dialing = Supervision.objects.create(call=call, manager=latecomer, mode="listen")
    ticket = signing.dumps({"s": dialing.pk, "m": latecomer.pk}, salt=supervision.SIGNING_SALT)
    removed, failures = [], [gateway.GatewayError("Twilio 503", status=503, retryable=True)]

    def hang_up(*, sid, ringing_only=False):
        # Never inside the webhook's transaction: it holds the call's lock, and Twilio can take seconds.
        assert not connection.in_atomic_block
        if failures:
            raise failures.pop()
        removed.append(sid)

    monkeypatch.setattr(gateway, "hangup_call", hang_up)
    assert room_event(webhook, call, "participant-leave").status_code == 204
    effect = CallEffect.objects.get(call=call, kind=outbox.TAKE_OUT_SUPERVISORS)
    assert effect.status == "pending" and "503" in effect.result  # Twilio failed: tried again after a backoff
    # Ended before Twilio was asked (the manager's page says so at once); the leg still to be taken out.
    assert Supervision.objects.get(pk=row.pk).ended_at is not None and removed == []
    assert supervision.supervisor_dialed(ticket=ticket, identity=supervision.supervisor_identity(latecomer),
                                         call_sid="CA" + "8" * 32) is None
    CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now())  # its backoff has passed
    outbox.effects_sweep(now=timezone.now() + dt.timedelta(seconds=1))
    effect.refresh_from_db()
    assert effect.status == "done" and effect.attempts == 2 and removed == [row.leg_sid]
    assert not Supervision.objects.filter(call=call, ended_at__isnull=True).exists()

    # The same leave event again (Twilio retries): nobody left to take out, nothing asked of Twilio.
    assert room_event(webhook, call, "participant-leave").status_code == 204
    assert CallEffect.objects.filter(call=call, kind=outbox.TAKE_OUT_SUPERVISORS).count() == 1
    assert removed == [row.leg_sid]


@pytest.mark.django_db(transaction=True)
def test_a_start_refused_at_first_is_sent_once_its_wait_is_over_however_often_it_was_put_back(
        twilio, webhook, settings, monkeypatch):
    """Each early run puts it back uncounted; the wait still runs from the attempt that was sent, so it ends."""
    settings.TWILIO_HTTP_TIMEOUT_S = 0.3
    monkeypatch.setattr(recordings, "LOOKUP_MARGIN_S", 0.0)
    twilio["refuse"] = 1
    call = talk()
    room_event(webhook, call, "participant-join")
    effect = CallEffect.objects.get(call=call, kind=outbox.START_RECORDING)
    assert (effect.status, effect.attempts) == ("pending", 1)
    for _ in range(2):  # early (0.2 s after the refused start), then on time (0.4 s): the wait is 0.3 s from it
        time.sleep(0.2)
        CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now())
        ran = outbox.effect_run(effect_id=effect.pk)
        if ran == "done":  # (at once if this machine was slow enough to make the first run late)
            break
    assert ran == "done"
    effect.refresh_from_db()
    assert effect.attempts == 2 and twilio["lookups"] == [call.sid] and twilio["start"] == [call.sid]
    assert Recording.objects.get(call=call).status == "in-progress"
