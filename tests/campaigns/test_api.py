"""The JSON API: what an agent's browser or an integration sees."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from campaigns.models import AgentSession, Campaign, Contact, DoNotCall
from tests import factories
from voice.models import Call
from voice.states import State

pytestmark = pytest.mark.django_db(transaction=True)

SELLER = {"seller_name": "Acme Sales", "opt_out_number": "+12025550100"}


def api(client, path, payload=None, method="post"):
    if method == "get":
        return client.get(path)
    return client.post(path, data=json.dumps(payload or {}), content_type="application/json")


@pytest.fixture
def logged_in():
    def login(user):
        client = Client()
        client.force_login(user)
        return client

    return login


def test_manager_creates_a_campaign_with_contacts_and_gets_a_softphone_token(logged_in, manager):
    response = api(logged_in(manager), "/api/campaign", {
        "name": "Spring push", "dial_mode": "parallel", "lines_per_agent": 2, **SELLER,
        "contacts": ["+1 202 555 0143", {"phone": "(212) 555-0178", "name": "Ada", "company": "Acme"}],
    })
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["campaign"]["name"] == "Spring push"
    assert body["campaign"]["contacts"]["total"] == 2
    assert body["token"].count(".") == 2  # a JWT
    assert body["softphone"]["identity"] == f"agent-{manager.pk}"
    campaign = Campaign.objects.get(pk=body["campaign"]["id"])
    assert sorted(campaign.contacts.values_list("phone", flat=True)) == ["+12025550143", "+12125550178"]
    assert campaign.disposition_codes.count() >= 3


def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(logged_in, manager):
    client = logged_in(manager)
    short_ring = api(client, "/api/campaign", {"name": "x", "ring_timeout_s": 5, "contacts": []})
    assert short_ring.status_code == 400
    assert "ring_timeout_s" in short_ring.json()["fields"]
    bad_phone = api(client, "/api/campaign", {"name": "y", **SELLER, "contacts": ["+1 202 555 0143", "not a phone"]})
    assert bad_phone.status_code == 400
    assert "contacts" in bad_phone.json()["fields"]
    not_json = client.post("/api/campaign", data="{nope", content_type="application/json")
    assert not_json.status_code == 400
    assert not Campaign.objects.exists()
    assert not Contact.objects.exists()


def test_agents_may_not_create_campaigns_or_see_others(logged_in, agent):
    client = logged_in(agent)
    assert api(client, "/api/campaign", {"name": "mine"}).status_code == 403
    other = factories.make_campaign()
    assert api(client, f"/api/campaign/{other.pk}", method="get").status_code == 403
    assert api(client, f"/api/campaign/{other.pk}/join").status_code == 403
    assert api(Client(), f"/api/campaign/{other.pk}", method="get").status_code == 401


def test_join_ready_pause_leave(logged_in, agent, campaign):
    client = logged_in(agent)
    joined = api(client, f"/api/campaign/{campaign.pk}/join")
    assert joined.status_code == 200
    body = joined.json()
    assert body["session"]["state"] == "paused"
    assert body["softphone"]["params"] == {"session": str(body["session"]["id"])}
    assert api(client, f"/api/campaign/{campaign.pk}/ready").json()["session"]["state"] == "ready"
    paused = api(client, f"/api/campaign/{campaign.pk}/pause", {"reason": "lunch"}).json()["session"]
    assert paused["state"] == "paused" and paused["pause_reason"] == "lunch"
    assert api(client, f"/api/campaign/{campaign.pk}/leave").json()["session"]["state"] == "offline"
    assert api(client, f"/api/campaign/{campaign.pk}/ready").status_code == 409


def test_dial_next_places_lines_and_skips_dnc(logged_in, agent, fake_twilio):
    campaign = factories.make_campaign(agents=[agent], dial_mode="preview")
    blocked = factories.make_contact(campaign=campaign, priority=5)
    allowed = factories.make_contact(campaign=campaign)
    DoNotCall.objects.create(phone=blocked.phone)
    client = logged_in(agent)
    api(client, f"/api/campaign/{campaign.pk}/join")
    response = api(client, f"/api/campaign/{campaign.pk}/dial-next")
    assert response.status_code == 201
    [call] = response.json()["calls"]
    assert call["contact"]["id"] == allowed.pk
    assert api(client, f"/api/campaign/{campaign.pk}/dial-next").status_code == 409  # the line is busy


def test_disposing_twice_is_a_409(logged_in, agent, campaign):
    client = logged_in(agent)
    session_id = api(client, f"/api/campaign/{campaign.pk}/join").json()["session"]["id"]
    session = AgentSession.objects.get(pk=session_id)
    contact = factories.make_contact(campaign=campaign)
    Call.objects.create(campaign=campaign, contact=contact, bridged_to=session, state=State.ENDED, outcome="talked")
    AgentSession.objects.filter(pk=session_id).update(state="wrap_up")
    assert api(client, f"/api/campaign/{campaign.pk}/ready").status_code == 409  # dispose first
    unknown = api(client, f"/api/campaign/{campaign.pk}/disposition", {"code": "no-such-code"})
    assert unknown.status_code == 400 and "code" in unknown.json()["fields"]
    first = api(client, f"/api/campaign/{campaign.pk}/disposition", {"code": "dnc", "notes": "asked to stop"})
    assert first.status_code == 201
    assert DoNotCall.objects.filter(phone=contact.phone, campaign__isnull=True).exists()
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.DNC
    assert AgentSession.objects.get(pk=session_id).state == "ready"
    again = api(client, f"/api/campaign/{campaign.pk}/disposition", {"code": "interested"})
    assert again.status_code == 409


def test_callback_disposition_needs_a_future_time(logged_in, agent, campaign):
    client = logged_in(agent)
    session_id = api(client, f"/api/campaign/{campaign.pk}/join").json()["session"]["id"]
    contact = factories.make_contact(campaign=campaign)
    Call.objects.create(campaign=campaign, contact=contact, bridged_to_id=session_id, state=State.ENDED,
                        outcome="talked")
    missing = api(client, f"/api/campaign/{campaign.pk}/disposition", {"code": "callback"})
    assert missing.status_code == 400 and "callback_at" in missing.json()["fields"]
    ok = api(client, f"/api/campaign/{campaign.pk}/disposition",
             {"code": "callback", "callback_at": "2099-01-02T15:00:00+00:00"})
    assert ok.status_code == 201
    contact.refresh_from_db()
    assert contact.status == "pending" and contact.next_attempt_at.year == 2099
    assert contact.callback_agent_id == agent.pk


def test_end_hangs_up_every_live_call_and_ending_twice_is_a_409(logged_in, manager, fake_twilio):
    campaign = factories.make_campaign(agents=[manager])
    session = factories.make_session(campaign=campaign, agent=manager)
    ringing, on_hold = [
        Call.objects.create(campaign=campaign, contact=factories.make_contact(campaign=campaign),
                            dialed_for=session, sid=f"CA{i:032x}", state=state, twiml_fetched=state == State.ANSWERED)
        for i, state in enumerate([State.RINGING, State.ANSWERED])]
    client = logged_in(manager)
    assert api(client, f"/api/campaign/{campaign.pk}/end").status_code == 200
    assert Campaign.objects.get(pk=campaign.pk).status == "ended"
    assert all(Call.objects.get(pk=c.pk).state == State.RELEASING for c in (ringing, on_hold))
    # The ringing line is canceled; the person on hold hears the safe-harbor message, not a click.
    assert [r.form for r in fake_twilio.updates(ringing.sid)] == [{"Status": ["canceled"]}]
    [redirect] = fake_twilio.updates(on_hold.sid)
    assert "/api/voice/safe-harbor" in redirect.form["Url"][0]
    assert Call.objects.get(pk=on_hold.pk).outcome == "abandoned"
    assert api(client, f"/api/campaign/{campaign.pk}/end").status_code == 409


def test_token_for_an_agent_in_a_campaign(logged_in, agent, campaign):
    client = logged_in(agent)
    assert api(client, "/api/token").status_code == 409
    api(client, f"/api/campaign/{campaign.pk}/join")
    token = api(client, "/api/token").json()["softphone"]["token"]
    assert token.count(".") == 2


def test_leaving_with_an_undisposed_talk_is_a_409(logged_in, agent, campaign):
    client = logged_in(agent)
    session_id = api(client, f"/api/campaign/{campaign.pk}/join").json()["session"]["id"]
    contact = factories.make_contact(campaign=campaign, status=Contact.Status.DIALING)
    Call.objects.create(campaign=campaign, contact=contact, bridged_to_id=session_id, state=State.ENDED,
                        outcome="talked")
    AgentSession.objects.filter(pk=session_id).update(state="wrap_up")
    assert api(client, f"/api/campaign/{campaign.pk}/leave").status_code == 409
    assert api(client, f"/api/campaign/{campaign.pk}/disposition", {"code": "interested"}).status_code == 201
    assert api(client, f"/api/campaign/{campaign.pk}/leave").status_code == 200


def test_a_campaign_without_a_seller_identity_is_a_400_naming_both_fields(logged_in, manager):
    response = api(logged_in(manager), "/api/campaign", {"name": "Nameless", "contacts": ["+1 202 555 0143"]})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"seller_name", "opt_out_number"}
    bad_number = api(logged_in(manager), "/api/campaign", {"name": "x", "seller_name": "Acme",
                                                            "opt_out_number": "202 555", "contacts": []})
    assert bad_number.status_code == 400
    assert set(bad_number.json()["fields"]) == {"opt_out_number"}
    assert not Campaign.objects.exists()
