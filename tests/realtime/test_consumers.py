"""The live sockets: who may subscribe, the snapshot, events after commit to the right pages only, catching up
after a reconnect. Real consumers on PostgreSQL with Channels' WebsocketCommunicator (in-memory layer)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction
from django.test import Client

from campaigns.models import AgentSession, Campaign
from realtime import events
from realtime.consumers import CLOSE_NOT_ALLOWED, CLOSE_NOT_SIGNED_IN
from realtime.routing import websocket_urlpatterns
from tests import factories
from voice import floor
from voice.models import Call
from voice.states import Outcome, State

pytestmark = pytest.mark.django_db(transaction=True)

router = URLRouter(websocket_urlpatterns)


def run(test):
    """pytest-asyncio is not installed: run an async test body on a fresh loop, with a clean channel layer."""

    async def body():
        await get_channel_layer().flush()
        await test()

    async_to_sync(body)()


class Page:
    """One browser page's socket."""

    def __init__(self, path: str, user=None, application=router, headers=None):
        self.communicator = WebsocketCommunicator(application, path, headers=headers or [])
        if user is not None:
            self.communicator.scope["user"] = user

    async def open(self) -> dict:
        connected, _ = await self.communicator.connect()
        assert connected
        return await self.next()

    async def refused(self) -> int:
        connected, _ = await self.communicator.connect()
        assert connected  # accepted, then closed with a code the page can read
        message = await self.communicator.receive_output(timeout=2)
        assert message["type"] == "websocket.close"
        return message["code"]

    async def next(self, timeout: float = 2) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def silent(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


def console_path(campaign) -> str:
    return f"/ws/campaigns/{campaign.pk}/"


def wallboard_path(campaign) -> str:
    return f"/ws/campaigns/{campaign.pk}/wallboard/"


def make_call(*, campaign, session, state=State.RINGING, **fields) -> Call:
    contact = factories.make_contact(campaign=campaign, name="Ada Nguyen", company="Northwind")
    return Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, state=state, version=2,
                               **fields)


# -- who may subscribe ------------------------------------------------------------------------------------------


def test_a_visitor_who_is_not_signed_in_is_refused(campaign):
    from django.contrib.auth.models import AnonymousUser

    async def test():
        assert await Page(console_path(campaign), AnonymousUser()).refused() == CLOSE_NOT_SIGNED_IN
        assert await Page(wallboard_path(campaign), AnonymousUser()).refused() == CLOSE_NOT_SIGNED_IN

    run(test)


def test_an_agent_of_another_campaign_is_refused(campaign):
    outsider = factories.make_user()
    factories.make_campaign(agents=[outsider])

    async def test():
        assert await Page(console_path(campaign), outsider).refused() == CLOSE_NOT_ALLOWED

    run(test)


def test_an_unknown_campaign_looks_the_same_as_a_forbidden_one(agent):
    async def test():
        assert await Page("/ws/campaigns/999999/", agent).refused() == CLOSE_NOT_ALLOWED

    run(test)


def test_only_managers_watch_the_wallboard(campaign, agent, manager):
    async def test():
        assert await Page(wallboard_path(campaign), agent).refused() == CLOSE_NOT_ALLOWED
        page = Page(wallboard_path(campaign), manager)  # not a member: managers see every campaign
        snapshot = await page.open()
        assert snapshot["type"] == "snapshot" and snapshot["scope"] == "wallboard"
        await page.close()

    run(test)


def test_the_real_stack_reads_the_session_cookie_and_checks_the_origin(campaign, agent):
    from dialer.asgi import application

    client = Client()
    client.force_login(agent)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def test():
        page = Page(console_path(campaign), application=application,
                    headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")])
        assert (await page.open())["type"] == "snapshot"
        await page.close()
        forged = WebsocketCommunicator(application, console_path(campaign),
                                       headers=[(b"cookie", cookie), (b"origin", b"http://evil.example")])
        connected, _ = await forged.connect()
        assert not connected  # another site's page cannot ride on the agent's cookie

    run(test)


# -- snapshots ---------------------------------------------------------------------------------------------------


def test_the_console_snapshot_has_the_agents_session_lines_and_day(campaign, agent):
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.READY, version=4)
    mine = make_call(campaign=campaign, session=session)
    others = factories.make_session(campaign=campaign)
    make_call(campaign=campaign, session=others)

    async def test():
        page = Page(console_path(campaign), agent)
        snapshot = await page.open()
        assert snapshot["campaign"]["status"] == Campaign.Status.RUNNING
        assert snapshot["session"]["id"] == session.pk and snapshot["session"]["version"] == 4
        assert snapshot["session"]["state"] == "ready"
        # Only the agent's own lines: another agent's contacts never reach this page.
        assert [c["id"] for c in snapshot["calls"]] == [mine.pk]
        assert snapshot["calls"][0]["contact"]["name"] == "Ada Nguyen"
        assert snapshot["stats"] == {"dials": 1, "humans": 0, "conversations": 0, "talk_s": 0}
        await page.close()

    run(test)


def test_a_talk_awaiting_its_disposition_survives_a_reload(campaign, agent):
    """Wrap-up after a long talk: the ended call is older than the 'recent' window but must still be shown."""
    import datetime as dt

    from django.utils import timezone

    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.WRAP_UP)
    long_ago = timezone.now() - dt.timedelta(minutes=30)
    talked = make_call(campaign=campaign, session=session, state=State.ENDED, outcome=Outcome.TALKED,
                       bridged_to=session, bridged_at=long_ago, connected_at=long_ago, ended_at=long_ago)

    async def test():
        snapshot = await Page(console_path(campaign), agent).open()
        assert [c["id"] for c in snapshot["calls"]] == [talked.pk]

    run(test)


def test_the_wallboard_snapshot_has_every_agent_line_and_the_rates(campaign, agent, manager):
    first = factories.make_session(campaign=campaign, agent=agent)
    second = factories.make_session(campaign=campaign, state=AgentSession.State.PAUSED, pause_reason="Lunch")
    make_call(campaign=campaign, session=first)
    make_call(campaign=campaign, session=second, state=State.ANSWERED, answered_by="human")

    async def test():
        snapshot = await Page(wallboard_path(campaign), manager).open()
        assert {a["id"]: a["state"] for a in snapshot["agents"]} == {first.pk: "ready", second.pk: "paused"}
        assert len(snapshot["calls"]) == 2
        abandonment = snapshot["stats"]["abandonment"]
        assert abandonment["cap"] == campaign.max_abandon_rate
        assert abandonment["rolling_30d"] == {"abandoned": 0, "humans": 1, "rate": 0.0}
        assert snapshot["stats"]["today"]["dials"] == 2

    run(test)


# -- events -------------------------------------------------------------------------------------------------------


def test_an_agent_change_reaches_that_agent_and_the_wallboard_only(campaign, agent, manager):
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.PAUSED)
    colleague = factories.make_user()
    factories.make_session(campaign=campaign, agent=colleague, state=AgentSession.State.READY)

    async def test():
        mine, theirs, board = (Page(console_path(campaign), agent), Page(console_path(campaign), colleague),
                               Page(wallboard_path(campaign), manager))
        before = (await mine.open())["session"]["version"]
        await theirs.open()
        await board.open()
        await sync_to_async(floor.agent_set_ready)(session=session)
        event = await mine.next()
        assert event["type"] == "agent" and event["id"] == session.pk
        assert event["state"] == "ready" and event["version"] > before
        assert isinstance(event["sent_at"], float)
        assert (await board.next())["state"] == "ready"
        assert await theirs.silent()
        for page in (mine, theirs, board):
            await page.close()

    run(test)


def test_a_call_event_goes_to_the_agent_it_was_dialed_for_and_the_agent_it_reached(campaign, agent, manager):
    dialed_for = factories.make_session(campaign=campaign, agent=agent)
    taker = factories.make_user()
    reached = factories.make_session(campaign=campaign, agent=taker)
    bystander = factories.make_user()
    factories.make_session(campaign=campaign, agent=bystander)
    call = make_call(campaign=campaign, session=dialed_for, state=State.ANSWERED, answered_by="human")

    def bridge():
        with transaction.atomic():
            locked = Call.objects.select_related("contact").get(pk=call.pk)
            locked.state, locked.bridged_to, locked.version = State.BRIDGING, reached, locked.version + 1
            locked.save(update_fields=["state", "bridged_to", "version"])
            events.publish_call(locked)

    async def test():
        pages = {name: Page(console_path(campaign), user)
                 for name, user in (("dialer", agent), ("taker", taker), ("bystander", bystander))}
        for page in pages.values():
            await page.open()
        board = Page(wallboard_path(campaign), manager)
        await board.open()
        await sync_to_async(bridge)()
        for page in (pages["dialer"], pages["taker"], board):
            event = await page.next()
            assert (event["type"], event["id"], event["state"], event["bridged_to"]) == (
                "call", call.pk, "bridging", reached.pk)
        assert await pages["bystander"].silent()

    run(test)


def test_events_are_sent_after_commit_and_never_for_a_rollback(campaign, agent):
    session = factories.make_session(campaign=campaign, agent=agent)
    call = make_call(campaign=campaign, session=session)

    async def test():
        page = Page(console_path(campaign), agent)
        await page.open()
        entered, release = threading.Event(), threading.Event()

        def publish_and_wait(rollback: bool):
            with transaction.atomic():
                events.publish_call(Call.objects.select_related("contact").get(pk=call.pk))
                entered.set()
                release.wait(5)
                if rollback:
                    transaction.set_rollback(True)

        task = asyncio.ensure_future(sync_to_async(publish_and_wait, thread_sensitive=False)(False))
        await sync_to_async(entered.wait)(5)
        assert await page.silent()  # published inside the transaction: nothing yet
        release.set()
        await task
        assert (await page.next())["id"] == call.pk
        entered.clear()
        release.set()
        await sync_to_async(publish_and_wait, thread_sensitive=False)(True)
        assert await page.silent()

    run(test)


def test_an_event_published_from_a_worker_thread_arrives_at_once(campaign, agent):
    """The pacer and the hold timers publish from plain threads; the in-memory layer's queues belong to the
    server's loop, so the event is handed to that loop instead of sitting unseen in a foreign one."""
    session = factories.make_session(campaign=campaign, agent=agent)
    call = make_call(campaign=campaign, session=session)

    def worker():
        try:
            events.publish_call(Call.objects.select_related("contact").get(pk=call.pk))
        finally:
            connections.close_all()

    async def test():
        page = Page(console_path(campaign), agent)
        await page.open()
        started = time.monotonic()
        threading.Thread(target=worker).start()
        assert (await page.next(timeout=3))["id"] == call.pk
        assert time.monotonic() - started < 1.0

    run(test)


def test_a_page_may_ask_for_a_fresh_snapshot(campaign, agent, monkeypatch):
    """A page open for hours re-reads the truth now and then, in case an overloaded layer dropped an event."""
    from realtime import consumers

    monkeypatch.setattr(consumers, "SNAPSHOT_MIN_INTERVAL_S", 0.0)
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.PAUSED)

    async def test():
        page = Page(console_path(campaign), agent)
        await page.open()
        # A change whose event never reached the page:
        await sync_to_async(AgentSession.objects.filter(pk=session.pk).update)(state="ready", version=9)
        await page.communicator.send_to(text_data="snapshot")
        fresh = await page.next()
        assert (fresh["type"], fresh["session"]["state"], fresh["session"]["version"]) == ("snapshot", "ready", 9)

    run(test)


def test_a_campaign_pause_reaches_every_console_and_wallboard(campaign, agent, manager):
    factories.make_session(campaign=campaign, agent=agent)

    async def test():
        console, board = Page(console_path(campaign), agent), Page(wallboard_path(campaign), manager)
        before = (await console.open())["campaign"]["version"]
        await board.open()
        await sync_to_async(floor.campaign_set_status)(campaign=campaign, status=Campaign.Status.PAUSED)
        for page in (console, board):
            event = await page.next()
            assert (event["type"], event["status"]) == ("campaign", "paused")
            assert event["version"] > before

    run(test)


def test_a_page_that_reconnects_catches_up_from_the_snapshot(campaign, agent):
    """A network drop: whatever changed while the page was away is in the snapshot it gets on reconnect."""
    session = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.PAUSED)

    async def test():
        page = Page(console_path(campaign), agent)
        first = await page.open()
        await page.close()
        await sync_to_async(floor.agent_set_ready)(session=session)
        call = await sync_to_async(make_call)(campaign=campaign, session=session)
        again = await Page(console_path(campaign), agent).open()
        assert again["session"]["state"] == "ready"
        assert again["session"]["version"] > first["session"]["version"]
        assert [c["id"] for c in again["calls"]] == [call.pk]

    run(test)


def test_the_socket_only_pushes_but_answers_a_heartbeat(campaign, agent):
    factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.PAUSED)

    async def test():
        page = Page(console_path(campaign), agent)
        await page.open()
        await page.communicator.send_to(text_data='{"action": "ready"}')
        assert await page.silent()  # actions go through the HTTP API; the socket ignores them
        assert await sync_to_async(lambda: AgentSession.objects.get(agent=agent).state)() == "paused"
        await page.communicator.send_to(text_data="ping")
        assert await page.next() == {"type": "pong"}
        await page.communicator.send_to(text_data="snapshot")
        assert await page.silent()  # one snapshot per few seconds at most: a page cannot hammer the database

    run(test)
