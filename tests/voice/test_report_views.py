"""The reports over HTTP: who may see them, bad input, the pages' numbers, the CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.http import StreamingHttpResponse

from tests import factories
from tests.voice.report_data import build_floor
from voice.reports import exports

DAY1 = dt.date(2026, 3, 10)
PERIOD = {"start": "2026-03-10", "end": "2026-03-11", "tz": "America/New_York"}


@pytest.fixture
def floor(db):
    return build_floor(day1=DAY1)


def url(floor, name="reports/"):
    return f"/campaigns/{floor.campaign.pk}/{name}"


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf"), "UTF-8 byte-order mark first"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.parametrize("name", ["reports/", "reports/calls.csv", "reports/dispositions.csv",
                                  "reports/contacts.csv", "reports/agents.csv", "reports/compliance/",
                                  "reports/compliance.csv"])
def test_agents_are_refused_and_strangers_sent_to_log_in(client, floor, name):
    client.force_login(floor.agent)
    assert client.get(url(floor, name), PERIOD).status_code == 403
    client.logout()
    response = client.get(url(floor, name), PERIOD)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_manager_sees_the_floors_numbers(client, floor):
    client.force_login(floor.manager)
    response = client.get(url(floor), PERIOD)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="tile-dials">11<' in page
    assert 'id="tile-reached">4<' in page
    assert 'id="tile-connect-rate">36.4 %<' in page
    assert 'id="tile-conversations">2<' in page
    assert 'id="stat-safe-harbor">1<' in page
    assert 'id="tile-rolling">21.43 %<' in page  # 3 of 14 over the 30 days ending on day 2
    assert "chartjs/chart.umd.min.js" in page and 'id="report-charts"' in page


def test_an_unknown_campaign_is_403_not_404(client, floor):
    client.force_login(floor.manager)
    assert client.get("/campaigns/999999/reports/").status_code == 403


@pytest.mark.parametrize("params", [{"start": "2026-02-30"}, {"tz": "Nowhere/Land"},
                                    {"start": "2026-03-11", "end": "2026-03-01"}])
def test_bad_periods_are_400_with_a_reason(client, floor, params):
    client.force_login(floor.manager)
    page = client.get(url(floor), params)
    assert page.status_code == 400 and b"cannot be shown" in page.content
    export = client.get(url(floor, "reports/calls.csv"), params)
    assert export.status_code == 400 and export["Content-Type"].startswith("text/plain")


def test_post_is_refused(client, floor):
    client.force_login(floor.manager)
    assert client.post(url(floor), PERIOD).status_code == 405


def test_calls_csv_one_row_per_call_formula_safe(client, floor):
    client.force_login(floor.manager)
    response = client.get(url(floor, "reports/calls.csv"), PERIOD)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="campaign-' in response["Content-Disposition"]
    rows = read_csv(response)
    assert len(rows) == 11
    c1 = next(r for r in rows if r["call_id"] == str(floor.calls["c1"].pk))
    assert c1["contact"] == "'=HYPERLINK(\"http://x\")"  # neutralised, not a formula
    assert c1["phone"] == "'+12125550001"
    assert c1["notes"] == "'+1 wants a demo"
    assert c1["agent"] == "alice" and c1["disposition"] == "Interested" and c1["amd_verdict"] == "human"
    assert c1["placed_at"] == "2026-03-10 13:00:00"  # New York time
    assert (c1["ring_s"], c1["talk_s"]) == ("5", "120")  # rang from the ringing callback to the answer
    c2 = next(r for r in rows if r["call_id"] == str(floor.calls["c2"].pk))
    assert c2["notes"] == "'@budget -next year"
    assert all(not r[k].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for k in r)


def test_calls_csv_links_a_recorded_call_to_our_playback_page_never_twilio(client, floor, settings):
    from voice.models import Recording

    recorded = floor.calls["c1"]
    recording = Recording.objects.create(call=recorded, sid="RE" + "2" * 32, status="completed", duration_s=30,
                                         media_url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE2")
    Recording.objects.create(call=floor.calls["c2"], sid="RE" + "3" * 32, status="in-progress")
    client.force_login(floor.manager)
    rows = {r["call_id"]: r["recording"] for r in read_csv(client.get(url(floor, "reports/calls.csv"), PERIOD))}
    assert rows[str(recorded.pk)] == f"{settings.PUBLIC_BASE_URL}/recordings/{recording.pk}/"
    assert rows[str(floor.calls["c2"].pk)] == ""  # not finished: nothing to play yet
    assert not any("twilio.com" in value for value in rows.values())


def test_dispositions_contacts_agents_and_compliance_csvs(client, floor):
    client.force_login(floor.manager)
    dispositions = read_csv(client.get(url(floor, "reports/dispositions.csv"), PERIOD))
    assert sorted(r["code"] for r in dispositions) == ["interested", "not-interested"]
    contacts = read_csv(client.get(url(floor, "reports/contacts.csv"), PERIOD))
    assert len(contacts) == floor.campaign.contacts.count()
    assert {r["status"] for r in contacts} >= {"Do not call"}
    agents = {r["agent"]: r for r in read_csv(client.get(url(floor, "reports/agents.csv"), PERIOD))}
    assert (agents["Alice Moreau"]["dials"], agents["Alice Moreau"]["conversations"]) == ("7", "1")
    assert agents["Alice Moreau"]["idle_s"] == "3600"
    compliance = read_csv(client.get(url(floor, "reports/compliance.csv"), PERIOD))
    sections = [r["section"] for r in compliance]
    assert sections.count("abandonment by day") == 2
    assert sections.count("abandoned call") == 1
    assert sections.count("ring shorter than the minimum") == 1
    assert sections.count("outside the calling window") == 1
    assert sections.count("do-not-call: called after listing") == 1
    assert sections.count("cap or opt-out change") == 1
    abandoned = next(r for r in compliance if r["section"] == "abandoned call")
    assert abandoned["figure"] == "1.5" and "safe-harbor message started 2026-03-10 13:00:" in abandoned["detail"]


def test_compliance_page(client, floor):
    client.force_login(floor.manager)
    page = client.get(url(floor, "reports/compliance/"), PERIOD).content.decode()
    assert 'data-check="short-rings" data-ok="no"' in page
    assert 'data-check="window" data-ok="no"' in page
    assert 'data-check="dnc" data-ok="no"' in page
    assert 'data-check="abandonment" data-ok="no"' in page  # 3 of 13 is over a 3 % cap
    assert f'data-call="{floor.calls["c3"].pk}"' in page
    assert "changed Max abandon rate" in page


def test_a_large_export_streams_without_holding_it(db):
    """20,000 calls leave as several chunks, and the process never holds more than a sliver of the file."""
    import tracemalloc

    from django.db import connection

    campaign = factories.make_campaign()
    contact = factories.make_contact(campaign=campaign, name="=cmd|' /C calc'!A0")
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO voice_call (campaign_id, contact_id, state, outcome, answered_by, amd_corrected,
                twiml_fetched, twilio_status, last_sequence, version, error, created_at)
            SELECT %s, %s, 'ended', 'no_answer', '', false, false, 'no-answer', 0, 1, '',
                   '2026-03-10 14:00:00+00'::timestamptz + g * interval '1 second'
            FROM generate_series(1, 20000) AS g""", [campaign.pk, contact.pk])
    from voice.reports.period import period_from_params

    period = period_from_params({"start": "2026-03-10", "end": "2026-03-10"}, default_tz="UTC")
    tracemalloc.start()
    size = chunks = 0
    for chunk in exports.calls_csv(campaign=campaign, period=period):
        size += len(chunk)
        chunks += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size > 1_500_000 and chunks > 10
    assert peak < size / 5, f"held {peak:,} bytes of a {size:,}-byte export"


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), (-5, -5), (None, ""), (True, "yes"),
])
def test_safe_cell(value, cell):
    assert exports.safe_cell(value) == cell


def test_the_production_app_streams_the_export(transactional_db, client):
    """Served by dialer.asgi (as the Procfile serves it), an export leaves in several pieces as it is built,
    not collected into one body first, and arrives whole."""
    import asyncio
    import urllib.parse

    from asgiref.testing import ApplicationCommunicator
    from django.conf import settings

    from dialer.asgi import application

    floor = build_floor(day1=DAY1)
    client.force_login(floor.manager)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": url(floor, "reports/calls.csv"), "raw_path": url(floor, "reports/calls.csv").encode(),
             "query_string": urllib.parse.urlencode(PERIOD).encode(), "root_path": "",
             "headers": [(b"host", b"localhost"), (b"cookie", cookie.encode())],
             "client": ("127.0.0.1", 50000), "server": ("localhost", 80)}

    async def fetch() -> tuple[dict, list[bytes]]:
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await app.receive_output(timeout=10)
        pieces = []
        while True:
            message = await app.receive_output(timeout=10)
            pieces.append(message.get("body", b""))
            if not message.get("more_body"):
                return start, pieces

    start, pieces = asyncio.run(fetch())
    assert start["status"] == 200
    assert len([piece for piece in pieces if piece]) >= 2, "streamed, not built whole before the first byte"
    body = b"".join(pieces)
    assert body.startswith(b"\xef\xbb\xbf") and body.count(b"\n") == 12


def test_the_wallboard_links_to_the_reports(client, floor):
    client.force_login(floor.manager)
    page = client.get(f"/campaigns/{floor.campaign.pk}/wallboard/").content.decode()
    assert f'href="/campaigns/{floor.campaign.pk}/reports/">Reports</a>' in page
