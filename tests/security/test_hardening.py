"""Rate limits, webhook retries after a failure, retention, upload limits and the all-or-nothing create."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from campaigns.imports import ContactImportError, contacts_import_csv
from campaigns.models import Campaign
from tests import factories
from tests.conftest import post_webhook
from tests.live import at_once
from voice import services as call_services
from voice.models import Call, CallEvent, WebhookEvent

pytestmark = pytest.mark.django_db

SID = "CA" + "e" * 32


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


# -- login throttling (django-axes) ---------------------------------------------------------------------------


def _login(client, username, password, addr="203.0.113.7"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=addr)


def test_wrong_passwords_lock_the_account_even_for_the_right_one(client, settings):
    user = factories.make_user(username="target")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "target", "wrong-guess").status_code == 200  # the form again, with an error
    assert _login(client, "target", "wrong-guess").status_code == 429  # the last allowed failure locks
    response = _login(client, "target", factories.PASSWORD)
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "Try again in 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # From another address too: the account itself is locked.
    assert _login(Client(), "target", factories.PASSWORD, addr="198.51.100.9").status_code == 429
    # Another account from a clean address still signs in.
    other = factories.make_user(username="bystander")
    assert _login(Client(), other.username, factories.PASSWORD, addr="198.51.100.10").status_code == 302
    call_command("axes_reset_username", "target", verbosity=0)
    assert _login(Client(), user.username, factories.PASSWORD, addr="198.51.100.11").status_code == 302


def test_one_address_guessing_many_accounts_is_locked_out(client, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(client, f"guess{i}", "wrong-guess", addr="192.0.2.66")
    victim = factories.make_user(username="victim")
    assert _login(client, victim.username, factories.PASSWORD, addr="192.0.2.66").status_code == 429


# -- API throttling ----------------------------------------------------------------------------------------------


def test_the_json_api_answers_429_with_retry_after_per_user(settings, campaign, agent):
    settings.API_THROTTLE_RATE = 5
    settings.API_THROTTLE_WINDOW_S = 60
    client = Client()
    client.force_login(agent)
    codes = [client.get(f"/api/campaign/{campaign.pk}").status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    response = client.get(f"/api/campaign/{campaign.pk}")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "too many requests" in response.json()["error"]
    # Another user has their own budget.
    other = Client()
    other.force_login(factories.make_user())
    assert other.get(f"/api/campaign/{campaign.pk}").status_code == 403


def test_signed_webhook_bursts_are_not_throttled(settings, client):
    settings.API_THROTTLE_RATE = 2
    codes = {post_webhook(client, "status", {"CallSid": f"CA{i:032d}", "CallStatus": "ringing",
                                             "SequenceNumber": "1"}).status_code for i in range(10)}
    assert codes == {204}


def test_forged_webhooks_touch_no_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        for _ in range(20):
            response = post_webhook(client, "status", {"CallSid": SID, "CallStatus": "completed"},
                                    signature="forged")
            assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_without_an_auth_token_no_signature_is_accepted(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    assert post_webhook(client, "status", {"CallSid": SID, "CallStatus": "ringing"}).status_code == 403
    settings.TWILIO_AUTH_TOKEN = settings.SANDBOX_AUTH_TOKEN
    settings.TWILIO_SANDBOX = False
    assert post_webhook(client, "status", {"CallSid": SID, "CallStatus": "ringing"}).status_code == 403


# -- a failed webhook is processed again on Twilio's retry -------------------------------------------------------


@pytest.fixture
def ringing_call(db):
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent])
    session = factories.make_session(campaign=campaign, agent=agent)
    contact = factories.make_contact(campaign=campaign)
    return Call.objects.create(campaign=campaign, contact=contact, sid=SID, state="dialing", dialed_for=session)


def test_a_failed_webhook_is_applied_when_twilio_retries_it(client, ringing_call, monkeypatch):
    params = {"CallSid": SID, "CallStatus": "ringing", "SequenceNumber": "1"}
    real = call_services.call_on_status
    monkeypatch.setattr(call_services, "call_on_status", lambda **kw: (_ for _ in ()).throw(RuntimeError("db blip")))
    assert post_webhook(client, "status", params).status_code == 204
    failed = WebhookEvent.objects.get()
    assert failed.status == WebhookEvent.Processing.FAILED and "db blip" in failed.error

    monkeypatch.setattr(call_services, "call_on_status", real)
    assert post_webhook(client, "status", params).status_code == 204
    ringing_call.refresh_from_db()
    assert ringing_call.state == "ringing"
    rows = list(WebhookEvent.objects.order_by("pk").values_list("status", flat=True))
    assert rows == ["failed", "processed"]
    # A third delivery of a processed report is a duplicate, as before.
    post_webhook(client, "status", params)
    assert WebhookEvent.objects.order_by("pk").last().status == WebhookEvent.Processing.DUPLICATE


@pytest.mark.django_db(transaction=True)
def test_two_racing_retries_of_a_failed_webhook_apply_once(ringing_call, monkeypatch):
    from voice import inbox

    params = {"CallSid": SID, "CallStatus": "ringing", "SequenceNumber": "1"}
    WebhookEvent.objects.create(kind="status", path="/api/voice/status", call_sid=SID, params=params,
                                signature_valid=True, dedupe_key=f"status:{SID}:1", status="failed")
    results, errors = at_once(lambda: inbox.webhook_record(kind="status", route="status", path="/api/voice/status",
                                                           params=params, headers={})[1], 4)
    assert errors == []
    assert sorted(results) == [False, True, True, True]  # one takes the key over, three are duplicates
    assert WebhookEvent.objects.filter(dedupe_key=f"status:{SID}:1").count() == 1


# -- retention ---------------------------------------------------------------------------------------------------


def test_old_webhooks_are_purged_and_call_history_stays(ringing_call, settings):
    old = WebhookEvent.objects.create(kind="status", path="/api/voice/status", call_sid=SID, params={},
                                      signature_valid=True, status="processed")
    WebhookEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - dt.timedelta(days=31))
    recent = WebhookEvent.objects.create(kind="status", path="/api/voice/status", call_sid=SID, params={},
                                         signature_valid=True, status="processed")
    event = CallEvent.objects.create(call=ringing_call, kind="status", webhook=old)
    out = io.StringIO()
    call_command("purge_webhooks", stdout=out)
    assert "deleted 1 " in out.getvalue()
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    event.refresh_from_db()
    assert event.webhook_id is None


# -- CSV upload limits -------------------------------------------------------------------------------------------


def test_csv_uploads_over_the_limits_are_refused_whole(campaign, settings):
    settings.CSV_MAX_ROWS = 3
    settings.CSV_MAX_COLUMNS = 4
    settings.CSV_MAX_BYTES = 2000

    def load(text):
        return contacts_import_csv(campaign=campaign, file=io.BytesIO(text.encode()), default_region="US",
                                   skip_invalid=True)

    rows = "".join(f"+1202555{i:04d}\n" for i in range(4))
    with pytest.raises(ContactImportError, match="more than 3 contacts"):
        load("phone\n" + rows)
    with pytest.raises(ContactImportError, match="columns"):
        load("phone,a,b,c,d\n+12025550100,1,2,3,4\n")
    with pytest.raises(ContactImportError, match="larger than"):
        load("phone,name\n" + "+12025550100," + "x" * 3000 + "\n")
    assert not campaign.contacts.exists()
    assert load("phone\n" + "".join(f"+1202555{i:04d}\n" for i in range(3))).created == 3


def test_the_api_refuses_too_many_contacts(manager, settings):
    settings.CSV_MAX_ROWS = 2
    client = Client()
    client.force_login(manager)
    response = client.post("/api/campaign", {"name": "Big", "seller_name": "Acme", "opt_out_number": "+12025550100",
                                             "contacts": ["+12025550100"] * 3},
                           content_type="application/json")
    assert response.status_code == 400 and "contacts" in response.json()["fields"]
    assert not Campaign.objects.filter(name="Big").exists()


# -- POST /api/campaign is all or nothing -----------------------------------------------------------------------


def test_a_creator_who_cannot_join_gets_a_409_and_no_campaign(manager):
    busy = factories.make_campaign(agents=[manager])
    factories.make_session(campaign=busy, agent=manager, state="ready")
    client = Client()
    client.force_login(manager)
    response = client.post("/api/campaign", {"name": "Spring promo", "seller_name": "Acme",
                                             "opt_out_number": "+12025550100", "contacts": ["+12025550123"]},
                           content_type="application/json")
    assert response.status_code == 409
    assert not Campaign.objects.filter(name="Spring promo").exists()
