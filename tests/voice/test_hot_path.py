"""The webhook hot path: what each callback costs the database, and that one transaction keeps rule 7.

Every Twilio callback is stored raw, applied and marked in ONE transaction (one commit), with no redundant
reads or writes. The budgets below are today's counts (statements seen by the connection, BEGIN/SAVEPOINT/COMMIT
included, after-commit work such as the dialer wake-up too), so a change that adds a query to the path every call
takes fails here first; lower them when you cut one. benchmarks/webhook_load.py measures what they cost.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from campaigns.models import AgentSession
from tests import factories
from tests.live import hold_agent_rows
from tests.voice.test_webhooks import amd, answer, params_for, place, status
from voice import compiled, inbox, services
from voice.models import Call, CallEvent, WebhookEvent
from voice.states import State

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def floor(fake_twilio):
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent], lines_per_agent=1, min_ring_s=0)
    factories.make_contact(campaign=campaign)
    session = factories.make_session(campaign=campaign, agent=agent)
    return campaign, session


def placed(session) -> Call:
    call = place(session)
    assert call.contact.phone  # the test's own read of the contact, before anything is counted
    return call


def commits(captured) -> int:
    return sum(1 for query in captured.captured_queries if query["sql"] == "COMMIT")


def answered_call(webhook, session) -> Call:
    call = placed(session)
    status(webhook, call, "initiated", 0)
    status(webhook, call, "ringing", 1)
    answer(webhook, call)
    call = Call.objects.select_related("contact").get(pk=call.pk)
    assert call.state == State.ANSWERED
    return call


def test_a_status_callback_is_one_commit_and_six_statements(floor, webhook, django_assert_max_num_queries):
    _, session = floor
    call = placed(session)
    with django_assert_max_num_queries(6) as captured:
        response = status(webhook, call, "ringing", 1)
    assert response.status_code == 204
    assert commits(captured) == 1
    call.refresh_from_db()
    assert call.state == State.RINGING
    assert WebhookEvent.objects.get(call_sid=call.sid, kind="status").status == WebhookEvent.Processing.PROCESSED


def test_the_voice_fetch_is_one_commit_and_six_statements(floor, webhook, django_assert_max_num_queries):
    _, session = floor
    call = placed(session)
    status(webhook, call, "ringing", 1)
    with django_assert_max_num_queries(6) as captured:
        response = answer(webhook, call)
    assert b"<Play" in response.content  # the hold audio
    assert commits(captured) == 1
    call.refresh_from_db()
    assert (call.state, call.twiml_fetched) == (State.ANSWERED, True)


def test_a_human_verdict_is_one_commit_and_routes_with_eighteen_statements(floor, webhook, fake_twilio,
                                                                             django_assert_max_num_queries):
    """13 in the transaction (the outbox row and the agent's state-change row included), then, because the test
    settings run the outbox inline (OUTBOX_INLINE), the redirect's own 4 (lock, read, outcome, unlock: two before
    it leaves), and the read of the sibling lines."""
    _, session = floor
    call = answered_call(webhook, session)
    with django_assert_max_num_queries(18) as captured:
        response = amd(webhook, call, "human")
    assert response.status_code == 204
    assert commits(captured) == 1
    call.refresh_from_db()
    assert (call.state, call.bridged_to_id, call.amd_duration_ms) == (State.BRIDGING, session.pk, 2300)
    [redirect] = fake_twilio.updates(call.sid)
    assert "customer-join-conference" in redirect.form["Url"][0]


def test_a_machine_verdict_is_one_commit(floor, webhook, fake_twilio, django_assert_max_num_queries):
    _, session = floor
    call = answered_call(webhook, session)
    with django_assert_max_num_queries(11) as captured:  # 7 in the transaction, 4 for the inline outbox hang-up
        amd(webhook, call, "machine_end_beep")
    assert commits(captured) == 1
    call.refresh_from_db()
    assert call.bridged_to_id is None
    assert fake_twilio.updates(call.sid)  # hung up (no voicemail drop on this campaign)


def test_the_redirected_leg_fetching_its_room_is_one_read_and_four_statements(floor, webhook,
                                                                             django_assert_max_num_queries):
    _, session = floor
    call = answered_call(webhook, session)
    amd(webhook, call, "human")
    with django_assert_max_num_queries(4) as captured:
        response = webhook("customer-join-conference", params_for(call, CallStatus="in-progress"),
                           query={"call": call.pk})
    assert session.conference_room.encode() in response.content
    assert commits(captured) == 1


def test_the_end_of_a_talk_is_one_commit_and_one_wake_up(floor, webhook, django_assert_max_num_queries):
    _, session = floor
    call = answered_call(webhook, session)
    amd(webhook, call, "human")
    webhook("conference-events", {**params_for(call), "ConferenceSid": "CF1", "SequenceNumber": "1",
                                  "StatusCallbackEvent": "participant-join"}, query={"call": call.pk})
    with django_assert_max_num_queries(12) as captured:
        status(webhook, call, "completed", 3, CallDuration="42")
    assert commits(captured) == 1
    assert sum("pg_notify" in query["sql"] for query in captured.captured_queries) == 1
    call.refresh_from_db()
    session.refresh_from_db()
    assert (call.state, call.outcome, call.duration_s) == (State.ENDED, "talked", 42)
    assert session.state == AgentSession.State.WRAP_UP


def test_a_failure_while_applying_keeps_the_raw_row_and_applies_nothing(floor, webhook, monkeypatch):
    """One transaction: a crash half-way leaves no half-applied fact, and the raw row is still kept (rule 7)."""
    _, session = floor
    call = place(session)

    write = compiled.insert

    def crash(row, **kwargs):
        if isinstance(row, CallEvent):  # the call's event is written after the call row was updated
            raise RuntimeError("disk on fire")
        write(row, **kwargs)

    monkeypatch.setattr(compiled, "insert", crash)
    response = status(webhook, call, "ringing", 1)
    assert response.status_code == 204
    call.refresh_from_db()
    assert call.state == State.DIALING  # the UPDATE before the crash was rolled back with it
    event = WebhookEvent.objects.get(call_sid=call.sid, kind="status")
    assert event.status == WebhookEvent.Processing.FAILED
    assert "disk on fire" in event.error
    monkeypatch.undo()
    assert inbox.webhook_replay(event=event) == WebhookEvent.Processing.PROCESSED
    call.refresh_from_db()
    assert call.state == State.RINGING


def test_a_crashing_voice_fetch_still_answers_twiml_and_keeps_the_row(floor, webhook, monkeypatch):
    _, session = floor
    call = place(session)
    monkeypatch.setattr(services, "call_on_voice_fetch", lambda **kwargs: 1 / 0)
    response = answer(webhook, call)
    assert response.status_code == 200
    assert b"<Hangup" in response.content
    assert WebhookEvent.objects.get(call_sid=call.sid, kind="voice").status == WebhookEvent.Processing.FAILED


def test_a_status_callback_waits_for_an_agent_session_someone_else_holds(floor, webhook):
    """The fast lock path takes the agent's session with SKIP LOCKED after the call: when another transaction
    holds the session it must fall back to the ordered path and wait, never skip the agent or deadlock. That first
    attempt ran in the webhook's own transaction (no savepoint), so the whole webhook is rolled back and run again:
    one raw row and one applied fact remain, committed once."""
    _, session = floor
    call = answered_call(webhook, session)
    amd(webhook, call, "human")
    facts_before = CallEvent.objects.filter(call=call).count()
    release = threading.Event()
    holder = hold_agent_rows([session.pk], release, hold_s=5)
    threading.Timer(0.5, release.set).start()
    with CaptureQueriesContext(connection) as captured:
        response = status(webhook, call, "completed", 3, CallDuration="5")
    holder.join(5)
    assert response.status_code == 204
    statements = [query["sql"] for query in captured.captured_queries]
    assert statements.count("ROLLBACK") == 1 and statements.count("COMMIT") == 1  # run twice, committed once
    call.refresh_from_db()
    session.refresh_from_db()
    assert call.state == State.ENDED
    # The agent's session was changed under its lock: the talk's end freed them from the call.
    assert session.state != AgentSession.State.ON_CALL
    [row] = WebhookEvent.objects.filter(call_sid=call.sid, kind="status", params__CallStatus="completed")
    assert row.status == WebhookEvent.Processing.PROCESSED
    assert CallEvent.objects.filter(call=call).count() == facts_before + 1
    assert CallEvent.objects.filter(call=call).latest("pk").webhook_id == row.pk


def test_first_attempts_run_inline_in_the_webhooks_transaction_only(floor, webhook, monkeypatch):
    """Inside the webhook's transaction a fact's first attempt needs no savepoint (a Restart reruns the webhook);
    in its on-commit callbacks nobody could run it again, so there it must not be inline."""
    _, session = floor
    call = placed(session)
    seen = {}
    handler = inbox.HANDLERS["status"]

    def watched(event):
        seen["in the transaction"] = services._inline(0, False)
        transaction.on_commit(lambda: seen.setdefault("after commit", services._inline(0, False)))
        return handler(event)

    monkeypatch.setitem(inbox.HANDLERS, "status", watched)
    assert status(webhook, call, "ringing", 1).status_code == 204
    assert seen == {"in the transaction": True, "after commit": False}
