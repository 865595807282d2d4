"""End to end, over real HTTP both ways: recorded talks played back through our server, the agent's pause and
resume, and a manager listening, whispering, barging and leaving, checked against who hears whom in the sandbox.
"""

from __future__ import annotations

import io
import secrets
import wave

import pytest
import requests
from django.test import Client

from campaigns.models import AgentSession
from tests import factories
from tests.e2e.test_call_flow import agent_in_room
from tests.live import wait_until
from voice import floor as floor_services
from voice import gateway
from voice.models import Call, CallEvent, Recording, Supervision
from voice.states import State

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CUSTOMER = "+14155550142"  # San Francisco: California requires every party's consent to record
ANNOUNCEMENT = "This call is recorded so we can train our team."


def browser(user) -> requests.Session:
    """A signed-in browser for the live server: the user's session cookie and a CSRF token."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    token = secrets.token_hex(16)
    session.cookies.set("csrftoken", token)
    session.headers.update({"X-CSRFToken": token, "Accept": "application/json"})
    return session


def talking(live_app, **campaign_fields) -> tuple[AgentSession, Call]:
    """An agent in their room, talking to a patient customer (200 simulated seconds: ten real ones)."""
    live_app.sandbox.set_behaviour(CUSTOMER, {"kind": "human", "pickup_s": 2, "amd_s": 1.5, "talk_s": 200,
                                              "patience_s": 60})
    campaign = factories.make_campaign(min_ring_s=0, lines_per_agent=1, **campaign_fields)
    factories.make_contact(campaign=campaign, phone=CUSTOMER, time_zone="America/Los_Angeles")
    session = factories.make_session(campaign=campaign, in_room=False)
    agent_in_room(live_app, session)
    [call] = floor_services.dial_next(session=session)
    assert wait_until(lambda: Call.objects.get(pk=call.pk).state == State.CONNECTED)
    session.refresh_from_db()
    return session, Call.objects.get(pk=call.pk)


def room(live_app, session: AgentSession) -> dict:
    return next(c for c in live_app.sandbox.conferences()
                if c["friendly_name"] == session.conference_room and c["status"] != "completed")


def test_recorded_talk_plays_for_the_manager_and_its_agent_only(live_app):
    session, call = talking(live_app, record_calls=True, announce_recording="always",
                            recording_announcement=ANNOUNCEMENT)
    # The customer heard the announcement before joining the room, and the recording started once they joined.
    timeline = live_app.sandbox.call(call.sid)["timeline"]
    said = next(i for i, e in enumerate(timeline) if e["event"] == "twiml" and e["detail"].get("text") == ANNOUNCEMENT)
    joined = next(i for i, e in enumerate(timeline) if e["event"] == "conference-join")
    assert said < joined
    recording = wait_until(lambda: Recording.objects.filter(call=call, status="in-progress").exclude(sid=None).first())
    assert recording, "no recording started"
    [twilio_side] = live_app.sandbox.recordings(call_sid=call.sid)
    assert (twilio_side["sid"], twilio_side["channels"], twilio_side["status"]) == (recording.sid, 2, "in-progress")
    # What a start that got no answer looks up before it is sent again: the same one recording.
    assert gateway.call_recordings(call_sid=call.sid) == [gateway.RecordingInfo(recording.sid, "in-progress", 2)]

    # The agent pauses for a card number, then resumes: at Twilio, and on the call's timeline.
    agent = browser(session.agent)
    api = f"{live_app.base_url}/api/campaign/{session.campaign_id}/recording"
    assert agent.post(api, json={"action": "pause"}).json()["recording"]["status"] == "paused"
    assert agent.post(api, json={"action": "pause"}).status_code == 409  # already paused
    assert live_app.sandbox.recordings(call_sid=call.sid)[0]["status"] == "paused"
    assert agent.post(api, json={"action": "resume"}).json()["recording"]["status"] == "in-progress"
    assert agent.post(api, json={"action": "rewind"}).status_code == 400
    kinds = list(CallEvent.objects.filter(call=call, kind__startswith="Recording").values_list("kind", flat=True))
    assert kinds.index("RecordingPaused") < kinds.index("RecordingResumed")
    assert [e["event"] for e in live_app.sandbox.recordings(call_sid=call.sid)[0]["history"]][:3] == [
        "started", "paused", "resumed"]

    # The talk ends: Twilio's completed callback (signed, through the inbox) makes it playable.
    live_app.sandbox.hang_up(call.sid)
    assert wait_until(lambda: Recording.objects.get(pk=recording.pk).status == "completed")
    recording.refresh_from_db()
    assert recording.duration_s is not None and recording.media_url

    manager = browser(factories.make_user(manager=True))
    audio_url = f"{live_app.base_url}/recordings/{recording.pk}/audio"
    played = manager.get(audio_url)
    assert played.status_code == 200 and played.headers["Content-Type"] == "audio/x-wav"
    with wave.open(io.BytesIO(played.content)) as audio:
        assert audio.getnchannels() == 2 and audio.getnframes() > 0
    page = manager.get(f"{live_app.base_url}/recordings/{recording.pk}/")
    assert page.status_code == 200 and f"/recordings/{recording.pk}/audio" in page.text
    # Neither Twilio's media URL nor its host ever reaches a browser.
    assert "api.twilio.com" not in page.text and live_app.sandbox.base_url not in page.text
    assert "RecordingPaused" in page.text and "RecordingResumed" in page.text

    assert agent.get(audio_url).status_code == 200  # the agent who made the call
    stranger = factories.make_user()
    factories.make_campaign(agents=[stranger])
    assert browser(stranger).get(audio_url).status_code == 403  # an agent of another campaign
    assert browser(stranger).get(f"{live_app.base_url}/recordings/{recording.pk}/").status_code == 403

    # Deleting it deletes it at Twilio too.
    deleted = manager.post(f"{live_app.base_url}/recordings/{recording.pk}/delete", allow_redirects=False)
    assert deleted.status_code == 302
    assert Recording.objects.get(pk=recording.pk).status == "deleted"
    assert live_app.sandbox.recordings(sid=recording.sid)[0]["status"] == "deleted"
    assert manager.get(audio_url).status_code == 404


def test_unrecorded_campaign_starts_no_recording_and_plays_no_announcement(live_app):
    session, call = talking(live_app, recording_announcement=ANNOUNCEMENT)
    live_app.sandbox.hang_up(call.sid)
    assert wait_until(lambda: Call.objects.get(pk=call.pk).state == State.ENDED)
    assert not Recording.objects.filter(call=call).exists()
    assert live_app.sandbox.recordings(call_sid=call.sid) == []
    assert ANNOUNCEMENT not in str(live_app.sandbox.call(call.sid)["timeline"])


def test_listen_whisper_barge_and_leave(live_app):
    session, call = talking(live_app)
    agent_leg, customer_leg = session.agent_call_sid, call.sid
    manager_user = factories.make_user(manager=True)
    manager = browser(manager_user)
    url = f"{live_app.base_url}/api/campaign/{session.campaign_id}/supervise"

    assert browser(session.agent).post(url, json={"call_id": call.pk, "mode": "listen"}).status_code == 403
    assert manager.post(url, json={"call_id": call.pk, "mode": "snoop"}).status_code == 400
    assert manager.post(url, json={"call_id": "x", "mode": "listen"}).status_code == 400

    answer = manager.post(url, json={"call_id": call.pk, "mode": "listen"})
    assert answer.status_code == 200, answer.text
    phone = answer.json()["softphone"]
    # The manager's browser softphone (emulated by the sandbox) calls the TwiML App's voice URL with the ticket.
    leg = live_app.sandbox.place_agent_leg(phone["identity"], live_app.url("/api/voice/dial"),
                                           params=phone["params"])["sid"]
    assert wait_until(lambda: Supervision.objects.filter(leg_sid=leg).exclude(joined_at=None).exists())
    hears = room(live_app, session)["hears"]
    assert sorted(hears[leg]) == sorted([agent_leg, customer_leg])  # the manager hears both sides
    assert leg not in hears[agent_leg] and leg not in hears[customer_leg]  # nobody hears the manager

    whisper = manager.post(url, json={"call_id": call.pk, "mode": "whisper"})
    assert whisper.status_code == 200 and whisper.json()["softphone"] is None  # same leg, new flags
    hears = room(live_app, session)["hears"]
    assert leg in hears[agent_leg]
    assert leg not in hears[customer_leg]  # the customer never hears a whisper
    assert hears[customer_leg] == [agent_leg]

    assert manager.post(url, json={"call_id": call.pk, "mode": "barge"}).status_code == 200
    hears = room(live_app, session)["hears"]
    assert leg in hears[agent_leg] and leg in hears[customer_leg]

    left = manager.delete(url)
    assert left.status_code == 200 and left.json()["supervision"]["active"] is False
    assert wait_until(lambda: live_app.sandbox.call(leg)["status"] == "completed")
    # The talk is intact: both still in the room, hearing each other, the call still connected.
    after = room(live_app, session)
    assert after["hears"] == {agent_leg: [customer_leg], customer_leg: [agent_leg]}
    assert Call.objects.get(pk=call.pk).state == State.CONNECTED
    assert live_app.sandbox.call(customer_leg)["status"] == "in-progress"
    assert manager.delete(url).status_code == 409  # nothing left to leave


def test_a_supervisor_is_taken_out_when_the_talk_ends(live_app):
    session, call = talking(live_app)
    manager = browser(factories.make_user(manager=True))
    url = f"{live_app.base_url}/api/campaign/{session.campaign_id}/supervise"
    phone = manager.post(url, json={"call_id": call.pk, "mode": "listen"}).json()["softphone"]
    leg = live_app.sandbox.place_agent_leg(phone["identity"], live_app.url("/api/voice/dial"),
                                           params=phone["params"])["sid"]
    assert wait_until(lambda: Supervision.objects.filter(leg_sid=leg).exclude(joined_at=None).exists())

    live_app.sandbox.hang_up(call.sid)
    # The manager must not overhear the agent's next customer.
    assert wait_until(lambda: Supervision.objects.get(leg_sid=leg).ended_at is not None)
    assert wait_until(lambda: live_app.sandbox.call(leg)["status"] == "completed")
    assert AgentSession.objects.get(pk=session.pk).in_room  # the agent stays in their room

    # A ticket cannot be used again: the leg is answered with a polite hang-up, not the room.
    again = live_app.sandbox.place_agent_leg(phone["identity"], live_app.url("/api/voice/dial"),
                                             params=phone["params"])["sid"]
    assert wait_until(lambda: live_app.sandbox.call(again)["status"] == "completed")
    assert live_app.sandbox.call(again)["conference_sid"] is None
    assert all(e["event"] != "conference-join" for e in live_app.sandbox.call(again)["timeline"])
