"""The REST wire format, through the real twilio-python client."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.sandbox.conftest import API_KEY_SECRET, API_KEY_SID, FROM
from tests.sandbox.fake_app import HOLD, SandboxHttpClient
from tests.sandbox.helpers import wait_status
from voice.sandbox import INVALID_NUMBER

HUMAN, BUSY, NO_ANSWER = "+12025550100", "+12025550107", "+12025550106"


def test_create_answers_queued_outbound_call_in_twilio_format(sandbox, app, client):
    call = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"))

    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued"
    assert call.direction == "outbound-api"
    assert call.to == HUMAN and call._from == FROM
    assert call.api_version == "2010-04-01"
    assert isinstance(call.date_created, datetime)  # twilio-python parsed our RFC 2822 date
    assert call.uri == f"/2010-04-01/Accounts/{sandbox.account_sid}/Calls/{call.sid}.json"


def test_invalid_to_is_rejected_synchronously_with_21211(sandbox, app, client):
    for bad in (INVALID_NUMBER, "12345", "client:alice"):
        with pytest.raises(TwilioRestException) as caught:
            client.calls.create(to=bad, from_=FROM, url=app.url("/voice"))
        assert (caught.value.status, caught.value.code) == (400, 21211)
    assert sandbox.calls() == []


def test_missing_to_and_missing_instructions_are_rejected(sandbox, app):
    auth = (sandbox.account_sid, sandbox.auth_token)
    url = f"{sandbox.base_url}/2010-04-01/Accounts/{sandbox.account_sid}/Calls.json"
    no_to = requests.post(url, data={"From": FROM, "Url": app.url("/voice")}, auth=auth, timeout=5)
    assert (no_to.status_code, no_to.json()["code"]) == (400, 21201)
    body = requests.post(url, data={"To": HUMAN, "From": FROM}, auth=auth, timeout=5).json()
    assert body == {
        "code": 21205,
        "message": body["message"],
        "more_info": "https://www.twilio.com/docs/errors/21205",
        "status": 400,
    }


def test_bad_credentials_get_20003_and_api_keys_work(sandbox):
    wrong = Client(sandbox.account_sid, "not-the-token", http_client=SandboxHttpClient(sandbox.base_url))
    with pytest.raises(TwilioRestException) as caught:
        wrong.calls.create(to=HUMAN, from_=FROM, url="https://example.com/voice")
    assert (caught.value.status, caught.value.code) == (401, 20003)

    with_key = Client(
        API_KEY_SID, API_KEY_SECRET, account_sid=sandbox.account_sid, http_client=SandboxHttpClient(sandbox.base_url)
    )
    assert with_key.calls.list() == []


def test_list_filters_and_pages_and_fetch(sandbox, app, client):
    sids = [client.calls.create(to=number, from_=FROM, url=app.url("/voice")).sid for number in (HUMAN, BUSY, HUMAN)]

    listed = client.calls.list(page_size=2)  # two pages: twilio-python follows next_page_uri
    assert sorted(c.sid for c in listed) == sorted(sids)
    assert [c.sid for c in client.calls.list(to=HUMAN)] == [sids[2], sids[0]]  # newest first
    assert client.calls(sids[1]).fetch().to == BUSY

    wait_status(sandbox, sids[1], "busy")
    assert [c.sid for c in client.calls.list(status="busy")] == [sids[1]]

    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "f" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_canceled_ends_only_queued_or_ringing_calls(sandbox, app, client):
    app.routes["/voice"] = HOLD
    sandbox.update_config(cps=0.01)  # one call per 100 simulated seconds: the second one waits in the queue
    first = client.calls.create(to=NO_ANSWER, from_=FROM, url=app.url("/voice"), status_callback=app.url("/status"))
    queued = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"), status_callback=app.url("/status"))

    ringing = wait_status(sandbox, first.sid, "ringing")
    assert ringing["status"] == "ringing"
    assert client.calls(first.sid).update(status="canceled").status == "canceled"
    assert client.calls(queued.sid).update(status="canceled").status == "canceled"
    app.wait_for("/status", count=2, CallStatus="canceled")
    assert "initiated" not in [e["event"] for e in sandbox.call(queued.sid)["timeline"]]

    sandbox.update_config(cps=100)
    answered = client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"))
    wait_status(sandbox, answered.sid, "in-progress")
    assert client.calls(answered.sid).update(status="canceled").status == "in-progress"
    assert client.calls(answered.sid).update(status="completed").status == "completed"
    assert client.calls(answered.sid).fetch().duration is not None


def test_updating_an_ended_call_is_21220(sandbox, app, client):
    call = client.calls.create(to=BUSY, from_=FROM, url=app.url("/voice"))
    wait_status(sandbox, call.sid)
    for change in ({"url": app.url("/voice")}, {"status": "completed"}, {"twiml": "<Response/>"}):
        with pytest.raises(TwilioRestException) as caught:
            client.calls(call.sid).update(**change)
        assert (caught.value.status, caught.value.code) == (400, 21220)
        assert caught.value.msg.endswith("Call is not in-progress. Cannot redirect.")

    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "0" * 32).update(status="completed")
    assert caught.value.code == 20404


def test_injected_rest_errors(sandbox, app, client):
    sandbox.update_config(rest_error_rate=1.0, rest_error_kind="429")
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=HUMAN, from_=FROM, url=app.url("/voice"))
    assert (caught.value.status, caught.value.code) == (429, 20429)
    sandbox.update_config(rest_error_kind="500")
    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "0" * 32).update(status="completed")
    assert caught.value.status == 500
    assert sandbox.calls() == []  # refused requests were not processed
    assert sandbox.stats()["rest"]["errors_injected"] == 2
