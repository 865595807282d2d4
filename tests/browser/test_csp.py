"""The Content-Security-Policy is on, and the console (with the sandbox softphone), the wallboard and the admin
work under it: no violation reported by the browser on any of them."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign
from tests import factories
from tests.browser.conftest import LAPTOP, SCREENSHOTS, orm, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def people(live_app):
    agent = factories.make_user(username="cspagent")
    manager = factories.make_user(username="cspmanager", manager=True)
    campaign = factories.make_campaign(agents=[agent], name="CSP check", dial_mode=Campaign.DialMode.PREVIEW)
    return {"campaign": campaign, "agent": session_cookie(agent, live_app.base_url),
            "manager": session_cookie(manager, live_app.base_url), "base": live_app.base_url}


def _watch(page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return violations


def test_pages_work_under_the_content_security_policy(people, chromium):
    from playwright.sync_api import expect

    base, campaign = people["base"], people["campaign"]
    agent = chromium.new_context(viewport=LAPTOP)
    agent.add_cookies([people["agent"]])
    page = agent.new_page()
    violations = _watch(page)
    response = page.goto(f"{base}/campaigns/{campaign.pk}/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#phone-state")).to_contain_text("in your call room")  # the sandbox leg, with its token
    page.screenshot(path=str(SCREENSHOTS / "csp-console.png"), full_page=True)

    manager = chromium.new_context(viewport=LAPTOP)
    manager.add_cookies([people["manager"]])
    board = manager.new_page()
    violations += _watch(board)
    board.goto(f"{base}/campaigns/{campaign.pk}/wallboard/")
    expect(board.locator("#socket-state")).to_have_text("connected")

    admin = manager.new_page()
    violations += _watch(admin)
    admin.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    admin.on("dialog", dismiss)
    admin.get_by_role("button", name="End").click()
    admin.wait_for_timeout(300)
    assert dialogs and "Live calls are hung up" in dialogs[0]  # the confirm comes from static/js/admin.js
    assert orm(lambda: Campaign.objects.get(pk=campaign.pk).status) == Campaign.Status.RUNNING
    admin.screenshot(path=str(SCREENSHOTS / "csp-admin.png"), full_page=True)
    assert violations == []
