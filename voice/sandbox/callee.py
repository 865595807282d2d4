"""The far end of an answered call: what AMD concludes, and when the callee hangs up.

A human (or a silent `unknown`) on hold hangs up once their patience runs out; bridged to someone in a
conference they talk for their talk time, then hang up. A machine records: it hangs up when it has been left
on hold audio for a while after its greeting, or when its recording limit is reached.
"""

from __future__ import annotations

from collections.abc import Callable

from voice.pacing.population import Behaviour
from voice.sandbox.clock import SimClock
from voice.sandbox.config import SandboxConfig
from voice.sandbox.state import ACTIVITY_FETCHING, ACTIVITY_MESSAGE, SimCall

DEFAULT_AMD_S = 2.0
DEFAULT_TALK_S = 60.0
DEFAULT_PATIENCE_S = 20.0
DEFAULT_GREETING_S = 8.0


def amd_verdict(behaviour: Behaviour, mode: str, timeout_s: float) -> tuple[str, float]:
    """(AnsweredBy, seconds after answer it is known) for this callee under MachineDetection `mode`.

    `Enable` answers human / machine_start / fax / unknown after the detection latency; `DetectMessageEnd`
    answers human / fax / unknown as fast, but for a machine waits for the end of the greeting and says which
    machine_end_* it heard (twilio.md §3.3). Past MachineDetectionTimeout the answer is `unknown`.
    """
    latency = behaviour.amd_s if behaviour.amd_s is not None else DEFAULT_AMD_S
    if behaviour.kind == "human":
        verdict = "human"
    elif behaviour.kind == "fax":
        verdict = "fax"
    elif behaviour.kind == "machine" and mode == "DetectMessageEnd":
        verdict = behaviour.machine_end
        latency = behaviour.greeting_s if behaviour.greeting_s is not None else DEFAULT_GREETING_S
    elif behaviour.kind == "machine":
        verdict = "machine_start"
    else:
        verdict = "unknown"
    if latency > timeout_s:
        return "unknown", timeout_s
    return verdict, latency


HangUp = Callable[[SimCall, str, float], None]  # (call, reason, simulated time it was due)


async def play_callee(
    call: SimCall,
    *,
    clock: SimClock,
    config: Callable[[], SandboxConfig],
    bridged: Callable[[SimCall], bool],
    hang_up: HangUp,
) -> None:
    """Runs from answer until the callee hangs up (then calls `hang_up`) or the task is cancelled."""
    behaviour = call.behaviour
    if behaviour is None or call.answered_t is None:
        return
    if behaviour.kind in ("machine", "fax"):
        await _machine(call, behaviour, clock=clock, config=config, bridged=bridged, hang_up=hang_up)
    else:
        await _person(call, behaviour, clock=clock, bridged=bridged, hang_up=hang_up)


async def _person(
    call: SimCall, behaviour: Behaviour, *, clock: SimClock, bridged: Callable[[SimCall], bool], hang_up: HangUp
) -> None:
    """Patience runs while on hold (from answer, and again each time they are left alone); talk time runs while
    bridged and is used up across bridges. State changes count from when they happened (`changed_t`), not from
    when this task got to run, so timings hold on a loaded machine."""
    assert call.answered_t is not None
    talk_left = behaviour.talk_s if behaviour.talk_s is not None else DEFAULT_TALK_S
    patience = behaviour.patience_s if behaviour.patience_s is not None else DEFAULT_PATIENCE_S
    was_bridged, since = False, call.answered_t
    while not call.ended:
        call.changed.clear()
        is_bridged = bridged(call)
        if is_bridged != was_bridged:
            at = max(since, call.changed_t if call.changed_t is not None else clock.now())
            if was_bridged:
                talk_left -= at - since
            was_bridged, since = is_bridged, at
            call.note("callee-talking" if is_bridged else "callee-on-hold", at, talk_left_s=round(talk_left, 3))
        deadline = since + (talk_left if is_bridged else patience)
        if not await clock.sleep_until(deadline, wake=call.changed):
            hang_up(call, "callee finished talking" if is_bridged else "callee hung up on hold", deadline)
            return


async def _machine(
    call: SimCall,
    behaviour: Behaviour,
    *,
    clock: SimClock,
    config: Callable[[], SandboxConfig],
    bridged: Callable[[SimCall], bool],
    hang_up: HangUp,
) -> None:
    assert call.answered_t is not None
    greeting_end = call.answered_t + (behaviour.greeting_s if behaviour.greeting_s is not None else DEFAULT_GREETING_S)
    recording_limit = greeting_end + config().max_message_s
    grace_end = greeting_end + config().machine_hangup_after_s
    await clock.sleep_until(grace_end)
    # Past the grace period: a message being played (or someone talking to it) is recorded to the end;
    # hold audio or silence makes the machine give up.
    while not call.ended:
        call.changed.clear()
        if call.activity not in (ACTIVITY_MESSAGE, ACTIVITY_FETCHING) and not bridged(call):
            at = max(grace_end, call.changed_t if call.changed_t is not None else grace_end)
            hang_up(call, "machine hung up on hold audio", at)
            return
        if not await clock.sleep_until(recording_limit, wake=call.changed):
            hang_up(call, "machine recording limit reached", recording_limit)
            return
