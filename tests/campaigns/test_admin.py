"""The admin as a sales manager uses it, and as an agent is kept out of it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import AgentSession, Campaign, Contact, DispositionCode, DoNotCall
from tests import factories
from voice.models import Call, CallEffect, CallEvent, Disposition, Recording, Supervision, WebhookEvent

pytestmark = pytest.mark.django_db



@pytest.fixture(autouse=True)
def roles(db):
    # A transactional test elsewhere may have flushed the database, and the groups' permissions with it.
    factories.ensure_roles()


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def world(campaign, agent, manager):
    """One row of every model the admin shows."""
    contact = factories.make_contact(campaign=campaign, phone="+12025550123", name="Ada Lovelace")
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.WRAP_UP)
    call = Call.objects.create(campaign=campaign, contact=contact, sid="CA" + "1" * 32, state="ended",
                               outcome="talked", answered_by="human", bridged_to=session, dialed_for=session,
                               duration_s=42, ended_at=timezone.now())
    webhook = WebhookEvent.objects.create(kind=WebhookEvent.Kind.STATUS, path="/api/voice/status",
                                          call_sid=call.sid, params={"CallSid": call.sid, "CallStatus": "completed"},
                                          headers={"X-Twilio-Signature": "abc"}, signature_valid=True,
                                          status=WebhookEvent.Processing.PROCESSED)
    event = CallEvent.objects.create(call=call, kind="status", from_state="connected", to_state="ended",
                                     detail="the customer hung up", data={"CallStatus": "completed"}, webhook=webhook)
    code = DispositionCode.objects.filter(campaign=campaign).first()
    disposition = Disposition.objects.create(call=call, contact=contact, agent=agent, code=code, notes="Call back")
    dnc = DoNotCall.objects.create(phone="+12025550199", reason="asked")
    effect = CallEffect.objects.create(call=call, kind="hangup", status=CallEffect.Status.DONE, attempts=1,
                                       not_before=timezone.now(), result="")
    recording = Recording.objects.create(call=call, sid="RE" + "1" * 32, status="completed", duration_s=40,
                                         media_url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1")
    supervision = Supervision.objects.create(call=call, manager=manager, mode="whisper", ended_at=timezone.now())
    return {
        Campaign: campaign, Contact: contact, AgentSession: session, Call: call, WebhookEvent: webhook,
        CallEvent: event, CallEffect: effect, Disposition: disposition, DoNotCall: dnc, get_user_model(): agent,
        Recording: recording, Supervision: supervision,
        Group: Group.objects.get(name="Agents"),
    }


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


# -- every page renders for a manager, none for an agent --------------------------------------------------------


def test_every_registered_model_has_an_object_in_the_fixture(world):
    assert set(admin.site._registry) == set(world)


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_a_manager_sees_every_list_and_every_record(manager_client, world, model):
    assert manager_client.get(admin_url(model, "changelist")).status_code == 200
    assert manager_client.get(admin_url(model, "change", world[model].pk)).status_code == 200


@pytest.mark.parametrize("model", [Campaign, Contact, DoNotCall, get_user_model()], ids=lambda m: m._meta.label)
def test_a_manager_can_open_the_add_pages_of_what_they_manage(manager_client, model):
    assert manager_client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", [Call, CallEvent, WebhookEvent, Disposition, AgentSession],
                         ids=lambda m: m._meta.label)
def test_what_the_dialer_records_cannot_be_added_by_hand(manager_client, model):
    assert manager_client.get(admin_url(model, "add")).status_code == 403


def test_a_call_cannot_be_edited_but_shows_its_timeline(manager_client, world):
    call = world[Call]
    url = admin_url(Call, "change", call.pk)
    page = manager_client.get(url).content.decode()
    assert "Timeline" in page
    assert "the customer hung up" in page
    assert 'name="_save"' not in page
    assert manager_client.post(url, {"state": "created"}).status_code == 403
    call.refresh_from_db()
    assert call.state == "ended"


def test_webhook_parameters_are_shown_pretty_printed(manager_client, world):
    page = manager_client.get(admin_url(WebhookEvent, "change", world[WebhookEvent].pk)).content.decode()
    assert "&quot;CallStatus&quot;: &quot;completed&quot;" in page


@pytest.mark.parametrize("url", [
    "/admin/",
    "/admin/campaigns/campaign/",
    "/admin/campaigns/contact/",
    "/admin/campaigns/contact/import/",
    "/admin/voice/call/",
    "/admin/voice/webhookevent/",
    "/admin/auth/user/",
])
def test_an_agent_is_sent_to_the_admin_login(agent_client, world, url):
    response = agent_client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_agents_have_no_permissions_and_managers_only_view_calls(manager, agent):
    assert not agent.get_all_permissions()
    assert manager.has_perm("campaigns.change_campaign")
    assert manager.has_perm("campaigns.add_contact")
    assert manager.has_perm("voice.view_call")
    assert not manager.has_perm("voice.change_call")
    assert manager.has_perm("voice.replay_webhookevent")
    assert not manager.has_perm("voice.change_webhookevent")


# -- campaign list ------------------------------------------------------------------------------------------------


def test_the_campaign_list_shows_live_counts_and_the_abandonment_rate(manager_client, campaign):
    contacts = [factories.make_contact(campaign=campaign) for _ in range(4)]
    Contact.objects.filter(pk=contacts[0].pk).update(status=Contact.Status.DONE)
    for state in (AgentSession.State.READY, AgentSession.State.PAUSED, AgentSession.State.OFFLINE):
        factories.make_session(campaign=campaign, state=state)
    Call.objects.create(campaign=campaign, contact=contacts[0], state="ended", outcome="talked", answered_by="human")
    Call.objects.create(campaign=campaign, contact=contacts[0], state="ended", outcome="abandoned",
                        answered_by="human")
    Call.objects.create(campaign=campaign, contact=contacts[0], state="ended", outcome="machine",
                        answered_by="machine_end_beep")
    Call.objects.create(campaign=campaign, contact=contacts[1], state="ringing")

    page = manager_client.get("/admin/campaigns/campaign/").content.decode()

    assert ">3 / 4</a>" in page  # contacts to dial / all
    assert "1 / 2" in page  # agents ready / signed in
    assert '<td class="field-calls_live">1</td>' in page
    assert "50.0 %" in page  # 1 abandoned of 2 answered by a person
    assert "dialer-over-cap" in page  # above the 3 % cap


def test_the_campaign_list_costs_the_same_queries_for_one_campaign_or_many(manager_client, campaign):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert manager_client.get("/admin/campaigns/campaign/").status_code == 200
        return len(queries)

    one = count_queries()
    for _ in range(5):
        other = factories.make_campaign(codes=False)
        factories.make_contact(campaign=other)
        factories.make_session(campaign=other)
    assert count_queries() == one


def test_campaigns_are_paused_and_resumed_from_the_list(manager_client, campaign):
    response = manager_client.post("/admin/campaigns/campaign/", {
        "action": "pause_campaigns", "_selected_action": [campaign.pk]}, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "Paused: " in response.content.decode()

    manager_client.post("/admin/campaigns/campaign/", {"action": "start_campaigns", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING


def test_an_ended_campaign_cannot_be_started_and_the_manager_is_told(manager_client):
    ended = factories.make_campaign(status=Campaign.Status.ENDED, codes=False)
    response = manager_client.post("/admin/campaigns/campaign/", {
        "action": "start_campaigns", "_selected_action": [ended.pk]}, follow=True)
    ended.refresh_from_db()
    assert ended.status == Campaign.Status.ENDED
    assert "Not changed" in response.content.decode()


def test_the_change_page_has_status_buttons_that_work(manager_client, campaign):
    url = admin_url(Campaign, "change", campaign.pk)
    page = manager_client.get(url).content.decode()
    assert 'value="paused"' in page and 'value="ended"' in page
    assert f"/admin/campaigns/contact/import/?campaign={campaign.pk}" in page

    response = manager_client.post(reverse("admin:campaigns_campaign_status", args=[campaign.pk]),
                                   {"status": "ended"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ENDED
    assert 'value="running"' not in manager_client.get(url).content.decode()


def campaign_form_data(**overrides) -> dict:
    data = {
        "name": "Spring outreach", "caller_id": "(202) 555-0100", "dial_mode": "parallel", "lines_per_agent": 3,
        "ring_timeout_s": 25, "min_ring_s": 15, "auto_ready": "on", "amd_mode": "DetectMessageEnd",
        "amd_unknown_policy": "connect", "voicemail_audio_url": "", "voicemail_text": "", "hold_audio_url": "",
        "amd_timeout_s": 30, "amd_speech_threshold_ms": 2400, "amd_speech_end_threshold_ms": 1200,
        "amd_silence_timeout_ms": 5000, "max_hold_s": 2, "max_abandon_rate": "3", "safe_harbor_text": "Sorry.",
        "seller_name": "Acme", "opt_out_number": "+12025550100",
        "safe_harbor_audio_url": "", "window_start": "09:00", "window_end": "20:00", "window_days": ["1", "3", "5"],
        "max_attempts": 3, "retry_no_answer_min": 240, "retry_busy_min": 30, "retry_machine_min": 1440,
        "retry_abandoned_min": 0, "retry_failed_min": 1440, "callbacks_to_same_agent": "on",
        "announce_recording": "two_party", "recording_announcement": "This call is recorded.",
        "disposition_codes-TOTAL_FORMS": 0, "disposition_codes-INITIAL_FORMS": 0,
        "disposition_codes-MIN_NUM_FORMS": 0, "disposition_codes-MAX_NUM_FORMS": 1000,
    }
    data.update(overrides)
    return data


def test_a_manager_creates_a_campaign_with_days_percent_and_default_dispositions(manager_client, manager, agent):
    response = manager_client.post(admin_url(Campaign, "add"), campaign_form_data(agents=[agent.pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get(name="Spring outreach")
    assert campaign.window_days == [1, 3, 5]
    assert campaign.max_abandon_rate == pytest.approx(0.03)
    assert campaign.caller_id == "+12025550100"
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.created_by == manager
    assert list(campaign.agents.all()) == [agent]
    assert campaign.disposition_codes.count() >= 3


@pytest.mark.parametrize(("field", "value", "message"), [
    ("ring_timeout_s", 10, "15"),
    ("window_end", "08:00", "must end after it starts"),
    ("window_days", [], "This field is required"),
    ("caller_id", "12", "too short"),
])
def test_the_campaign_form_explains_what_is_wrong(manager_client, field, value, message):
    response = manager_client.post(admin_url(Campaign, "add"), campaign_form_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Campaign.objects.filter(name="Spring outreach").exists()


def test_the_campaign_form_shows_the_cap_in_percent_and_the_days_ticked(manager_client, campaign):
    page = manager_client.get(admin_url(Campaign, "change", campaign.pk)).content.decode()
    assert 'name="max_abandon_rate" value="3.0"' in page or 'name="max_abandon_rate" value="3"' in page
    assert page.count('name="window_days"') == 7
    assert page.count('name="window_days" value="') == 7
    assert "checked" in page


# -- contacts, do-not-call, users -----------------------------------------------------------------------------------


def test_contacts_are_found_by_the_number_as_people_write_it(manager_client, world):
    page = manager_client.get("/admin/campaigns/contact/", {"q": "(202) 555-0123"}).content.decode()
    assert "Ada Lovelace" in page
    assert "0 of 1 selected" in page  # exactly one row listed


@pytest.mark.parametrize(("path", "typed", "shown"), [
    ("/admin/campaigns/donotcall/", "202.555.0199", "+12025550199"),
    ("/admin/voice/call/", "(202) 555-0123", "CA" + "1" * 32),
])
def test_do_not_call_entries_and_calls_are_found_by_the_number_as_people_write_it(manager_client, world, path,
                                                                                   typed, shown):
    assert shown in manager_client.get(path, {"q": typed}).content.decode()
    assert shown not in manager_client.get(path, {"q": "(303) 555-0100"}).content.decode()


def test_a_do_not_call_entry_is_stored_in_e164_with_who_added_it(manager_client, manager):
    response = manager_client.post(admin_url(DoNotCall, "add"), {"phone": "202-555-0142", "reason": "asked"})
    assert response.status_code == 302
    entry = DoNotCall.objects.get(phone="+12025550142")
    assert entry.added_by == manager
    assert entry.campaign is None


def test_a_number_already_on_the_list_is_refused_with_a_message(manager_client):
    DoNotCall.objects.create(phone="+12025550142")
    response = manager_client.post(admin_url(DoNotCall, "add"), {"phone": "(202) 555-0142", "reason": "again"})
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert DoNotCall.objects.filter(phone="+12025550142").count() == 1


def test_a_manager_cannot_see_superusers_or_grant_superuser_status(manager_client):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    assert "root" not in manager_client.get("/admin/auth/user/").content.decode()
    assert manager_client.get(admin_url(get_user_model(), "change", root.pk)).status_code == 302
    agent = factories.make_user(username="newagent")
    page = manager_client.get(admin_url(get_user_model(), "change", agent.pk)).content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="user_permissions"' not in page
    assert 'name="is_staff"' not in page
    assert 'name="groups"' not in page


def test_a_manager_edits_agents_only_and_cannot_promote_anyone(manager_client, manager):
    other_manager = factories.make_user(manager=True, username="othermanager")
    administrator = factories.make_user(admin=True, username="theadmin")
    agent = factories.make_user(username="plainagent")
    listing = manager_client.get("/admin/auth/user/").content.decode()
    assert "plainagent" in listing
    assert "othermanager" not in listing and "theadmin" not in listing
    for user in (other_manager, administrator, manager):
        assert manager_client.get(f"/admin/auth/user/{user.pk}/password/").status_code in (302, 404)
        response = manager_client.post(f"/admin/auth/user/{user.pk}/password/",
                                       {"password1": "pwned-by-manager-1", "password2": "pwned-by-manager-1"})
        assert response.status_code in (302, 404)
        user.refresh_from_db()
        assert not user.check_password("pwned-by-manager-1")
    # An agent's password is theirs to reset.
    response = manager_client.post(f"/admin/auth/user/{agent.pk}/password/",
                                   {"password1": "new-agent-pass-42", "password2": "new-agent-pass-42",
                                    "usable_password": "true"})
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.check_password("new-agent-pass-42")
    # Posting role fields on an agent's form changes nothing: the fields are not in the form.
    everything = Group.objects.get(name="Administrators")
    manager_client.post(f"/admin/auth/user/{agent.pk}/change/", {
        "username": agent.username, "is_active": "on", "is_staff": "on", "is_superuser": "on",
        "groups": [everything.pk], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    agent.refresh_from_db()
    assert not agent.is_staff and not agent.is_superuser and not agent.groups.filter(pk=everything.pk).exists()
    # A manager cannot make himself an administrator either: his own account is not in his user admin.
    manager_client.post(f"/admin/auth/user/{manager.pk}/change/", {
        "username": manager.username, "is_active": "on", "is_staff": "on", "is_superuser": "on",
        "groups": [everything.pk], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    manager.refresh_from_db()
    assert not manager.is_superuser and not manager.groups.filter(pk=everything.pk).exists()


def test_accounts_a_manager_creates_are_agents(manager_client):
    response = manager_client.post("/admin/auth/user/add/", {
        "username": "freshagent", "password1": "fresh-agent-pass-42", "password2": "fresh-agent-pass-42",
        "usable_password": "true"})
    assert response.status_code == 302
    fresh = get_user_model().objects.get(username="freshagent")
    assert list(fresh.groups.values_list("name", flat=True)) == ["Agents"]
    assert not fresh.is_staff


def test_an_administrator_edits_managers_and_grants_roles(client):
    administrator = factories.make_user(admin=True)
    other_manager = factories.make_user(manager=True, username="promoteme")
    client.force_login(administrator)
    assert "promoteme" in client.get("/admin/auth/user/").content.decode()
    page = client.get(f"/admin/auth/user/{other_manager.pk}/change/").content.decode()
    assert 'name="groups"' in page and 'name="is_superuser"' in page


def test_staff_status_alone_does_not_make_a_manager(client, campaign):
    staff = factories.make_user(is_staff=True)
    client.force_login(staff)
    assert client.get(f"/api/campaign/{campaign.pk}").status_code == 403
    assert client.get(f"/campaigns/{campaign.pk}/wallboard/").status_code in (302, 403)


def test_an_agent_can_be_signed_out_from_the_sessions_list(manager_client, campaign, agent):
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.READY)
    manager_client.post("/admin/campaigns/agentsession/", {"action": "sign_out", "_selected_action": [session.pk]})
    session.refresh_from_db()
    assert session.state == AgentSession.State.OFFLINE


def test_failed_webhooks_can_be_replayed(manager_client):
    event = WebhookEvent.objects.create(kind=WebhookEvent.Kind.STATUS, path="/api/voice/status",
                                        call_sid="CA" + "9" * 32, params={"CallSid": "CA" + "9" * 32,
                                                                          "CallStatus": "completed"},
                                        signature_valid=True, status=WebhookEvent.Processing.FAILED)
    response = manager_client.post("/admin/voice/webhookevent/", {
        "action": "replay", "_selected_action": [event.pk]}, follow=True)
    assert "Replayed 1 webhook(s)" in response.content.decode()
    event.refresh_from_db()
    assert event.attempts == 1
    assert event.status != WebhookEvent.Processing.FAILED


# -- the import page ------------------------------------------------------------------------------------------------


def upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("contacts.csv", text.encode(), content_type="text/csv")


def test_the_import_page_is_linked_and_preselects_the_campaign(manager_client, campaign):
    changelist = manager_client.get("/admin/campaigns/contact/").content.decode()
    assert "/admin/campaigns/contact/import/" in changelist
    page = manager_client.get(f"/admin/campaigns/contact/import/?campaign={campaign.pk}").content.decode()
    assert f'<option value="{campaign.pk}" selected>' in page
    assert '<option value="US" selected>' in page


def test_a_manager_imports_a_file_and_sees_the_report_with_row_numbers(manager_client, campaign):
    DoNotCall.objects.create(phone="+12025550103")
    response = manager_client.post("/admin/campaigns/contact/import/", {
        "campaign": campaign.pk, "default_region": "US", "skip_invalid": "on",
        "file": upload("Phone,Name,Plan\n(202) 555-0101,Ada,gold\nnope,Bad,\n+12025550103,Blocked,\n"
                       "202-555-0101,Again,\n+12025550102,Bob,\n"),
    })

    assert response.status_code == 200
    page = response.content.decode()
    assert "2 contacts added" in page
    assert "<td>3</td><td>nope</td>" in page
    assert "on the do-not-call list for all campaigns" in page
    assert "is also on row 2" in page
    assert set(Contact.objects.filter(campaign=campaign).values_list("phone", flat=True)) == {
        "+12025550101", "+12025550102"}


def test_a_file_with_a_bad_row_imports_nothing_unless_told_to_skip(manager_client, campaign):
    response = manager_client.post("/admin/campaigns/contact/import/", {
        "campaign": campaign.pk, "default_region": "US",
        "file": upload("Phone\n+12025550101\n+1 555 010 0000\n"),
    })
    page = response.content.decode()
    assert "Nothing was imported" in page
    assert "not a valid number for US" in page
    assert not Contact.objects.filter(campaign=campaign).exists()


def test_a_file_without_a_phone_column_is_explained_on_the_form(manager_client, campaign):
    response = manager_client.post("/admin/campaigns/contact/import/", {
        "campaign": campaign.pk, "default_region": "US", "file": upload("Name,Company\nAda,Engines\n"),
    })
    assert response.status_code == 200
    assert "The file has no phone column" in response.content.decode()
    assert not Contact.objects.filter(campaign=campaign).exists()


def test_manager_simulates_pacing_on_a_campaigns_statistics(db, monkeypatch):
    from django.test import Client

    monkeypatch.setattr("voice.pacer.PREVIEW_AGENT_HOURS", 2.0)

    from tests import factories

    manager = factories.make_user(manager=True, is_superuser=True)
    campaign = factories.make_campaign(agents=[factories.make_user(), factories.make_user()])
    client = Client()
    client.force_login(manager)
    response = client.post("/admin/campaigns/campaign/", {"action": "simulate_pacing",
                                                          "_selected_action": [campaign.pk]}, follow=True)
    text = response.content.decode()
    assert response.status_code == 200
    assert "Pacing simulation" in text and campaign.name in text
    assert "3 lines per ready agent" in text and "Predictive" in text
    # The campaign's own setting (parallel, 3 lines) is marked; the rows over its cap are flagged, row by row.
    table = text[text.index("dialer-pacing-table"):]
    rows = table.split("<tr")[2:]
    assert len(rows) == 6
    current = [row for row in rows if "dialer-row-current" in row]
    assert len(current) == 1 and "3 lines per ready agent" in current[0]
    for row in rows:
        assert ("over the cap" in row) == ("dialer-row-over-cap" in row)

    # A campaign whose own setting breaks a zero cap says so above the table and flags that row (it opted out of
    # the governor, which would otherwise keep parallel dialing under any cap).
    strict = factories.make_campaign(agents=[factories.make_user()], max_abandon_rate=0.0, lines_per_agent=5,
                                     abandon_cap_opt_out=True)
    text = client.post("/admin/campaigns/campaign/", {"action": "simulate_pacing",
                                                      "_selected_action": [strict.pk]}, follow=True).content.decode()
    rows = text[text.index("dialer-pacing-table"):].split("<tr")[2:]
    current = next(row for row in rows if "dialer-row-current" in row)
    assert "5 lines per ready agent" in current and "over the cap" in current
    assert "current setting would abandon more people than its cap allows" in text


def test_call_and_recording_pages_play_through_our_server_never_twilios_url(manager_client, world):
    recording = world[Recording]
    for url in (admin_url(Call, "change", world[Call].pk), admin_url(Recording, "change", recording.pk)):
        page = manager_client.get(url).content.decode()
        assert f'src="/recordings/{recording.pk}/audio"' in page
        assert "api.twilio.com" not in page
