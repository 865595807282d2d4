"""A ready agent with nothing to dial is told why, in plain words, and so is the manager on the wallboard."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.models import AgentSession, Campaign
from tests import factories
from tests.browser.conftest import LAPTOP, SCREENSHOTS, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def closed_floor(live_app):
    """A running campaign whose only calling day is never today: a ready agent, a manager, an opted-out cap."""
    agent = factories.make_user(username="rae")
    manager = factories.make_user(username="max", manager=True)
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoweekday()  # never today in any zone
    campaign = factories.make_campaign(agents=[agent], name="Closed today", dial_mode=Campaign.DialMode.PARALLEL,
                                       window_days=[tomorrow], abandon_cap_opt_out=True)
    factories.make_contact(campaign=campaign, time_zone="America/New_York")
    factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.READY, in_room=True)
    return campaign, session_cookie(agent, live_app.base_url), session_cookie(manager, live_app.base_url), live_app


def test_the_console_and_the_wallboard_say_why_nothing_is_dialed(closed_floor, chromium):
    from playwright.sync_api import expect

    campaign, agent_cookie, manager_cookie, live_app = closed_floor
    context = chromium.new_context(viewport=LAPTOP)
    context.add_cookies([agent_cookie])
    page = context.new_page()
    page.goto(f"{live_app.base_url}/campaigns/{campaign.pk}/")
    expect(page.locator("#agent-state-label")).to_have_text("Ready")
    expect(page.locator("#agent-state-detail")).to_contain_text("No calling today in most contacts' time zones")
    page.screenshot(path=str(SCREENSHOTS / "idle-reason-console.png"), full_page=True)

    board_context = chromium.new_context(viewport=LAPTOP)
    board_context.add_cookies([manager_cookie])
    board = board_context.new_page()
    board.goto(f"{live_app.base_url}/campaigns/{campaign.pk}/wallboard/")
    expect(board.locator("#campaign-hint")).to_contain_text("No calling today")
    expect(board.locator("#opt-out-warning")).to_contain_text("opted this campaign out")
    board.screenshot(path=str(SCREENSHOTS / "idle-reason-wallboard.png"), full_page=True)
