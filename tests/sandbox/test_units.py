"""Pure pieces of the sandbox: signing, TwiML parsing, AMD verdicts, behaviours, config."""

from __future__ import annotations

import random
import time
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
import pytest
from twilio.request_validator import RequestValidator

from tests.sandbox.conftest import FROM
from tests.sandbox.helpers import wait_status
from voice.pacing.population import DEMO
from voice.sandbox import INVALID_NUMBER, MAGIC_NUMBERS, Behaviour, SandboxConfig
from voice.sandbox.behaviours import BehaviourBook, behaviour_from_spec, is_valid_to
from voice.sandbox.callee import amd_verdict
from voice.sandbox.twiml import TwimlError, parse
from voice.sandbox.webhooks import signed_request

TOKEN = "12345"


def test_post_signature_matches_twilios_own_test_vector():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url, body, signature = signed_request("https://mycompany.com/myapp.php?foo=1&bar=2", "POST", params, TOKEN)
    assert signature == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert dict(parse_qsl(body or "")) == params
    assert url == "https://mycompany.com/myapp.php?foo=1&bar=2"


def test_get_signature_covers_the_query_and_fragment_is_not_sent():
    url, body, signature = signed_request("http://127.0.0.1:8000/hook?x=1#rc=3", "GET", {"CallSid": "CA1"}, TOKEN)
    assert body is None and urlsplit(url).fragment == ""
    assert dict(parse_qsl(urlsplit(url).query)) == {"x": "1", "CallSid": "CA1"}
    assert RequestValidator(TOKEN).validate(url, {}, signature)


def test_twiml_parsing():
    verbs = parse(
        '<?xml version="1.0"?><Response><Play loop="0">a.mp3</Play><Dial action="/x">'
        '<Conference beep="false">room</Conference></Dial><Hangup/></Response>'
    )
    assert [v.name for v in verbs] == ["Play", "Dial", "Hangup"]
    assert verbs[0].attrs == {"loop": "0"} and verbs[1].children[0].text == "room"
    for bad in ("", "<Response>", "<Speak/>", "hello"):
        with pytest.raises(TwimlError):
            parse(bad)


@pytest.mark.parametrize(
    ("kind", "mode", "expected"),
    [
        ("human", "Enable", ("human", 2.0)),
        ("human", "DetectMessageEnd", ("human", 2.0)),
        ("machine", "Enable", ("machine_start", 2.0)),
        ("machine", "DetectMessageEnd", ("machine_end_other", 9.0)),
        ("fax", "DetectMessageEnd", ("fax", 2.0)),
        ("unknown", "Enable", ("unknown", 2.0)),
    ],
)
def test_amd_verdicts_per_mode(kind, mode, expected):
    behaviour = Behaviour(kind=kind, pickup_s=1.0, amd_s=2.0, greeting_s=9.0, machine_end="machine_end_other")
    assert amd_verdict(behaviour, mode, timeout_s=30.0) == expected


def test_amd_timeout_gives_unknown():
    behaviour = Behaviour(kind="machine", pickup_s=1.0, amd_s=2.0, greeting_s=40.0)
    assert amd_verdict(behaviour, "DetectMessageEnd", timeout_s=30.0) == ("unknown", 30.0)


def test_magic_numbers_are_valid_for_libphonenumber_and_the_invalid_one_is_refused():
    for number in MAGIC_NUMBERS:
        assert phonenumbers.is_valid_number(phonenumbers.parse(number)), number
        assert is_valid_to(number)
    assert not is_valid_to(INVALID_NUMBER)
    assert not is_valid_to("+0123456789") and not is_valid_to("2025550100")


def test_partial_behaviour_spec_fills_timings_from_the_population():
    behaviour = behaviour_from_spec({"kind": "human", "pickup_s": 1}, random.Random(1), DEMO)
    assert behaviour.pickup_s == 1.0 and behaviour.talk_s is not None and behaviour.patience_s is not None
    for bad in (
        {"kind": "alien"},
        {"kind": "human", "colour": "red"},
        {"kind": "human", "talk_s": -1},
        {"kind": "machine", "machine_end": "machine_start"},
    ):
        with pytest.raises(ValueError):
            behaviour_from_spec(bad, random.Random(1), DEMO)


def test_redials_of_one_number_draw_afresh_but_reproducibly():
    first, second = BehaviourBook(seed=3), BehaviourBook(seed=3)
    draws = [first.draw("+14155550100", DEMO)[0] for _ in range(10)]
    assert draws == [second.draw("+14155550100", DEMO)[0] for _ in range(10)]
    assert len(set(draws)) > 1


def test_config_validation():
    with pytest.raises(ValueError, match="cps"):
        SandboxConfig(cps=0)
    with pytest.raises(ValueError, match="duplicate_rate"):
        SandboxConfig(duplicate_rate=2)
    with pytest.raises(ValueError, match="cannot change at runtime"):
        SandboxConfig().updated({"auth_token": "x"})
    assert SandboxConfig().updated({"cps": 5}).cps == 5


def test_slow_voice_url_times_out_into_an_application_error(sandbox, app, client):
    sandbox.update_config(webhook_timeout_s=0.2)

    def slow(_hit):
        time.sleep(0.5)  # blocks only the fake app's own loop
        return "<Response/>"

    app.routes["/slow"] = slow
    call = client.calls.create(to="+12025550100", from_=FROM, url=app.url("/slow"))
    done = wait_status(sandbox, call.sid)
    assert done["application_error"] is True
    assert done["webhooks"][0]["error"].startswith("timeout")
    assert sandbox.stats()["webhooks"]["failed"] == 1
