"""Presence on PostgreSQL: a customer goes only to an agent whose console is connected and whose phone is in the
room; each way of losing one (tab closed, heartbeat gone, phone leg left, sign-out, removed from the campaign,
deactivated) pauses or cuts off the agent, with real consumers (WebsocketCommunicator) and signed webhooks."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from campaigns.models import AgentSession
from tests import factories
from tests.realtime.test_consumers import Page, console_path, run
from tests.voice.test_webhooks import amd, answer, params_for
from voice import floor as campaign_services
from voice import live as selectors
from voice import presence, states
from voice.models import Call, ConsoleSocket

pytestmark = pytest.mark.django_db(transaction=True)

State = AgentSession.State


@pytest.fixture(autouse=True)
def console_required(settings):
    settings.PRESENCE_REQUIRE_CONSOLE = True
    settings.PRESENCE_TIMEOUT_S = 5


@pytest.fixture
def floor2(fake_twilio):
    """A running campaign, two ringing lines allowed per agent, one ready agent whose phone is in the room."""
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent], lines_per_agent=2, min_ring_s=0)
    for _ in range(4):
        factories.make_contact(campaign=campaign)
    session = factories.make_session(campaign=campaign, agent=agent, state_changed_at=timezone.now())
    return campaign, session


def reload(session) -> AgentSession:
    return AgentSession.objects.get(pk=session.pk)


def live_lines(session) -> int:
    return Call.objects.filter(dialed_for=session, state__in=list(states.UNANSWERED_STATES)).count()


def wallboard_agent(campaign, session) -> dict:
    snapshot = selectors.wallboard_snapshot(campaign_id=campaign.pk)
    return next(a for a in snapshot["agents"] if a["id"] == session.pk)


def test_closing_the_console_pauses_a_ready_agent_at_once_and_releases_their_lines(floor2):
    campaign, session = floor2
    calls = campaign_services.dial_next(session=session)
    assert live_lines(session) == 2

    async def test():
        page = Page(console_path(campaign), session.agent)
        await page.open()
        assert await sync_to_async(ConsoleSocket.objects.filter(user=session.agent).count)() == 1
        await page.close()

    run(test)
    session = reload(session)
    assert session.state == State.PAUSED and session.pause_reason == presence.CONSOLE_GONE
    assert wallboard_agent(campaign, session)["pause_reason"] == presence.CONSOLE_GONE
    assert live_lines(session) == 0  # released by the usual rules (min ring 0 here)
    assert all(Call.objects.get(pk=c.pk).outcome == "canceled" for c in calls)


def test_a_second_tab_keeps_the_agent_present(floor2):
    campaign, session = floor2

    async def test():
        first, second = Page(console_path(campaign), session.agent), Page(console_path(campaign), session.agent)
        await first.open()
        await second.open()
        await first.close()
        assert (await sync_to_async(reload)(session)).state == State.READY
        await second.close()

    run(test)
    assert reload(session).state == State.PAUSED


def test_a_console_that_stops_pinging_is_paused_by_the_sweep(floor2):
    campaign, session = floor2
    AgentSession.objects.filter(pk=session.pk).update(state_changed_at=timezone.now() - dt.timedelta(minutes=1))
    ConsoleSocket.objects.create(channel_name="specific.dead-process!1", user=session.agent, campaign=campaign,
                                 seen_at=timezone.now())
    assert presence.sessions_sweep() == 0  # pinging: present
    assert reload(session).state == State.READY
    ConsoleSocket.objects.update(seen_at=timezone.now() - dt.timedelta(seconds=6))  # the web process died
    assert presence.sessions_sweep() == 1
    session = reload(session)
    assert session.state == State.PAUSED and session.pause_reason == presence.CONSOLE_GONE


def test_pings_keep_the_console_present(floor2):
    campaign, session = floor2

    async def test():
        page = Page(console_path(campaign), session.agent)
        await page.open()
        await sync_to_async(ConsoleSocket.objects.update)(seen_at=timezone.now() - dt.timedelta(seconds=60))
        await page.communicator.send_to(text_data="ping")
        assert (await page.next())["type"] == "pong"
        await sync_to_async(AgentSession.objects.filter(pk=session.pk).update)(
            state_changed_at=timezone.now() - dt.timedelta(minutes=1))
        assert await sync_to_async(presence.sessions_sweep)() == 0
        await page.close()

    run(test)


def test_the_tab_close_beacon_makes_the_agent_leave_even_on_a_call(floor2, webhook, fake_twilio):
    campaign, session = floor2
    call = place_one(session)
    answer(webhook, call)
    amd(webhook, call, "human")
    webhook("conference-events", {"ConferenceSid": "CF1", "FriendlyName": session.conference_room,
                                  "StatusCallbackEvent": "participant-join", "CallSid": call.sid,
                                  "SequenceNumber": "3", "AccountSid": "AC" + "0" * 32}, query={"session": session.pk})
    assert reload(session).state == State.ON_CALL
    assert Call.objects.get(pk=call.pk).state == states.State.CONNECTED
    browser = Client()
    browser.force_login(session.agent)
    response = browser.post(f"/api/campaign/{campaign.pk}/gone", data="{}", content_type="application/json")
    assert response.status_code == 200 and response.json()["state"] == State.OFFLINE
    call.refresh_from_db()
    assert call.state == states.State.RELEASING and fake_twilio.statuses[call.sid] == "completed"
    assert reload(session).state == State.OFFLINE
    # Nobody else may close someone's session: the beacon needs the agent's own login and membership.
    stranger = Client()
    stranger.force_login(factories.make_user())
    assert stranger.post(f"/api/campaign/{campaign.pk}/gone", data="{}",
                         content_type="application/json").status_code == 403


def place_one(session) -> Call:
    [call, *others] = campaign_services.dial_next(session=session)
    call.refresh_from_db()
    return call


def test_the_phone_leaving_the_room_pauses_the_agent_and_a_human_meant_for_them_hears_safe_harbor(
        floor2, webhook, fake_twilio):
    campaign, session = floor2
    AgentSession.objects.filter(pk=session.pk).update(agent_call_sid="CA" + "a" * 32)
    call = place_one(session)
    answer(webhook, call)
    webhook("conference-events", {"ConferenceSid": "CF1", "FriendlyName": session.conference_room,
                                  "StatusCallbackEvent": "participant-leave", "CallSid": "CA" + "a" * 32,
                                  "SequenceNumber": "3", "AccountSid": "AC" + "0" * 32}, query={"session": session.pk})
    session = reload(session)
    assert session.state == State.PAUSED and session.pause_reason == presence.PHONE_GONE and not session.in_room
    assert wallboard_agent(campaign, session)["pause_reason"] == presence.PHONE_GONE
    amd(webhook, call, "human")  # the person answering the line dialed for them
    call.refresh_from_db()
    assert call.bridged_to_id is None  # never sent to an empty room


def test_the_phone_leaving_while_a_person_is_being_bridged_gives_them_the_safe_harbor_message(
        floor2, webhook, fake_twilio):
    campaign, session = floor2
    call = place_one(session)
    answer(webhook, call)
    amd(webhook, call, "human")
    call.refresh_from_db()
    assert call.state == states.State.BRIDGING
    webhook("agent-status", params_for(call, CallSid="CA" + "b" * 32, CallStatus="completed"),
            query={"session": session.pk})
    call.refresh_from_db()
    assert call.state == states.State.RELEASING and call.outcome == "abandoned"
    assert [r.form.get("Url", [""])[0].split("?")[0].rsplit("/", 1)[-1]
            for r in fake_twilio.updates(call.sid)][-1] == "safe-harbor"


def test_signing_out_leaves_every_campaign(floor2):
    campaign, session = floor2
    browser = Client()
    browser.force_login(session.agent)
    browser.post("/accounts/logout/")
    assert reload(session).state == State.OFFLINE


def test_removing_an_agent_from_the_campaign_ends_their_session_and_closes_their_socket(floor2):
    campaign, session = floor2
    campaign_services.dial_next(session=session)

    async def test():
        page = Page(console_path(campaign), session.agent)
        await page.open()
        await sync_to_async(campaign.agents.remove)(session.agent)
        closed = await page.communicator.receive_output(timeout=3)
        while closed["type"] != "websocket.close":  # events of the session ending come first
            closed = await page.communicator.receive_output(timeout=3)
        assert closed["code"] == 4403

    run(test)
    assert reload(session).state == State.OFFLINE
    assert live_lines(session) == 0


def test_deactivating_the_user_ends_their_session_and_closes_their_socket(floor2):
    campaign, session = floor2

    async def test():
        page = Page(console_path(campaign), session.agent)
        await page.open()
        user = session.agent
        user.is_active = False
        await sync_to_async(user.save)()
        closed = await page.communicator.receive_output(timeout=3)
        while closed["type"] != "websocket.close":
            closed = await page.communicator.receive_output(timeout=3)
        assert closed["code"] == 4403

    run(test)
    assert reload(session).state == State.OFFLINE


def test_the_sweep_cuts_off_an_agent_removed_behind_the_signals_back(floor2):
    campaign, session = floor2
    campaign.agents.through.objects.filter(user_id=session.agent_id).delete()  # a bulk delete sends no signal
    assert reload(session).state == State.READY
    presence.sessions_sweep()
    assert reload(session).state == State.OFFLINE


def test_managers_removed_from_the_member_list_keep_working(floor2):
    campaign, session = floor2
    manager = factories.make_user(manager=True)
    managed = factories.make_session(campaign=campaign, agent=manager)
    campaign.agents.remove(manager)
    presence.sessions_sweep()
    assert reload(managed).state == State.READY


def test_news_of_an_old_phone_leg_changes_nothing(floor2, webhook, fake_twilio):
    campaign, session = floor2
    AgentSession.objects.filter(pk=session.pk).update(agent_call_sid="CA" + "c" * 32)
    call = place_one(session)
    answer(webhook, call)
    amd(webhook, call, "human")
    webhook("agent-status", params_for(call, CallSid="CA" + "d" * 32, CallStatus="completed"),  # a previous leg
            query={"session": session.pk})
    call.refresh_from_db()
    assert call.state == states.State.BRIDGING and reload(session).state == State.ON_CALL


def test_an_agent_gone_while_a_person_is_being_bridged_gives_them_the_safe_harbor_message(floor2, webhook,
                                                                                            fake_twilio):
    campaign, session = floor2
    call = place_one(session)
    answer(webhook, call)
    amd(webhook, call, "human")
    presence.agent_gone(session=reload(session))
    call.refresh_from_db()
    assert call.state == states.State.RELEASING and call.outcome == "abandoned"
    assert reload(session).state == State.OFFLINE


def test_a_phone_leg_the_carrier_forgot_is_out_of_the_room_after_a_restart(floor2, fake_twilio):
    """A restarted demo: the sandbox forgot the agent's leg; the start-up pass takes the agent out of the room."""
    campaign, session = floor2
    AgentSession.objects.filter(pk=session.pk).update(agent_call_sid="CA" + "e" * 32)
    fake_twilio.statuses["CA" + "e" * 32] = "in-progress"
    assert presence.agent_legs_reconcile() == 0
    assert reload(session).in_room
    fake_twilio.forgotten.add("CA" + "e" * 32)
    assert presence.agent_legs_reconcile() == 1
    session = reload(session)
    assert not session.in_room and session.state == State.PAUSED and session.pause_reason == presence.PHONE_GONE
