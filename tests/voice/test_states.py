"""The pure call state machine over every (state, fact) pair. No database."""

import itertools

import pytest

from voice import states
from voice.states import (
    AgentFound,
    AmdVerdict,
    CallView,
    Created,
    CreateFailed,
    Effect,
    Hangup,
    HoldExpired,
    JoinedConference,
    LeftConference,
    Outcome,
    RedirectFailed,
    Release,
    State,
    Status,
    Twiml,
    TwimlFetched,
    transition,
    twiml_for,
)

FACTS = [
    Created(),
    CreateFailed(invalid_number=True),
    CreateFailed(invalid_number=False),
    *[Status(status=s, sequence=5) for s in sorted(states.CALL_STATUSES)],
    *[Status(status=s, sequence=None) for s in sorted(states.TERMINAL_STATUSES)],
    Status(status="ringing", sequence=0),
    Status(status="bogus", sequence=9),
    TwimlFetched(),
    *[AmdVerdict(answered_by=v, agent=a) for v in sorted(states.ANSWERED_BY_VALUES) for a in (None, 7)],
    AmdVerdict(answered_by="machine"),  # the seed's value: Twilio never sends it
    AgentFound(agent=7),
    HoldExpired(),
    JoinedConference(),
    LeftConference(),
    RedirectFailed(already_ended=True),
    RedirectFailed(already_ended=False),
    RedirectFailed(already_ended=False, into_room=True),
    Release(),
    Hangup(),
    Hangup(outcome=Outcome.MACHINE),
]

VIEWS = [
    CallView(state=state, outcome=outcome, answered_by=answered_by, last_sequence=2, twiml_fetched=fetched,
             has_agent=state in states.AGENT_HOLDING_STATES, voicemail_drop=drop, amd_mode=mode,
             unknown_policy=policy)
    for state in State
    for outcome, answered_by in (
        (Outcome.NONE, ""), (Outcome.NONE, "human"), (Outcome.CANCELED, ""), (Outcome.ABANDONED, "human"),
        (Outcome.MACHINE, "machine_start"),
    )
    for fetched in (False, True)
    for drop, mode in ((False, "Enable"), (True, "DetectMessageEnd"))
    for policy in ("connect", "machine")
    if not (state is not State.RELEASING and state is not State.ENDED and outcome is not Outcome.NONE)
]

PAIRS = list(itertools.product(VIEWS, FACTS))


def test_every_pair_is_covered():
    covered_states = {view.state for view in VIEWS}
    covered_facts = {type(fact) for fact in FACTS}
    assert covered_states == set(State)
    assert covered_facts == set(states.Fact.__args__)


@pytest.mark.parametrize(("view", "fact"), PAIRS)
def test_invariants_hold_for_every_pair(view, fact):
    result = transition(view, fact)
    # Nothing happens without a change, and effects only come with one.
    if not result.changed:
        assert result.effects == ()
        assert result.state is view.state
    # Rule 5: terminal is final and silent.
    if view.state is State.ENDED:
        assert result.state is State.ENDED
        assert result.effects == ()
    # Progress never goes backwards, except a cancel that lost the race to the answer.
    lost_cancel = view.state is State.RELEASING and view.outcome is Outcome.CANCELED
    if result.changed and not lost_cancel:
        assert states.RANK[result.state] >= states.RANK[view.state]
    # Rule 2: machines never reach an agent.
    if isinstance(fact, AmdVerdict) and states.is_machine(fact.answered_by, view.unknown_policy):
        assert Effect.ASSIGN_AGENT not in result.effects
        assert Effect.REDIRECT_CONFERENCE not in result.effects
        assert not (result.changed and result.state is State.BRIDGING)
    # An agent is assigned exactly when the call starts bridging, and to the agent in the fact.
    assert (Effect.ASSIGN_AGENT in result.effects) == (result.changed and result.state is State.BRIDGING)
    if Effect.ASSIGN_AGENT in result.effects:
        assert result.agent == 7
    # A REST redirect only for a leg that already runs our TwiML; otherwise the fetch answers.
    redirects = {Effect.REDIRECT_CONFERENCE, Effect.REDIRECT_VOICEMAIL, Effect.REDIRECT_SAFE_HARBOR}
    if redirects & set(result.effects):
        assert view.twiml_fetched
    # Ending always books the contact.
    if result.changed and result.state is State.ENDED:
        assert Effect.CONTACT_FINISH in result.effects
        assert result.outcome is not Outcome.NONE
    # Stale sequence numbers change nothing.
    if isinstance(fact, Status) and fact.sequence is not None and fact.sequence <= view.last_sequence:
        assert not result.changed


def view(state=State.RINGING, **kw):
    kw.setdefault("twiml_fetched", state not in states.UNANSWERED_STATES)
    return CallView(state=state, **kw)


@pytest.mark.parametrize("verdict", sorted(states.MACHINE_VERDICTS | {"fax"}))
def test_every_machine_value_is_hung_up_or_left_a_message(verdict):
    result = transition(view(State.ANSWERED), AmdVerdict(answered_by=verdict, agent=7))
    assert result.state is State.RELEASING
    assert Effect.HANGUP in result.effects
    assert result.outcome is (Outcome.FAX if verdict == "fax" else Outcome.MACHINE)


@pytest.mark.parametrize("verdict", sorted(states.MACHINE_END_VERDICTS))
def test_voicemail_drop_waits_for_the_end_of_the_greeting(verdict):
    call = view(State.ANSWERED, voicemail_drop=True, amd_mode="DetectMessageEnd")
    result = transition(call, AmdVerdict(answered_by=verdict))
    assert result.state is State.VOICEMAIL
    assert result.effects == (Effect.REDIRECT_VOICEMAIL,)
    ended = transition(view(State.VOICEMAIL, answered_by=verdict), Status(status="completed", sequence=4))
    assert ended.outcome is Outcome.VOICEMAIL_LEFT


def test_machine_start_never_gets_a_message_even_with_drop_on():
    call = view(State.ANSWERED, voicemail_drop=True, amd_mode="Enable")
    result = transition(call, AmdVerdict(answered_by="machine_start"))
    assert result.outcome is Outcome.MACHINE and Effect.HANGUP in result.effects


def test_human_with_a_ready_agent_is_bridged_and_siblings_released():
    result = transition(view(State.ANSWERED), AmdVerdict(answered_by="human", agent=3))
    assert result.state is State.BRIDGING
    assert result.agent == 3
    assert set(result.effects) == {Effect.ASSIGN_AGENT, Effect.RELEASE_SIBLINGS, Effect.REDIRECT_CONFERENCE}


def test_human_without_an_agent_waits_then_hears_the_safe_harbor_message():
    waiting = transition(view(State.ANSWERED), AmdVerdict(answered_by="human"))
    assert waiting.state is State.ANSWERED and waiting.effects == (Effect.WAIT_FOR_AGENT,)
    call = view(State.ANSWERED, answered_by="human")
    abandoned = transition(call, HoldExpired())
    assert abandoned.state is State.RELEASING
    assert abandoned.outcome is Outcome.ABANDONED
    assert abandoned.effects == (Effect.REDIRECT_SAFE_HARBOR,)
    final = transition(view(State.RELEASING, outcome=Outcome.ABANDONED, answered_by="human"),
                       Status(status="completed", sequence=9))
    assert final.outcome is Outcome.ABANDONED


def test_a_waiting_human_gets_an_agent_who_frees_up_in_time():
    result = transition(view(State.ANSWERED, answered_by="human"), AgentFound(agent=4))
    assert result.state is State.BRIDGING and result.agent == 4


@pytest.mark.parametrize(("policy", "bridged"), [("connect", True), ("machine", False)])
def test_unknown_follows_the_campaign_policy(policy, bridged):
    result = transition(view(State.ANSWERED, unknown_policy=policy), AmdVerdict(answered_by="unknown", agent=2))
    assert (result.state is State.BRIDGING) == bridged


def test_amd_verdict_before_the_answer_webhook():
    early = transition(view(State.RINGING), AmdVerdict(answered_by="human", agent=1))
    assert early.state is State.BRIDGING
    # Not fetched yet: no redirect; the fetch itself answers with the conference.
    assert Effect.REDIRECT_CONFERENCE not in early.effects
    bridged = view(State.BRIDGING, answered_by="human", has_agent=True, twiml_fetched=False)
    assert not transition(bridged, TwimlFetched()).changed
    assert twiml_for(bridged) is Twiml.CONFERENCE


def test_completed_before_the_amd_verdict():
    ended = transition(view(State.ANSWERED), Status(status="completed", sequence=3))
    assert ended.outcome is Outcome.HUNG_UP_ON_HOLD
    late = transition(view(State.ENDED, outcome=Outcome.HUNG_UP_ON_HOLD), AmdVerdict(answered_by="machine_start"))
    assert late.effects == () and late.state is State.ENDED
    assert late.answered_by == "machine_start"
    assert late.outcome is Outcome.MACHINE  # the blank is filled, no side effects


def test_out_of_order_statuses_are_ordered_by_sequence():
    call = view(State.RINGING, last_sequence=2)
    assert not transition(call, Status(status="initiated", sequence=0)).changed
    answered = view(State.ANSWERED, last_sequence=2)
    assert not transition(answered, Status(status="ringing", sequence=1)).changed
    first_completed = transition(view(State.DIALING, last_sequence=0), Status(status="no-answer", sequence=3))
    assert first_completed.state is State.ENDED and first_completed.outcome is Outcome.NO_ANSWER


@pytest.mark.parametrize(("status", "outcome"), [("busy", Outcome.BUSY), ("no-answer", Outcome.NO_ANSWER),
                                                 ("failed", Outcome.FAILED), ("canceled", Outcome.CANCELED)])
def test_unanswered_final_statuses(status, outcome):
    result = transition(view(State.RINGING), Status(status=status, sequence=4))
    assert result.state is State.ENDED and result.outcome is outcome


def test_redirect_fails_because_the_callee_already_hung_up():
    call = view(State.BRIDGING, answered_by="human", has_agent=True)
    result = transition(call, RedirectFailed(already_ended=True))
    assert result.state is State.ENDED
    assert result.outcome is Outcome.HUNG_UP_ON_HOLD
    assert Effect.AGENT_FREE in result.effects


def test_a_failed_redirect_into_the_room_gives_the_person_on_hold_the_safe_harbor_message_only():
    waiting = view(State.BRIDGING, answered_by="human", has_agent=True, twiml_fetched=True)
    result = transition(waiting, RedirectFailed(already_ended=False, into_room=True))
    assert (result.state, result.outcome) == (State.RELEASING, Outcome.ABANDONED)
    assert {Effect.REDIRECT_SAFE_HARBOR, Effect.AGENT_FREE} <= set(result.effects)
    # The redirect's answer was lost but it arrived: the person is talking to the agent. Nothing changes.
    talking = view(State.CONNECTED, answered_by="human", has_agent=True, twiml_fetched=True)
    assert not transition(talking, RedirectFailed(already_ended=False, into_room=True)).changed


def test_customer_leaving_the_room_ends_the_talk_even_without_a_final_status():
    call = view(State.CONNECTED, answered_by="human", has_agent=True)
    result = transition(call, LeftConference())
    assert result.state is State.ENDED and result.outcome is Outcome.TALKED
    assert Effect.AGENT_WRAP_UP in result.effects
    releasing = view(State.RELEASING, outcome=Outcome.TALKED, answered_by="human", has_agent=True)
    assert not transition(releasing, LeftConference()).changed


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed"])
def test_a_line_that_ends_on_its_own_before_our_cancel_keeps_its_own_outcome(status):
    result = transition(view(State.RELEASING, outcome=Outcome.CANCELED, twiml_fetched=False),
                        Status(status=status, sequence=3))
    assert result.outcome is states.STATUS_TO_OUTCOME[status]


def test_talk_ends_in_wrap_up():
    call = view(State.CONNECTED, answered_by="human", has_agent=True)
    result = transition(call, Status(status="completed", sequence=5))
    assert result.outcome is Outcome.TALKED and Effect.AGENT_WRAP_UP in result.effects


def test_released_line_that_was_answered_meanwhile_goes_on_as_a_live_call():
    released = transition(view(State.RINGING), Release())
    assert released.state is State.RELEASING and released.effects == (Effect.CANCEL,)
    call = view(State.RELEASING, outcome=Outcome.CANCELED, twiml_fetched=False)
    answered = transition(call, TwimlFetched())
    assert answered.state is State.ANSWERED and answered.outcome is Outcome.NONE


def test_answered_lines_are_never_released():
    assert not transition(view(State.ANSWERED), Release()).changed


def test_twiml_for_each_state():
    assert twiml_for(view(State.ANSWERED)) is Twiml.HOLD
    assert twiml_for(view(State.CONNECTED)) is Twiml.CONFERENCE
    assert twiml_for(view(State.VOICEMAIL)) is Twiml.VOICEMAIL
    assert twiml_for(view(State.RELEASING, outcome=Outcome.ABANDONED)) is Twiml.SAFE_HARBOR
    assert twiml_for(view(State.RELEASING, outcome=Outcome.MACHINE)) is Twiml.HANGUP
    assert twiml_for(view(State.ENDED, outcome=Outcome.TALKED)) is Twiml.HANGUP
