"""Presence in a real browser: the console's socket going away pauses the agent with the reason on the manager's
wallboard, and closing the console's tab signs the agent out of the campaign. Screenshots in artifacts/."""

from __future__ import annotations

import pytest

from campaigns.models import AgentSession, Campaign
from tests import factories
from tests.browser.conftest import LAPTOP, orm, session_cookie
from tests.browser.test_console import shot
from voice.presence import CONSOLE_GONE

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def floor(live_app, settings):
    settings.PRESENCE_REQUIRE_CONSOLE = True
    agent = factories.make_user(username="pia", first_name="Pia", last_name="Lund")
    manager = factories.make_user(username="max", manager=True)
    campaign = factories.make_campaign(agents=[agent], name="Presence", dial_mode=Campaign.DialMode.PREVIEW)
    return campaign, agent, session_cookie(agent, live_app.base_url), session_cookie(manager, live_app.base_url), \
        live_app.base_url


def test_a_lost_console_pauses_the_agent_and_closing_the_tab_leaves(floor, chromium):
    from playwright.sync_api import expect

    campaign, agent, agent_cookie, manager_cookie, base_url = floor
    agent_context = chromium.new_context(viewport=LAPTOP)
    agent_context.add_cookies([agent_cookie])
    page = agent_context.new_page()
    page.goto(f"{base_url}/campaigns/{campaign.pk}/")
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#phone-state")).to_contain_text("in your call room")
    page.get_by_role("button", name="Go ready").click()
    expect(page.locator("#agent-state-label")).to_have_text("Ready")

    manager_context = chromium.new_context(viewport=LAPTOP)
    manager_context.add_cookies([manager_cookie])
    board = manager_context.new_page()
    board.goto(f"{base_url}/campaigns/{campaign.pk}/wallboard/")
    row = board.locator("#agents tr", has_text="Pia Lund")
    expect(row).to_contain_text("Ready")

    # The laptop drops off the network: the console's socket closes, the agent is paused at once.
    agent_context.set_offline(True)
    expect(row).to_contain_text(f"Paused ({CONSOLE_GONE})")
    shot(board, "presence-01-wallboard-console-lost")
    agent_context.set_offline(False)
    expect(page.locator("#socket-state")).to_have_text("connected", timeout=20_000)
    expect(page.locator("#agent-state-label")).to_have_text("Paused")
    page.get_by_role("button", name="Go ready").click()
    expect(row).to_contain_text("Ready")

    # Closing the tab is leaving: no customer may be routed to an empty chair.
    page.close(run_before_unload=True)
    expect(row).to_contain_text("Offline")
    shot(board, "presence-02-wallboard-tab-closed")
    assert orm(lambda: AgentSession.objects.get(agent=agent, campaign=campaign).state) == AgentSession.State.OFFLINE
