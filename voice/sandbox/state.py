"""The sandbox's in-memory records: calls, their timelines and webhook deliveries, conferences.

Plain data; all mutation happens on the sandbox's event loop (engine, interpreter, conferences), so no locks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from voice.pacing.population import Behaviour

# Resource statuses (twilio.md §1.2). `initiated` is only ever a callback CallStatus, never a resource status.
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")

# What the callee hears right now; the callee model reacts to it (a machine records a message, hangs up on hold).
ACTIVITY_MESSAGE = "message"  # a finite <Play>/<Say>: somebody is being told something
ACTIVITY_HOLD = "hold"  # looping audio, <Pause>, waiting for a TwiML fetch
ACTIVITY_CONFERENCE = "conference"
ACTIVITY_FETCHING = "fetching"  # between documents: a machine keeps recording, a person keeps waiting


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass
class TimelineEntry:
    event: str
    sim_t: float
    wall: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Delivery:
    """One webhook request (or a decision not to send one), as the app would have seen it."""

    kind: str  # status-callback, amd-callback, conference-callback, voice-url, redirect, dial-action, fallback
    url: str
    method: str
    params: dict[str, str]
    idempotency_token: str
    sim_t: float
    wall: float
    delay_s: float = 0.0  # simulated seconds it was held back (jitter)
    duplicate: bool = False
    dropped: bool = False
    http_status: int | None = None
    error: str | None = None
    elapsed_ms: float | None = None

    @property
    def failed(self) -> bool:
        if self.dropped:
            return False
        return self.error is not None or (self.http_status is not None and not 200 <= self.http_status < 300)


@dataclass
class SimCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str  # outbound-api, or inbound for an agent's softphone leg
    behaviour: Behaviour | None  # None for agent legs: nobody on the far end decides anything
    behaviour_source: str
    created_t: float

    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout_s: float = 60.0
    machine_detection: str | None = None  # Enable | DetectMessageEnd
    machine_detection_timeout_s: float = 30.0
    async_amd: bool = False
    amd_callback: str | None = None
    amd_callback_method: str = "POST"
    identity: str | None = None  # agent legs: the softphone's client identity

    status: str = "queued"
    answered_by: str | None = None
    amd_duration_ms: int | None = None
    sip_response_code: int | None = None
    started_t: float | None = None  # left the CPS queue
    answered_t: float | None = None
    ended_t: float | None = None
    updated_t: float | None = None
    queue_time_ms: int = 0
    end_reason: str | None = None
    activity: str = ACTIVITY_HOLD
    changed_t: float | None = None  # when `changed` was last set
    released_t: float | None = None  # the CPS slot the call left the queue in
    conference_sid: str | None = None
    sequence: int = 0  # next status-callback SequenceNumber
    app_error: bool = False

    timeline: list[TimelineEntry] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    # Runtime plumbing (not part of any JSON view).
    released: asyncio.Event = field(default_factory=asyncio.Event)  # left the CPS queue
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # what the callee hears changed
    done: asyncio.Event = field(default_factory=asyncio.Event)
    amd_done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_s(self) -> int:
        if self.answered_t is None:
            return 0
        end = self.ended_t if self.ended_t is not None else self.answered_t
        return round(end - self.answered_t)

    def note(self, event: str, sim_t: float, **detail: Any) -> None:
        self.timeline.append(TimelineEntry(event=event, sim_t=sim_t, wall=time.time(), detail=detail))

    def notify(self, sim_t: float) -> None:
        """Something the callee can perceive changed at `sim_t` (the callee may only wake up a little later)."""
        self.changed_t = sim_t
        self.changed.set()


@dataclass
class Participant:
    call_sid: str
    label: str | None
    muted: bool
    hold: bool
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    joined_t: float
    left: asyncio.Event = field(default_factory=asyncio.Event)  # set when the conference lets go of this call


@dataclass
class Conference:
    sid: str
    account_sid: str
    friendly_name: str
    created_t: float
    status: str = "init"  # init | in-progress | completed
    updated_t: float | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset()
    participants: dict[str, Participant] = field(default_factory=dict)  # active only, by call sid
    sequence: int = 0
    reason_ended: str | None = None
    call_sid_ending: str | None = None
    history: list[TimelineEntry] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status != "completed"
