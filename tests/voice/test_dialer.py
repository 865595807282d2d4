"""The dialer worker on PostgreSQL: rules at dial time, workers racing, the CPS budget, the 15 s ring."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import AgentSession, Campaign, Contact, DoNotCall
from tests import factories
from tests.live import wait_until
from voice import dialer, gate, services, wake
from voice import floor as floor_services
from voice.models import Call, DialThrottle
from voice.states import State

pytestmark = pytest.mark.django_db(transaction=True)


def parallel_floor(*, agents=1, contacts=10, lines=3, **fields):
    # These tests are about line mechanics: the cap's governor, which starts a campaign with no history at one
    # line per agent, has tests of its own (test_gate.py).
    fields.setdefault("abandon_cap_opt_out", True)
    campaign = factories.make_campaign(dial_mode=Campaign.DialMode.PARALLEL, lines_per_agent=lines, **fields)
    for _ in range(contacts):
        factories.make_contact(campaign=campaign, time_zone="America/New_York")
    sessions = [factories.make_session(campaign=campaign) for _ in range(agents)]
    return campaign, sessions


def live_calls(campaign) -> list[Call]:
    return list(Call.objects.filter(campaign=campaign).exclude(state=State.ENDED))


def test_parallel_mode_dials_n_lines_for_each_ready_agent(fake_twilio):
    campaign, [session] = parallel_floor(lines=3, window_start=dt.time(0), window_end=dt.time(23, 59))
    report = dialer.Dialer(cps=100).tick()
    assert report.placed == 3
    calls = live_calls(campaign)
    assert len(calls) == 3 and {c.dialed_for_id for c in calls} == {session.pk}
    assert len(fake_twilio.creates()) == 3
    # Lines in flight count: a second tick dials nothing more.
    assert dialer.Dialer(cps=100).tick().placed == 0


def test_one_tick_serves_every_campaign_and_rereads_only_the_one_it_dials_for(fake_twilio):
    window = {"window_start": dt.time(0), "window_end": dt.time(23, 59)}
    floors = [parallel_floor(lines=2, **window) for _ in range(3)]
    worker = dialer.Dialer(cps=100)
    wanted = worker.decide_all(timezone.now())
    assert set(wanted) == {campaign.pk for campaign, _ in floors}
    # Inside a campaign's lock the decision is taken again on that campaign's snapshot alone.
    assert set(worker.decide_all(timezone.now(), only=floors[1][0].pk)) == {floors[1][0].pk}
    assert worker.tick().placed == 6
    assert all(len(live_calls(campaign)) == 2 for campaign, _ in floors)


def test_paused_agent_and_paused_campaign_get_no_calls(fake_twilio):
    campaign, [session] = parallel_floor(window_start=dt.time(0), window_end=dt.time(23, 59))
    AgentSession.objects.filter(pk=session.pk).update(state=AgentSession.State.PAUSED)
    assert dialer.Dialer(cps=100).tick().placed == 0
    AgentSession.objects.filter(pk=session.pk).update(state=AgentSession.State.READY)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    assert dialer.Dialer(cps=100).tick().placed == 0
    assert fake_twilio.creates() == []


def test_agent_without_a_softphone_in_the_room_gets_no_calls(fake_twilio):
    campaign, [session] = parallel_floor(window_start=dt.time(0), window_end=dt.time(23, 59))
    AgentSession.objects.filter(pk=session.pk).update(in_room=False)
    assert dialer.Dialer(cps=100).tick().placed == 0


def test_dnc_attempt_caps_and_retry_delays_are_respected(fake_twilio):
    campaign, [session] = parallel_floor(contacts=0, lines=5, window_start=dt.time(0), window_end=dt.time(23, 59),
                                         max_attempts=3)
    ok = factories.make_contact(campaign=campaign, time_zone="America/New_York")
    global_dnc = factories.make_contact(campaign=campaign, time_zone="America/New_York")
    campaign_dnc = factories.make_contact(campaign=campaign, time_zone="America/New_York")
    exhausted = factories.make_contact(campaign=campaign, time_zone="America/New_York", attempts=3)
    later = factories.make_contact(campaign=campaign, time_zone="America/New_York",
                                   next_attempt_at=timezone.now() + dt.timedelta(minutes=30))
    DoNotCall.objects.create(phone=global_dnc.phone)
    DoNotCall.objects.create(phone=campaign_dnc.phone, campaign=campaign)
    dialer.Dialer(cps=100).tick()
    dialed = {c.contact_id for c in Call.objects.filter(campaign=campaign)}
    assert dialed == {ok.pk}
    assert not dialed & {global_dnc.pk, campaign_dnc.pk, exhausted.pk, later.pk}


def test_calling_window_is_in_the_contacts_local_time():
    campaign = Campaign(window_start=dt.time(9), window_end=dt.time(20), window_days=[1, 2, 3, 4, 5])
    zones = {"America/New_York", "America/Los_Angeles", "Asia/Tokyo"}
    # Tuesday 2026-11-24 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles, Wednesday 00:00 in Tokyo.
    now = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    assert gate.zones_open(zones, campaign, now) == {"America/New_York"}
    # Saturday: nobody.
    assert gate.zones_open(zones, campaign, dt.datetime(2026, 11, 28, 17, 0, tzinfo=dt.UTC)) == set()
    assert gate.zones_open({"Not/AZone", ""}, campaign, now) == set()


def test_calling_window_across_daylight_saving_changes():
    campaign = Campaign(window_start=dt.time(9), window_end=dt.time(20), window_days=[1, 2, 3, 4, 5, 6, 7])
    # New York moves to EDT on 2026-03-08: 13:30 UTC is 08:30 EST the day before, 09:30 EDT that day.
    assert gate.zones_open({"America/New_York"}, campaign, dt.datetime(2026, 3, 7, 13, 30, tzinfo=dt.UTC)) == set()
    assert gate.zones_open({"America/New_York"}, campaign,
                             dt.datetime(2026, 3, 8, 13, 30, tzinfo=dt.UTC)) == {"America/New_York"}
    # And back on 2026-11-01: 00:30 UTC is 20:30 EDT (closed), a day later 19:30 EST (open).
    assert gate.zones_open({"America/New_York"}, campaign, dt.datetime(2026, 11, 1, 0, 30, tzinfo=dt.UTC)) == set()
    assert gate.zones_open({"America/New_York"}, campaign,
                             dt.datetime(2026, 11, 2, 0, 30, tzinfo=dt.UTC)) == {"America/New_York"}


def test_two_workers_racing_never_dial_a_contact_twice(fake_twilio):
    campaign, sessions = parallel_floor(agents=6, contacts=40, lines=3, window_start=dt.time(0),
                                        window_end=dt.time(23, 59))
    barrier = threading.Barrier(2)

    def work():
        worker = dialer.Dialer(cps=1000)
        barrier.wait()
        try:
            return sum(worker.tick().placed for _ in range(5))
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        placed = sum(pool.map(lambda _: work(), range(2)))
    calls = Call.objects.filter(campaign=campaign)
    per_contact = Counter(calls.values_list("contact_id", flat=True))
    assert placed == calls.count() == 18  # 6 agents x 3 lines, whoever placed them
    assert max(per_contact.values()) == 1
    assert len(fake_twilio.creates()) == 18


def test_cps_budget_is_never_exceeded(fake_twilio):
    start = timezone.now()
    granted = []
    for step in range(40):  # 10 s in 250 ms steps, always asking for more than allowed
        now = start + dt.timedelta(milliseconds=250 * step)
        with transaction.atomic():
            granted.append((now, gate.throttle_take(wanted=5, cps=2.0, now=now)))
    total = sum(n for _, n in granted)
    elapsed_s = 10.0
    assert total <= 2.0 * elapsed_s + 1  # one second's worth banked at most
    assert total >= 2.0 * elapsed_s - 1
    for i in range(len(granted)):  # no one-second window holds more than cps + the banked token
        window = [n for t, n in granted if granted[i][0] <= t < granted[i][0] + dt.timedelta(seconds=1)]
        assert sum(window) <= 3
    assert DialThrottle.objects.count() == 1


def test_lines_are_released_only_after_the_minimum_ring(fake_twilio):
    campaign, [session] = parallel_floor(lines=2, min_ring_s=15, window_start=dt.time(0),
                                         window_end=dt.time(23, 59))
    dialer.Dialer(cps=100).tick()
    calls = live_calls(campaign)
    now = timezone.now()
    young, old = calls
    Call.objects.filter(pk=young.pk).update(state=State.RINGING, ringing_at=now - dt.timedelta(seconds=5))
    Call.objects.filter(pk=old.pk).update(state=State.RINGING, ringing_at=now - dt.timedelta(seconds=16))
    # The agent is taken by someone else: both lines are orphans now.
    AgentSession.objects.filter(pk=session.pk).update(state=AgentSession.State.ON_CALL)
    assert services.calls_release_due() == 1
    assert Call.objects.get(pk=old.pk).state == State.RELEASING
    assert Call.objects.get(pk=young.pk).state == State.RINGING
    [cancel] = fake_twilio.updates(old.sid)
    assert cancel.form == {"Status": ["canceled"]}
    Call.objects.filter(pk=young.pk).update(ringing_at=now - dt.timedelta(seconds=15))
    assert services.calls_release_due() == 1


def test_scheduled_callback_waits_for_its_agent(fake_twilio):
    campaign, [mine, other] = parallel_floor(agents=2, contacts=0, lines=1, window_start=dt.time(0),
                                             window_end=dt.time(23, 59))
    callback = factories.make_contact(campaign=campaign, time_zone="America/New_York", priority=50,
                                      callback_agent=mine.agent, next_attempt_at=timezone.now())
    AgentSession.objects.filter(pk=mine.pk).update(state=AgentSession.State.PAUSED)
    dialer.Dialer(cps=100).tick()
    assert not Call.objects.filter(contact=callback).exists()
    AgentSession.objects.filter(pk=mine.pk).update(state=AgentSession.State.READY)
    dialer.Dialer(cps=100).tick()
    call = Call.objects.get(contact=callback)
    assert call.dialed_for_id == mine.pk


def test_ending_a_campaign_hangs_up_its_live_calls_and_stops_dialing(fake_twilio, manager):

    campaign, [session] = parallel_floor(lines=2, window_start=dt.time(0), window_end=dt.time(23, 59))
    dialer.Dialer(cps=100).tick()
    floor_services.campaign_set_status(campaign=campaign, status=Campaign.Status.ENDED, by=manager)
    assert all(c.state == State.RELEASING for c in Call.objects.filter(campaign=campaign))
    assert dialer.Dialer(cps=100).tick().placed == 0
    assert Contact.objects.filter(campaign=campaign, status=Contact.Status.DIALING).count() == 2


def test_measured_dial_rate_stays_under_the_cps_setting(fake_twilio):
    campaign, sessions = parallel_floor(agents=10, contacts=60, lines=3, window_start=dt.time(0),
                                        window_end=dt.time(23, 59))
    worker = dialer.Dialer(cps=4.0)
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        worker.tick()
        time.sleep(0.05)
    stamps = sorted(request.at for request in fake_twilio.creates())
    assert len(stamps) >= 8  # it did dial, as fast as allowed
    # In any one-second window: at most the rate plus the one second's worth the bucket may bank (plus one
    # for a grant whose REST request left a moment late).
    for i, first in enumerate(stamps):
        in_window = [t for t in stamps[i:] if t - first < 1.0]
        assert len(in_window) <= 4 + 4 + 1
    # Over the whole run: never more than the one banked second plus the rate times the time spent.
    assert len(stamps) <= 4 + 4.0 * (time.monotonic() - started)


def test_pooled_predictive_lines_are_left_to_the_pacer(fake_twilio):
    campaign, [session] = parallel_floor(contacts=1, window_start=dt.time(0), window_end=dt.time(23, 59))
    contact = Contact.objects.get(campaign=campaign)
    call = Call.objects.create(campaign=campaign, contact=contact, dialed_for=None, sid="CA" + "1" * 32,
                               state=State.RINGING, ringing_at=timezone.now() - dt.timedelta(seconds=20))
    AgentSession.objects.filter(pk=session.pk).update(state=AgentSession.State.ON_CALL)
    assert services.calls_release_due() == 0
    assert Call.objects.get(pk=call.pk).state == State.RINGING


def test_an_abandoned_contact_is_called_back_even_on_its_last_attempt(fake_twilio):
    campaign, [session] = parallel_floor(contacts=0, lines=1, max_attempts=2, window_start=dt.time(0),
                                         window_end=dt.time(23, 59))
    owed = factories.make_contact(campaign=campaign, time_zone="America/New_York", attempts=2,
                                  priority=services.ABANDONED_PRIORITY_BOOST, last_outcome="abandoned",
                                  abandoned_at=timezone.now() - dt.timedelta(hours=2))
    factories.make_contact(campaign=campaign, time_zone="America/New_York", attempts=2)
    dialer.Dialer(cps=100).tick()
    assert list(Call.objects.filter(campaign=campaign).values_list("contact_id", flat=True)) == [owed.pk]


def test_a_sleeping_worker_dials_at_once_when_another_process_wakes_it(fake_twilio):
    """The worker ticks every 60 s here: only the wake-up (an in-process event, or PostgreSQL NOTIFY from
    another process) can explain a call placed within a few seconds."""
    campaign, [first, second] = parallel_floor(agents=2, lines=1, window_start=dt.time(0), window_end=dt.time(23, 59))
    AgentSession.objects.filter(campaign=campaign).update(state=AgentSession.State.PAUSED)
    wake.event.clear()
    stop = threading.Event()

    def work():
        try:
            dialer.Dialer(tick_s=60, cps=100).run(stop)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # its first tick finds nobody ready; the listener is connected by now
        assert live_calls(campaign) == []
        # Another process: a bare NOTIFY, as `wake()` sends after commit (the update itself wakes nobody).
        AgentSession.objects.filter(pk=first.pk).update(state=AgentSession.State.READY)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [wake.NOTIFY_CHANNEL])
        assert wait_until(lambda: len(live_calls(campaign)) == 1, timeout_s=5.0)
        # This process: the agent-ready service sets the worker's event after its commit.
        floor_services.agent_set_ready(session=second)
        assert wait_until(lambda: len(live_calls(campaign)) == 2, timeout_s=5.0)
        assert {c.dialed_for_id for c in live_calls(campaign)} == {first.pk, second.pk}
    finally:
        stop.set()
        wake.event.set()
        thread.join(timeout=10)
