"""Calls played out in simulated time: status callbacks, AMD, TwiML, callee hang-ups, CPS."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from itertools import pairwise

import pytest

from tests.sandbox.conftest import FROM
from tests.sandbox.fake_app import HOLD
from tests.sandbox.helpers import event_time, wait_status

HUMAN, MACHINE_BEEP, MACHINE_SILENCE = "+12025550100", "+12025550101", "+12025550102"
FAX, NO_ANSWER, FAILED, IMPATIENT = "+12025550104", "+12025550106", "+12025550108", "+12025550109"
SHORT_MESSAGE = "<Response><Say>Hello from the sandbox test</Say></Response>"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def test_subscribed_status_events_arrive_signed_in_sequence(sandbox, app, client):
    app.routes["/voice"] = SHORT_MESSAGE
    call = client.calls.create(
        to=HUMAN,
        from_=FROM,
        url=app.url("/voice"),
        status_callback=app.url("/status"),
        status_callback_event=ALL_EVENTS,
    )

    hits = sorted(app.wait_for("/status", count=4), key=lambda h: int(h.params["SequenceNumber"]))
    assert [h.params["CallStatus"] for h in hits] == ["initiated", "ringing", "in-progress", "completed"]
    assert [h.params["SequenceNumber"] for h in hits] == ["0", "1", "2", "3"]
    for hit in hits:
        assert hit.signature_valid
        assert hit.headers.get("I-Twilio-Idempotency-Token")
        assert hit.params["CallSid"] == call.sid and hit.params["AccountSid"] == sandbox.account_sid
        assert (hit.params["From"], hit.params["To"]) == (FROM, HUMAN)
        assert hit.params["Direction"] == "outbound-api"
        assert hit.params["ApiVersion"] == "2010-04-01"
        assert hit.params["CallbackSource"] == "call-progress-events"
        parsedate_to_datetime(hit.params["Timestamp"])
    terminal = hits[-1].params
    assert int(terminal["CallDuration"]) >= 1 and terminal["Duration"] == "1"
    assert "AnsweredBy" not in terminal  # no AMD was asked for

    voice = app.wait_for("/voice")[0]
    assert voice.signature_valid and voice.params["CallStatus"] == "in-progress"
    assert sandbox.call(call.sid)["end_reason"] == "end of TwiML"


def test_only_completed_is_sent_without_a_subscription(sandbox, app, client):
    app.routes["/voice"] = SHORT_MESSAGE
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"), status_callback=app.url("/status"))
    wait_status(sandbox, call.sid)
    hits = app.wait_for("/status")
    assert [(h.params["CallStatus"], h.params["SequenceNumber"]) for h in hits] == [("completed", "0")]


def test_human_with_async_amd_fetches_url_at_answer_then_reports_human(sandbox, app, client):
    app.routes["/voice"] = HOLD
    call = client.calls.create(
        to=HUMAN,
        from_=FROM,
        url=app.url("/voice"),
        machine_detection="Enable",
        async_amd="true",
        async_amd_status_callback=app.url("/amd"),
    )

    amd = app.wait_for("/amd")[0]
    voice = app.requests_to("/voice")[0]
    assert voice.at < amd.at
    assert amd.signature_valid
    assert amd.params == {
        "CallSid": call.sid,
        "AccountSid": sandbox.account_sid,
        "AnsweredBy": "human",
        "MachineDetectionDuration": "2000",
    }
    assert client.calls(call.sid).fetch().answered_by == "human"


def test_detect_message_end_reports_machine_end_after_the_greeting(sandbox, app, client):
    app.routes["/voice"] = HOLD
    call = client.calls.create(
        to=MACHINE_SILENCE,
        from_=FROM,
        url=app.url("/voice"),
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=app.url("/amd"),
        status_callback=app.url("/status"),
    )

    amd = app.wait_for("/amd")[0]
    assert (amd.params["AnsweredBy"], amd.params["MachineDetectionDuration"]) == ("machine_end_silence", "8000")
    # Nobody redirects it: left on hold music, the machine hangs up a few seconds after its greeting.
    done = wait_status(sandbox, call.sid)
    assert done["end_reason"] == "machine hung up on hold audio"
    assert event_time(done, "ended") - event_time(done, "answered") == pytest.approx(13.0, abs=0.5)
    assert app.wait_for("/status")[0].params["AnsweredBy"] == "machine_end_silence"


def test_enable_mode_says_machine_start_and_fax_at_once(sandbox, app, client):
    app.routes["/voice"] = HOLD
    verdicts = {}
    for number in (MACHINE_BEEP, FAX):
        sid = client.calls.create(
            to=number,
            from_=FROM,
            url=app.url("/voice"),
            machine_detection="Enable",
            async_amd="true",
            async_amd_status_callback=app.url("/amd"),
        ).sid
        verdicts[sid] = number
    hits = app.wait_for("/amd", count=2)
    assert {verdicts[h.params["CallSid"]]: h.params["AnsweredBy"] for h in hits} == {
        MACHINE_BEEP: "machine_start",
        FAX: "fax",
    }


def test_voicemail_drop_after_the_beep_is_recorded_to_the_end(sandbox, app, client):
    # 30 s of grace after the greeting leaves the test thread time to redirect even on a loaded machine; the
    # 40 s message then outlasts the grace, and the machine keeps recording until our <Hangup>.
    sandbox.update_config(machine_hangup_after_s=30.0)
    app.routes["/voice"] = HOLD
    app.routes["/voicemail"] = '<Response><Play loop="8">https://example.com/message.mp3</Play><Hangup/></Response>'
    call = client.calls.create(
        to=MACHINE_BEEP,
        from_=FROM,
        url=app.url("/voice"),
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=app.url("/amd"),
    )
    assert app.wait_for("/amd")[0].params["AnsweredBy"] == "machine_end_beep"
    client.calls(call.sid).update(url=app.url("/voicemail"))

    done = wait_status(sandbox, call.sid)
    assert done["end_reason"] == "<Hangup>"
    assert event_time(done, "ended") - event_time(done, "answered") > 8.0 + 30.0
    assert app.wait_for("/voicemail")[0].signature_valid


def test_no_answer_after_the_requested_timeout(sandbox, app, client):
    call = client.calls.create(
        to=NO_ANSWER, from_=FROM, url=app.url("/voice"), timeout=10, status_callback=app.url("/status")
    )
    terminal = app.wait_for("/status")[0].params
    assert (terminal["CallStatus"], terminal["SipResponseCode"], terminal["CallDuration"]) == ("no-answer", "487", "0")
    done = sandbox.call(call.sid)
    assert event_time(done, "ended") - event_time(done, "ringing") == pytest.approx(10.0, abs=0.5)
    assert app.requests_to("/voice") == []


def test_failed_number_and_impatient_human(sandbox, app, client):
    app.routes["/voice"] = HOLD
    failed = client.calls.create(to=FAILED, from_=FROM, url=app.url("/voice"))
    impatient = client.calls.create(to=IMPATIENT, from_=FROM, url=app.url("/voice"))
    assert wait_status(sandbox, failed.sid)["status"] == "failed"
    done = wait_status(sandbox, impatient.sid)
    assert (done["status"], done["end_reason"]) == ("completed", "callee hung up on hold")
    assert event_time(done, "ended") - event_time(done, "answered") == pytest.approx(3.0, abs=0.5)


def test_calls_leave_the_queue_at_the_account_cps(sandbox, app, client):
    # A slow clock while creating: six REST round trips must take far less than one 0.5 s slot.
    sandbox.update_config(cps=2.0, time_scale=5.0)
    sids = [client.calls.create(to=FAILED, from_=FROM, url=app.url("/voice")).sid for _ in range(6)]
    calls = [wait_status(sandbox, sid) for sid in sids]
    starts = [event_time(call, "initiated") for call in calls]
    gaps = [b - a for a, b in pairwise(starts)]
    assert gaps == pytest.approx([0.5] * 5, abs=0.01)
    assert starts[-1] - starts[0] == pytest.approx((6 - 1) / 2.0, abs=0.01)
    assert int(client.calls(sids[-1]).fetch().queue_time) > 1000  # it waited for the five ahead of it


def test_url_failure_uses_fallback_then_application_error(sandbox, app, client):
    app.routes["/broken"] = 500
    app.routes["/fallback"] = SHORT_MESSAGE
    app.routes["/garbage"] = "this is not TwiML"
    rescued = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/broken"), fallback_url=app.url("/fallback"))
    fallback = app.wait_for("/fallback")[0]
    assert (fallback.params["ErrorCode"], fallback.params["ErrorUrl"]) == ("11200", app.url("/broken"))
    assert wait_status(sandbox, rescued.sid)["application_error"] is False

    broken = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/garbage"))
    done = wait_status(sandbox, broken.sid)
    assert done["application_error"] is True
    errors = [e for e in done["timeline"] if e["event"] == "application-error"]
    assert errors[0]["detail"]["code"] == "12100"
    assert sandbox.stats()["application_errors"] == 1


def test_inline_twiml_and_pause_redirect_hangup(sandbox, app, client):
    app.routes["/next"] = "<Response><Pause length='2'/><Hangup/></Response>"
    call = client.calls.create(
        to=HUMAN, from_=FROM, twiml=f"<Response><Redirect>{app.url('/next')}</Redirect></Response>"
    )
    done = wait_status(sandbox, call.sid)
    assert done["end_reason"] == "<Hangup>"
    assert app.wait_for("/next")[0].signature_valid


def test_synchronous_amd_holds_the_url_until_the_verdict(sandbox, app, client):
    app.routes["/voice"] = SHORT_MESSAGE
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"), machine_detection="Enable")
    voice = app.wait_for("/voice")[0]
    assert voice.params["AnsweredBy"] == "human"
    done = wait_status(sandbox, call.sid)
    fetched = next(d for d in done["webhooks"] if d["kind"] == "voice-url")
    assert 2.0 <= fetched["sim_t"] - event_time(done, "answered") < 4.0  # after the 2 s verdict (plus loop latency)


def test_time_scale_can_change_while_calls_wait(sandbox, app, client):
    call = client.calls.create(to=NO_ANSWER, from_=FROM, url=app.url("/voice"), timeout=600)
    wait_status(sandbox, call.sid, "ringing")
    sandbox.update_config(time_scale=2000.0)  # the 600 s ring (12 real seconds at 50x) now takes 0.3 s
    done = wait_status(sandbox, call.sid, timeout=3.0)
    assert done["status"] == "no-answer"
    assert event_time(done, "ended") - event_time(done, "ringing") == pytest.approx(
        600.0, abs=10.0
    )  # 1 ms of loop latency = 2 s here


def test_get_method_puts_params_in_the_signed_query(sandbox, app, client):
    app.routes["/voice-get"] = SHORT_MESSAGE
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice-get?campaign=3"), method="GET")
    hit = app.wait_for("/voice-get")[0]
    assert hit.method == "GET" and hit.signature_valid
    assert (hit.params["campaign"], hit.params["CallSid"]) == ("3", call.sid)


def test_a_queued_call_redirected_before_answer_runs_the_new_url(sandbox, app, client):
    app.routes["/second"] = SHORT_MESSAGE
    sandbox.update_config(time_scale=10.0)  # room for the REST update before the 3 s pickup
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/first"))
    assert client.calls(call.sid).update(url=app.url("/second")).status in ("queued", "ringing")
    wait_status(sandbox, call.sid)
    assert app.requests_to("/first") == [] and len(app.requests_to("/second")) == 1
