"""Signed webhook fixtures through the real views, with Twilio's REST replaced by a local fake."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from django.db import transaction
from django.utils import timezone

from campaigns.exceptions import IllegalAction
from campaigns.models import AgentSession, Contact, DoNotCall
from tests.live import wait_until
from voice import floor as floor_services
from voice import states
from voice.models import Call, CallEvent, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

MACHINE_VALUES = ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"]


def place(session) -> Call:
    [call] = floor_services.dial_next(session=session)
    call.refresh_from_db()
    return call


def params_for(call: Call, **extra) -> dict:
    base = {"CallSid": call.sid, "AccountSid": "AC" + "0" * 32, "From": "+12025550199", "To": call.contact.phone,
            "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
    return {**base, **extra}


def status(webhook, call, value, seq, **extra):
    return webhook("status", params_for(call, CallStatus=value, SequenceNumber=str(seq), **extra),
                   query={"call": call.pk})


def answer(webhook, call):
    return webhook("customer-queue", params_for(call, CallStatus="in-progress"), query={"call": call.pk})


def amd(webhook, call, value):
    return webhook("amd-status", {"CallSid": call.sid, "AccountSid": "AC" + "0" * 32, "AnsweredBy": value,
                                  "MachineDetectionDuration": "2300"}, query={"call": call.pk})


def wait_for(predicate, timeout_s=5.0):
    return wait_until(predicate, timeout_s=timeout_s)


def twiml_verbs(response) -> list[str]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Response"
    return [child.tag for child in root.iter() if child is not root]


def test_create_asks_for_async_amd_and_every_status_event(floor, fake_twilio):
    campaign, session = floor
    call = place(session)
    [create] = fake_twilio.creates()
    form = create.form
    assert form["MachineDetection"] == ["DetectMessageEnd"]
    assert form["AsyncAmd"] == ["true"]
    assert sorted(form["StatusCallbackEvent"]) == ["answered", "completed", "initiated", "ringing"]
    assert form["Timeout"] == [str(campaign.ring_timeout_s)]
    assert form["To"] == [call.contact.phone]
    assert urlsplit(form["AsyncAmdStatusCallback"][0]).path == "/api/voice/amd-status"
    assert call.sid.startswith("CA") and call.state == states.State.DIALING


def test_human_is_bridged_into_the_agents_room_and_the_talk_ends_in_wrap_up(floor, fake_twilio, webhook):
    campaign, session = floor
    call = place(session)
    assert status(webhook, call, "initiated", 0).status_code == 204
    assert status(webhook, call, "ringing", 1).status_code == 204
    hold = answer(webhook, call)
    assert twiml_verbs(hold) == ["Play"]
    assert amd(webhook, call, "human").status_code == 204
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.state == states.State.BRIDGING and call.bridged_to == session
    assert session.state == AgentSession.State.ON_CALL
    assert wait_for(lambda: fake_twilio.updates(call.sid))
    [redirect] = fake_twilio.updates(call.sid)
    assert urlsplit(redirect.form["Url"][0]).path == "/api/voice/customer-join-conference"
    join = webhook("customer-join-conference", params_for(call, CallStatus="in-progress"), query={"call": call.pk})
    assert twiml_verbs(join)[:2] == ["Dial", "Conference"]
    assert session.conference_room.encode() in join.content
    webhook("conference-events", {"ConferenceSid": "CF1", "FriendlyName": session.conference_room,
                                  "StatusCallbackEvent": "participant-join", "CallSid": call.sid,
                                  "SequenceNumber": "3", "AccountSid": "AC" + "0" * 32}, query={"session": session.pk})
    call.refresh_from_db()
    assert call.state == states.State.CONNECTED
    status(webhook, call, "completed", 4, CallDuration="95")
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.state == states.State.ENDED and call.outcome == "talked" and call.duration_s == 95
    assert session.state == AgentSession.State.WRAP_UP
    floor_services.disposition_record(session=session, code="interested", notes="wants a demo")
    session.refresh_from_db()
    assert session.state == AgentSession.State.READY
    assert Contact.objects.get(pk=call.contact_id).status == Contact.Status.DONE
    # Every step is on the audit log.
    kinds = list(CallEvent.objects.filter(call=call).values_list("kind", flat=True))
    assert kinds[0] == "Placed" and "AmdVerdict" in kinds and kinds[-1] == "Status"


@pytest.mark.parametrize("value", MACHINE_VALUES)
def test_machines_are_never_bridged(floor, fake_twilio, webhook, value):
    campaign, session = floor
    call = place(session)
    status(webhook, call, "ringing", 1)
    answer(webhook, call)
    amd(webhook, call, value)
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.bridged_to is None
    assert session.state == AgentSession.State.READY
    assert wait_for(lambda: fake_twilio.updates(call.sid))
    [hangup] = fake_twilio.updates(call.sid)
    assert hangup.form == {"Status": ["completed"]}
    status(webhook, call, "completed", 3, CallDuration="12")
    call.refresh_from_db()
    assert call.outcome == ("fax" if value == "fax" else "machine")
    assert call.answered_by == value


@pytest.mark.parametrize("value", ["machine_end_beep", "machine_end_silence", "machine_end_other"])
def test_voicemail_drop_after_the_greeting(floor, fake_twilio, webhook, value):
    campaign, session = floor
    campaign.voicemail_drop = True
    campaign.voicemail_text = "Hi, this is Dana from Acme, call me back on 202 555 0199."
    campaign.save()
    call = place(session)
    answer(webhook, call)
    amd(webhook, call, value)
    assert wait_for(lambda: fake_twilio.updates(call.sid))
    [redirect] = fake_twilio.updates(call.sid)
    assert urlsplit(redirect.form["Url"][0]).path == "/api/voice/voicemail"
    message = webhook("voicemail", params_for(call, CallStatus="in-progress"), query={"call": call.pk})
    assert twiml_verbs(message) == ["Say", "Hangup"]
    assert b"Dana from Acme" in message.content
    status(webhook, call, "completed", 4)
    call.refresh_from_db()
    assert call.outcome == "voicemail_left"


@pytest.mark.parametrize(("value", "outcome", "retry_field"), [
    ("no-answer", "no_answer", "retry_no_answer_min"), ("busy", "busy", "retry_busy_min"),
    ("failed", "failed", "retry_failed_min"), ("canceled", "canceled", None),
])
def test_unanswered_calls_end_and_the_contact_is_retried(floor, webhook, value, outcome, retry_field):
    campaign, session = floor
    call = place(session)
    status(webhook, call, "ringing", 1)
    status(webhook, call, value, 2)
    call.refresh_from_db()
    contact = Contact.objects.get(pk=call.contact_id)
    assert call.state == states.State.ENDED and call.outcome == outcome
    assert contact.status == Contact.Status.PENDING
    if retry_field:
        wait_min = (contact.next_attempt_at - call.ended_at).total_seconds() / 60
        assert abs(wait_min - getattr(campaign, retry_field)) < 1


def test_human_with_no_agent_hears_the_safe_harbor_message(floor, fake_twilio, webhook):
    campaign, session = floor
    floor_services.agent_pause(session=session, reason="coffee")
    call = Call.objects.get(pk=floor_services.dial_next(session=session)[0].pk)
    floor_services.agent_pause(session=session, reason="coffee")
    answer(webhook, call)
    amd(webhook, call, "human")
    # The hold limit is 2 s; the message must start inside it.
    assert wait_for(lambda: Call.objects.get(pk=call.pk).outcome == "abandoned", timeout_s=3)
    def redirected_to_safe_harbor():
        urls = [r.form.get("Url", [""])[0] for r in fake_twilio.updates(call.sid)]
        return any(urlsplit(url).path == "/api/voice/safe-harbor" for url in urls)

    assert wait_for(redirected_to_safe_harbor)
    message = webhook("safe-harbor", params_for(call, CallStatus="in-progress"), query={"call": call.pk})
    assert twiml_verbs(message) == ["Say", "Hangup"]
    status(webhook, call, "completed", 5)
    contact = Contact.objects.get(pk=call.contact_id)
    assert Call.objects.get(pk=call.pk).outcome == "abandoned"
    assert contact.priority >= 100  # called back first


def test_redirect_that_fails_because_the_callee_hung_up_frees_the_agent(floor, fake_twilio, webhook):
    campaign, session = floor
    call = place(session)
    fake_twilio.ended.add(call.sid)
    answer(webhook, call)
    amd(webhook, call, "human")
    assert wait_for(lambda: Call.objects.get(pk=call.pk).state == states.State.ENDED)
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.outcome == "hung_up_on_hold"
    assert session.state == AgentSession.State.READY


def test_invalid_number_marks_the_contact_invalid(floor, fake_twilio):
    campaign, session = floor
    contact = Contact.objects.filter(campaign=campaign).order_by("id").first()
    fake_twilio.invalid_numbers.add(contact.phone)
    [call] = floor_services.dial_next(session=session)
    call.refresh_from_db()
    contact.refresh_from_db()
    assert call.state == states.State.ENDED and call.outcome == "invalid_number"
    assert contact.status == Contact.Status.INVALID


def test_dnc_numbers_are_never_dialed(floor, fake_twilio):
    campaign, session = floor
    for contact in Contact.objects.filter(campaign=campaign):
        DoNotCall.objects.create(phone=contact.phone)
    with pytest.raises(IllegalAction):
        floor_services.dial_next(session=session)
    assert fake_twilio.creates() == []


# -- signatures --------------------------------------------------------------------------------------


def test_unsigned_and_forged_webhooks_are_refused_and_change_nothing(floor, webhook):
    campaign, session = floor
    call = place(session)
    before = (call.state, call.version)
    params = params_for(call, CallStatus="completed", SequenceNumber="9")
    assert webhook("status", params, query={"call": call.pk}, signature="").status_code == 403
    assert webhook("status", params, query={"call": call.pk}, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert webhook("customer-queue", params, query={"call": call.pk}, signature="").status_code == 403
    call.refresh_from_db()
    assert (call.state, call.version) == before
    assert WebhookEvent.objects.count() == 0


def test_a_signature_replayed_with_other_params_is_refused(floor, webhook):
    from tests.conftest import sign

    campaign, session = floor
    call = place(session)
    genuine = params_for(call, CallStatus="ringing", SequenceNumber="1")
    signature = sign(f"/api/voice/status?call={call.pk}", genuine)
    tampered = {**genuine, "CallStatus": "completed"}
    assert webhook("status", tampered, query={"call": call.pk}, signature=signature).status_code == 403
    other_call = webhook("status", genuine, query={"call": call.pk + 1}, signature=signature)
    assert other_call.status_code == 403
    assert webhook("status", genuine, query={"call": call.pk}, signature=signature).status_code == 204


# -- bad input ------------------------------------------------------------------------------------------


def test_unknown_call_gets_polite_twiml(webhook, db):
    response = webhook("customer-queue", {"CallSid": "CA" + "f" * 32, "CallStatus": "in-progress"},
                       query={"call": 999999})
    assert twiml_verbs(response) == ["Say", "Hangup"]


def test_malformed_status_is_a_400_and_malformed_voice_is_still_twiml(floor, webhook):
    campaign, session = floor
    call = place(session)
    bad = webhook("status", params_for(call, CallStatus="exploded", SequenceNumber="1"), query={"call": call.pk})
    assert bad.status_code == 400
    bad_seq = webhook("status", params_for(call, CallStatus="ringing", SequenceNumber="x"), query={"call": call.pk})
    assert bad_seq.status_code == 400
    assert twiml_verbs(webhook("customer-queue", {}, query={"call": "nope"})) == ["Say", "Hangup"]
    call.refresh_from_db()
    assert call.state == states.State.DIALING


def test_ended_call_fetching_twiml_gets_a_polite_goodbye(floor, webhook):
    campaign, session = floor
    call = place(session)
    status(webhook, call, "no-answer", 2)
    assert twiml_verbs(answer(webhook, call)) == ["Say", "Hangup"]


def test_duplicates_are_stored_and_applied_once(floor, webhook):
    campaign, session = floor
    call = place(session)
    for _ in range(3):
        status(webhook, call, "ringing", 1)
    call.refresh_from_db()
    assert call.version == 2  # created -> dialing -> ringing
    rows = WebhookEvent.objects.filter(call_sid=call.sid, kind="status")
    assert sorted(rows.values_list("status", flat=True)) == ["duplicate", "duplicate", "processed"]


def test_a_late_verdict_filling_the_blank_is_a_new_version_of_the_call(floor, webhook):
    """Pages keep the highest version of a call they have seen: a verdict that arrives after the call ended (and
    only fills in who answered) must not share a version with the ending, or a page could keep the older one."""
    campaign, session = floor
    call = place(session)
    status(webhook, call, "ringing", 1)
    answer(webhook, call)
    status(webhook, call, "completed", 3, CallDuration="4")
    call.refresh_from_db()
    ended = (call.state, call.version, call.answered_by)
    amd(webhook, call, "machine_end_beep")
    call.refresh_from_db()
    assert ended[0] == call.state == "ended" and ended[2] == ""
    assert (call.answered_by, call.version) == ("machine_end_beep", ended[1] + 1)


def test_agent_softphone_leg_joins_the_room(floor, webhook):
    campaign, session = floor
    session.in_room = False
    session.save()
    response = webhook("dial", {"CallSid": "CA" + "a" * 32, "From": f"client:agent-{session.agent_id}",
                                "session": str(session.pk), "CallStatus": "ringing", "Direction": "inbound"})
    assert twiml_verbs(response)[:2] == ["Dial", "Conference"]
    session.refresh_from_db()
    assert session.in_room and session.agent_call_sid == "CA" + "a" * 32
    impostor = webhook("dial", {"CallSid": "CA" + "b" * 32, "From": "client:agent-999999",
                                "session": str(session.pk)})
    assert twiml_verbs(impostor) == ["Say", "Hangup"]


def test_status_callback_url_carries_the_call_id(floor, fake_twilio):
    campaign, session = floor
    call = place(session)
    [create] = fake_twilio.creates()
    query = parse_qs(urlsplit(create.form["StatusCallback"][0]).query)
    assert query == {"call": [str(call.pk)]}


def test_failed_conference_redirect_frees_the_agent_and_plays_the_safe_harbor_message(floor, fake_twilio, webhook):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    fake_twilio.fail_updates.add(call.sid)  # Twilio answers 500 to the redirect, every retry
    amd(webhook, call, "human")
    assert wait_for(lambda: Call.objects.get(pk=call.pk).outcome == "abandoned")
    session.refresh_from_db()
    assert session.state == AgentSession.State.READY
    status(webhook, call, "completed", 5)
    assert Call.objects.get(pk=call.pk).state == states.State.ENDED
    assert AgentSession.objects.get(pk=session.pk).state == AgentSession.State.READY


def test_ending_a_campaign_gives_a_human_on_hold_the_safe_harbor_message(floor, fake_twilio, webhook, manager):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)  # on hold, AMD still deciding
    floor_services.campaign_set_status(campaign=campaign, status="ended", by=manager)
    call.refresh_from_db()
    assert call.outcome == "abandoned" and call.state == states.State.RELEASING
    assert wait_for(lambda: any(urlsplit(r.form.get("Url", [""])[0]).path == "/api/voice/safe-harbor"
                                for r in fake_twilio.updates(call.sid)))


def test_a_release_during_a_failing_create_ends_the_call(floor, fake_twilio, monkeypatch):
    from voice import gateway, outbox
    from voice import services as call_services
    from voice.models import CallEffect

    campaign, session = floor
    contact = Contact.objects.filter(campaign=campaign).first()
    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(status=Contact.Status.DIALING)
        call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session)
    effect = CallEffect.objects.create(call=call, kind=outbox.CREATE, not_before=timezone.now())
    fake_twilio.invalid_numbers.add(contact.phone)
    create = gateway.create_call

    def released_while_in_flight(**kwargs):
        call_services.call_apply(call_id=call.pk, fact=states.Release())
        return create(**kwargs)

    monkeypatch.setattr(gateway, "create_call", released_while_in_flight)
    outbox.effect_run(effect_id=effect.pk)
    call.refresh_from_db()
    assert call.state == states.State.ENDED and call.outcome == "invalid_number"
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.INVALID


def test_a_callback_that_beats_the_rest_answer_fills_in_the_sid(floor, webhook):
    """Twilio can call back before its answer to the create (which carries the SID) is stored: the callback's own
    CallSid fills the blank, so the next callbacks (found by SID too) and a hang-up find the call."""
    _, session = floor
    call = place(session)
    sid = call.sid
    Call.objects.filter(pk=call.pk).update(sid=None)
    call.sid = sid
    status(webhook, call, "ringing", 1)
    call.refresh_from_db()
    assert (call.sid, call.state) == (sid, "ringing")


def test_a_callback_with_an_unknown_call_id_is_applied_to_the_call_its_sid_names(floor, webhook):
    _, session = floor
    call = place(session)
    response = webhook("status", params_for(call, CallStatus="ringing", SequenceNumber="1"), query={"call": 999999})
    assert response.status_code == 204
    call.refresh_from_db()
    assert call.state == "ringing"
    assert WebhookEvent.objects.get(call_sid=call.sid, kind="status").status == WebhookEvent.Processing.PROCESSED


def test_a_callback_for_no_call_at_all_is_kept_as_ignored(webhook, db):
    params = {"CallSid": "CA" + "f" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    response = webhook("status", params, query={"call": 999999})
    assert response.status_code == 204
    row = WebhookEvent.objects.get(call_sid=params["CallSid"])
    assert (row.status, row.error, row.attempts) == (WebhookEvent.Processing.IGNORED, "unknown call", 1)


def test_a_voice_url_fetched_twice_is_answered_twice_and_kept_as_a_duplicate(floor, webhook):
    _, session = floor
    call = place(session)
    status(webhook, call, "ringing", 1)
    token = {"I-Twilio-Idempotency-Token": "tok-twice"}
    first = webhook("customer-queue", params_for(call, CallStatus="in-progress"), query={"call": call.pk},
                    headers=token)
    again = webhook("customer-queue", params_for(call, CallStatus="in-progress"), query={"call": call.pk},
                    headers=token)
    assert twiml_verbs(first) == twiml_verbs(again)  # the same answer, by the call's state
    rows = WebhookEvent.objects.filter(call_sid=call.sid, kind="voice").order_by("pk")
    assert [(row.status, row.attempts) for row in rows] == [("processed", 1), ("duplicate", 0)]
