"""The agent console and the manager wallboard in a real browser, against the live app and the Twilio sandbox.

Dialing is by "Dial next" in a preview campaign (the pacer worker is not used here). Screenshots of the key
moments land in artifacts/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
from tests import factories
from tests.browser.conftest import LAPTOP, SCREENSHOTS, TABLET, orm, session_cookie
from voice.models import Call, Disposition
from voice.states import Outcome, State

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

HUMAN = {"kind": "human", "pickup_s": 2, "amd_s": 1.5, "talk_s": 3600, "patience_s": 3600}
CONTACTS = (
    ("+12025550142", "Ada Nguyen", "Northwind", "America/New_York", {"plan": "Growth", "seats": 40}),
    ("+12025550143", "Ben Okafor", "Globex", "America/Chicago", {"plan": "Starter", "seats": 6}),
    ("+12025550144", "Chloe Garcia", "Initech", "America/Denver", {"plan": "Enterprise", "seats": 250}),
)


@dataclass
class Team:
    campaign: Campaign
    agent: object
    agent_cookie: dict
    manager_cookie: dict
    outsider_cookie: dict
    base_url: str


@pytest.fixture
def team(live_app) -> Team:
    """A preview campaign with two people who answer, an agent, a manager and an agent of another campaign."""
    agent = factories.make_user(username="sam", first_name="Sam", last_name="Rivera")
    manager = factories.make_user(username="mia", manager=True, first_name="Mia", last_name="Chen")
    outsider = factories.make_user(username="otto")
    factories.make_campaign(agents=[outsider], name="Another team")
    campaign = factories.make_campaign(
        agents=[agent], name="Q4 outreach — West", dial_mode=Campaign.DialMode.PREVIEW,
        min_ring_s=0, max_hold_s=10)
    for priority, (phone, name, company, zone, fields) in enumerate(CONTACTS):
        factories.make_contact(campaign=campaign, phone=phone, name=name, company=company,
                               time_zone=zone, custom_fields=fields, priority=10 - priority)
        live_app.sandbox.set_behaviour(phone, HUMAN)
    # Ada was called last week: the card shows that attempt and its notes.
    ada = campaign.contacts.get(phone=CONTACTS[0][0])
    earlier = Call.objects.create(campaign=campaign, contact=ada, state=State.ENDED, outcome=Outcome.TALKED,
                                  answered_by="human", duration_s=95)
    Disposition.objects.create(call=earlier, contact=ada, agent=agent, code=campaign.disposition_codes.get(
        code="callback"), notes="Asked us to call back after their Q3 budget review.")
    week_ago = timezone.now() - dt.timedelta(days=6)
    Call.objects.filter(pk=earlier.pk).update(created_at=week_ago, ended_at=week_ago)
    Disposition.objects.filter(call=earlier).update(created_at=week_ago)
    ada.attempts = 1
    ada.save(update_fields=["attempts"])
    return Team(campaign=campaign, agent=agent, agent_cookie=session_cookie(agent, live_app.base_url),
                manager_cookie=session_cookie(manager, live_app.base_url),
                outsider_cookie=session_cookie(outsider, live_app.base_url), base_url=live_app.base_url)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_an_agent_works_calls_live_while_the_manager_watches(team, chromium):
    from playwright.sync_api import expect

    campaign = team.campaign
    console_url = f"{team.base_url}/campaigns/{campaign.pk}/"

    # -- the agent signs in; the console joins, connects the phone and the live socket -------------------------
    agent_context = chromium.new_context(viewport=LAPTOP)
    page = agent_context.new_page()
    page.goto(f"{team.base_url}/accounts/login/?next=/campaigns/{campaign.pk}/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console_url)
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#phone-state")).to_contain_text("in your call room")
    expect(page.locator("#agent-state-label")).to_have_text("Paused")
    page.get_by_role("button", name="Go ready").click()
    expect(page.locator("#agent-state-label")).to_have_text("Ready")
    shot(page, "01-console-ready")

    # -- the manager opens the wallboard ----------------------------------------------------------------------
    manager_context = chromium.new_context(viewport=LAPTOP)
    manager_context.add_cookies([team.manager_cookie])
    board = manager_context.new_page()
    board.goto(f"{team.base_url}/campaigns/{campaign.pk}/wallboard/")
    agent_row = board.locator("#agents tr", has_text="Sam Rivera")
    expect(agent_row).to_contain_text("Ready")
    expect(agent_row).to_contain_text("In room")

    # -- first call: a person answers, is bridged, the card pops without a reload ---------------------------------
    page.get_by_role("button", name="Dial next").click()
    expect(page.locator("#lines .line")).to_have_count(1)
    line = page.locator("#lines .line").first
    expect(line).to_contain_text("Ada Nguyen")
    expect(line.locator(".line-label")).to_have_text("Connected")
    expect(page.locator("#card-name")).to_have_text("Ada Nguyen")
    expect(page.locator("#card-company")).to_have_text("Northwind")
    expect(page.locator("#card-local-time")).to_contain_text("New York")
    expect(page.locator("#card-custom")).to_contain_text("Growth")
    expect(page.locator("#card-history")).to_contain_text("Asked us to call back after their Q3 budget review.")
    expect(page.locator("#card-state-label")).to_have_text("Connected")
    expect(page.locator("#agent-state-label")).to_have_text("On a call")
    interested = page.get_by_role("button", name="Interested", exact=False).first
    expect(interested).to_be_disabled()  # dispositions only once the call has ended
    page.get_by_label("Notes").fill("Budget approved. Wants a demo for 6 seats next Tuesday.")
    shot(page, "02-console-connected")

    expect(agent_row).to_contain_text("On a call")
    expect(agent_row).to_contain_text("Ada Nguyen")
    expect(board.locator("#tile-lines")).to_have_text("1")
    shot(board, "03-wallboard-agent-on-call")

    # -- hang up, wrap up, dispose with the keyboard shortcut ----------------------------------------------------
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#agent-state-label")).to_have_text("Wrap-up")
    expect(interested).to_be_enabled()
    expect(line.locator(".line-label")).to_have_text("Talked")
    shot(page, "04-console-wrap-up")
    page.locator("#lines-title").click()  # focus out of the notes: a bare "1" is the shortcut
    page.keyboard.press("1")
    expect(page.locator("#card-outcome")).to_have_text("Saved as “Interested”.")
    expect(page.locator("#agent-state-label")).to_have_text("Ready")  # auto-ready after the disposition
    disposition = orm(lambda: Disposition.objects.select_related("code").get(call__campaign=campaign,
                                                                            contact__name="Ada Nguyen",
                                                                            call__bridged_to__isnull=False))
    assert disposition.code.code == "interested"
    assert disposition.notes == "Budget approved. Wants a demo for 6 seats next Tuesday."
    expect(page.locator("#stat-conversations")).to_have_text("1")
    expect(board.locator("#rate-conversations")).to_have_text("1")

    # -- the next call comes; this one turns out to be a machine the detection missed ---------------------------
    page.get_by_role("button", name="Dial next").click()
    expect(page.locator("#card-name")).to_have_text("Ben Okafor")
    expect(page.locator("#card-state-label")).to_have_text("Connected")
    expect(page.locator("#notes")).to_have_value("")
    page.set_viewport_size(TABLET)
    shot(page, "05-console-second-call-tablet")
    page.get_by_role("button", name="That was a machine").click()
    expect(page.locator("#agent-state-label")).to_have_text("Ready")
    expect(page.locator("#card-outcome")).to_have_text("The call ended: answering machine. No disposition needed.")
    call = orm(lambda: Call.objects.get(campaign=campaign, contact__name="Ben Okafor"))
    assert (call.outcome, call.amd_corrected) == (Outcome.MACHINE, True)
    expect(page.locator("#stat-dials")).to_have_text("2")
    expect(board.locator("#rate-dials")).to_have_text("2")
    shot(board, "06-wallboard-after-two-calls")

    # -- a third call ends with a callback: the code asks for a time first ---------------------------------------
    page.set_viewport_size(LAPTOP)
    page.get_by_role("button", name="Dial next").click()
    expect(page.locator("#card-name")).to_have_text("Chloe Garcia")
    expect(page.locator("#card-state-label")).to_have_text("Connected")
    page.get_by_label("Notes").fill("Travelling this week.")
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#agent-state-label")).to_have_text("Wrap-up")
    page.get_by_role("button", name="Call back").click()
    callback_at = page.get_by_label("Call back at (your time)")
    expect(callback_at).to_be_focused()
    callback_at.fill("2031-03-04T10:30")
    page.get_by_role("button", name="Save callback").click()
    expect(page.locator("#card-outcome")).to_contain_text("Saved as “Call back”.")
    chloe = orm(lambda: Disposition.objects.select_related("contact").get(contact__name="Chloe Garcia"))
    assert chloe.callback_at.year == 2031 and chloe.contact.next_attempt_at == chloe.callback_at

    # -- nobody left to call: the API's refusal is shown in plain words ------------------------------------------
    expect(page.locator("#agent-state-label")).to_have_text("Ready")
    page.get_by_role("button", name="Dial next").click()
    # (the one left is Chloe, called back in 2031: the gate says when the next contact is due)
    expect(page.get_by_role("alert")).to_contain_text("Could not dial: Every contact left is waiting for its retry")

    # -- the agent's network drops; the manager pauses the campaign; the page catches up on its own ---------------
    agent_context.set_offline(True)
    expect(page.locator("#socket-state")).to_contain_text("offline")
    board.get_by_role("button", name="Pause campaign").click()
    expect(board.locator("#campaign-status")).to_have_text("Paused")
    expect(board.get_by_role("button", name="Resume campaign")).to_be_visible()
    assert page.locator("#socket-state").text_content() != "connected"  # still cut off: no event got through
    expect(page.locator("#campaign-status")).to_have_text("Running")
    agent_context.set_offline(False)
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#campaign-status")).to_have_text("Paused")
    expect(page.locator("#campaign-banner")).to_contain_text("A manager paused this campaign")
    expect(page.get_by_role("button", name="Dial next")).to_be_disabled()
    shot(page, "07-console-caught-up-after-network-drop-tablet")
    board.set_viewport_size(TABLET)
    shot(board, "08-wallboard-paused-tablet")

    # -- leaving hangs the phone up --------------------------------------------------------------------------------
    page.get_by_role("button", name="Leave").click()
    expect(page.locator("#agent-state-label")).to_have_text("Offline")
    expect(agent_row).to_contain_text("Offline")
    session = orm(lambda: AgentSession.objects.get(agent=team.agent, campaign=campaign))
    assert session.state == AgentSession.State.OFFLINE


def test_an_agent_of_another_campaign_is_refused(team, chromium):
    context = chromium.new_context(viewport=LAPTOP)
    context.add_cookies([team.outsider_cookie])
    page = context.new_page()
    response = page.goto(f"{team.base_url}/campaigns/{team.campaign.pk}/")
    assert response.status == 403
    page.goto(f"{team.base_url}/campaigns/")
    code = page.evaluate("""(path) => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}${path}`);
        ws.onmessage = () => resolve("got data");
        ws.onclose = (event) => resolve(event.code);
    })""", f"/ws/campaigns/{team.campaign.pk}/")
    assert code == 4403


def test_the_page_drops_stale_events(team, chromium):
    """Events are applied by version: a late, older event never overwrites a newer state on screen."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=LAPTOP)
    context.add_cookies([team.manager_cookie])
    page = context.new_page()
    page.goto(f"{team.base_url}/campaigns/{team.campaign.pk}/wallboard/")
    expect(page.locator("#socket-state")).to_have_text("connected")
    result = page.evaluate("""() => {
        const store = new Dialer.VersionedStore();
        const call = (version, state) => ({type: "call", id: 7, version, state});
        return [store.apply(call(3, "ringing")), store.apply(call(5, "connected")), store.apply(call(4, "answered")),
                store.get("call", 7).state];
    }""")
    assert result == [True, True, False, "connected"]


def test_the_twilio_softphone_driver_connects_and_renews_its_token(team, chromium, settings):
    """Real Twilio mode with the Voice SDK stubbed in the browser (the SDK only talks to Twilio's servers)."""
    from playwright.sync_api import expect

    settings.TWILIO_SANDBOX = False
    fake_sdk = """
      window.fakeTwilio = {tokens: [], params: null, updated: []};
      class FakeCall {
        constructor() { this.handlers = {}; }
        on(name, fn) { this.handlers[name] = fn; }
        disconnect() { (this.handlers.disconnect || (() => {}))(); }
      }
      class Device {
        constructor(token, options) { fakeTwilio.tokens.push(token); this.handlers = {}; fakeTwilio.device = this; }
        on(name, fn) { this.handlers[name] = fn; }
        async register() {}
        async connect({params}) {
          fakeTwilio.params = params;
          const call = new FakeCall();
          setTimeout(() => call.handlers.accept && call.handlers.accept(), 50);
          return call;
        }
        updateToken(token) { fakeTwilio.updated.push(token); }
        destroy() {}
      }
      window.Twilio = {Device};
    """
    context = chromium.new_context(viewport=LAPTOP)
    context.add_cookies([team.agent_cookie])
    context.route("**/static/twilio-voice-sdk/twilio.min.js",
                  lambda route: route.fulfill(status=200, content_type="text/javascript", body=fake_sdk))
    page = context.new_page()
    page.goto(f"{team.base_url}/campaigns/{team.campaign.pk}/")
    expect(page.locator("#phone-state")).to_contain_text("Phone connected")
    fake = page.evaluate("() => fakeTwilio")
    session_id = orm(lambda: AgentSession.objects.get(agent=team.agent, campaign=team.campaign).pk)
    assert fake["params"] == {"session": str(session_id)}
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", fake["tokens"][0])  # a JWT from POST /api/campaign/<id>/join
    page.evaluate("() => fakeTwilio.device.handlers.tokenWillExpire()")
    page.wait_for_function("() => fakeTwilio.updated.length === 1")
    page.evaluate("() => fakeTwilio.device.handlers.error({code: 31208, message: 'Permission denied'})")
    expect(page.locator("#phone-state")).to_contain_text("not allowed to use your microphone")
    expect(page.get_by_role("button", name="Reconnect phone")).to_be_visible()

