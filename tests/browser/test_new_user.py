"""What a new manager and a new agent trip on (issue 16), tried in a real browser against the live app.

Each test follows a person: the manager finding their campaigns and the admin at laptop width, the manager
watching a console, the contact import report, the agent's console through one call, the refusals, the
wallboard on a phone. Screenshots land in artifacts/screenshots/new-user/.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Permission

from campaigns.models import AgentSession, Campaign
from tests import factories
from tests.browser.conftest import SCREENSHOTS, orm, session_cookie
from voice.models import Call, Disposition
from voice.states import Outcome, State

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SHOTS = SCREENSHOTS / "new-user"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HUMAN = {"kind": "human", "pickup_s": 2, "amd_s": 1.5, "talk_s": 3600, "patience_s": 3600}


@dataclass
class Floor:
    campaign: Campaign  # the agent's, with a history
    fresh: Campaign  # a new draft nobody is on yet
    agent: object
    manager: object
    agent_cookie: dict
    manager_cookie: dict
    outsider_cookie: dict
    base_url: str


@pytest.fixture
def floor(live_app) -> Floor:
    # A transactional test may have flushed the roles' permissions that a migration grants: grant them again.
    if not Permission.objects.filter(group__name="Managers").exists():
        importlib.import_module("campaigns.migrations.0003_groups").sync_groups(django_apps)
    agent = factories.make_user(username="sam", first_name="Sam", last_name="Rivera")
    manager = factories.make_user(username="mia", manager=True, first_name="Mia", last_name="Chen")
    outsider = factories.make_user(username="otto")
    campaign = factories.make_campaign(agents=[agent], name="Q4 outreach", dial_mode=Campaign.DialMode.PREVIEW,
                                       min_ring_s=0, max_hold_s=10)
    fresh = factories.make_campaign(name="Spring launch", status=Campaign.Status.DRAFT)
    factories.make_contact(campaign=campaign, phone="+12025550142", name="Ada Nguyen", company="Northwind",
                           time_zone="America/Chicago")
    live_app.sandbox.set_behaviour("+12025550142", HUMAN)
    # Contacts whose last call ended the ways the admin used to show as raw codes.
    factories.make_contact(campaign=campaign, name="Waited too long", last_outcome=Outcome.HUNG_UP_ON_HOLD,
                           attempts=1, status="pending")
    corrected = factories.make_contact(campaign=campaign, name="Voicemail box", last_outcome=Outcome.MACHINE,
                                       attempts=1, status="exhausted")
    Call.objects.create(campaign=campaign, contact=corrected, state=State.ENDED, outcome=Outcome.MACHINE,
                        answered_by="human", amd_corrected=True, ended_at=dt.datetime.now(dt.UTC))
    return Floor(campaign=campaign, fresh=fresh, agent=agent, manager=manager,
                 agent_cookie=session_cookie(agent, live_app.base_url),
                 manager_cookie=session_cookie(manager, live_app.base_url),
                 outsider_cookie=session_cookie(outsider, live_app.base_url), base_url=live_app.base_url)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def page_for(chromium, cookie: dict, viewport: dict = DESKTOP):
    context = chromium.new_context(viewport=viewport)
    context.add_cookies([cookie])
    return context.new_page()


def overflows(page) -> int:
    """How many pixels the page is wider than the window (a horizontal scrollbar if more than 0)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def test_a_manager_finds_every_campaign_and_its_pages_and_reads_the_admin_at_1280(floor, chromium, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setattr("voice.pacer.PREVIEW_AGENT_HOURS", 2.0)  # a short simulation: this test is about the page
    page = page_for(chromium, floor.manager_cookie)

    # -- home: every campaign, also one the manager is not on, with its wallboard, reports and console ----------
    page.goto(floor.base_url + "/")
    expect(page).to_have_url(floor.base_url + "/campaigns/")
    fresh = page.locator(f'[data-campaign="{floor.fresh.pk}"]')
    expect(fresh).to_contain_text("Spring launch")
    expect(fresh.get_by_role("link", name="Reports")).to_have_attribute(
        "href", f"/campaigns/{floor.fresh.pk}/reports/")
    shot(page, "manager-home-1280")
    fresh.get_by_role("link", name="Wallboard").click()
    expect(page).to_have_url(f"{floor.base_url}/campaigns/{floor.fresh.pk}/wallboard/")
    expect(page.locator("#socket-state")).to_have_text("connected")

    # -- the admin's campaign list fits a 1280 px laptop and links the live pages ---------------------------------
    page.goto(floor.base_url + "/admin/campaigns/campaign/")
    header = page.get_by_role("columnheader", name="Abandoned, 30 days")
    expect(header).to_be_visible()
    box = header.bounding_box()
    assert box["x"] + box["width"] <= DESKTOP["width"]
    assert overflows(page) <= 0
    row = page.locator("#result_list tr", has_text="Q4 outreach")
    expect(row).to_contain_text("Preview")
    expect(row.get_by_role("link", name="Wallboard")).to_have_attribute(
        "href", f"/campaigns/{floor.campaign.pk}/wallboard/")
    expect(row.get_by_role("link", name="Reports")).to_have_attribute(
        "href", f"/campaigns/{floor.campaign.pk}/reports/")
    shot(page, "admin-campaign-list-1280")
    # ...and the table shows every column without scrolling inside its box.
    assert page.locator(".results").evaluate("(el) => el.scrollWidth - el.clientWidth") <= 0

    # -- the pacing simulation: a table, the campaign's own setting marked, over-cap rows flagged --------------
    page.locator(f'input[name="_selected_action"][value="{floor.fresh.pk}"]').check()
    page.locator('select[name="action"]').select_option("simulate_pacing")
    page.get_by_role("button", name="Go").click()
    table = page.locator(".dialer-pacing-table")
    expect(table.locator("tbody tr")).to_have_count(6)
    expect(table.locator("tr.dialer-row-current")).to_contain_text("3 lines per ready agent")
    for index in range(6):
        table_row = table.locator("tbody tr").nth(index)
        flagged = "dialer-row-over-cap" in (table_row.get_attribute("class") or "")
        assert flagged == ("over the cap" in table_row.inner_text())
    assert overflows(page) <= 0
    shot(page, "admin-pacing-simulation-1280")

    # -- the campaign page: links, plain labels with help, a dispositions table that fits ------------------------
    page.goto(f"{floor.base_url}/admin/campaigns/campaign/{floor.campaign.pk}/change/")
    tools = page.locator(".object-tools")
    expect(tools.get_by_role("link", name="Wallboard")).to_have_attribute(
        "href", f"/campaigns/{floor.campaign.pk}/wallboard/")
    expect(tools.get_by_role("link", name="Console")).to_be_visible()
    expect(page.locator('label[for="id_amd_mode"]')).to_have_text("Answering machines:")
    expect(page.locator('label[for="id_ring_timeout_s"]')).to_have_text("Ring for (seconds):")
    expect(page.locator("#id_amd_mode_helptext")).to_contain_text("person or a machine")
    expect(page.locator("#id_dial_mode")).to_contain_text("Parallel (several lines at once for each ready agent)")
    body = page.locator("#content").inner_text()
    for jargon in ("Amd mode", "Ring timeout s", "N lines per ready agent"):
        assert jargon not in body
    hotkey = page.locator('input[name="disposition_codes-0-hotkey"]').bounding_box()
    assert hotkey["width"] < 60
    dispositions = page.locator(".dialer-dispositions table")
    box = dispositions.bounding_box()
    assert box["x"] + box["width"] <= DESKTOP["width"]
    assert overflows(page) <= 0
    shot(page, "admin-campaign-page-1280")

    # -- contacts: results in words, the status on one line -------------------------------------------------------
    page.goto(f"{floor.base_url}/admin/campaigns/contact/?campaign__id__exact={floor.campaign.pk}")
    filters = page.locator("#changelist-filter")
    expect(filters).to_contain_text("Hung up while waiting")
    assert "hung_up_on_hold" not in filters.inner_text() and "voicemail_left" not in filters.inner_text()
    waited = page.locator("#result_list tr", has_text="Waited too long")
    expect(waited).to_contain_text("Hung up while waiting")
    status = waited.locator("td.field-status_column span")
    expect(status).to_have_text("Waiting to be dialed")
    line_height = float(status.evaluate("(el) => parseFloat(getComputedStyle(el).lineHeight) || 16"))
    shot(page, "admin-contacts-1280")
    assert status.bounding_box()["height"] < 1.6 * line_height  # one line, not four
    assert overflows(page) <= 0
    assert page.locator(".results").evaluate("(el) => el.scrollWidth - el.clientWidth") <= 0

    # -- a call the agent marked as a machine says so without contradicting itself --------------------------------
    call_id = orm(lambda: Call.objects.get(amd_corrected=True).pk)
    page.goto(f"{floor.base_url}/admin/voice/call/{call_id}/change/")
    content = page.locator("#content").inner_text()
    assert "Machine spotted by the agent" in content
    assert "Amd corrected" not in content and "'human' was a machine" not in content

    page.set_viewport_size(PHONE)
    page.goto(floor.base_url + "/admin/campaigns/campaign/")
    shot(page, "admin-campaign-list-phone")
    page.goto(floor.base_url + "/campaigns/")
    expect(page.locator(f'[data-campaign="{floor.fresh.pk}"]').get_by_role("link", name="Wallboard")).to_be_visible()
    assert overflows(page) <= 0
    shot(page, "manager-home-phone")


def test_a_manager_watches_the_console_without_becoming_an_agent(floor, chromium):
    from playwright.sync_api import expect

    page = page_for(chromium, floor.manager_cookie)
    page.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/")
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#agent-state-label")).to_have_text("Watching")
    expect(page.locator("#agent-state-detail")).to_contain_text("not counted as an agent")
    expect(page.get_by_role("button", name="Take calls")).to_be_visible()
    expect(page.get_by_role("button", name="Dial next")).to_be_hidden()
    label = page.locator("#agent-state-label").bounding_box()
    bar = page.locator("#agent-state").bounding_box()
    assert label["y"] >= bar["y"]  # the status is read whole, not cut off at the top
    board = page.context.new_page()
    board.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/wallboard/")
    expect(board.locator("#socket-state")).to_have_text("connected")
    expect(board.locator("#tile-agents")).to_have_text("0")
    expect(board.locator("#agents-empty")).to_be_visible()
    assert orm(lambda: AgentSession.objects.filter(agent=floor.manager).exists()) is False
    shot(page, "console-manager-watching-1280")

    # Choosing to take calls makes the manager an agent like any other; leaving makes them a watcher again.
    page.get_by_role("button", name="Take calls").click()
    expect(page.locator("#agent-state-label")).to_have_text("Paused")
    expect(page.get_by_role("button", name="Dial next")).to_be_visible()
    expect(page.locator("#phone-state")).to_contain_text("in your call room")
    expect(board.locator("#agents tr", has_text="Mia Chen")).to_contain_text("Paused")
    page.reload()  # still an agent after a reload: the page picks the session and its phone back up
    expect(page.locator("#agent-state-label")).to_have_text("Paused")
    expect(page.locator("#phone-state")).to_contain_text("in your call room")
    page.get_by_role("button", name="Leave").click()
    expect(page.locator("#agent-state-label")).to_have_text("Watching")
    expect(board.locator("#agents tr", has_text="Mia Chen")).to_contain_text("Offline")


def test_the_import_report_keeps_contacts_with_a_bad_email_or_zone(floor, chromium):
    from playwright.sync_api import expect

    csv = ("Phone,Name,Email,Time zone\n"
           "+12025550160,Good Row,good@example.com,America/Denver\n"
           "+12025550161,Typo Mail,nobody-at-example,\n"
           "+12025550162,Moon Zone,moon@example.com,Moon/Base\n"
           "not a phone,Bad Number,,\n")
    page = page_for(chromium, floor.manager_cookie)
    page.goto(f"{floor.base_url}/admin/campaigns/contact/import/?campaign={floor.campaign.pk}")
    page.locator('input[type="file"]').set_input_files(
        files=[{"name": "contacts.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    page.get_by_label("Skip bad rows and import the rest").check()
    page.get_by_role("button", name="Import contacts").click()
    expect(page.locator(".dialer-report-ok")).to_contain_text("3 contacts added")
    warnings = page.locator("#import-warnings tbody tr")
    expect(warnings).to_have_count(2)
    expect(warnings.nth(0)).to_contain_text("nobody-at-example")
    expect(warnings.nth(1)).to_contain_text("Moon/Base")
    expect(page.locator("#import-issues tbody tr")).to_have_count(1)
    bullets = page.locator(".dialer-summary li").evaluate_all(
        "(items) => items.map((li) => getComputedStyle(li).listStyleType)")
    assert bullets and set(bullets) == {"none"}
    saved = orm(lambda: {c.name: (c.email, c.time_zone) for c in floor.campaign.contacts.filter(
        phone__in=["+12025550161", "+12025550162"])})
    assert saved == {"Typo Mail": ("", "America/New_York"), "Moon Zone": ("moon@example.com", "America/New_York")}
    assert overflows(page) <= 0
    shot(page, "admin-import-report-1280")
    page.set_viewport_size(PHONE)
    shot(page, "admin-import-report-phone")


def _bar(page) -> dict:
    return page.evaluate("""() => {
        const bar = document.querySelector('.agent-bar').getBoundingClientRect();
        const leave = document.getElementById('btn-leave').getBoundingClientRect();
        return {height: Math.round(bar.height), leaveTop: Math.round(leave.top), leaveLeft: Math.round(leave.left)};
    }""")


def _clocks(page) -> list[str]:
    """The card's and the line's timers for the call, read in the same instant."""
    return page.evaluate("""() => [document.getElementById('card-timer').textContent,
                                   document.querySelector('#lines .line .line-timer').textContent]""")


def test_an_agent_works_a_call_and_nothing_is_lost_or_jumps(floor, chromium):
    from playwright.sync_api import expect

    page = page_for(chromium, floor.agent_cookie)
    page.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/")
    expect(page.locator("#phone-state")).to_contain_text("in your call room")
    expect(page.locator("#agent-state-label")).to_have_text("Paused")
    bars = {"paused": _bar(page)}
    page.get_by_role("button", name="Go ready").click()
    expect(page.locator("#agent-state-label")).to_have_text("Ready")
    bars["ready"] = _bar(page)

    page.get_by_role("button", name="Dial next").click()
    expect(page.locator("#card-state-label")).to_have_text("Connected")
    expect(page.locator("#agent-state-label")).to_have_text("On a call")
    bars["on_call"] = _bar(page)
    expect(page.get_by_role("button", name="Leave")).to_be_disabled()
    expect(page.locator("#leave-why")).to_have_text("Hang up your call before you leave.")
    # One clock for the call: the line and the card agree, and the status bar does not run a third one.
    page.wait_for_function("() => document.getElementById('card-timer').textContent !== ''")
    card_clock, line_clock = _clocks(page)
    assert card_clock == line_clock
    expect(page.locator("#agent-state-timer")).to_have_text("")

    # -- notes survive a reload of the page while the call goes on -------------------------------------------------
    page.get_by_label("Notes").fill("Wants pricing for 12 seats.")
    page.reload()
    expect(page.locator("#card-name")).to_have_text("Ada Nguyen")
    expect(page.get_by_label("Notes")).to_have_value("Wants pricing for 12 seats.")
    page.get_by_label("Notes").press_sequentially(" Call Thursday.")
    shot(page, "console-on-call-1280")

    # -- wrap-up: Leave is off and says why; the clocks stopped together --------------------------------------------
    # A talk shorter than a second shows no talk time at all: let this one last a little.
    page.wait_for_function("() => !['', '0:00'].includes(document.getElementById('card-timer').textContent)")
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#agent-state-label")).to_have_text("Wrap-up")
    bars["wrap_up"] = _bar(page)
    leave = page.get_by_role("button", name="Leave")
    expect(leave).to_be_disabled()
    expect(leave).to_have_attribute("title", "Save a disposition for your call before you leave.")
    expect(page.locator("#leave-why")).to_have_text("Save a disposition for your call before you leave.")
    page.wait_for_function("() => document.querySelector('#lines .line .line-timer').textContent !== ''")
    card_clock, line_clock = _clocks(page)
    assert card_clock == line_clock and card_clock != ""
    # The bar kept its shape through every state: nothing moved under the agent's pointer.
    assert len({(b["height"], b["leaveTop"], b["leaveLeft"]) for b in bars.values()}) == 1, bars

    # -- a callback shows the contact's own time beside the agent's -----------------------------------------------
    page.get_by_role("button", name="Call back").click()
    callback_at = page.get_by_label("Call back at (your time)")
    callback_at.fill("2031-03-04T10:30")
    expect(page.locator("#callback-their-time")).to_contain_text("Chicago")
    expected = page.evaluate("""() => new Intl.DateTimeFormat(undefined, {timeZone: 'America/Chicago',
        weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit'})
        .format(new Date('2031-03-04T10:30'))""")
    expect(page.locator("#callback-their-time")).to_contain_text(expected)
    shot(page, "console-wrap-up-callback-1280")
    page.get_by_role("button", name="Save callback").click()
    expect(page.locator("#card-outcome")).to_contain_text("Saved as “Call back”.")
    expect(page.locator("#card-outcome")).to_contain_text("Chicago")

    # -- after the disposition the notes are read only, and the draft is gone ---------------------------------------
    notes = page.get_by_label("Notes")
    expect(notes).not_to_be_editable()
    expect(page.locator("#notes-state")).to_contain_text("Saved with the disposition")
    disposition = orm(lambda: Disposition.objects.get(contact__name="Ada Nguyen"))
    assert disposition.notes == "Wants pricing for 12 seats. Call Thursday."
    assert page.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('dialer.notes.'))") == []
    page.set_viewport_size(PHONE)
    shot(page, "console-after-disposition-phone")


def test_a_line_says_what_the_callee_hears_and_keeps_one_clock(floor, chromium):
    """The line label for each way a line is let go, and the one clock of a call, from the call rows the browser
    gets over the socket."""
    page = page_for(chromium, floor.agent_cookie)
    page.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/")
    labels = page.evaluate("""() => Object.fromEntries(['abandoned', 'canceled', 'machine', 'talked'].map((outcome) =>
        [outcome, Dialer.describeLine({state: 'releasing', outcome, answered_by: outcome === 'machine' ?
            'machine_start' : 'human', created_at: new Date().toISOString()}, 1).label]))""")
    assert labels["abandoned"] == "Human — no agent free: hearing our apology and opt-out number"
    assert labels["canceled"] == "Stopping the ring (not needed)"
    assert labels["machine"] == "Machine — hanging up"
    assert "Hanging up" not in labels["abandoned"]

    # One clock for a call, on its line and its card. Dialed at 0 s, connected at 9 s, ended at 54 s: 0:45 of talk
    # (the line used to count from the dial: 0:54 beside the card's 0:45).
    clocks = page.evaluate("""() => {
        const at = (s) => new Date(Date.UTC(2030, 0, 1, 10, 0, s)).toISOString();
        const call = {state: 'ended', outcome: 'talked', created_at: at(0), answered_at: at(7), bridged_at: at(8),
                      connected_at: at(9), ended_at: at(54), bridged_to: 1, dialed_for: 1};
        const live = {...call, state: 'connected', outcome: '', ended_at: null};
        return {ended: Dialer.callClock(call, Dialer.describeLine(call, 1)).text,
                live: Dialer.callClock(live, Dialer.describeLine(live, 1)).since,
                missed: Dialer.callClock({...call, outcome: 'no_answer', connected_at: null, bridged_at: null},
                                         {}).text};
    }""")
    assert clocks["ended"] == "0:45"
    assert clocks["live"].startswith("2030-01-01T10:00:09")  # counts from the connection, like the card
    assert clocks["missed"] == "0:54"  # no conversation: how long the line lasted


def test_refusals_are_our_own_pages_with_a_way_back(floor, chromium):
    from playwright.sync_api import expect

    page = page_for(chromium, floor.outsider_cookie)
    response = page.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
    expect(page.locator(".refusal")).to_contain_text("not on this campaign's team")
    expect(page.locator(".site-header")).to_be_visible()  # the site's own frame, not a bare "403 Forbidden"
    shot(page, "refused-not-on-team")
    response = page.goto(f"{floor.base_url}/campaigns/999999/")
    assert response.status == 403
    expect(page.locator(".refusal")).to_contain_text("no campaign at this address")
    response = page.goto(f"{floor.base_url}/no-such-page/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
    page.get_by_role("link", name="Back to your campaigns").click()
    expect(page).to_have_url(floor.base_url + "/campaigns/")

    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(floor.base_url + icon).status == 200
    response = page.request.get(floor.base_url + "/favicon.ico")
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg")


def test_the_wallboard_fits_a_phone(floor, chromium):
    from playwright.sync_api import expect

    page = page_for(chromium, floor.manager_cookie, PHONE)
    page.goto(f"{floor.base_url}/campaigns/{floor.campaign.pk}/wallboard/")
    expect(page.locator("#socket-state")).to_have_text("connected")
    expect(page.locator("#rate-cap")).not_to_have_text("\u2013")
    shot(page, "wallboard-phone")
    assert overflows(page) <= 0
    # Every rate's value on one line beside its name, not squeezed into a column of single digits.
    rows = page.locator(".stats-rates > div").evaluate_all("""(rows) => rows.map((row) => {
        const [dt, dd] = [row.querySelector('dt'), row.querySelector('dd')];
        const [name, value] = [dt.getBoundingClientRect(), dd.getBoundingClientRect()];
        return {text: dd.textContent, lines: value.height / parseFloat(getComputedStyle(dd).lineHeight),
                beside: value.left >= name.right, right: value.right};
    })""")
    assert len(rows) == 7
    for row in rows:
        assert row["lines"] < 1.5 and row["beside"] and row["right"] <= PHONE["width"], row
    page.set_viewport_size(DESKTOP)
    shot(page, "wallboard-1280")
