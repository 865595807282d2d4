"""Conferences: REST redirects into <Dial><Conference>, the agent's softphone leg, bridged talk time."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.conftest import FROM
from tests.sandbox.fake_app import HOLD, Hit
from tests.sandbox.helpers import event_time, wait_status

HUMAN = "+12025550100"


def room_twiml(app, room: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return (
        f'<Response><Dial><Conference statusCallback="{app.url("/conference-events")}" '
        f'statusCallbackEvent="start end join leave"{extra}>{room}</Conference></Dial></Response>'
    )


def test_redirect_of_an_answered_call_into_a_conference(sandbox, app, client):
    app.routes["/voice"] = HOLD
    app.routes["/join"] = room_twiml(app, "room-1")
    # Patient enough that the test thread's redirect always lands first, even on a loaded machine.
    sandbox.set_behaviour(HUMAN, {"kind": "human", "pickup_s": 2, "amd_s": 2, "patience_s": 60, "talk_s": 30})
    call = client.calls.create(
        to=HUMAN,
        from_=FROM,
        url=app.url("/voice"),
        machine_detection="Enable",
        async_amd="true",
        async_amd_status_callback=app.url("/amd"),
    )
    assert app.wait_for("/amd")[0].params["AnsweredBy"] == "human"

    updated = client.calls(call.sid).update(url=app.url("/join"))
    assert updated.status == "in-progress"

    join = app.wait_for("/conference-events", StatusCallbackEvent="participant-join")[0]
    assert join.signature_valid
    assert (join.params["CallSid"], join.params["FriendlyName"]) == (call.sid, "room-1")
    assert join.params["AccountSid"] == sandbox.account_sid and "Timestamp" in join.params
    assert join.params["SequenceNumber"] == "0"
    rooms = client.conferences.list(friendly_name="room-1")
    assert [r.sid for r in rooms] == [join.params["ConferenceSid"]]
    assert rooms[0].status == "init"  # alone: the room has not started
    participants = client.conferences(rooms[0].sid).participants.list()
    assert [p.call_sid for p in participants] == [call.sid]

    # Alone in the room is still on hold: the human's patience runs out, and they leave.
    done = wait_status(sandbox, call.sid)
    assert done["end_reason"] == "callee hung up on hold"
    leave = app.wait_for("/conference-events", StatusCallbackEvent="participant-leave")[0]
    assert leave.params["CallSid"] == call.sid
    assert client.conferences(rooms[0].sid).fetch().status == "completed"


def test_agent_leg_dials_into_its_room_and_a_customer_talks_then_hangs_up(sandbox, app, client):
    def dial(hit: Hit) -> str:
        return room_twiml(app, hit.params["room"])

    app.routes["/api/voice/dial"] = dial
    app.routes["/customer-join"] = room_twiml(app, "agent-7-room")
    response = requests.post(
        f"{sandbox.base_url}/sandbox/agent-legs",
        timeout=5, headers=sandbox.control_headers,
        json={
            "identity": "agent-7",
            "voice_url": app.url("/api/voice/dial"),
            "params": {"room": "agent-7-room", "campaign": "3"},
            "status_callback": app.url("/agent-status"),
        },
    )
    assert response.status_code == 201
    agent_sid = response.json()["sid"]

    dial_hit = app.wait_for("/api/voice/dial")[0]
    assert dial_hit.signature_valid
    assert dial_hit.params["From"] == dial_hit.params["Caller"] == "client:agent-7"
    assert (dial_hit.params["CallStatus"], dial_hit.params["Direction"]) == ("ringing", "inbound")
    assert dial_hit.params["ApplicationSid"].startswith("AP") and dial_hit.params["CallSid"] == agent_sid
    assert (dial_hit.params["room"], dial_hit.params["campaign"]) == ("agent-7-room", "3")
    app.wait_for("/conference-events", StatusCallbackEvent="participant-join", CallSid=agent_sid)

    customer = client.calls.create(
        to=HUMAN, from_=FROM, url=app.url("/customer-join"), status_callback=app.url("/status")
    )
    app.wait_for("/conference-events", StatusCallbackEvent="conference-start")
    room = sandbox.conferences()[0]
    assert {p["call_sid"] for p in room["participants"]} == {agent_sid, customer.sid}

    # Bridged to the agent, the customer talks for their talk time (30 s for this number), then hangs up.
    done = wait_status(sandbox, customer.sid)
    assert done["end_reason"] == "callee finished talking"
    assert event_time(done, "callee-talking") == pytest.approx(event_time(done, "conference-join"), abs=0.1)
    assert event_time(done, "ended") - event_time(done, "callee-talking") == pytest.approx(30.0, abs=0.01)
    terminal = app.wait_for("/status")[0].params
    assert terminal["CallStatus"] == "completed" and int(terminal["CallDuration"]) >= 30
    app.wait_for("/conference-events", StatusCallbackEvent="participant-leave", CallSid=customer.sid)

    # The agent stays in the room until the softphone hangs up.
    assert sandbox.call(agent_sid)["status"] == "in-progress"
    assert sandbox.call(agent_sid)["conference_sid"] == room["sid"]
    hung_up = requests.delete(f"{sandbox.base_url}/sandbox/agent-legs/{agent_sid}", timeout=5,
                              headers=sandbox.control_headers)
    assert hung_up.json()["status"] == "completed"
    assert app.wait_for("/agent-status")[0].params["CallStatus"] == "completed"
    app.wait_for("/conference-events", StatusCallbackEvent="conference-end")


def test_rest_completed_conference_releases_participants(sandbox, app, client):
    app.routes["/join"] = room_twiml(app, "room-2").replace("</Response>", "<Say>goodbye now</Say></Response>")
    first = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/join"))
    second = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/join"))
    app.wait_for("/conference-events", StatusCallbackEvent="conference-start")
    room = client.conferences.list(friendly_name="room-2", status="in-progress")[0]

    assert client.conferences(room.sid).update(status="completed").status == "completed"
    end = app.wait_for("/conference-events", StatusCallbackEvent="conference-end")[0]
    assert end.params["ReasonConferenceEnded"] == "conference-ended-via-api"
    for sid in (first.sid, second.sid):  # the Dial ends; the rest of the document (<Say>) plays, then hang-up
        assert wait_status(sandbox, sid)["end_reason"] == "end of TwiML"
