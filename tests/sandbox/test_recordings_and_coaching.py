"""Recordings (call and conference), their callbacks and media; coaching and who hears whom in a room."""

from __future__ import annotations

import io
import wave

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from tests.sandbox.conftest import FROM
from tests.sandbox.fake_app import Hit
from tests.sandbox.helpers import wait_status

CUSTOMER = "+12025550177"
ROOM = "agent-9-room"


def room_twiml(app, room: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return (
        f'<Response><Dial><Conference statusCallback="{app.url("/conference-events")}" '
        f'statusCallbackEvent="start end join leave modify"{extra}>{room}</Conference></Dial></Response>'
    )


def talk(sandbox, app, client, **room_attrs: str) -> tuple[str, str]:
    """An agent leg in its room and a patient customer bridged to it; returns (agent sid, customer sid)."""
    sandbox.set_behaviour(CUSTOMER, {"kind": "human", "pickup_s": 1, "talk_s": 3000, "patience_s": 3000})

    def dial(hit: Hit) -> str:
        return room_twiml(app, ROOM, **room_attrs) if hit.params.get("role") != "supervisor" else supervisor_twiml(hit)

    def supervisor_twiml(hit: Hit) -> str:
        return room_twiml(app, ROOM, **dict(pair.split("=", 1) for pair in hit.params["attrs"].split(";")))

    app.routes["/dial"] = dial
    app.routes["/customer"] = room_twiml(app, ROOM)
    agent = sandbox.place_agent_leg("agent-9", app.url("/dial"))["sid"]
    app.wait_for("/conference-events", StatusCallbackEvent="participant-join", CallSid=agent)
    customer = client.calls.create(to=CUSTOMER, from_=FROM, url=app.url("/customer")).sid
    app.wait_for("/conference-events", StatusCallbackEvent="conference-start")
    return agent, customer


def room(sandbox) -> dict:
    return next(c for c in sandbox.conferences() if c["friendly_name"] == ROOM and c["status"] != "completed")


def test_call_recording_dual_channel_pause_skip_callbacks_media_and_delete(sandbox, app, client):
    _agent, customer = talk(sandbox, app, client)
    recording = client.calls(customer).recordings.create(
        recording_channels="dual",
        recording_status_callback=app.url("/recording"),
        recording_status_callback_event=["in-progress", "completed"],
    )
    assert recording.sid.startswith("RE") and recording.status == "in-progress" and recording.channels == 2
    started = app.wait_for("/recording", RecordingStatus="in-progress")[0]
    assert started.signature_valid
    assert started.params["CallSid"] == customer and started.params["RecordingSource"] == "StartCallRecordingAPI"

    # Paused with skip for ~10 simulated seconds: that time is cut out of the recording.
    paused = client.calls(customer).recordings("Twilio.CURRENT").update(status="paused", pause_behavior="skip")
    assert paused.status == "paused"
    sandbox.wait_for(lambda sb: sb.sim_time() > sb.recordings()[0]["history"][-1]["sim_t"] + 10)
    assert client.calls(customer).recordings(recording.sid).update(status="in-progress").status == "in-progress"
    sandbox.wait_for(lambda sb: sb.sim_time() > sb.recordings()[0]["history"][-1]["sim_t"] + 5)
    sandbox.hang_up(customer)

    done = app.wait_for("/recording", RecordingStatus="completed")[0]
    assert done.signature_valid and done.params["RecordingSid"] == recording.sid
    assert done.params["RecordingUrl"].endswith(f"/Recordings/{recording.sid}")
    view = sandbox.recordings(sid=recording.sid)[0]
    assert [e["event"] for e in view["history"]] == ["started", "paused", "resumed", "completed"]
    at = {e["event"]: e["sim_t"] for e in view["history"]}
    assert at["resumed"] - at["paused"] >= 10
    expected = (at["completed"] - at["started"]) - (at["resumed"] - at["paused"])
    assert int(done.params["RecordingDuration"]) == view["duration_s"] == pytest.approx(expected, abs=1)

    fetched = client.recordings(recording.sid).fetch()
    assert (fetched.status, fetched.call_sid, int(fetched.duration)) == ("completed", customer, view["duration_s"])
    assert [r.sid for r in client.recordings.list(call_sid=customer)] == [recording.sid]

    media = requests.get(
        f"{sandbox.base_url}/2010-04-01/Accounts/{sandbox.account_sid}/Recordings/{recording.sid}.wav",
        auth=(sandbox.account_sid, sandbox.auth_token),
        timeout=5,
    )
    assert media.status_code == 200 and media.headers["Content-Type"] == "audio/x-wav"
    with wave.open(io.BytesIO(media.content)) as audio:
        assert audio.getnchannels() == 2 and audio.getnframes() > 0
    anonymous = requests.get(media.url, timeout=5)
    assert anonymous.status_code == 401  # media needs the account's credentials

    assert client.recordings(recording.sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        client.recordings(recording.sid).fetch()
    assert gone.value.status == 404
    again = requests.get(media.url, auth=(sandbox.account_sid, sandbox.auth_token), timeout=5)
    assert again.status_code == 404


def test_recording_an_ended_call_is_21220_and_unknown_current_is_404(sandbox, app, client):
    _agent, customer = talk(sandbox, app, client)
    sandbox.hang_up(customer)
    wait_status(sandbox, customer)
    with pytest.raises(TwilioRestException) as ended:
        client.calls(customer).recordings.create()
    assert (ended.value.status, ended.value.code) == (400, 21220)
    with pytest.raises(TwilioRestException) as none:
        client.calls(customer).recordings("Twilio.CURRENT").update(status="paused")
    assert none.value.status == 404


def test_conference_record_from_start_records_the_room_from_when_it_starts(sandbox, app, client):
    agent, customer = talk(
        sandbox, app, client,
        record="record-from-start",
        recordingStatusCallback=app.url("/conference-recording"),
        recordingStatusCallbackEvent="in-progress completed",
    )
    started = app.wait_for("/conference-recording", RecordingStatus="in-progress")[0].params
    conference = room(sandbox)
    assert started["ConferenceSid"] == conference["sid"] and started["RecordingSource"] == "Conference"
    assert "CallSid" not in started
    start_t = next(e["sim_t"] for e in conference["history"] if e["event"] == "conference-start")
    agent_joined_t = next(e["sim_t"] for e in conference["history"]
                          if e["event"] == "participant-join" and e["detail"]["call_sid"] == agent)
    # From when the room starts (the customer joins), not from when the agent sat alone in it.
    assert start_t - agent_joined_t > 1
    assert 0 <= sandbox.recordings()[0]["started_t"] - start_t < 0.5
    assert [r.sid for r in client.conferences(conference["sid"]).recordings.list()] == [started["RecordingSid"]]

    sandbox.wait_for(lambda sb: sb.sim_time() > start_t + 5)  # an empty recording would be `absent`
    client.conferences(conference["sid"]).update(status="completed")
    done = app.wait_for("/conference-recording", RecordingStatus="completed")[0].params
    assert done["RecordingChannels"] == "1" and done["RecordingSid"] == started["RecordingSid"]
    assert int(done["RecordingDuration"]) >= 5


def test_listen_whisper_barge_and_leave_change_who_hears_whom(sandbox, app, client):
    agent, customer = talk(sandbox, app, client)
    before = room(sandbox)["hears"]
    assert before == {agent: [customer], customer: [agent]}

    # Listen: the supervisor joins muted; they hear both sides, neither side hears them.
    supervisor = sandbox.place_agent_leg(
        "manager-1", app.url("/dial"), params={"role": "supervisor", "attrs": "muted=true"}
    )["sid"]
    app.wait_for("/conference-events", StatusCallbackEvent="participant-join", CallSid=supervisor)
    hears = room(sandbox)["hears"]
    assert sorted(hears[supervisor]) == sorted([agent, customer])
    assert supervisor not in hears[agent] and supervisor not in hears[customer]

    # Whisper: unmuted and coaching the agent, through the Participants REST API.
    conference_sid = room(sandbox)["sid"]
    updated = client.conferences(conference_sid).participants(supervisor).update(
        muted=False, coaching=True, call_sid_to_coach=agent
    )
    assert (updated.coaching, updated.call_sid_to_coach, updated.muted) == (True, agent, False)
    modify = app.wait_for("/conference-events", StatusCallbackEvent="participant-modify", CallSid=supervisor)[0]
    assert (modify.params["Coaching"], modify.params["CallSidToCoach"]) == ("true", agent)
    hears = room(sandbox)["hears"]
    assert supervisor in hears[agent]
    assert supervisor not in hears[customer]  # the customer never hears a whisper
    assert sorted(hears[supervisor]) == sorted([agent, customer])

    # Barge: coaching off, everyone hears everyone.
    client.conferences(conference_sid).participants(supervisor).update(coaching=False)
    hears = room(sandbox)["hears"]
    assert supervisor in hears[agent] and supervisor in hears[customer]

    # Leave: kicked, the talk goes on between the two of them.
    client.conferences(conference_sid).participants(supervisor).delete()
    after = room(sandbox)
    assert after["status"] == "in-progress" and after["hears"] == {agent: [customer], customer: [agent]}
    assert sandbox.call(customer)["status"] == "in-progress"


def test_whisper_from_twiml_coach_attribute_and_bad_coach_target(sandbox, app, client):
    agent, customer = talk(sandbox, app, client)
    supervisor = sandbox.place_agent_leg(
        "manager-1", app.url("/dial"), params={"role": "supervisor", "attrs": f"coach={agent}"}
    )["sid"]
    app.wait_for("/conference-events", StatusCallbackEvent="participant-join", CallSid=supervisor)
    hears = room(sandbox)["hears"]
    assert supervisor in hears[agent] and supervisor not in hears[customer]
    join = app.requests_to("/conference-events", StatusCallbackEvent="participant-join", CallSid=supervisor)[0]
    assert join.params["Coaching"] == "true"
    with pytest.raises(TwilioRestException) as bad:
        client.conferences(room(sandbox)["sid"]).participants(supervisor).update(
            coaching=True, call_sid_to_coach="CA" + "9" * 32
        )
    assert bad.value.status == 400


def test_participants_api_dials_a_softphone_and_a_number_into_a_room(sandbox, app, client):
    agent, customer = talk(sandbox, app, client)
    conference_sid = room(sandbox)["sid"]

    # A manager's softphone added as a whisperer, by the room's SID.
    created = client.conferences(conference_sid).participants.create(
        from_=FROM, to="client:manager-1", label="supervisor", muted=False, coaching=True, call_sid_to_coach=agent,
        status_callback=app.url("/supervisor-status"), status_callback_event=["answered", "completed"],
    )
    assert (created.status, created.coaching, created.call_sid_to_coach) == ("queued", True, agent)
    joined = app.wait_for("/conference-events", StatusCallbackEvent="participant-join", CallSid=created.call_sid)[0]
    assert (joined.params["Coaching"], joined.params["ParticipantLabel"]) == ("true", "supervisor")
    heard = room(sandbox)["hears"]
    assert created.call_sid in heard[agent] and created.call_sid not in heard[customer]
    assert client.conferences(conference_sid).participants("supervisor").fetch().call_sid == created.call_sid

    # Kicked by label: the leg's TwiML ends, it hangs up; the talk goes on.
    client.conferences(conference_sid).participants("supervisor").delete()
    assert wait_status(sandbox, created.call_sid)["status"] == "completed"
    assert app.wait_for("/supervisor-status", CallStatus="completed")
    assert room(sandbox)["hears"] == {agent: [customer], customer: [agent]}

    # By FriendlyName, a new room is opened; a phone number joins it when it answers.
    sandbox.set_behaviour("+12025550188", {"kind": "human", "pickup_s": 1, "talk_s": 3000, "patience_s": 3000})
    other = client.conferences("overflow-room").participants.create(from_=FROM, to="+12025550188", muted=True)
    wait_status(sandbox, other.call_sid, "in-progress")
    sandbox.wait_for(lambda sb: sb.call(other.call_sid)["conference_sid"])
    named = [c for c in sandbox.conferences() if c["friendly_name"] == "overflow-room"]
    assert len(named) == 1 and named[0]["participants"][0]["muted"] is True
    assert named[0]["sid"] == other.conference_sid


def test_participants_api_refusals(sandbox, app, client):
    agent, _customer = talk(sandbox, app, client)
    conference_sid = room(sandbox)["sid"]
    for kwargs, code in (
        ({"to": "client:bad name"}, 21211),
        ({"to": "client:x", "coaching": True, "call_sid_to_coach": "CA" + "0" * 32}, 21218),
        ({"to": "+15005550001"}, 21211),
    ):
        with pytest.raises(TwilioRestException) as refused:
            client.conferences(conference_sid).participants.create(from_=FROM, **kwargs)
        assert refused.value.code == code
    client.conferences(conference_sid).update(status="completed")
    with pytest.raises(TwilioRestException) as ended:
        client.conferences(conference_sid).participants.create(from_=FROM, to="client:x")
    assert ended.value.status == 400
