"""The reconciler closes every non-terminal call, whatever Twilio answers (PostgreSQL, Twilio replaced by a fake
that answers 404 for calls it forgot, lists calls by number and drops the answer to a create on request)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from campaigns.models import AgentSession, Contact
from tests import factories
from tests.voice.test_webhooks import amd, answer, place
from voice import outbox, reconcile, recovery, states
from voice.models import Call, CallEffect

pytestmark = pytest.mark.django_db(transaction=True)

State = states.State


def quiet_for(call: Call, seconds: float = 3600) -> None:
    Call.objects.filter(pk=call.pk).update(last_event_at=timezone.now() - dt.timedelta(seconds=seconds))


def redirects(fake_twilio, call) -> list[str]:
    return [urlsplit(r.form["Url"][0]).path for r in fake_twilio.updates(call.sid) if "Url" in r.form]


def test_calls_twilio_forgot_are_closed_with_a_reason_and_their_contacts_released(fake_twilio):
    """The issue's reproduction: three dialing calls Twilio answers 404 for."""
    campaign = factories.make_campaign(min_ring_s=0, lines_per_agent=3)
    for _ in range(3):
        factories.make_contact(campaign=campaign)
    session = factories.make_session(campaign=campaign)
    from voice import floor as campaign_services

    calls = campaign_services.dial_next(session=session)
    assert len(calls) == 3
    for call in calls:
        call.refresh_from_db()
        assert call.state == State.DIALING
        fake_twilio.forgotten.add(call.sid)
        quiet_for(call)
    assert reconcile.calls_reconcile() == 3
    for call in calls:
        call.refresh_from_db()
        assert call.state == State.ENDED and call.outcome == "canceled"
        assert "does not know the call" in call.error
        contact = Contact.objects.get(pk=call.contact_id)
        assert contact.status == Contact.Status.PENDING and contact.attempts == 0  # dialable again at once


def test_a_restart_reconciles_every_live_call_at_once_not_only_overdue_ones(floor, fake_twilio, webhook):
    """A restarted demo: the sandbox forgot everything; the worker's start-up pass leaves no phantom line."""
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    amd(webhook, call, "human")  # a talk in progress when everything stopped
    fake_twilio.forgotten.add(call.sid)
    assert reconcile.calls_reconcile() == 0  # not overdue: the periodic pass leaves it alone
    recovery.recovery_start()
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.state == State.ENDED
    assert session.state != AgentSession.State.ON_CALL  # the agent is not stuck on a phantom call


def test_a_person_stuck_in_bridging_gets_the_redirect_again_then_the_safe_harbor_message(floor, fake_twilio,
                                                                                          webhook):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    fake_twilio.statuses[call.sid] = "in-progress"
    amd(webhook, call, "human")
    call.refresh_from_db()
    assert call.state == State.BRIDGING
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"]
    # Twilio accepted the redirect but the leg never joined (a lost request, a carrier hiccup).
    quiet_for(call, 30)
    assert reconcile.calls_reconcile() == 0
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"] * 2
    quiet_for(call, 30)
    assert reconcile.calls_reconcile() == 1
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.state == State.RELEASING and call.outcome == "abandoned"
    assert redirects(fake_twilio, call)[-1] == "/api/voice/safe-harbor"
    assert session.state == AgentSession.State.READY  # freed for the next customer
    assert "giving up" in call.error


def test_a_voicemail_stuck_in_progress_gets_its_redirect_again_then_is_hung_up(floor, fake_twilio, webhook):
    campaign, session = floor
    campaign.voicemail_drop, campaign.voicemail_text = True, "Hello, sorry we missed you."
    campaign.save()
    call = place(session)
    answer(webhook, call)
    fake_twilio.statuses[call.sid] = "in-progress"
    amd(webhook, call, "machine_end_beep")
    call.refresh_from_db()
    assert call.state == State.VOICEMAIL
    quiet_for(call)
    reconcile.calls_reconcile()
    assert redirects(fake_twilio, call) == ["/api/voice/voicemail"] * 2
    quiet_for(call)
    reconcile.calls_reconcile()
    call.refresh_from_db()
    assert call.state == State.RELEASING
    assert fake_twilio.statuses[call.sid] == "completed"


@pytest.mark.parametrize(("policy", "expected"), [("machine", State.RELEASING), ("connect", State.BRIDGING)])
def test_answered_with_no_verdict_follows_the_campaigns_unknown_policy(floor, fake_twilio, webhook, policy,
                                                                       expected):
    campaign, session = floor
    campaign.amd_unknown_policy = policy
    campaign.save()
    call = place(session)
    answer(webhook, call)
    fake_twilio.statuses[call.sid] = "in-progress"  # the AMD callback was lost
    quiet_for(call)
    assert reconcile.calls_reconcile() == 1
    call.refresh_from_db()
    assert call.state == expected and call.answered_by == "unknown"


def test_a_create_with_no_answer_is_looked_up_and_adopted_not_dialed_again(floor, fake_twilio):
    campaign, session = floor
    contact = Contact.objects.filter(campaign=campaign).order_by("-priority", "id").first()
    fake_twilio.drop_create_answer.add(contact.phone)  # Twilio placed it; we never heard so
    call = place(session)
    assert call.contact_id == contact.pk
    assert call.state == State.CREATED and not call.sid and "unreachable" in call.error
    assert CallEffect.objects.get(call=call, kind=outbox.CREATE).status == CallEffect.Status.AMBIGUOUS
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.DIALING  # not dialable meanwhile
    [placed] = [sid for sid, to in fake_twilio.to.items() if to == contact.phone]
    fake_twilio.statuses[placed] = "ringing"
    quiet_for(call)
    reconcile.calls_reconcile()
    call.refresh_from_db()
    assert call.sid == placed and call.state == State.DIALING
    assert len(fake_twilio.creates()) == 1  # never created twice


def test_a_create_that_failed_with_a_5xx_and_placed_nothing_is_closed_after_the_lookup(floor, fake_twilio):
    campaign, session = floor
    fake_twilio.fail_creates_with = 500
    call = place(session)
    assert call.state == State.CREATED
    quiet_for(call)
    assert reconcile.calls_reconcile() == 1
    call.refresh_from_db()
    assert call.state == State.ENDED and call.outcome == "failed"
    assert Contact.objects.get(pk=call.contact_id).status == Contact.Status.PENDING


def test_a_lost_hangup_is_sent_again(floor, fake_twilio, webhook):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    fake_twilio.statuses[call.sid] = "in-progress"
    CallEffect.objects.all().delete()
    # Hanging up a machine, with the request lost on the way (the row is gone with it).
    from voice import services

    services.call_hangup(call=call, outcome=states.Outcome.MACHINE)
    fake_twilio.statuses[call.sid] = "in-progress"
    CallEffect.objects.filter(call=call).update(status=CallEffect.Status.DONE)
    quiet_for(call)
    reconcile.calls_reconcile()
    assert CallEffect.objects.filter(call=call, kind=states.Effect.HANGUP).count() == 2
    assert fake_twilio.statuses[call.sid] == "completed"


def test_a_talk_whose_hang_up_was_lost_frees_the_agent_after_the_margin(floor, fake_twilio, webhook, settings):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    amd(webhook, call, "human")
    services_join(webhook, call, session)
    call.refresh_from_db()
    assert call.state == State.CONNECTED
    fake_twilio.statuses[call.sid] = "completed"  # the customer hung up; both callbacks were lost
    quiet_for(call, settings.RECONCILE_MARGIN_S + 1)
    assert reconcile.calls_reconcile() == 1
    call.refresh_from_db()
    assert call.state == State.ENDED and call.outcome == "talked"
    assert AgentSession.objects.get(pk=session.pk).state == AgentSession.State.WRAP_UP


def services_join(webhook, call, session) -> None:
    webhook("conference-events", {"ConferenceSid": "CF1", "FriendlyName": session.conference_room,
                                  "StatusCallbackEvent": "participant-join", "CallSid": call.sid,
                                  "SequenceNumber": "3", "AccountSid": "AC" + "0" * 32}, query={"session": session.pk})
