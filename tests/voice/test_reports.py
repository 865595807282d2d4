"""The reports' figures on a floor whose every number is known (tests/voice/report_data.py)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db.models import Q, Sum
from django.utils import timezone

from campaigns.models import AgentStateChange
from tests import factories
from tests.live import at_once
from tests.voice.report_data import EXPECTED, build_floor
from voice.models import Call, Disposition, human_answered_q, machine_q
from voice.reports import conditions, rollups, selectors
from voice.reports.models import CallHourStat
from voice.reports.period import BadPeriod, period_from_params

DAY1 = dt.date(2026, 3, 10)  # a Tuesday; New York is on daylight time (UTC-4) since 8 March


@pytest.fixture
def floor(db):
    return build_floor(day1=DAY1)


def period(start=DAY1, end=DAY1 + dt.timedelta(days=1), tz="America/New_York"):
    return period_from_params({"start": str(start), "end": str(end), "tz": tz}, default_tz="UTC")


def test_totals_match_the_floor(floor):
    report = selectors.campaign_report(campaign=floor.campaign, period=period())
    total = report["total"]
    for name in ("dials", "answered", "reached", "machines", "talked", "abandoned", "conversations", "positive",
                 "corrected", "talk_s"):
        assert getattr(total, name) == EXPECTED[name], name
    assert total.agent == pytest.approx(EXPECTED["agent"])
    assert total.connect_rate == pytest.approx(4 / 11)
    working_h = (EXPECTED["agent"]["wait_s"] + EXPECTED["agent"]["talk_s"] + EXPECTED["agent"]["wrap_s"]) / 3600
    assert total.conversations_per_agent_hour == pytest.approx(2 / working_h)
    assert report["safe_harbor_played"] == 1
    assert [s["count"] for s in report["funnel"]] == [11, 7, 4, 3, 1]


def test_the_sql_person_test_is_the_models(floor):
    """HUMAN_SQL is voice.models.human_answered_q compiled: the same calls on the same data."""
    p = period(start=DAY1 - dt.timedelta(days=60))
    report = selectors.campaign_report(campaign=floor.campaign, period=p)
    assert report["total"].reached == Call.objects.filter(human_answered_q(), campaign=floor.campaign).count()
    assert report["total"].abandoned == Call.objects.filter(Q(outcome="abandoned"), campaign=floor.campaign).count()


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata"])  # read from the rollups; from the calls
def test_the_sql_person_and_machine_tests_are_the_models_on_both_paths(floor, tz):
    p = period(start=DAY1 - dt.timedelta(days=60), end=DAY1 + dt.timedelta(days=2), tz=tz)
    total = selectors.campaign_report(campaign=floor.campaign, period=p)["total"]
    calls = Call.objects.filter(campaign=floor.campaign, created_at__gte=p.start, created_at__lt=p.end)
    assert total.reached == calls.filter(human_answered_q()).count() > 0
    assert total.machines == calls.filter(machine_q()).count() > 0


def test_the_conditions_are_compiled_from_the_models_rules():
    """The SQL is generated, not restated: values become named parameters, the calls are read under `c`, and
    a rule that would need a join (no alias for it in the report queries) is refused."""
    assert conditions.HUMAN.sql == ('(("c"."answered_by" = %(human_0)s OR "c"."outcome" IN (%(human_1)s, '
                                    '%(human_2)s)))')
    assert conditions.HUMAN.params == {"human_0": "human", "human_1": "talked", "human_2": "abandoned"}
    assert sorted(conditions.MACHINE.params.values()) == sorted(
        ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"])
    assert conditions.HUMAN.sql == selectors.HUMAN_SQL
    assert conditions.MACHINE.sql == selectors.MACHINE_SQL
    with pytest.raises(ValueError, match="own columns"):
        conditions.call_condition(Q(contact__status="pending"), name="pending")


def test_days_hours_and_local_hours(floor):
    report = selectors.campaign_report(campaign=floor.campaign, period=period())
    days = {row["day"]: row["m"] for row in report["days"]}
    assert (days[DAY1].dials, days[DAY1].reached, days[DAY1].conversations) == (6, 3, 2)
    assert (days[DAY1 + dt.timedelta(days=1)].dials, days[DAY1 + dt.timedelta(days=1)].reached) == (5, 1)
    # Agent time lands on the day it was spent.
    assert days[DAY1].agent["idle_s"] == 3600
    hours = {row["hour"]: row["m"].dials for row in report["hours"] if row["m"].dials}
    assert hours == {13: 6, 14: 4, 3: 1}
    local = {row["hour"]: (row["m"].dials, row["m"].reached) for row in report["best_hours"] if row["m"].dials}
    # New York contacts at 13:00 and 14:00 and 03:00, Los Angeles ones at 10:00 their time.
    assert local == {13: (3, 3), 10: (3, 0), 14: (4, 1), 3: (1, 0)}


def test_the_managers_time_zone_moves_calls_between_days(floor):
    """c11 was placed at 03:00 in New York on day 2: 00:00 in Los Angeles, still 07:00 UTC on day 2; in
    Honolulu (UTC-10) it is 21:00 on day 1."""
    honolulu = selectors.campaign_report(campaign=floor.campaign, period=period(tz="Pacific/Honolulu"))
    days = {row["day"]: row["m"].dials for row in honolulu["days"]}
    assert days[DAY1] == 7 and days[DAY1 + dt.timedelta(days=1)] == 4


def test_agents_table(floor):
    report = selectors.campaign_report(campaign=floor.campaign, period=period())
    agents = {a["name"]: a["m"] for a in report["agents"]}
    alice, bob = agents["Alice Moreau"], agents["Bob Stone"]
    assert (alice.dials, alice.reached, alice.conversations, alice.talked) == (7, 3, 1, 2)
    assert (bob.dials, bob.reached, bob.conversations) == (4, 1, 1)
    assert alice.agent == pytest.approx({"wait_s": 67 * 60, "talk_s": 120, "wrap_s": 60, "idle_s": 3600})
    assert bob.agent == pytest.approx({"wait_s": 300, "talk_s": 60, "wrap_s": 120})
    assert alice.conversations_per_agent_hour == pytest.approx(1 / ((67 * 60 + 180) / 3600))
    # Lines: every line-second dialed for bob over his 5 waiting minutes.
    bob_line_s = sum((c.ended_at - c.created_at).total_seconds()
                     for c in Call.objects.filter(campaign=floor.campaign, dialed_for__agent__username="bob"))
    assert bob.lines_per_agent == pytest.approx(bob_line_s / 300)


def test_amd_breakdown_and_false_human_rate(floor):
    report = selectors.campaign_report(campaign=floor.campaign, period=period())
    amd = {row["verdict"]: row for row in report["amd"]}
    assert {v: r["calls"] for v, r in amd.items()} == {
        "human": 4, "machine_end_beep": 1, "machine_end_silence": 1, "fax": 1}
    human = amd["human"]
    assert human["mean_ms"] == pytest.approx((1500 + 2500 + 1000 + 2000) / 4)
    # From the rollups' latency histogram: within half a bucket of the exact median (1750 ms).
    assert human["p50_ms"] == pytest.approx(1750, abs=rollups.AMD_BUCKET_MS / 2)
    assert human["corrected"] == 1 and human["false_human_rate"] == pytest.approx(0.25)
    assert [row["verdict"] for row in report["amd"]] == ["human", "machine_end_beep", "machine_end_silence", "fax"]


def test_dispositions(floor):
    report = selectors.campaign_report(campaign=floor.campaign, period=period())
    assert [(d["code"], d["count"], d["positive"], d["share"]) for d in report["dispositions"]] == [
        ("interested", 1, True, 0.5), ("not-interested", 1, False, 0.5)]
    assert report["disposed"] == 2


def test_abandonment_per_day_and_rolling_30_days(floor):
    rows = selectors.abandonment_by_day(campaign=floor.campaign, period=period())
    day1, day2 = rows
    assert (day1["abandoned"], day1["reached"]) == (1, 3)
    # 10 days earlier: 2 of 10; day 1: 1 of 3. Forty days earlier is outside the window.
    assert (day1["rolling_abandoned"], day1["rolling_reached"]) == (3, 13)
    assert (day2["rolling_abandoned"], day2["rolling_reached"]) == (3, 14)
    assert day1["over_cap"] and day2["rolling_rate"] == pytest.approx(3 / 14)


def test_compliance_findings(floor):
    report = selectors.compliance_report(campaign=floor.campaign, period=period())
    [abandoned] = report["abandoned_calls"]
    assert abandoned["id"] == floor.calls["c3"].pk
    assert abandoned["after_answer_s"] == pytest.approx(1.5)
    assert [c["id"] for c in report["short_rings"]] == [floor.calls["c10"].pk]
    assert [c["id"] for c in report["outside_window"]] == [floor.calls["c11"].pk]
    assert [c["id"] for c in report["dnc"]["calls_after_listing"]] == [floor.calls["c8"].pk]
    assert report["dnc"]["contacts_blocked"] == 2
    [change] = report["cap_changes"]
    assert change["who"] == "mia" and change["what"] == "changed Max abandon rate"


def test_a_campaign_that_lists_no_days_uses_the_gate_default(floor):
    """Weekdays only: day 2 + 4 (a Saturday) is outside; Friday is inside."""
    floor.campaign.window_days = []
    floor.campaign.save(update_fields=["window_days"])
    report = selectors.compliance_report(campaign=floor.campaign, period=period())
    assert [c["id"] for c in report["outside_window"]] == [floor.calls["c11"].pk]


def test_agent_time_counts_a_state_begun_before_the_period(floor):
    """Alice paused at 15:00 New York time (19:00 UTC) for an hour. Day 2 in Kabul (UTC+4:30) begins at 19:30
    UTC on day 1: her pause began before that period and its last half hour is in it."""
    assert AgentStateChange.objects.filter(at__lt=dt.datetime(2026, 3, 10, 19, 30, tzinfo=dt.UTC)).count() == 9
    kabul = period(start=DAY1 + dt.timedelta(days=1), tz="Asia/Kabul")
    report = selectors.campaign_report(campaign=floor.campaign, period=kabul)
    assert report["total"].agent == pytest.approx({"idle_s": 1800})


def test_an_empty_period_shows_no_data_not_zero_rates(floor):
    later = period(start=DAY1 + dt.timedelta(days=5), end=DAY1 + dt.timedelta(days=6))
    report = selectors.campaign_report(campaign=floor.campaign, period=later)
    assert report["total"].dials == 0
    assert report["total"].connect_rate is None
    assert report["amd"] == [] and report["dispositions"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "2026-13-01"}, "start"),
    ({"end": "yesterday"}, "end"),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "start"),
    ({"start": "2024-01-01", "end": "2026-03-01"}, "start"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"tz": "'; drop table voice_call; --"}, "tz"),
])
def test_bad_periods_name_the_field(params, field):
    with pytest.raises(BadPeriod) as caught:
        period_from_params(params, default_tz="UTC")
    assert caught.value.field == field


def test_the_default_period_is_the_last_7_days_in_the_zone():
    now = dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.UTC)  # still 9 March in New York
    p = period_from_params({"tz": "America/New_York"}, default_tz="UTC", now=now)
    assert (p.first_day, p.last_day) == (dt.date(2026, 3, 3), dt.date(2026, 3, 9))
    assert p.start == dt.datetime(2026, 3, 3, 5, 0, tzinfo=dt.UTC)


# -- the rollups ---------------------------------------------------------------------------------------------


def _raw(campaign, p):
    agent = selectors.agent_time(campaign=campaign, period=p)
    return (selectors.call_breakdowns(campaign=campaign, period=p),
            sorted((r["session_id"], r["state"], r["seconds"]) for r in agent))


@pytest.mark.parametrize("tz", ["America/New_York", "UTC", "Asia/Tokyo"])
def test_rollups_give_what_the_calls_give(floor, tz):
    """Every breakdown read from the hourly rollups equals the same breakdown computed from the calls."""
    p = period(start=DAY1 - dt.timedelta(days=12), tz=tz)
    assert rollups.whole_hours(p)
    from_rollups, agent_rows, _ = selectors._figures(campaign=floor.campaign, period=p)
    from_calls, agent_raw = _raw(floor.campaign, p)
    for dim in ("total", "day", "hour", "local_hour", "session_id", "answered_by", "code_id"):
        assert from_rollups[dim] == from_calls[dim], dim
    totals: dict = {}
    for row in agent_rows:
        if row["session_id"] is None:
            continue  # the per-day rows: the report's days are compared above
        key = (row["session_id"], row["state"])
        totals[key] = totals.get(key, 0) + row["seconds"]
    assert sorted((s, st, pytest.approx(v)) for (s, st), v in totals.items()) == [
        (s, st, pytest.approx(v)) for s, st, v in _merge(agent_raw)]


def _merge(rows):
    merged: dict = {}
    for session, state, seconds in rows:
        merged[(session, state)] = merged.get((session, state), 0) + seconds
    return sorted((s, st, v) for (s, st), v in merged.items())


def test_a_later_change_reaches_the_next_report(floor):
    """A report rolls the floor up; then a call placed in an old hour ends now and a disposition is written
    now for another: the next report counts both, without counting anything twice."""
    p = period()
    assert selectors.campaign_report(campaign=floor.campaign, period=p)["total"].dials == 11
    contact = factories.make_contact(campaign=floor.campaign, phone="+12125557777")
    late = factories.make_call(campaign=floor.campaign, contact=contact, at=floor.calls["c1"].created_at,
                               outcome="no_answer")
    Call.objects.filter(pk=late.pk).update(last_event_at=timezone.now())
    c7 = floor.calls["c7"]
    Disposition.objects.create(call=c7, contact=c7.contact, agent=floor.agent,
                               code=floor.campaign.disposition_codes.get(code="interested"))
    report = selectors.campaign_report(campaign=floor.campaign, period=p)
    assert (report["total"].dials, report["total"].conversations, report["total"].positive) == (12, 3, 2)
    assert report["total"].reached == 4
    assert CallHourStat.objects.filter(campaign=floor.campaign, dim="total").count() == 2 + 1 + 1 + 1


@pytest.mark.django_db(transaction=True)
def test_two_reports_building_the_rollups_at_once_count_each_call_once():
    """Two managers open the first report of a campaign at the same moment: the advisory lock makes one wait,
    and the second finds nothing left to do."""
    floor = build_floor(day1=DAY1)
    results, errors = at_once(
        lambda: selectors.campaign_report(campaign=floor.campaign, period=period())["total"].dials, 2)
    assert errors == [] and results == [11, 11]
    assert CallHourStat.objects.filter(campaign=floor.campaign, dim="total").count() == 5


def test_half_hour_zones_read_the_calls(floor):
    """India is UTC+5:30: its days cut UTC hours in two, so its reports come from the calls, exactly."""
    p = period(tz="Asia/Kolkata")
    assert not rollups.whole_hours(p)
    report = selectors.campaign_report(campaign=floor.campaign, period=p)
    assert report["total"].dials == Call.objects.filter(
        campaign=floor.campaign, created_at__gte=p.start, created_at__lt=p.end).count()


def test_the_refresh_command(floor):
    out = io.StringIO()
    call_command("refresh_report_rollups", campaign=[floor.campaign.pk], stdout=out)
    assert "rolled up from the start" in out.getvalue()
    assert CallHourStat.objects.filter(campaign=floor.campaign, dim="total").aggregate(n=Sum("dials"))["n"] == 11 + 15
    call_command("refresh_report_rollups", stdout=out)
    assert "0 changed hour(s)" in out.getvalue()


def test_changing_what_a_code_counts_as_rolls_everything_up_again(floor):
    """Rollups count positive dispositions; when a manager flags "not interested" as positive, the next report
    counts it without any call having changed."""
    p = period()
    assert selectors.campaign_report(campaign=floor.campaign, period=p)["total"].positive == 1
    floor.campaign.disposition_codes.filter(code="not-interested").update(is_positive=True)
    assert selectors.campaign_report(campaign=floor.campaign, period=p)["total"].positive == 2
