"""End to end: the app on a live server, the Twilio sandbox, real HTTP in both directions.

The app places calls through the real twilio client to the sandbox; the sandbox plays them out and
calls the app's webhooks, signed. Nothing is faked in between.
"""

from __future__ import annotations

import pytest

from campaigns.models import AgentSession, Contact
from tests import factories
from tests.live import wait_until
from voice import floor as floor_services
from voice import services as call_services
from voice.models import Call, WebhookEvent
from voice.states import State

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HUMAN, MACHINE_BEEP, MACHINE_SILENCE, MACHINE_OTHER, FAX = (
    "+12025550100", "+12025550101", "+12025550102", "+12025550103", "+12025550104")
NO_ANSWER, BUSY, FAILED, IMPATIENT, INVALID = (
    "+12025550106", "+12025550107", "+12025550108", "+12025550109", "+15005550001")


def agent_in_room(live_app, session: AgentSession) -> dict:
    """The agent's browser leg, emulated by the sandbox, dials /api/voice/dial and joins the room."""
    leg = live_app.sandbox.place_agent_leg(
        f"agent-{session.agent_id}", live_app.url("/api/voice/dial"), params={"session": str(session.pk)},
        status_callback=live_app.url(f"/api/voice/agent-status?session={session.pk}"),
    )
    assert wait_until(lambda: AgentSession.objects.get(pk=session.pk).in_room)
    return leg


@pytest.fixture(autouse=True)
def _generous_cps(settings):
    """Dial-next takes from the account's calls-per-second budget like every path (tests/voice/test_gate.py);
    these tests place several lines at once, so the budget is not what they measure."""
    settings.TWILIO_CPS = 100


def floor(live_app, phones: list[str], *, agents: int = 1, **campaign_fields):
    campaign_fields.setdefault("min_ring_s", 0)  # the sandbox runs 20x faster than the app's clock
    campaign_fields.setdefault("lines_per_agent", len(phones))
    # These tests dial every phone at once to exercise the call flow; the cap's governor (which would start a
    # campaign with no history at one line) is tested in tests/voice/test_gate.py.
    campaign_fields.setdefault("abandon_cap_opt_out", True)
    campaign = factories.make_campaign(**campaign_fields)
    for phone in phones:
        factories.make_contact(campaign=campaign, phone=phone)
    sessions = []
    for _ in range(agents):
        session = factories.make_session(campaign=campaign, in_room=False)
        agent_in_room(live_app, session)
        sessions.append(session)
    return campaign, sessions


def final(call: Call, timeout_s: float = 15.0) -> Call:
    assert wait_until(lambda: Call.objects.get(pk=call.pk).state == State.ENDED, timeout_s=timeout_s), \
        f"call stuck in {Call.objects.get(pk=call.pk).state}"
    return Call.objects.get(pk=call.pk)


def test_human_is_bridged_into_the_agents_room(live_app):
    campaign, [session] = floor(live_app, [HUMAN])
    [call] = floor_services.dial_next(session=session)
    assert wait_until(lambda: Call.objects.get(pk=call.pk).state == State.CONNECTED)
    call.refresh_from_db()
    assert call.answered_by == "human" and call.bridged_to_id == session.pk
    # The sandbox sees both legs in the agent's room.
    rooms = [c for c in live_app.sandbox.conferences() if c["friendly_name"] == session.conference_room]
    assert rooms and len(rooms[0]["participants"]) == 2
    # The simulated human talks, hangs up; the agent writes a disposition and is ready again.
    call = final(call)
    assert call.outcome == "talked"
    assert wait_until(lambda: AgentSession.objects.get(pk=session.pk).state == AgentSession.State.WRAP_UP)
    floor_services.disposition_record(session=session, code="interested")
    assert AgentSession.objects.get(pk=session.pk).state == AgentSession.State.READY


@pytest.mark.parametrize(("phone", "amd_mode", "voicemail", "outcome"), [
    (MACHINE_BEEP, "DetectMessageEnd", True, "voicemail_left"),
    (MACHINE_SILENCE, "DetectMessageEnd", True, "voicemail_left"),
    (MACHINE_OTHER, "DetectMessageEnd", False, "machine"),
    (MACHINE_BEEP, "Enable", True, "machine"),
    (FAX, "DetectMessageEnd", True, "fax"),
])
def test_machines_are_never_bridged(live_app, phone, amd_mode, voicemail, outcome):
    campaign, [session] = floor(live_app, [phone], amd_mode=amd_mode, voicemail_drop=voicemail,
                                voicemail_text="Hi, it is Dana from Acme. Call us back on 202 555 0199.")
    [call] = floor_services.dial_next(session=session)
    call = final(call)
    assert call.outcome == outcome
    assert call.bridged_to_id is None
    assert AgentSession.objects.get(pk=session.pk).state == AgentSession.State.READY
    if outcome == "voicemail_left":
        timeline = str(live_app.sandbox.call(call.sid)["timeline"])
        assert "Dana from Acme" in timeline or "say" in timeline.lower()


@pytest.mark.parametrize(("phone", "outcome", "retry_field"), [
    (NO_ANSWER, "no_answer", "retry_no_answer_min"), (BUSY, "busy", "retry_busy_min"),
    (FAILED, "failed", "retry_failed_min"),
])
def test_unanswered_calls_are_retried_per_policy(live_app, phone, outcome, retry_field):
    campaign, [session] = floor(live_app, [phone], ring_timeout_s=15)
    [call] = floor_services.dial_next(session=session)
    call = final(call, timeout_s=20)
    contact = Contact.objects.get(pk=call.contact_id)
    assert call.outcome == outcome
    assert contact.status == Contact.Status.PENDING and contact.attempts == 1
    delay_min = (contact.next_attempt_at - call.ended_at).total_seconds() / 60
    assert abs(delay_min - getattr(campaign, retry_field)) < 1


def test_two_humans_at_once_for_one_agent(live_app):
    second_human = "+12025550110"
    live_app.sandbox.set_behaviour(second_human, {"kind": "human", "pickup_s": 3.0, "amd_s": 2.0,
                                                  "talk_s": 30.0, "patience_s": 60.0})
    campaign, [session] = floor(live_app, [HUMAN, second_human], max_hold_s=0.5)
    calls = floor_services.dial_next(session=session)
    ended = [final(c) for c in calls]
    outcomes = sorted(c.outcome for c in ended)
    assert outcomes == ["abandoned", "talked"]
    loser = next(c for c in ended if c.outcome == "abandoned")
    assert loser.bridged_to_id is None
    # The abandoned human heard the safe-harbor message, then the call ended.
    timeline = str(live_app.sandbox.call(loser.sid)["timeline"]).lower()
    assert "safe-harbor" in timeline or "say" in timeline
    assert Contact.objects.get(pk=loser.contact_id).priority >= 100


def test_duplicated_and_reordered_callbacks_end_the_same(live_app):
    # Callees patient enough that the app's own latency (in simulated seconds at 20x) never decides the outcome:
    # only the misbehaviour differs from an orderly run.
    live_app.sandbox.update_config(duplicate_rate=0.5, jitter_s=3.0)
    phones = [HUMAN, MACHINE_BEEP, NO_ANSWER, BUSY, FAX]
    # One line per agent: no sibling is released when the human connects, so every outcome is the callee's.
    campaign, sessions = floor(live_app, phones, agents=len(phones), lines_per_agent=1, ring_timeout_s=15,
                               voicemail_drop=True, voicemail_text="Hello from Acme.")
    calls = [call for session in sessions for call in floor_services.dial_next(session=session)]
    by_phone = {c.contact.phone: final(c, timeout_s=30) for c in calls}
    assert by_phone[HUMAN].outcome == "talked"
    assert by_phone[MACHINE_BEEP].outcome == "voicemail_left"
    assert by_phone[NO_ANSWER].outcome == "no_answer"
    assert by_phone[BUSY].outcome == "busy"
    assert by_phone[FAX].outcome == "fax"
    assert WebhookEvent.objects.filter(status="duplicate").exists()
    assert not WebhookEvent.objects.filter(status="failed").exists()


def test_dropped_completed_callback_is_closed_by_the_reconciler(live_app, settings):
    live_app.sandbox.update_config(drop_status_rate=1.0)
    campaign, [session] = floor(live_app, [BUSY], ring_timeout_s=15)
    [call] = floor_services.dial_next(session=session)
    assert wait_until(lambda: live_app.sandbox.call(Call.objects.get(pk=call.pk).sid or "x")["status"] == "busy"
                      if Call.objects.get(pk=call.pk).sid else False)
    assert Call.objects.get(pk=call.pk).state != State.ENDED  # the app never heard the end
    settings.RECONCILE_MARGIN_S = 0
    Call.objects.filter(pk=call.pk).update(last_event_at=call.created_at.replace(year=2000))
    assert call_services.calls_reconcile() == 1
    call.refresh_from_db()
    assert call.state == State.ENDED and call.outcome == "busy"


def test_invalid_number_is_marked_and_dialing_continues(live_app):
    campaign, [session] = floor(live_app, [INVALID, HUMAN], lines_per_agent=1)
    Contact.objects.filter(phone=INVALID).update(priority=10)
    [first] = floor_services.dial_next(session=session)
    first.refresh_from_db()
    assert first.outcome == "invalid_number"
    assert Contact.objects.get(phone=INVALID).status == Contact.Status.INVALID
    [second] = floor_services.dial_next(session=session)
    assert second.contact.phone == HUMAN
    assert wait_until(lambda: Call.objects.get(pk=second.pk).state == State.CONNECTED)
