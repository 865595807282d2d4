"""Races on PostgreSQL with real threads: concurrent, duplicated and reordered webhooks.

Each thread has its own database connection and posts signed webhooks through the real views, the
way several daphne processes would receive them from Twilio.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from campaigns.models import AgentSession
from tests import factories
from tests.conftest import post_webhook
from tests.live import hold_agent_rows, wait_until
from voice import inbox, services
from voice.models import Call, WebhookEvent
from voice.states import State

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "AC" + "0" * 32


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


def make_call(campaign, session, *, state=State.DIALING, fetched=False) -> Call:
    contact = factories.make_contact(campaign=campaign)
    return Call.objects.create(campaign=campaign, contact=contact, dialed_for=session, sid=new_sid(), state=state,
                               twiml_fetched=fetched)


def deliver(requests: list[tuple[str, dict, dict]], *, workers: int) -> list[int]:
    """POST the webhooks from `workers` threads at once; returns the HTTP status codes."""
    barrier = threading.Barrier(workers)
    chunks = [requests[i::workers] for i in range(workers)]

    def run(chunk):
        client = Client()
        barrier.wait()
        codes = []
        try:
            for name, params, query in chunk:
                codes.append(post_webhook(client, name, params, query=query).status_code)
        finally:
            connection.close()
        return codes

    with ThreadPoolExecutor(workers) as pool:
        return [code for codes in pool.map(run, chunks) for code in codes]


def amd_request(call: Call, verdict: str = "human"):
    return ("amd-status", {"CallSid": call.sid, "AccountSid": ACCOUNT, "AnsweredBy": verdict,
                           "MachineDetectionDuration": "2100"}, {"call": call.pk})


def status_request(call: Call, status: str, seq: int, **extra):
    params = {"CallSid": call.sid, "AccountSid": ACCOUNT, "CallStatus": status, "SequenceNumber": str(seq),
              "From": "+12025550199", "To": call.contact.phone, "Direction": "outbound-api",
              "ApiVersion": "2010-04-01", **extra}
    return ("status", params, {"call": call.pk})


@pytest.mark.parametrize("other_agent_ready", [True, False])
def test_two_humans_at_once_for_one_agent_never_both_reach_them(fake_twilio, other_agent_ready):
    campaign = factories.make_campaign(max_hold_s=1.0)
    agent = factories.make_session(campaign=campaign)
    other = factories.make_session(campaign=campaign, state=AgentSession.State.READY if other_agent_ready
                                   else AgentSession.State.PAUSED)
    for _round in range(15):
        first = make_call(campaign, agent, state=State.ANSWERED, fetched=True)
        second = make_call(campaign, agent, state=State.ANSWERED, fetched=True)
        codes = deliver([amd_request(first), amd_request(second)], workers=2)
        assert codes == [204, 204]
        first.refresh_from_db()
        second.refresh_from_db()
        bridged = [c for c in (first, second) if c.state == State.BRIDGING]
        to_agent = [c for c in bridged if c.bridged_to_id == agent.pk]
        assert len(to_agent) == 1, "exactly one human reaches the agent the lines were dialed for"
        loser = second if to_agent[0] == first else first
        if other_agent_ready:
            assert loser.state == State.BRIDGING and loser.bridged_to_id == other.pk
        else:
            assert loser.bridged_to_id is None
            loser_id = loser.pk
            assert wait_until(lambda call_id=loser_id: Call.objects.get(pk=call_id).outcome == "abandoned",
                              timeout_s=4.0)
        # Reset the floor for the next round: both talks end, both agents ready again.
        for call in (first, second):
            services.call_on_status(call_id=call.pk, status="completed", sequence=9, duration_s=1)
        AgentSession.objects.filter(pk__in=[agent.pk, other.pk]).update(
            state=AgentSession.State.READY if other_agent_ready else AgentSession.State.PAUSED)
        AgentSession.objects.filter(pk=agent.pk).update(state=AgentSession.State.READY)
    # The database never held an agent with two customers (the constraint would have refused it).
    doubled = (Call.objects.filter(state__in=["bridging", "connected"]).values("bridged_to")
               .annotate(n=Count("pk")).filter(n__gt=1))
    assert not doubled.exists()


def test_duplicate_callbacks_delivered_concurrently_have_one_effect(fake_twilio):
    campaign = factories.make_campaign()
    agent = factories.make_session(campaign=campaign)
    call = make_call(campaign, agent, state=State.ANSWERED, fetched=True)
    codes = deliver([amd_request(call)] * 8, workers=8)
    assert codes == [204] * 8
    call.refresh_from_db()
    assert call.state == State.BRIDGING and call.version == 1
    assert wait_until(lambda: len(fake_twilio.updates(call.sid)) >= 1, timeout_s=4.0)
    assert len(fake_twilio.updates(call.sid)) == 1, "one redirect, not eight"
    statuses = Counter(WebhookEvent.objects.filter(call_sid=call.sid).values_list("status", flat=True))
    assert statuses == {"processed": 1, "duplicate": 7}


def test_duplicates_of_a_talks_end_racing_while_its_agent_is_held_apply_it_once(fake_twilio, monkeypatch):
    """The end of a talk frees its agent, whose row someone else holds (a heartbeat, a disposition): each
    delivery's first attempt finds it taken, rolls its whole webhook back (raw row included) and runs it again.
    Four copies of the callback at once, from four processes: one fact, one raw row processed, the rest
    duplicates, and the agent in wrap-up."""
    campaign = factories.make_campaign()
    agent = factories.make_session(campaign=campaign)
    call = make_call(campaign, agent, state=State.ANSWERED, fetched=True)
    deliver([amd_request(call)], workers=1)
    services.call_on_conference_event(call=Call.objects.get(pk=call.pk), joined=True)
    assert Call.objects.get(pk=call.pk).state == State.CONNECTED
    facts = call.events.count()
    reruns = []
    receive = inbox._receive

    def watched(row, voice, *, inline):
        reruns.append(not inline)
        return receive(row, voice, inline=inline)

    monkeypatch.setattr(inbox, "_receive", watched)
    release = threading.Event()
    holder = hold_agent_rows([agent.pk], release, hold_s=10)
    threading.Timer(0.5, release.set).start()
    codes = deliver([status_request(call, "completed", 5, CallDuration="30")] * 4, workers=4)
    holder.join(10)
    assert codes == [204] * 4
    assert any(reruns)  # the held agent did send a first attempt back to run again
    call.refresh_from_db()
    assert (call.state, call.outcome, call.duration_s) == (State.ENDED, "talked", 30)
    assert call.events.count() == facts + 1
    statuses = Counter(WebhookEvent.objects.filter(call_sid=call.sid, kind="status").values_list("status", flat=True))
    assert statuses == {"processed": 1, "duplicate": 3}
    assert AgentSession.objects.get(pk=agent.pk).state == AgentSession.State.WRAP_UP


# -- shuffled replay ----------------------------------------------------------------------------------

SCENARIOS = ("talked", "machine", "fax", "no_answer", "busy", "failed", "hung_up_on_hold", "voicemail_missed")


def scenario_events(call: Call, scenario: str) -> list[list[tuple[str, dict, dict]]]:
    """Twilio's callbacks for one call, in phases. Within a phase Twilio may deliver them in any order;
    a later phase is caused by what we did in an earlier one (a conference join follows our redirect,
    a talk's end follows the join), so it cannot arrive first."""
    seq = iter(range(10))
    ring = [status_request(call, "initiated", next(seq)), status_request(call, "ringing", next(seq))]
    if scenario in ("no_answer", "busy", "failed"):
        final = {"no_answer": "no-answer", "busy": "busy", "failed": "failed"}[scenario]
        return [[*ring, status_request(call, final, next(seq))]]
    answered = [*ring, status_request(call, "in-progress", next(seq)),
                ("customer-queue", {"CallSid": call.sid, "AccountSid": ACCOUNT, "CallStatus": "in-progress"},
                 {"call": call.pk})]
    if scenario in ("machine", "fax", "voicemail_missed"):
        verdict = {"machine": "machine_start", "fax": "fax", "voicemail_missed": "machine_end_beep"}[scenario]
        return [[*answered, amd_request(call, verdict), status_request(call, "completed", next(seq),
                                                                        CallDuration="9")]]
    if scenario == "hung_up_on_hold":
        return [[*answered, amd_request(call, "human"), status_request(call, "completed", next(seq))]]
    join = ("conference-events", {"ConferenceSid": "CF" + call.sid[2:], "FriendlyName": "room",
                                  "StatusCallbackEvent": "participant-join", "CallSid": call.sid,
                                  "SequenceNumber": "1", "AccountSid": ACCOUNT}, {"session": call.dialed_for_id})
    return [[*answered, amd_request(call, "human")], [join],
            [status_request(call, "completed", next(seq), CallDuration="120")]]


def build_floor(n_calls: int):
    campaign = factories.make_campaign(voicemail_drop=False)
    humans = sum(1 for i in range(n_calls) if SCENARIOS[i % len(SCENARIOS)] in ("talked", "hung_up_on_hold"))
    # One agent per human: routing can never run out, so the final state does not depend on timing.
    sessions = [factories.make_session(campaign=campaign) for _ in range(humans)]
    calls = [make_call(campaign, sessions[i % len(sessions)]) for i in range(n_calls)]
    return campaign, calls


def final_states(calls: list[Call]) -> list[tuple]:
    """What a user sees of each call. (Whether a human who hung up on hold had been handed to an agent for
    a moment depends on timing; the outcome does not.)"""
    rows = {c.pk: c for c in Call.objects.filter(pk__in=[c.pk for c in calls])}
    return [(rows[c.pk].state, rows[c.pk].outcome, rows[c.pk].answered_by) for c in calls]


def test_shuffled_duplicated_concurrent_replay_ends_like_in_order_replay(fake_twilio):
    rng = random.Random(20261123)
    n_calls = 200
    _, ordered_calls = build_floor(n_calls)
    _, shuffled_calls = build_floor(n_calls)
    ordered_phases = [[] for _ in range(3)]
    shuffled_phases = [[] for _ in range(3)]
    for i in range(n_calls):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        for phase, events in enumerate(scenario_events(ordered_calls[i], scenario)):
            ordered_phases[phase].extend(events)
        for phase, events in enumerate(scenario_events(shuffled_calls[i], scenario)):
            shuffled_phases[phase].extend(events)

    for phase in ordered_phases:  # strict in-order, one at a time
        deliver(phase, workers=1)
    codes = []
    for phase in shuffled_phases:
        dupes = [rng.choice(phase) for _ in range(len(phase) // 5)]  # 20 % duplicates
        batch = phase + dupes
        rng.shuffle(batch)
        codes += deliver(batch, workers=16)

    assert set(codes) <= {200, 204}, Counter(codes)
    expected = final_states(ordered_calls)
    actual = final_states(shuffled_calls)
    wrong = [(i, SCENARIOS[i % len(SCENARIOS)], e, a) for i, (e, a) in enumerate(zip(expected, actual, strict=True))
             if e != a]
    assert wrong == [], f"{len(wrong)} calls ended differently, e.g. {wrong[:3]}"
    outcomes = Counter(state[1] for state in actual)
    assert outcomes["talked"] == n_calls // len(SCENARIOS)
    talked = Call.objects.filter(pk__in=[c.pk for c in shuffled_calls], outcome="talked")
    assert not talked.filter(bridged_to__isnull=True).exists()
    assert all(state[0] == State.ENDED for state in actual)
    assert not AgentSession.objects.filter(state=AgentSession.State.ON_CALL).exists()


# -- routing a human: the first attempt locks a few agents, never waits on one somebody else holds --------------


def _answered_pooled_call(campaign) -> Call:
    """A predictive line dialed for nobody in particular, answered and waiting for its AMD verdict."""
    contact = factories.make_contact(campaign=campaign)
    return Call.objects.create(campaign=campaign, contact=contact, sid=new_sid(), state=State.ANSWERED,
                               twiml_fetched=True)


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                       " AND datname = current_database()")
        return cursor.fetchone()[0] > 0


def _verdict_human(call: Call) -> int:
    params = {"CallSid": call.sid, "AccountSid": ACCOUNT, "AnsweredBy": "human", "MachineDetectionDuration": "2100"}
    try:
        return post_webhook(Client(), "amd-status", params, query={"call": call.pk}).status_code
    finally:
        connection.close()


@pytest.fixture
def two_ready_agents(fake_twilio):
    """A predictive floor with two agents ready (one longer than the other) and a pooled line answered."""
    campaign = factories.make_campaign(min_ring_s=0, dial_mode="predictive")
    now = timezone.now()
    longest = factories.make_session(campaign=campaign, state_changed_at=now - dt.timedelta(seconds=30))
    following = factories.make_session(campaign=campaign, state_changed_at=now - dt.timedelta(seconds=20))
    return longest, following, _answered_pooled_call(campaign)


def test_a_human_goes_to_the_next_ready_agent_when_the_longest_ready_is_held(two_ready_agents):
    longest, following, call = two_ready_agents
    release = threading.Event()
    holder = hold_agent_rows([longest.pk], release)
    try:
        # Were the verdict to wait for the held row, it would get `longest` when the holder gives up (10 s).
        assert _verdict_human(call) == 204
        call.refresh_from_db()
        assert (call.state, call.bridged_to_id) == (State.BRIDGING, following.pk)
    finally:
        release.set()
        holder.join()


def test_with_every_ready_agent_held_a_human_waits_for_one_instead_of_holding_on(two_ready_agents):
    """Nobody free at this instant is not nobody ready: the verdict then takes the ordered path, which waits
    for the agents' locks, and the person still reaches the agent ready longest."""
    longest, following, call = two_ready_agents
    release = threading.Event()
    holder = hold_agent_rows([longest.pk, following.pk], release)
    with ThreadPoolExecutor(1) as pool:
        verdict = pool.submit(_verdict_human, call)
        assert wait_until(_someone_waits_for_a_lock, timeout_s=5), "the verdict waits for the agents' locks"
        assert not verdict.done()
        release.set()
        holder.join()
        assert verdict.result(timeout=10) == 204
    call.refresh_from_db()
    assert (call.state, call.bridged_to_id) == (State.BRIDGING, longest.pk)
