"""The outbox on PostgreSQL: a Twilio effect survives a crash between commit and send, and between send and
its record; it is never sent twice in a way that changes the outcome; 429s are retried; the pool runs effects
off the request thread."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import AgentSession, Contact
from tests.live import at_once, threads_calling, wait_until
from tests.voice.test_webhooks import amd, answer, place, status
from voice import gateway, outbox, reconcile, services, states
from voice.models import Call, CallEffect

pytestmark = pytest.mark.django_db(transaction=True)

Status = CallEffect.Status


def later(seconds: float = 2.0) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def redirects(fake_twilio, call) -> list[str]:
    return [urlsplit(r.form["Url"][0]).path for r in fake_twilio.updates(call.sid) if "Url" in r.form]


@pytest.fixture
def crash_after_commit(monkeypatch):
    """The process dies right after each transaction commits: nothing it queued after commit ever runs; only
    the sweep (another process) runs effects."""
    monkeypatch.setattr(outbox, "submit", lambda effect_id, delay_s=0.0: None)


def test_a_redirect_lost_in_a_crash_between_commit_and_send_is_sent_once_by_the_sweep(
        floor, fake_twilio, webhook, monkeypatch):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    monkeypatch.setattr(outbox, "submit", lambda effect_id, delay_s=0.0: None)  # the crash
    amd(webhook, call, "human")
    monkeypatch.undo()
    call.refresh_from_db()
    assert call.state == states.State.BRIDGING  # the decision committed ...
    [effect] = CallEffect.objects.filter(call=call, kind=states.Effect.REDIRECT_CONFERENCE)
    assert effect.status == Status.PENDING  # ... with its effect, which never left
    assert redirects(fake_twilio, call) == []
    assert outbox.effects_sweep(now=later()) == 1  # any surviving worker
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"]
    effect.refresh_from_db()
    assert effect.status == Status.DONE and effect.attempts == 1 and effect.finished_at is not None
    assert outbox.effects_sweep(now=later()) == 0  # a second sweep finds nothing to do
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"]


def test_a_create_lost_between_commit_and_send_is_placed_by_the_sweep(floor, fake_twilio, crash_after_commit):
    campaign, session = floor
    call = place(session)
    assert call.state == states.State.CREATED and fake_twilio.creates() == []
    outbox.effects_sweep(now=later())
    outbox.effects_sweep(now=later())
    call.refresh_from_db()
    assert len(fake_twilio.creates()) == 1 and call.sid and call.state == states.State.DIALING


def routed_human(floor, webhook) -> tuple[Call, CallEffect]:
    """A call placed, answered by a person and routed: its redirect into the agent's room is queued."""
    _, session = floor
    call = place(session)
    outbox.effects_sweep(now=later())
    call.refresh_from_db()
    answer(webhook, call)
    amd(webhook, call, "human")
    return call, CallEffect.objects.get(call=call, kind=states.Effect.REDIRECT_CONFERENCE)


def test_a_sender_that_died_mid_request_is_taken_over_and_the_redirect_is_idempotent(floor, fake_twilio, webhook,
                                                                                      crash_after_commit):
    call, effect = routed_human(floor, webhook)
    # Claimed by a process that then died (its advisory lock went with its connection).
    CallEffect.objects.filter(pk=effect.pk).update(status=Status.SENDING, started_at=timezone.now(), attempts=1)
    outbox.effects_sweep(now=later())
    effect.refresh_from_db()
    assert effect.status == Status.DONE and effect.attempts == 2
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"]


@pytest.mark.parametrize("status", [Status.SENDING, Status.PENDING])  # a redirect is sent unclaimed (PENDING)
def test_a_live_sender_is_left_alone(floor, fake_twilio, webhook, crash_after_commit, status):
    call, effect = routed_human(floor, webhook)
    CallEffect.objects.filter(pk=effect.pk).update(status=status, started_at=timezone.now(), attempts=1)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:  # another process, busy sending it right now
        other.execute("SELECT pg_advisory_lock(%s, %s)", [outbox.LOCK_CLASS, effect.pk])
        assert outbox.effects_sweep(now=later()) == 0
        assert redirects(fake_twilio, call) == []
    effect.refresh_from_db()
    assert effect.status == status


def test_executors_racing_for_one_redirect_send_it_once(floor, fake_twilio, webhook, crash_after_commit):
    """Its committing process and every worker's sweep may all reach for it at the same moment."""
    call, effect = routed_human(floor, webhook)
    results, errors = at_once(lambda: outbox.effect_run(effect_id=effect.pk), 8)
    assert errors == [] and Counter(results) == {Status.DONE: 1, None: 7}
    assert redirects(fake_twilio, call) == ["/api/voice/customer-join-conference"]
    effect.refresh_from_db()
    assert effect.status == Status.DONE and effect.attempts == 1


def test_a_create_whose_sender_died_is_never_sent_again_but_looked_up(floor, fake_twilio, crash_after_commit):
    campaign, session = floor
    call = place(session)
    effect = CallEffect.objects.get(call=call, kind=outbox.CREATE)
    CallEffect.objects.filter(pk=effect.pk).update(status=Status.SENDING, started_at=timezone.now(), attempts=1)
    outbox.effects_sweep(now=later())
    effect.refresh_from_db()
    assert effect.status == Status.AMBIGUOUS and fake_twilio.creates() == []
    call.refresh_from_db()
    assert call.state == states.State.CREATED  # the contact stays locked until the reconciler knows
    assert Contact.objects.get(pk=call.contact_id).status == Contact.Status.DIALING
    reconcile.call_reconcile(call=call)
    call.refresh_from_db()
    assert call.state == states.State.ENDED and call.outcome == "failed"  # Twilio has no such call: never placed
    assert "never placed" in call.error


def test_a_stale_effect_is_skipped_not_sent(floor, fake_twilio, webhook, crash_after_commit):
    """Out of order: the person hung up before the redirect ran. The late redirect must not be sent."""
    campaign, session = floor
    call = place(session)
    outbox.effects_sweep(now=later())
    call.refresh_from_db()
    answer(webhook, call)
    amd(webhook, call, "human")
    status(webhook, call, "completed", 9)
    outbox.effects_sweep(now=later())
    effect = CallEffect.objects.get(call=call, kind=states.Effect.REDIRECT_CONFERENCE)
    assert effect.status == Status.SKIPPED and redirects(fake_twilio, call) == []


def test_a_rate_limited_hangup_is_retried_with_backoff_and_its_outcome_kept(floor, fake_twilio, webhook):
    campaign, session = floor
    call = place(session)
    answer(webhook, call)
    fake_twilio.too_many_updates = 5  # more than the gateway's own quick retries
    amd(webhook, call, "machine_start")
    effect = CallEffect.objects.get(call=call, kind=states.Effect.HANGUP)
    assert effect.status == Status.PENDING and effect.attempts == 1 and "429" in effect.result
    assert effect.not_before > timezone.now()
    assert outbox.effects_sweep() == 0  # not before its backoff
    CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now() - dt.timedelta(seconds=1))
    outbox.effects_sweep()
    effect.refresh_from_db()
    assert effect.status == Status.DONE and effect.attempts == 2
    assert fake_twilio.statuses[call.sid] == "completed"


def test_effects_run_off_the_committing_thread(floor, fake_twilio, webhook, settings, monkeypatch):
    settings.OUTBOX_INLINE = False
    campaign, session = floor
    seen = threads_calling(monkeypatch, gateway, "redirect_call")
    call = place(session)
    assert wait_until(lambda: Call.objects.get(pk=call.pk).sid)
    call.refresh_from_db()
    answer(webhook, call)
    amd(webhook, call, "human")
    assert wait_until(lambda: redirects(fake_twilio, call))
    assert seen and all(name.startswith("outbox") for name in seen)
    assert wait_until(lambda: CallEffect.objects.filter(call=call, status=Status.DONE).count() == 2)
    assert AgentSession.objects.get(pk=session.pk).state == AgentSession.State.ON_CALL


def test_every_kind_sent_elsewhere_has_its_sender_in_every_process():
    """voice.apps registers them when Django starts (web processes, dialer workers, commands alike)."""
    assert set(outbox.SENT_ELSEWHERE) <= set(outbox._senders)


def broken(call):
    raise RuntimeError("a bug")


def test_an_effect_that_breaks_unexpectedly_is_tried_again_later_and_given_up_on(floor, fake_twilio, webhook,
                                                                                 crash_after_commit, monkeypatch,
                                                                                 settings):
    """Not only Twilio's errors: a bug in a sender must not make the sweep send the effect again on every tick,
    unseen (it stays pending and counts nothing), nor lose it."""
    settings.OUTBOX_MAX_ATTEMPTS = 2
    campaign, session = floor
    call = place(session)
    outbox.effects_sweep(now=later())  # placed
    call.refresh_from_db()
    answer(webhook, call)
    amd(webhook, call, "machine_start")  # hung up (no voicemail drop on this campaign)
    effect = CallEffect.objects.get(call=call, kind=states.Effect.HANGUP)
    monkeypatch.setitem(outbox.ACTIONS, states.Effect.HANGUP, broken)
    assert outbox.effect_run(effect_id=effect.pk) == Status.PENDING
    effect.refresh_from_db()
    assert (effect.status, effect.attempts) == (Status.PENDING, 1) and "a bug" in effect.result
    assert outbox.effects_sweep() == 0  # not before its backoff
    CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now())
    assert outbox.effect_run(effect_id=effect.pk) == Status.FAILED
    effect.refresh_from_db()
    assert effect.attempts == 2 and "gave up after 2 attempts" in effect.result


def test_a_humans_redirect_that_breaks_unexpectedly_gives_them_the_safe_harbor_message_at_once(
        floor, fake_twilio, webhook, crash_after_commit, monkeypatch):
    """Rule 3: a person on hold music is not kept there while a broken redirect is retried."""
    call, effect = routed_human(floor, webhook)
    monkeypatch.setitem(outbox.ACTIONS, states.Effect.REDIRECT_CONFERENCE, broken)
    assert outbox.effect_run(effect_id=effect.pk) == Status.FAILED
    call.refresh_from_db()
    assert (call.state, call.outcome) == (states.State.RELEASING, "abandoned") and "a bug" in call.error
    assert CallEffect.objects.filter(call=call, kind=states.Effect.REDIRECT_SAFE_HARBOR).exists()


def test_a_kind_this_process_cannot_send_is_left_for_one_that_can(floor, fake_twilio, webhook, crash_after_commit):
    """A newer release's effect reaching an older process during a deploy: kept, not settled, not counted."""
    call, effect = routed_human(floor, webhook)
    CallEffect.objects.filter(pk=effect.pk).update(kind="from_the_future")
    for _ in range(3):
        assert outbox.effect_run(effect_id=effect.pk) in (Status.PENDING, None)
        CallEffect.objects.filter(pk=effect.pk).update(not_before=timezone.now())
    effect.refresh_from_db()
    assert (effect.status, effect.attempts) == (Status.PENDING, 0) and "nothing in this process sends" in effect.result


def test_a_redirect_whose_answer_was_lost_after_it_arrived_leaves_the_talk_alone(floor, fake_twilio, webhook,
                                                                                crash_after_commit, monkeypatch):
    """Twilio carried the redirect out, the person joined the agent's room, and only then did our request give up:
    they are talking, not abandoned."""
    call, effect = routed_human(floor, webhook)

    def arrived_but_no_answer(call):
        services.call_on_conference_event(call=call, joined=True)
        raise gateway.Ambiguous("Twilio unreachable: read timed out", retryable=True)

    monkeypatch.setitem(outbox.ACTIONS, states.Effect.REDIRECT_CONFERENCE, arrived_but_no_answer)
    assert outbox.effect_run(effect_id=effect.pk) == Status.FAILED
    call.refresh_from_db()
    assert (call.state, call.outcome) == (states.State.CONNECTED, "")
    assert not CallEffect.objects.filter(call=call, kind__in=[states.Effect.HANGUP,
                                                              states.Effect.REDIRECT_SAFE_HARBOR]).exists()
