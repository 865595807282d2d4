"""The call state machine: pure transition logic, no ORM, no network, no clock.

`transition(call, fact) -> Transition` says what a fact does to one customer leg and which effects the
service must run after commit. DESIGN.md §4 is the contract; the rules below cite it.

Facts are of two kinds. Twilio's reports (status callbacks, the voice URL fetch, AMD verdicts,
conference events, REST results) are facts about the world: a duplicate, late or out-of-order one is
ignored, never an error. Our own decisions (route to an agent, release a line, hang up) arrive here
as facts too, computed by a service that holds the locks; commands a user may not give now are refused
by the service before they reach this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    CREATED = "created"  # row written, REST create not yet acknowledged
    DIALING = "dialing"  # Twilio accepted it: queued / initiated
    RINGING = "ringing"
    ANSWERED = "answered"  # voice URL fetched: the callee hears hold audio while AMD runs
    BRIDGING = "bridging"  # a human given to an agent; the leg is on its way to the agent's room
    CONNECTED = "connected"  # in the agent's conference
    VOICEMAIL = "voicemail"  # the greeting ended; our message is playing
    RELEASING = "releasing"  # we asked Twilio to end it (outcome decided); waiting for the final status
    ENDED = "ended"


class Outcome(StrEnum):
    NONE = ""
    TALKED = "talked"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    MACHINE = "machine"
    VOICEMAIL_LEFT = "voicemail_left"
    FAX = "fax"
    ABANDONED = "abandoned"
    HUNG_UP_ON_HOLD = "hung_up_on_hold"
    INVALID_NUMBER = "invalid_number"


class Effect(StrEnum):
    ASSIGN_AGENT = "assign_agent"  # the agent in the fact goes on call with this leg (caller holds its lock)
    WAIT_FOR_AGENT = "wait_for_agent"  # a human is on hold; abandon when the hold limit passes
    REDIRECT_CONFERENCE = "redirect_conference"  # REST: send the leg to the agent's room
    REDIRECT_VOICEMAIL = "redirect_voicemail"  # REST: play the campaign's message, then hang up
    REDIRECT_SAFE_HARBOR = "redirect_safe_harbor"  # REST: play the safe-harbor message, then hang up
    HANGUP = "hangup"  # REST: Status=completed (ends any call)
    CANCEL = "cancel"  # REST: Status=canceled (ends a queued/ringing call, leaves an answered one alone)
    RELEASE_SIBLINGS = "release_siblings"  # the agent's other ringing lines may go (rule 4)
    AGENT_WRAP_UP = "agent_wrap_up"  # the talk ended: the agent writes a disposition
    AGENT_FREE = "agent_free"  # the customer left before reaching the agent: the agent is ready again
    CONTACT_FINISH = "contact_finish"  # bookkeeping on the contact: attempts, retry, status


TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
MACHINE_VERDICTS = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"})
MACHINE_END_VERDICTS = MACHINE_VERDICTS - {"machine_start"}
ANSWERED_BY_VALUES = MACHINE_VERDICTS | {"human", "fax", "unknown"}
CALL_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"}) | TERMINAL_STATUSES

# How far along a leg is. Progress reports never move a call backwards (rule: ordered by sequence).
RANK = {
    State.CREATED: 0,
    State.DIALING: 1,
    State.RINGING: 2,
    State.ANSWERED: 3,
    State.BRIDGING: 4,
    State.VOICEMAIL: 4,
    State.CONNECTED: 5,
    State.RELEASING: 6,
    State.ENDED: 9,
}
LIVE_STATES = frozenset(State) - {State.ENDED}
# A leg that has not been answered yet: it may be canceled.
UNANSWERED_STATES = frozenset({State.CREATED, State.DIALING, State.RINGING})
# A leg that holds (or is about to hold) an agent: never more than one per agent (rule 1).
AGENT_HOLDING_STATES = frozenset({State.BRIDGING, State.CONNECTED})

STATUS_TO_OUTCOME = {
    "busy": Outcome.BUSY,
    "no-answer": Outcome.NO_ANSWER,
    "failed": Outcome.FAILED,
    "canceled": Outcome.CANCELED,
}


# -- the call as the machine sees it ---------------------------------------------------------------


@dataclass(frozen=True)
class CallView:
    state: State
    outcome: Outcome = Outcome.NONE
    answered_by: str = ""
    last_sequence: int = -1
    twiml_fetched: bool = False  # Twilio fetched our voice URL: changes now need a REST redirect
    has_agent: bool = False  # bridged_to is set
    voicemail_drop: bool = False
    amd_mode: str = "DetectMessageEnd"
    unknown_policy: str = "connect"


# -- facts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """The REST create was acknowledged (Twilio gave us the SID, which the call keeps)."""

    sid: str = ""


@dataclass(frozen=True)
class CreateFailed:
    invalid_number: bool = False  # 21211 and friends: the number will never work


@dataclass(frozen=True)
class Status:
    """A status callback (sequence given) or the reconciler's REST fetch (sequence None)."""

    status: str
    sequence: int | None = None
    duration_s: int | None = None  # CallDuration, kept once known


@dataclass(frozen=True)
class TwimlFetched:
    """Twilio fetched the customer leg's voice URL: the callee picked up."""


@dataclass(frozen=True)
class AmdVerdict:
    """An AsyncAmd verdict. `agent` is a ready agent the service found (and locked) for a human, or None."""

    answered_by: str
    agent: int | None = None
    duration_ms: int | None = None  # MachineDetectionDuration, kept once known


@dataclass(frozen=True)
class AgentFound:
    """A human waiting on hold gets an agent who just became ready (service holds the agent's lock). The
    service fills `agent` under the locks; with none free the fact is not applied."""

    agent: int | None = None


@dataclass(frozen=True)
class HoldExpired:
    """The hold limit passed for a human with no agent."""


@dataclass(frozen=True)
class JoinedConference:
    """The customer leg joined the agent's room (participant-join)."""


@dataclass(frozen=True)
class LeftConference:
    """The customer leg left the agent's room (participant-leave)."""


@dataclass(frozen=True)
class RedirectFailed:
    """A REST redirect failed. already_ended: Twilio said 21220, the callee is gone. into_room: it was the redirect
    of a person on hold into the agent's room (rule 3: they hear the safe-harbor message, if still on hold)."""

    already_ended: bool
    into_room: bool = False


@dataclass(frozen=True)
class Release:
    """We let an unanswered line go (an agent connected elsewhere, the campaign stopped)."""


@dataclass(frozen=True)
class Hangup:
    """We end the call whatever its state (agent hung up, "that was a machine", campaign ended)."""

    outcome: Outcome | None = None  # None: keep what the call already is (talked while connected)
    corrected_machine: bool = False  # the agent said this "human" was a machine (an AMD miss, kept on the call)


Fact = (
    Created | CreateFailed | Status | TwimlFetched | AmdVerdict | AgentFound | HoldExpired | JoinedConference
    | LeftConference | RedirectFailed | Release | Hangup
)


# -- result ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    state: State
    outcome: Outcome
    effects: tuple[Effect, ...] = ()
    changed: bool = False  # False: the fact was recorded and ignored
    answered_by: str | None = None  # a value to store (also a late fact filling a blank)
    sequence: int | None = None  # a newer sequence number to store
    agent: int | None = None  # the agent to assign (with ASSIGN_AGENT)
    reason: str = ""  # why it was ignored or what happened, for the audit log
    data: dict = field(default_factory=dict)


def _ignore(call: CallView, reason: str, **kw) -> Transition:
    return Transition(state=call.state, outcome=call.outcome, reason=reason, **kw)


def _to(call: CallView, state: State, outcome: Outcome | None = None, *effects: Effect, **kw) -> Transition:
    new_outcome = call.outcome if outcome is None else outcome
    if state is State.ENDED and Effect.CONTACT_FINISH not in effects:
        effects = (*effects, Effect.CONTACT_FINISH)
    return Transition(state=state, outcome=new_outcome, effects=tuple(effects), changed=True, **kw)


def is_machine(answered_by: str, unknown_policy: str) -> bool:
    """Rule 2: every machine_* and fax is a machine; unknown follows the campaign's policy."""
    if answered_by in MACHINE_VERDICTS or answered_by == "fax":
        return True
    return answered_by == "unknown" and unknown_policy == "machine"


def is_human(answered_by: str, unknown_policy: str) -> bool:
    """A verdict that goes to an agent: human, or unknown where the campaign connects unknowns."""
    return answered_by == "human" or (answered_by == "unknown" and unknown_policy == "connect")


def verdict(answered_by: str, unknown_policy: str) -> str:
    """What the pages show for an AMD value: "human", "machine", or "" while there is no verdict. The pages read
    this instead of deciding from raw AMD values themselves."""
    if not answered_by:
        return ""
    return "machine" if is_machine(answered_by, unknown_policy) else "human"


# -- the transition function -----------------------------------------------------------------------


def transition(call: CallView, fact: Fact) -> Transition:
    if call.state is State.ENDED:
        return _after_end(call, fact)
    match fact:
        case Created():
            if call.state is State.CREATED:
                return _to(call, State.DIALING)
            return _ignore(call, "create acknowledged after progress reports")
        case CreateFailed(invalid_number=invalid):
            if call.state is State.CREATED:
                return _to(call, State.ENDED, Outcome.INVALID_NUMBER if invalid else Outcome.FAILED)
            if call.state is State.RELEASING and not call.twiml_fetched and call.outcome is Outcome.CANCELED:
                # Released while the create was in flight, and the create failed: nothing was ever placed.
                return _to(call, State.ENDED, Outcome.INVALID_NUMBER if invalid else Outcome.CANCELED)
            return _ignore(call, "create failure for a call already in progress")
        case Status():
            return _on_status(call, fact)
        case TwimlFetched():
            return _on_answer(call)
        case AmdVerdict():
            return _on_amd(call, fact)
        case AgentFound(agent=agent):
            if call.state is State.ANSWERED and call.answered_by and not call.has_agent:
                return _bridge(call, agent)
            return _ignore(call, "no human waiting on this call")
        case HoldExpired():
            if call.state is State.ANSWERED and _is_human(call) and not call.has_agent:
                return _abandon(call)
            return _ignore(call, "hold limit passed but the call moved on")
        case JoinedConference():
            if call.state is State.BRIDGING:
                return _to(call, State.CONNECTED)
            return _ignore(call, "join outside bridging")
        case LeftConference():
            if call.state is State.CONNECTED:
                # We never move a connected leg out of the room, so leaving it means the customer hung
                # up: the talk is over even if the final status callback never comes (Twilio does not
                # retry those). The status, when it arrives, only fills in the duration.
                return _to(call, State.ENDED, Outcome.TALKED, Effect.AGENT_WRAP_UP)
            return _ignore(call, "left the conference; the final status closes the call")
        case RedirectFailed(already_ended=True):
            return _on_gone(call)
        case RedirectFailed(into_room=True):
            if call.state is State.BRIDGING:
                return _abandon_bridging(call)
            return _ignore(call, "the redirect into the room failed, but the call moved on (it may have arrived)")
        case RedirectFailed():
            return _ignore(call, "redirect failed; the reconciler will ask Twilio")
        case Release():
            if call.state in UNANSWERED_STATES:
                return _to(call, State.RELEASING, Outcome.CANCELED, Effect.CANCEL)
            return _ignore(call, "only unanswered lines are released")
        case Hangup(outcome=outcome):
            return _on_hangup(call, outcome)
    raise TypeError(f"unknown fact {fact!r}")


def _is_human(call: CallView) -> bool:
    return call.answered_by == "human" or (call.answered_by == "unknown" and call.unknown_policy == "connect")


def _after_end(call: CallView, fact: Fact) -> Transition:
    """Rule 5: terminal is final. Late facts fill blanks and never trigger side effects."""
    if isinstance(fact, AmdVerdict) and not call.answered_by and fact.answered_by in ANSWERED_BY_VALUES:
        refine = call.outcome
        if call.outcome is Outcome.HUNG_UP_ON_HOLD and is_machine(fact.answered_by, call.unknown_policy):
            # The callee we thought left the hold line was a machine hanging up.
            refine = Outcome.FAX if fact.answered_by == "fax" else Outcome.MACHINE
        return Transition(state=State.ENDED, outcome=refine, answered_by=fact.answered_by, changed=False,
                          reason="late AMD verdict fills a blank")
    if isinstance(fact, Status) and fact.sequence is not None and fact.sequence > call.last_sequence:
        return Transition(state=State.ENDED, outcome=call.outcome, sequence=fact.sequence,
                          reason="late status after the end")
    return _ignore(call, "call already ended")


def _on_status(call: CallView, fact: Status) -> Transition:
    if fact.status not in CALL_STATUSES:
        return _ignore(call, f"unknown status {fact.status!r}")
    if fact.sequence is not None and fact.sequence <= call.last_sequence:
        return _ignore(call, "stale or duplicate sequence number")
    seq = fact.sequence
    if fact.status in TERMINAL_STATUSES:
        return _on_final_status(call, fact.status, seq)
    if fact.status in ("queued", "initiated"):
        if call.state is State.CREATED:
            return _to(call, State.DIALING, None, sequence=seq)
        return _ignore(call, "progress report behind the call", sequence=seq)
    if fact.status == "ringing":
        if RANK[call.state] < RANK[State.RINGING]:
            return _to(call, State.RINGING, None, sequence=seq)
        return _ignore(call, "progress report behind the call", sequence=seq)
    # in-progress: the answer. The voice URL fetch usually comes first and carries the same news.
    answered = _on_answer(call)
    return Transition(state=answered.state, outcome=answered.outcome, effects=answered.effects,
                      changed=answered.changed, sequence=seq, reason=answered.reason)


def _on_final_status(call: CallView, status: str, seq: int | None) -> Transition:
    state = call.state
    if state in UNANSWERED_STATES:
        outcome = STATUS_TO_OUTCOME.get(status)
        if outcome is None:  # "completed" for a leg we never saw answered: it was, briefly
            outcome = Outcome.HUNG_UP_ON_HOLD
        return _to(call, State.ENDED, outcome, sequence=seq)
    if state is State.ANSWERED:
        if call.answered_by and is_machine(call.answered_by, call.unknown_policy):
            outcome = Outcome.FAX if call.answered_by == "fax" else Outcome.MACHINE
        else:
            outcome = Outcome.HUNG_UP_ON_HOLD
        return _to(call, State.ENDED, outcome, sequence=seq)
    if state is State.BRIDGING:
        # The customer hung up on their way to the agent: the agent never got them.
        return _to(call, State.ENDED, Outcome.HUNG_UP_ON_HOLD, Effect.AGENT_FREE, sequence=seq)
    if state is State.CONNECTED:
        return _to(call, State.ENDED, Outcome.TALKED, Effect.AGENT_WRAP_UP, sequence=seq)
    if state is State.VOICEMAIL:
        return _to(call, State.ENDED, Outcome.VOICEMAIL_LEFT, sequence=seq)
    # RELEASING: the outcome was decided when we let it go; a cancel that lost the race to the
    # answer ends as "completed", and then the callee was on hold when they left.
    outcome = call.outcome
    if outcome is Outcome.NONE:  # no decision on record: go by what Twilio says
        outcome = STATUS_TO_OUTCOME.get(status, Outcome.HUNG_UP_ON_HOLD)
    if outcome is Outcome.CANCELED and status in ("busy", "no-answer", "failed"):
        outcome = STATUS_TO_OUTCOME[status]  # the line ended on its own before our cancel landed
    if outcome is Outcome.CANCELED and status == "completed":
        outcome = Outcome.HUNG_UP_ON_HOLD
    return _to(call, State.ENDED, outcome, *_agent_after(call, outcome), sequence=seq)


def _agent_after(call: CallView, outcome: Outcome) -> tuple[Effect, ...]:
    """What the call's agent does once it ends: a talk means wrap-up, anything else frees them."""
    if not call.has_agent:
        return ()
    return (Effect.AGENT_WRAP_UP,) if outcome is Outcome.TALKED else (Effect.AGENT_FREE,)


def _on_answer(call: CallView) -> Transition:
    if call.state in (State.CREATED, State.DIALING, State.RINGING):
        return _to(call, State.ANSWERED)
    if call.state is State.RELEASING and call.outcome is Outcome.CANCELED:
        # Twilio leaves an answered call alone when asked to cancel it: the line rings on as a live
        # call and its human goes to whoever is free (rule 4).
        return _to(call, State.ANSWERED, Outcome.NONE)
    return _ignore(call, "answer reported again")


def _on_amd(call: CallView, fact: AmdVerdict) -> Transition:
    verdict = fact.answered_by
    if verdict not in ANSWERED_BY_VALUES:
        return _ignore(call, f"unknown AnsweredBy {verdict!r}")
    if call.answered_by:
        return _ignore(call, "a verdict was already applied")
    state = call.state
    if state is State.RELEASING and call.outcome is not Outcome.CANCELED:
        return _ignore(call, "verdict for a call we are already ending", answered_by=verdict)
    if state not in (State.CREATED, State.DIALING, State.RINGING, State.ANSWERED, State.RELEASING):
        return _ignore(call, "verdict after the call was routed", answered_by=verdict)
    # A verdict before the answer webhook means the callee answered: treat it as answered too.
    answered = CallView(**{**call.__dict__, "state": State.ANSWERED, "outcome": Outcome.NONE,
                           "answered_by": verdict})
    if verdict == "fax":
        return _end_live(answered, Outcome.FAX, verdict)
    if verdict in MACHINE_VERDICTS:
        leave_message = (
            call.voicemail_drop and call.amd_mode == "DetectMessageEnd" and verdict in MACHINE_END_VERDICTS
        )
        if leave_message:
            effects = (Effect.REDIRECT_VOICEMAIL,) if call.twiml_fetched else ()
            return _to(answered, State.VOICEMAIL, Outcome.NONE, *effects, answered_by=verdict)
        return _end_live(answered, Outcome.MACHINE, verdict)
    if verdict == "unknown" and call.unknown_policy == "machine":
        return _end_live(answered, Outcome.MACHINE, verdict)
    # A human (or an unknown we connect).
    if fact.agent is not None:
        return _bridge(answered, fact.agent, answered_by=verdict)
    return _to(answered, State.ANSWERED, Outcome.NONE, Effect.WAIT_FOR_AGENT, answered_by=verdict)


def _end_live(call: CallView, outcome: Outcome, verdict: str) -> Transition:
    """Hang up an answered non-human. Before the voice URL was fetched the TwiML itself hangs up."""
    return _to(call, State.RELEASING, outcome, Effect.HANGUP, answered_by=verdict)


def _bridge(call: CallView, agent: int, **kw) -> Transition:
    effects = [Effect.ASSIGN_AGENT, Effect.RELEASE_SIBLINGS]
    if call.twiml_fetched:
        effects.append(Effect.REDIRECT_CONFERENCE)
    return _to(call, State.BRIDGING, Outcome.NONE, *effects, agent=agent, **kw)


def _abandon_effects(call: CallView) -> tuple[Effect, ...]:
    # Before the voice URL was fetched, the fetch itself answers with the message.
    return (Effect.REDIRECT_SAFE_HARBOR,) if call.twiml_fetched else ()


def _abandon(call: CallView) -> Transition:
    """Rule 3: a human nobody can take hears the safe-harbor message."""
    return _to(call, State.RELEASING, Outcome.ABANDONED, *_abandon_effects(call))


def _abandon_bridging(call: CallView) -> Transition:
    """The leg never reached the agent (the redirect failed): safe-harbor message, agent freed."""
    return _to(call, State.RELEASING, Outcome.ABANDONED, *_abandon_effects(call), Effect.AGENT_FREE)


def _on_gone(call: CallView) -> Transition:
    """Twilio says the leg is not in progress any more: the callee hung up before our redirect."""
    if call.state is State.BRIDGING:
        return _to(call, State.ENDED, Outcome.HUNG_UP_ON_HOLD, Effect.AGENT_FREE)
    if call.state is State.ANSWERED:
        return _to(call, State.ENDED, Outcome.HUNG_UP_ON_HOLD)
    if call.state is State.VOICEMAIL:
        return _to(call, State.ENDED, Outcome.MACHINE)
    if call.state is State.RELEASING:
        outcome = call.outcome or Outcome.HUNG_UP_ON_HOLD
        return _to(call, State.ENDED, outcome, *_agent_after(call, outcome))
    return _ignore(call, "redirect failed before the call was answered")


def _on_hangup(call: CallView, outcome: Outcome | None) -> Transition:
    state = call.state
    if state in UNANSWERED_STATES:
        return _to(call, State.RELEASING, Outcome.CANCELED, Effect.CANCEL)
    if state is State.CONNECTED:
        return _to(call, State.RELEASING, outcome or Outcome.TALKED, Effect.HANGUP)
    if state is State.BRIDGING:
        if outcome is Outcome.ABANDONED:
            return _abandon_bridging(call)
        return _to(call, State.RELEASING, outcome or Outcome.TALKED, Effect.HANGUP)
    if state is State.RELEASING:
        return _ignore(call, "already ending")
    if state is State.VOICEMAIL:
        return _to(call, State.RELEASING, outcome or Outcome.MACHINE, Effect.HANGUP)
    # ANSWERED: on hold. Someone who may be a person (a human verdict, or no verdict yet) is not hung up
    # on in silence: they hear the safe-harbor message and count as abandoned (rule 3).
    if outcome in (None, Outcome.ABANDONED) and (not call.answered_by or _is_human(call)):
        return _abandon(call)
    return _to(call, State.RELEASING, outcome or Outcome.MACHINE, Effect.HANGUP)


# -- TwiML for the voice URL, by state -------------------------------------------------------------


class Twiml(StrEnum):
    HOLD = "hold"
    CONFERENCE = "conference"
    VOICEMAIL = "voicemail"
    SAFE_HARBOR = "safe_harbor"
    HANGUP = "hangup"


def twiml_for(call: CallView) -> Twiml:
    """What a leg that fetches its voice URL (after TwimlFetched was applied) should run now.

    A verdict that arrived before the fetch changed the state without a redirect, so the fetch answers
    with where the call should already be.
    """
    state = call.state
    if state is State.ANSWERED:
        return Twiml.HOLD
    if state in AGENT_HOLDING_STATES:
        return Twiml.CONFERENCE
    if state is State.VOICEMAIL:
        return Twiml.VOICEMAIL
    if state is State.RELEASING and call.outcome is Outcome.ABANDONED:
        return Twiml.SAFE_HARBOR
    return Twiml.HANGUP
