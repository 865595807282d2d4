"""The carrier: queues calls at the account's CPS, rings them, answers, runs AMD and the TwiML, ends them.

Everything runs on one asyncio loop (the sandbox's own), so state is changed without locks. Each call has a
few tasks: its lifecycle (queue -> ring -> answer), the TwiML runner, the callee model and AMD. Ending a call
is one idempotent function, `finish()`, which cancels the others and sends the terminal callback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from voice.sandbox.behaviours import BehaviourBook
from voice.sandbox.callee import amd_verdict, play_callee
from voice.sandbox.clock import SimClock
from voice.sandbox.conferences import ConferenceRooms
from voice.sandbox.config import SandboxConfig
from voice.sandbox.recordings import Recorder
from voice.sandbox.state import (
    ACTIVITY_FETCHING,
    TERMINAL_STATUSES,
    Conference,
    Participant,
    SimCall,
    new_sid,
)
from voice.sandbox.twiml import Source, TwimlRunner, run_safely
from voice.sandbox.webhooks import FetchResult, WebhookSender

log = logging.getLogger("voice.sandbox.engine")

API_VERSION = "2010-04-01"
RETAIN_ENDED = 10_000  # ended calls (and conferences) kept for inspection; older ones are forgotten
# SIP codes on terminal callbacks (twilio.md §3.2: 487 when the ring Timeout expired).
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487, "failed": 404}


@dataclass
class OutboundRequest:
    """A validated Calls.json create, in the engine's terms."""

    to: str
    from_: str
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout_s: float = 60.0
    machine_detection: str | None = None
    machine_detection_timeout_s: float = 30.0
    async_amd: bool = False
    amd_callback: str | None = None
    amd_callback_method: str = "POST"


@dataclass
class AgentLegRequest:
    identity: str
    voice_url: str
    method: str = "POST"
    to: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})


class Engine:
    def __init__(self, config: SandboxConfig) -> None:
        self.initial_config = config
        self._config = config
        self.seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
        self.clock = SimClock(config.time_scale)
        self.stats: Counter[str] = Counter()
        self.ended_by_status: Counter[str] = Counter()
        self.calls: dict[str, SimCall] = {}
        self.book = BehaviourBook(self.seed)
        self._misbehaviour_rng = random.Random(f"misbehaviour:{self.seed}")
        self.rest_rng = random.Random(f"rest:{self.seed}")  # which REST requests get an injected error
        self.sender = WebhookSender(
            config=lambda: self._config, clock=self.clock, rng=self._misbehaviour_rng, stats=self.stats
        )
        self.recorder = Recorder(clock=self.clock, sender=self.sender, account_sid=config.account_sid)
        self.rooms = ConferenceRooms(
            clock=self.clock, sender=self.sender, account_sid=config.account_sid, calls=self.calls,
            recorder=self.recorder,
        )
        self._queue: asyncio.Queue[SimCall] = asyncio.Queue()
        self._last_release: float | None = None  # simulated time the last call left the CPS queue
        self._dispatch_wake = asyncio.Event()  # the CPS changed, or the call waiting for a slot was canceled
        self._ended: deque[str] = deque()
        self._dispatcher: asyncio.Task | None = None

    # -- life of the engine --------------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        return self._config

    async def start(self) -> None:
        await self.sender.start()
        self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        self._cancel_all_calls()
        await self.sender.close()

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        self._config = self._config.updated(changes)
        self.clock.set_scale(self._config.time_scale)
        self._dispatch_wake.set()
        return self._config

    def reset(self) -> None:
        """Forget every call, room, override and counter, silently (no callbacks), and restore the start-up config."""
        self._cancel_all_calls()
        self.sender.cancel_pending()
        self.calls.clear()
        self.rooms.reset()
        self.recorder.reset()
        self.book.reset()
        self.stats.clear()
        self.ended_by_status.clear()
        self._ended.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._last_release = None
        self._dispatch_wake.set()  # the dispatcher may be waiting on a slot for a call that no longer exists
        self._misbehaviour_rng.seed(f"misbehaviour:{self.seed}")
        self.rest_rng.seed(f"rest:{self.seed}")
        self._config = self.initial_config
        self.clock.set_scale(self._config.time_scale)

    def _cancel_all_calls(self) -> None:
        for call in self.calls.values():
            for task in call.tasks.values():
                task.cancel()

    # -- REST-facing operations ----------------------------------------------------------------------

    def create_call(self, request: OutboundRequest) -> SimCall:
        now = self.clock.now()
        behaviour, source = self.book.draw(request.to, self._config.population)
        call = SimCall(
            sid=new_sid("CA"),
            account_sid=self._config.account_sid,
            to=request.to,
            from_=request.from_,
            direction="outbound-api",
            behaviour=behaviour,
            behaviour_source=source,
            created_t=now,
            updated_t=now,
            url=request.url,
            method=request.method,
            twiml=request.twiml,
            fallback_url=request.fallback_url,
            fallback_method=request.fallback_method,
            status_callback=request.status_callback,
            status_callback_method=request.status_callback_method,
            status_callback_events=request.status_callback_events,
            timeout_s=request.timeout_s,
            machine_detection=request.machine_detection,
            machine_detection_timeout_s=request.machine_detection_timeout_s,
            async_amd=request.async_amd,
            amd_callback=request.amd_callback,
            amd_callback_method=request.amd_callback_method,
        )
        wait_s = max(0.0, self._next_slot() - now) + self._queue.qsize() / self._config.cps
        call.queue_time_ms = int(wait_s * 1000)
        self.calls[call.sid] = call
        self.stats["calls_created"] += 1
        call.note("queued", now, behaviour=behaviour.kind, behaviour_source=source)
        self._queue.put_nowait(call)
        self._spawn(call, "lifecycle", self._outbound(call))
        return call

    def redirect(self, call: SimCall, source: Source) -> None:
        """REST update with Url/Twiml. Before answer it only changes what runs at answer. Caller checked not ended."""
        now = self.clock.now()
        call.updated_t = now
        if source.kind == "twiml":
            call.url, call.twiml = None, source.twiml
        else:
            call.url, call.method, call.twiml = source.url, source.method, None
        if call.answered_t is None:
            call.note("url-updated", now, url=call.url)
            return
        call.note("redirected", now, url=source.url)
        # The redirected call drops out of its room before the new document runs (twilio.md §6).
        self.rooms.leave(call, "participant_updated_via_api")
        old = call.tasks.get("twiml")
        if old is not None:
            old.cancel()
        self._start_twiml(call, source)

    def cancel_or_complete(self, call: SimCall, requested: str) -> None:
        """REST Status=canceled|completed. `canceled` leaves an answered call alone (twilio.md §1.4)."""
        call.updated_t = self.clock.now()
        if call.status in ("queued", "ringing"):
            self.finish(call, "canceled", f"REST Status={requested}")
        elif requested == "completed":
            self.finish(call, "completed", "REST Status=completed")

    def end_conference(self, conference: Conference) -> None:
        self.rooms.end(conference, "conference-ended-via-api")

    def callee_hang_up(self, call: SimCall) -> None:
        self.finish(call, "completed", "callee hung up (sandbox control)")

    # -- agent softphone legs ------------------------------------------------------------------------

    def place_agent_leg(self, request: AgentLegRequest) -> SimCall:
        """An incoming Twilio Client call from the agent's browser, as the TwiML App's voice URL sees it."""
        now = self.clock.now()
        call = SimCall(
            sid=new_sid("CA"),
            account_sid=self._config.account_sid,
            to=request.to or "",
            from_=f"client:{request.identity}",
            direction="inbound",
            behaviour=None,
            behaviour_source="agent",
            created_t=now,
            updated_t=now,
            url=request.voice_url,
            method=request.method,
            status_callback=request.status_callback,
            status_callback_method=request.status_callback_method,
            status_callback_events=request.status_callback_events,
            identity=request.identity,
        )
        call.status = "ringing"
        call.started_t = now
        self.calls[call.sid] = call
        self.stats["agent_legs"] += 1
        call.note("incoming-client-call", now, identity=request.identity)
        self._status_event(call, "ringing", "ringing")
        extra = {"ApplicationSid": self._config.application_sid, **request.params}
        self._start_twiml(call, Source(kind="voice-url", url=request.voice_url, method=request.method, extra=extra))
        return call

    def hang_up_agent_leg(self, call: SimCall) -> None:
        self.finish(call, "completed" if call.answered_t is not None else "canceled", "agent hung up")

    # -- the call's life -----------------------------------------------------------------------------

    def _next_slot(self) -> float:
        # From the last release at the *current* CPS, so a runtime change applies to the very next call.
        return float("-inf") if self._last_release is None else self._last_release + 1.0 / self._config.cps

    async def _dispatch(self) -> None:
        """The CPS queue: calls leave it one every 1/cps simulated seconds, in order; never rejected."""
        while True:
            call = await self._queue.get()
            try:
                # Slots are a schedule, not "now": a call that was waiting gets its slot even if this loop wakes
                # up late, so a slow machine does not lower the account's CPS. A call canceled while it waits
                # frees its slot at once.
                start = call.created_t
                while self._is_queued(call):
                    start = max(call.created_t, self._next_slot())
                    if not await self.clock.sleep_until(start, wake=self._dispatch_wake):
                        break
                    self._dispatch_wake.clear()
                if self._is_queued(call):
                    call.released_t = start
                    call.released.set()
                    self._last_release = start
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("CPS dispatcher error (call %s)", call.sid)

    def _is_queued(self, call: SimCall) -> bool:
        return self.calls.get(call.sid) is call and call.status == "queued"

    async def _outbound(self, call: SimCall) -> None:
        """Queue -> ring -> answer. Each step happens at its scheduled simulated time, so what is recorded (and
        reported) does not drift when the machine is slow to wake us up."""
        await call.released.wait()
        clock, behaviour = self.clock, call.behaviour
        assert behaviour is not None and call.released_t is not None
        t = call.released_t
        call.started_t = t
        call.queue_time_ms = int((t - call.created_t) * 1000)
        call.note("initiated", t)
        self._status_event(call, "initiated", "initiated", at=t)
        t += self._config.ring_delay_s
        await clock.sleep_until(t)
        if behaviour.kind == "failed":
            # The carrier refuses it before any ringing.
            t += behaviour.reject_s or 0.0
            await clock.sleep_until(t)
            self.finish(call, "failed", "carrier: number failed", at=t)
            return
        ring_t = t
        call.status, call.updated_t = "ringing", ring_t
        call.note("ringing", ring_t)
        self._status_event(call, "ringing", "ringing", at=ring_t)
        if behaviour.kind == "busy":
            t = ring_t + (behaviour.reject_s or 0.0)
            await clock.sleep_until(t)
            self.finish(call, "busy", "callee busy", at=t)
            return
        pickup = behaviour.pickup_s
        if pickup is None or pickup > call.timeout_s:
            t = ring_t + call.timeout_s
            await clock.sleep_until(t)
            self.finish(call, "no-answer", f"no answer within Timeout={call.timeout_s:g}s", at=t)
            return
        t = ring_t + pickup
        await clock.sleep_until(t)
        self._answer(call, at=t)
        self._spawn(
            call,
            "callee",
            play_callee(
                call, clock=clock, config=lambda: self._config, bridged=self.rooms.bridged, hang_up=self._callee_hung_up
            ),
        )
        extra: dict[str, str] = {}
        if call.machine_detection:
            self._spawn(call, "amd", self._amd(call))
            if not call.async_amd:
                # Synchronous AMD holds the voice URL until the verdict, which it then carries.
                await call.amd_done.wait()
                extra["AnsweredBy"] = call.answered_by or "unknown"
                if "twiml" in call.tasks:
                    return  # redirected by REST while AMD ran: that document is already playing
        if call.url:
            source = Source(kind="voice-url", url=call.url, method=call.method, extra=extra)
        else:
            source = Source(kind="twiml", twiml=call.twiml or "")
        self._start_twiml(call, source)

    def _answer(self, call: SimCall, at: float | None = None) -> None:
        t = self.clock.now() if at is None else at
        call.status, call.answered_t, call.updated_t = "in-progress", t, t
        call.note("answered", t)
        self._status_event(call, "answered", "in-progress", at=t)

    def _callee_hung_up(self, call: SimCall, reason: str, at: float) -> None:
        self.finish(call, "completed", reason, at=at)

    async def _amd(self, call: SimCall) -> None:
        assert call.behaviour is not None and call.answered_t is not None and call.machine_detection is not None
        verdict, after_s = amd_verdict(call.behaviour, call.machine_detection, call.machine_detection_timeout_s)
        t = call.answered_t + after_s
        await self.clock.sleep_until(t)
        call.answered_by, call.amd_duration_ms, call.updated_t = verdict, int(after_s * 1000), t
        call.note("amd", t, answered_by=verdict, duration_ms=call.amd_duration_ms)
        call.amd_done.set()
        if call.async_amd and call.amd_callback:
            params = {
                "CallSid": call.sid,
                "AccountSid": call.account_sid,
                "AnsweredBy": verdict,
                "MachineDetectionDuration": str(call.amd_duration_ms),
            }
            self.sender.send_callback(
                call.deliveries, "amd-callback", call.amd_callback, call.amd_callback_method, params
            )

    def _start_twiml(self, call: SimCall, source: Source) -> None:
        self._spawn(call, "twiml", run_safely(TwimlRunner(self, call), source))

    def finish(self, call: SimCall, status: str, reason: str, at: float | None = None) -> None:
        """End the call with a terminal status (idempotent): leave the room, stop its tasks, send `completed`.

        `at` is when it was due (a hang-up timer), never before anything already on the call's timeline.
        """
        if call.ended:
            return
        assert status in TERMINAL_STATUSES
        now = self.clock.now() if at is None else max(at, call.timeline[-1].sim_t if call.timeline else at)
        call.status, call.ended_t, call.updated_t, call.end_reason = status, now, now, reason
        call.sip_response_code = SIP_CODES[status]
        call.note("ended", now, status=status, reason=reason)
        self.rooms.leave(call, "participant_hung_up")
        self.recorder.call_ended(call.sid)
        current = asyncio.current_task()
        for task in call.tasks.values():
            if task is not current:
                task.cancel()
        call.done.set()
        call.notify(now)
        if call.released_t is None:
            self._dispatch_wake.set()
        self.ended_by_status[status] += 1
        extra = {
            "CallDuration": str(call.duration_s),
            "Duration": str(math.ceil(call.duration_s / 60)),
            "SipResponseCode": str(call.sip_response_code),
        }
        if call.machine_detection and call.answered_by:
            extra["AnsweredBy"] = call.answered_by
        self._status_event(call, "completed", status, extra, at=now)
        self._retain(call)

    def _retain(self, call: SimCall) -> None:
        self._ended.append(call.sid)
        while len(self._ended) > RETAIN_ENDED:
            self.calls.pop(self._ended.popleft(), None)
        completed = [sid for sid, c in self.rooms.by_sid.items() if not c.active]
        for sid in completed[: max(0, len(completed) - RETAIN_ENDED)]:
            self.rooms.by_sid.pop(sid, None)

    # -- webhooks ------------------------------------------------------------------------------------

    def call_params(self, call: SimCall) -> dict[str, str]:
        """The parameters every request about a call carries (twilio.md §3.1)."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Direction": call.direction,
            "From": call.from_,
            "Caller": call.from_,
        }
        if call.to:
            params["To"] = call.to
            params["Called"] = call.to
        return params

    def _status_event(
        self, call: SimCall, event: str, call_status: str, extra: dict[str, str] | None = None, at: float | None = None
    ) -> None:
        if not call.status_callback or event not in call.status_callback_events:
            return
        params = self.call_params(call)
        params.update(
            CallStatus=call_status,
            CallbackSource="call-progress-events",
            SequenceNumber=str(call.sequence),
            Timestamp=self.clock.rfc2822(at),
        )
        call.sequence += 1
        if extra:
            params.update(extra)
        self.sender.send_callback(
            call.deliveries, "status-callback", call.status_callback, call.status_callback_method, params
        )

    # -- the interpreter's host (twiml.CallHost) ------------------------------------------------------

    async def fetch_document(self, call: SimCall, source: Source) -> FetchResult:
        assert source.url is not None
        self.set_activity(call, ACTIVITY_FETCHING)
        params = self.call_params(call)
        params.update(source.extra)
        return await self.sender.fetch(call.deliveries, source.kind, source.url, source.method, params)

    def document_loaded(self, call: SimCall) -> None:
        if call.answered_t is None and call.direction == "inbound":
            self._answer(call)  # a client call is "answered" once its TwiML is in hand

    def set_activity(self, call: SimCall, activity: str) -> None:
        call.activity = activity
        call.notify(self.clock.now())

    def join_conference(self, call: SimCall, name: str, attrs: dict[str, str]) -> Participant:
        return self.rooms.join(call, name, attrs)

    def leave_conference(self, call: SimCall, reason: str) -> None:
        self.rooms.leave(call, reason)

    def hangup(self, call: SimCall, status: str, reason: str) -> None:
        self.finish(call, status, reason)

    def application_error(self, call: SimCall, code: str, message: str, url: str | None) -> None:
        """Twilio's "an application error has occurred": recorded where tests can see it, then hang up."""
        call.app_error = True
        call.note("application-error", self.clock.now(), code=code, message=message, url=url)
        self.stats["application_errors"] += 1
        log.warning("call %s: application error %s (%s) at %s", call.sid, code, message, url)
        self.finish(call, "completed" if call.answered_t is not None else "failed", f"application error {code}")

    # -- task plumbing -------------------------------------------------------------------------------

    def _spawn(self, call: SimCall, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._guarded(call, name, coro))
        call.tasks[name] = task

        def forget(done: asyncio.Task) -> None:
            coro.close()  # a task canceled before it ever ran never started `coro`; close it quietly
            if call.tasks.get(name) is done:
                del call.tasks[name]

        task.add_done_callback(forget)

    async def _guarded(self, call: SimCall, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one broken call must never take the engine down
            log.exception("sandbox task %s of call %s failed", name, call.sid)
            self.stats["engine_errors"] += 1
            call.note("engine-error", self.clock.now(), task=name, error=repr(exc))
            self.finish(call, "completed" if call.answered_t is not None else "failed", f"sandbox error in {name}")
