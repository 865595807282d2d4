"""The console and wallboard pages and the small JSON reads they make: who may open them and what they get."""

from __future__ import annotations

import json

import pytest

from campaigns.models import AgentSession
from tests import factories
from voice.models import Call, Disposition
from voice.states import Outcome, State

pytestmark = pytest.mark.django_db


def page_config(response, element_id: str) -> dict:
    html = response.content.decode()
    start = html.index(f'id="{element_id}"')
    start = html.index(">", start) + 1
    return json.loads(html[start:html.index("</script>", start)])


def test_the_console_is_for_members_and_managers(client, campaign, agent, manager):
    url = f"/campaigns/{campaign.pk}/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(agent)
    response = client.get(url)
    assert response.status_code == 200
    config = page_config(response, "console-config")
    assert config["wsPath"] == f"/ws/campaigns/{campaign.pk}/"
    assert config["api"]["join"] == f"/api/campaign/{campaign.pk}/join"
    assert [c["hotkey"] for c in config["codes"]] == ["1", "2", "3", "4"]
    client.force_login(factories.make_user())
    assert client.get(url).status_code == 403
    client.force_login(manager)
    assert client.get(url).status_code == 200


def test_the_console_tells_the_softphone_where_the_sandbox_is(client, campaign, agent, settings):
    settings.TWILIO_SANDBOX = True
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:8100"
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    client.force_login(agent)
    softphone = page_config(client.get(f"/campaigns/{campaign.pk}/"), "console-config")["softphone"]
    assert softphone["sandboxBaseUrl"] == "http://127.0.0.1:8100"
    assert softphone["publicBaseUrl"] == "http://127.0.0.1:8000"
    settings.TWILIO_SANDBOX = False
    softphone = page_config(client.get(f"/campaigns/{campaign.pk}/"), "console-config")["softphone"]
    assert softphone["sandboxBaseUrl"] is None  # real Twilio: the Voice SDK from our own static files


def test_the_wallboard_is_for_managers(client, campaign, agent, manager):
    url = f"/campaigns/{campaign.pk}/wallboard/"
    client.force_login(agent)
    assert client.get(url).status_code == 403
    assert client.get(url + "stats").status_code == 403
    client.force_login(manager)
    response = client.get(url)
    assert response.status_code == 200
    assert page_config(response, "wallboard-config")["wsPath"] == f"/ws/campaigns/{campaign.pk}/wallboard/"
    stats = client.get(url + "stats").json()["stats"]
    assert stats["abandonment"]["cap"] == campaign.max_abandon_rate


def test_the_contact_card_has_local_time_zone_custom_fields_and_history(client, campaign, agent):
    session = factories.make_session(campaign=campaign, agent=agent)
    contact = factories.make_contact(campaign=campaign, name="Ada Nguyen", company="Northwind",
                                     time_zone="America/Chicago", custom_fields={"plan": "Growth"})
    earlier = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, bridged_to=session,
                                  state=State.ENDED, outcome=Outcome.TALKED)
    code = campaign.disposition_codes.get(code="callback")
    Disposition.objects.create(call=earlier, contact=contact, agent=agent, code=code, notes="Call after the budget")
    now = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, bridged_to=session,
                              state=State.CONNECTED)
    client.force_login(agent)
    card = client.get(f"/campaigns/{campaign.pk}/calls/{now.pk}/card").json()
    assert card["contact"]["name"] == "Ada Nguyen"
    assert card["contact"]["time_zone"] == "America/Chicago"
    assert card["contact"]["custom_fields"] == {"plan": "Growth"}
    assert [(h["disposition"], h["notes"]) for h in card["history"]] == [("Call back", "Call after the budget")]


def test_the_card_guesses_the_time_zone_from_the_number_when_it_is_missing(client, campaign, agent):
    session = factories.make_session(campaign=campaign, agent=agent)
    contact = factories.make_contact(campaign=campaign, phone="+14155550142", time_zone="")
    call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=session)
    client.force_login(agent)
    card = client.get(f"/campaigns/{campaign.pk}/calls/{call.pk}/card").json()
    assert card["contact"]["time_zone"] == "America/Los_Angeles"
    assert card["contact"]["time_zone_guessed"] is True


def test_an_agent_cannot_read_a_colleagues_contact_card(client, campaign, agent):
    colleague = factories.make_session(campaign=campaign)
    call = Call.objects.create(campaign=campaign, contact=factories.make_contact(campaign=campaign),
                               dialed_for=colleague)
    client.force_login(agent)
    response = client.get(f"/campaigns/{campaign.pk}/calls/{call.pk}/card")
    assert response.status_code == 403
    assert response.json() == {"error": "this call is not yours"}


def test_the_agents_day_counts_dials_people_conversations_and_talk_time(client, campaign, agent):
    import datetime as dt

    from django.utils import timezone

    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.READY)
    now = timezone.now()
    for phone_state, outcome in ((State.ENDED, Outcome.NO_ANSWER), (State.RINGING, Outcome.NONE)):
        Call.objects.create(campaign=campaign, contact=factories.make_contact(campaign=campaign),
                            dialed_for=session, state=phone_state, outcome=outcome)
    talked = Call.objects.create(
        campaign=campaign, contact=factories.make_contact(campaign=campaign), dialed_for=session,
        bridged_to=session, state=State.ENDED, outcome=Outcome.TALKED, answered_by="human", bridged_at=now,
        connected_at=now - dt.timedelta(seconds=95), ended_at=now)
    Disposition.objects.create(call=talked, contact=talked.contact, agent=agent,
                               code=campaign.disposition_codes.get(code="interested"))
    client.force_login(agent)
    assert client.get(f"/campaigns/{campaign.pk}/stats").json()["stats"] == {
        "dials": 3, "humans": 1, "conversations": 1, "talk_s": 95}


def test_the_json_reads_answer_401_not_a_login_page(client, campaign):
    response = client.get(f"/campaigns/{campaign.pk}/stats")
    assert response.status_code == 401
    assert response.json() == {"error": "log in first"}
