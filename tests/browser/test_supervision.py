"""The wallboard's supervise buttons and the agent's side of it, in a real browser against the live app and the
sandbox: listen, whisper, barge and leave (checked against who hears whom in the sandbox's room), the agent's
notice and recording pause/resume, then the recorded call's detail page with its player.

Screenshots land in artifacts/screenshots/ (and /work/shots/14/ when that folder exists).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaigns.models import Campaign
from tests import factories
from tests.browser.conftest import LAPTOP, SCREENSHOTS, orm, session_cookie
from tests.live import wait_until
from voice.models import Call, Recording, Supervision

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CUSTOMER = "+14155550147"
HUMAN = {"kind": "human", "pickup_s": 2, "amd_s": 1.5, "talk_s": 3600, "patience_s": 3600}
EXTRA_SHOTS = Path("/work/shots/14")


def shot(page, name: str) -> None:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if EXTRA_SHOTS.is_dir():
        shutil.copy(path, EXTRA_SHOTS / path.name)


@pytest.fixture
def floor(live_app):
    agent = factories.make_user(username="sam", first_name="Sam", last_name="Rivera")
    manager = factories.make_user(username="mia", manager=True, first_name="Mia", last_name="Chen",
                                  is_superuser=True)  # superuser: the admin's call page needs no group grants
    campaign = factories.make_campaign(agents=[agent], name="Q4 outreach — West", dial_mode=Campaign.DialMode.PREVIEW,
                                       min_ring_s=0, max_hold_s=10, record_calls=True, announce_recording="two_party")
    factories.make_contact(campaign=campaign, phone=CUSTOMER, name="Ada Nguyen", company="Northwind",
                           time_zone="America/Los_Angeles")
    live_app.sandbox.set_behaviour(CUSTOMER, HUMAN)
    return {"campaign": campaign, "agent": session_cookie(agent, live_app.base_url),
            "manager": session_cookie(manager, live_app.base_url), "base": live_app.base_url,
            "sandbox": live_app.sandbox}


def hears(sandbox, room_name: str) -> dict:
    room = next(c for c in sandbox.conferences() if c["friendly_name"] == room_name and c["status"] != "completed")
    return room["hears"]


def test_a_manager_listens_whispers_barges_and_leaves_from_the_wallboard(floor, chromium):
    from playwright.sync_api import expect

    campaign, base, sandbox = floor["campaign"], floor["base"], floor["sandbox"]
    agent_context = chromium.new_context(viewport=LAPTOP)
    agent_context.add_cookies([floor["agent"]])
    console = agent_context.new_page()
    console.goto(f"{base}/campaigns/{campaign.pk}/")
    expect(console.locator("#phone-state")).to_contain_text("in your call room")
    console.get_by_role("button", name="Go ready").click()
    expect(console.locator("#agent-state-label")).to_have_text("Ready")
    console.get_by_role("button", name="Dial next").click()
    expect(console.locator("#card-state-label")).to_have_text("Connected")
    call = orm(lambda: Call.objects.select_related("bridged_to").get(campaign=campaign))
    room, agent_leg, customer_leg = call.bridged_to.conference_room, call.bridged_to.agent_call_sid, call.sid

    # The agent pauses the recording while the customer reads a card number, then resumes.
    expect(console.locator("#recording-state")).to_have_text("● Recording")
    console.get_by_role("button", name="Pause recording").click()
    expect(console.locator("#recording-state")).to_have_text("Recording paused")
    console.get_by_role("button", name="Resume recording").click()
    expect(console.locator("#recording-state")).to_have_text("● Recording")

    manager_context = chromium.new_context(viewport=LAPTOP)
    manager_context.add_cookies([floor["manager"]])
    board = manager_context.new_page()
    board.goto(f"{base}/campaigns/{campaign.pk}/wallboard/")
    row = board.locator("#calls tr", has_text="Ada Nguyen")
    expect(row.locator(".line-label")).to_contain_text("Connected")

    # Listen: the manager's phone joins muted; the agent is told.
    row.get_by_role("button", name="Listen").click()
    expect(board.locator("#supervise-text")).to_contain_text("You are listening")
    expect(board.locator("#phone-state")).to_contain_text("connected")
    leg = orm(lambda: _joined_leg(campaign))
    assert leg, "the manager's leg never joined the room"
    heard = hears(sandbox, room)
    assert sorted(heard[leg]) == sorted([agent_leg, customer_leg])
    assert leg not in heard[agent_leg] and leg not in heard[customer_leg]
    expect(console.locator("#supervision-notice")).to_have_text("Mia Chen is listening to this call.")
    expect(row.get_by_role("button", name="Listen")).to_have_attribute("aria-pressed", "true")

    # Whisper: only the agent hears the manager.
    row.get_by_role("button", name="Whisper").click()
    expect(row.get_by_role("button", name="Whisper")).to_have_attribute("aria-pressed", "true")
    expect(board.locator("#supervise-text")).to_contain_text("only the agent hears you")
    expect(console.locator("#supervision-notice")).to_have_text("Mia Chen is coaching you: only you can hear them.")
    heard = hears(sandbox, room)
    assert leg in heard[agent_leg] and leg not in heard[customer_leg]
    shot(board, "14-wallboard-whispering")
    shot(console, "14-console-being-coached")

    # Reloads pick the state up from the snapshots: the console still offers pause, the wallboard still whispers.
    console.reload()
    expect(console.locator("#recording-state")).to_have_text("● Recording")
    expect(console.locator("#supervision-notice")).to_have_text("Mia Chen is coaching you: only you can hear them.")
    board.reload()
    row = board.locator("#calls tr", has_text="Ada Nguyen")
    expect(row.get_by_role("button", name="Whisper")).to_have_attribute("aria-pressed", "true")
    expect(board.locator("#supervise-text")).to_contain_text("only the agent hears you")

    # Barge: everyone hears the manager.
    row.get_by_role("button", name="Barge").click()
    expect(row.get_by_role("button", name="Barge")).to_have_attribute("aria-pressed", "true")
    expect(console.locator("#supervision-notice")).to_contain_text("the customer hears them too")
    heard = hears(sandbox, room)
    assert leg in heard[agent_leg] and leg in heard[customer_leg]

    # Leave: the talk goes on between the two of them; the agent's notice goes away.
    row.get_by_role("button", name="Leave").click()
    expect(board.locator("#supervise-bar")).to_be_hidden()
    expect(console.locator("#supervision-notice")).to_be_hidden()
    assert sandbox.wait_for(lambda sb: sb.call(leg)["status"] == "completed")
    assert hears(sandbox, room) == {agent_leg: [customer_leg], customer_leg: [agent_leg]}
    expect(console.locator("#card-state-label")).to_have_text("Connected")
    expect(row.get_by_role("button", name="Listen")).to_have_attribute("aria-pressed", "false")

    # The talk ends; its recording becomes playable on the call's page in admin and on our recording page.
    console.get_by_role("button", name="Hang up").click()
    expect(console.locator("#agent-state-label")).to_have_text("Wrap-up")
    recording = orm(lambda: _completed_recording(call.pk))
    assert recording is not None, "the recording never completed"
    admin_page = manager_context.new_page()
    admin_page.goto(f"{base}/admin/voice/call/{call.pk}/change/")
    player = admin_page.locator(f'audio[src="/recordings/{recording.pk}/audio"]')
    expect(player).to_be_visible()
    duration = admin_page.evaluate(
        """async (src) => { const a = new Audio(src); await new Promise((ok, no) => {
               a.onloadedmetadata = ok; a.onerror = () => no(new Error("cannot load")); });
             return a.duration; }""", f"/recordings/{recording.pk}/audio")
    assert duration > 0  # the browser decodes the audio streamed through our server
    expect(admin_page.locator("#call_form")).to_contain_text("RecordingPaused")
    shot(admin_page, "14-call-detail-with-player")
    page = manager_context.new_page()
    page.goto(f"{base}/recordings/{recording.pk}/")
    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#recording-timeline")).to_contain_text("RecordingResumed")
    shot(page, "14-recording-page")


def _joined_leg(campaign) -> str | None:
    found = wait_until(lambda: Supervision.objects.filter(call__campaign=campaign).exclude(joined_at=None).first())
    return found.leg_sid if found else None


def _completed_recording(call_id: int) -> Recording | None:
    return wait_until(lambda: Recording.objects.filter(call_id=call_id, status="completed").first())
