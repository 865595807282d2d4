"""Manager reports in a real browser (headless Chromium) on the live app, with the hand-worked floor of
tests/voice/report_data.py placed in the last few days: the numbers on screen are the floor's, the range can be
changed, the charts are drawn, the exports download and parse, agents are refused. Screenshots at 1280 px and at
tablet width land in artifacts/screenshots/reports-*.png.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.utils import timezone

from tests.browser.conftest import SCREENSHOTS, TABLET, session_cookie
from tests.voice.report_data import NY, build_floor

pytestmark = [pytest.mark.browser]

WIDE = {"width": 1280, "height": 900}


@pytest.fixture
def floor(live_server):
    day1 = timezone.localtime(timezone.now(), NY).date() - dt.timedelta(days=3)
    floor = build_floor(day1=day1)
    floor.manager_cookie = session_cookie(floor.manager, live_server.url)
    floor.agent_cookie = session_cookie(floor.agent, live_server.url)
    return floor


def browse(chromium, cookie, viewport=WIDE):
    context = chromium.new_context(viewport=viewport, timezone_id="America/New_York", accept_downloads=True)
    context.add_cookies([cookie])
    return context, context.new_page()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"reports-{name}.png"), full_page=True)


def test_a_manager_reads_the_floor_changes_the_range_and_downloads(floor, live_server, chromium):
    from playwright.sync_api import expect

    base = f"{live_server.url}/campaigns/{floor.campaign.pk}/reports/"
    context, page = browse(chromium, floor.manager_cookie)
    page.goto(base)
    # The page moves itself to the manager's own time zone (the browser's), default range the last 7 days.
    expect(page).to_have_url(f"{base}?tz=America%2FNew_York")
    expect(page.locator("#period-label")).to_contain_text("America/New_York")
    expect(page.locator("#tile-dials")).to_have_text("11")
    expect(page.locator("#tile-reached")).to_have_text("4")
    expect(page.locator("#tile-connect-rate")).to_have_text("36.4 %")
    expect(page.locator("#tile-conversations")).to_have_text("2")
    expect(page.locator("#stat-safe-harbor")).to_have_text("1")
    expect(page.locator("#stat-idle")).to_have_text("1 h 00 min")
    day1 = floor.day1.isoformat()
    day_row = page.locator(f"#days-table tr[data-day='{day1}'] td")
    expect(day_row.nth(0)).to_have_text("6")  # dials
    expect(day_row.nth(1)).to_have_text("3")  # reached
    expect(day_row.nth(3)).to_have_text("2")  # conversations
    alice = page.locator("#agents-table tr[data-agent='Alice Moreau'] td")
    expect(alice.nth(0)).to_have_text("7")
    expect(alice.nth(3)).to_have_text("1")
    expect(page.locator("#funnel-table tbody td:nth-child(2)")).to_have_text(["11", "7", "4", "3", "1"])
    expect(page.locator("#amd-table tr[data-verdict='human'] td").nth(0)).to_have_text("4")
    expect(page.locator("#amd-table tr[data-verdict='human'] td").nth(5)).to_contain_text("25.00 %")
    expect(page.locator("#dispositions-table tr[data-code='interested'] td").nth(0)).to_have_text("1")
    # Chart.js came from our static files and drew every chart.
    assert page.evaluate("typeof window.Chart") == "function"
    for name in ("trend", "abandonment", "funnel", "hours", "best_hours", "dispositions", "amd"):
        expect(page.locator(f"canvas[data-chart='{name}']")).to_be_visible()
        assert page.evaluate(f"!!window.Chart.getChart(document.querySelector(\"canvas[data-chart='{name}']\"))")
    trend = page.evaluate("window.Chart.getChart(document.querySelector(\"canvas[data-chart='trend']\"))"
                          ".data.datasets[0].data")
    assert sum(trend) == 11 and 6 in trend and 5 in trend
    shot(page, "1280")

    # The calls export downloads, parses, and its formula cell is text.
    with page.expect_download() as download:
        page.get_by_role("link", name="Calls", exact=True).click()
    body = Path(download.value.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == 11
    assert "'=HYPERLINK(\"http://x\")" in {r["contact"] for r in rows}
    with page.expect_download() as download:
        page.get_by_role("link", name="Agents", exact=True).click()
    agents = {r["agent"]: r for r in csv.DictReader(io.StringIO(
        Path(download.value.path()).read_text(encoding="utf-8-sig")))}
    assert agents["Alice Moreau"]["dials"] == "7" and agents["Bob Stone"]["conversations"] == "1"

    # Day 2 only.
    day2 = (floor.day1 + dt.timedelta(days=1)).isoformat()
    page.fill("input[name=start]", day2)
    page.fill("input[name=end]", day2)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#tile-dials")).to_have_text("5")
    expect(page.locator("#tile-reached")).to_have_text("1")
    expect(page.locator("#tile-conversations")).to_have_text("0")
    expect(page.locator("#days-table tbody tr")).to_have_count(1)
    assert f"start={day2}" in page.url
    context.close()


def test_reports_and_compliance_at_tablet_width(floor, live_server, chromium):
    from playwright.sync_api import expect

    # A link naming the dates but not the zone: the page adds the browser's zone and keeps the dates.
    query = f"?start={floor.day1}&end={floor.day1 + dt.timedelta(days=1)}"
    context, page = browse(chromium, floor.manager_cookie, viewport=TABLET)
    page.goto(f"{live_server.url}/campaigns/{floor.campaign.pk}/reports/{query}")
    expect(page).to_have_url(f"{live_server.url}/campaigns/{floor.campaign.pk}/reports/{query}&tz=America%2FNew_York")
    expect(page.locator("#tile-dials")).to_have_text("11")
    # Nothing wider than the screen but the tables' own scrolling boxes.
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    shot(page, "tablet")
    page.get_by_role("link", name="Compliance report").click()
    expect(page.locator("h1")).to_contain_text("compliance report")
    expect(page.locator("[data-check='short-rings'] .count")).to_have_text("1")
    expect(page.locator("[data-check='window'] .count")).to_have_text("1")
    expect(page.locator("[data-check='dnc'] .count")).to_have_text("1")
    expect(page.locator("[data-check='safe-harbor'] .count")).to_have_text("1")
    expect(page.locator(f"#abandoned-table tr[data-call='{floor.calls['c3'].pk}'] td").nth(3)).to_have_text("1.5")
    expect(page.locator("#cap-table")).to_contain_text("changed Max abandon rate")
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    shot(page, "compliance-tablet")
    page.set_viewport_size(WIDE)
    shot(page, "compliance-1280")
    context.close()


def test_an_agent_is_refused(floor, live_server, chromium):
    context, page = browse(chromium, floor.agent_cookie)
    for path in ("reports/", "reports/compliance/"):
        response = page.goto(f"{live_server.url}/campaigns/{floor.campaign.pk}/{path}")
        assert response.status == 403
    context.close()
