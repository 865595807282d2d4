"""Recordings: started on a call (REST) or by a conference (`record="record-from-start"`), paused and resumed,
completed when their call or room ends, reported by signed recording status callbacks, served as media.

The media is a short generated WAV (a tone, one channel per recorded side): real audio is never simulated, but
the app can prove it streams the bytes Twilio serves at the recording's media URL.
"""

from __future__ import annotations

import io
import math
import struct
import time
import wave
from dataclasses import dataclass, field

from voice.sandbox.clock import SimClock
from voice.sandbox.state import Delivery, TimelineEntry, new_sid
from voice.sandbox.webhooks import WebhookSender

RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})
MEDIA_SAMPLE_RATE = 8000
MEDIA_MAX_S = 3.0  # generated audio is capped: tests and the demo only need a playable file
# Twilio serves media at https://api.twilio.com/...; the app rewrites the host to its TWILIO_API_BASE_URL.
PUBLIC_API = "https://api.twilio.com"


@dataclass
class SimRecording:
    sid: str
    account_sid: str
    call_sid: str | None
    conference_sid: str | None
    source: str  # StartCallRecordingAPI | Conference
    channels: int
    track: str
    started_t: float
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    status: str = "in-progress"  # in-progress | paused | stopped | completed | absent | deleted
    ended_t: float | None = None
    pause_behavior: str = "silence"
    paused_since: float | None = None
    skipped_s: float = 0.0  # paused time cut out of the recording (PauseBehavior=skip)
    history: list[TimelineEntry] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status in ("in-progress", "paused")

    def duration_s(self, now: float) -> int:
        end = self.ended_t if self.ended_t is not None else now
        skipped = self.skipped_s
        if self.paused_since is not None and self.pause_behavior == "skip":
            skipped += end - self.paused_since
        return max(0, round(end - self.started_t - skipped))

    def note(self, event: str, sim_t: float, **detail: str) -> None:
        self.history.append(TimelineEntry(event=event, sim_t=sim_t, wall=time.time(), detail=detail))


class Recorder:
    """Every recording of the account. Runs on the sandbox's loop, like the rest of the engine."""

    def __init__(self, *, clock: SimClock, sender: WebhookSender, account_sid: str) -> None:
        self._clock = clock
        self._sender = sender
        self._account_sid = account_sid
        self.by_sid: dict[str, SimRecording] = {}

    def reset(self) -> None:
        self.by_sid.clear()

    def start(
        self,
        *,
        call_sid: str | None,
        conference_sid: str | None,
        source: str,
        channels: int,
        track: str = "both",
        status_callback: str | None = None,
        status_callback_method: str = "POST",
        status_callback_events: frozenset[str] = frozenset({"completed"}),
    ) -> SimRecording:
        now = self._clock.now()
        recording = SimRecording(
            sid=new_sid("RE"),
            account_sid=self._account_sid,
            call_sid=call_sid,
            conference_sid=conference_sid,
            source=source,
            channels=channels,
            track=track,
            started_t=now,
            status_callback=status_callback,
            status_callback_method=status_callback_method,
            status_callback_events=status_callback_events,
        )
        self.by_sid[recording.sid] = recording
        recording.note("started", now)
        self._callback(recording, "in-progress")
        return recording

    def current_for_call(self, call_sid: str) -> SimRecording | None:
        """`Twilio.CURRENT`: the call's live recording (the newest, if several)."""
        live = [r for r in self.by_sid.values() if r.call_sid == call_sid and r.live]
        return live[-1] if live else None

    def current_for_conference(self, conference_sid: str) -> SimRecording | None:
        live = [r for r in self.by_sid.values() if r.conference_sid == conference_sid and r.live]
        return live[-1] if live else None

    def set_status(self, recording: SimRecording, status: str, pause_behavior: str | None = None) -> None:
        """REST `Status=paused|in-progress|stopped` on a live recording (caller checked it is live)."""
        now = self._clock.now()
        if status == "paused" and recording.status == "in-progress":
            recording.status = "paused"
            recording.paused_since = now
            recording.pause_behavior = pause_behavior or "silence"
            recording.note("paused", now, pause_behavior=recording.pause_behavior)
        elif status == "in-progress" and recording.status == "paused":
            self._unpause(recording, now)
            recording.status = "in-progress"
            recording.note("resumed", now)
        elif status == "stopped":
            self.finish(recording, "stopped")

    def finish(self, recording: SimRecording, why: str) -> None:
        """The recording ends (its call or room ended, or it was stopped): `completed`, or `absent` if empty."""
        if not recording.live:
            return
        now = self._clock.now()
        self._unpause(recording, now)
        recording.ended_t = now
        recording.status = "completed" if recording.duration_s(now) > 0 else "absent"
        recording.note(recording.status, now, reason=why)
        self._callback(recording, recording.status)

    def call_ended(self, call_sid: str) -> None:
        for recording in list(self.by_sid.values()):
            if recording.call_sid == call_sid and recording.conference_sid is None:
                self.finish(recording, "call ended")

    def conference_ended(self, conference_sid: str) -> None:
        for recording in list(self.by_sid.values()):
            if recording.conference_sid == conference_sid:
                self.finish(recording, "conference ended")

    def delete(self, recording: SimRecording) -> None:
        if recording.live:
            self.finish(recording, "deleted")
        recording.status = "deleted"
        recording.note("deleted", self._clock.now())

    def media_url(self, recording: SimRecording) -> str:
        return f"{PUBLIC_API}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"

    def _unpause(self, recording: SimRecording, now: float) -> None:
        if recording.paused_since is not None:
            if recording.pause_behavior == "skip":
                recording.skipped_s += now - recording.paused_since
            recording.paused_since = None

    def _callback(self, recording: SimRecording, status: str) -> None:
        if not recording.status_callback or status not in recording.status_callback_events:
            return
        now = self._clock.now()
        params = {
            "AccountSid": recording.account_sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.media_url(recording),
            "RecordingStatus": status,
            "RecordingDuration": str(recording.duration_s(now)) if status != "in-progress" else "-1",
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": self._clock.rfc2822(recording.started_t),
            "RecordingSource": recording.source,
            "RecordingTrack": recording.track,
        }
        if recording.call_sid:
            params["CallSid"] = recording.call_sid
        if recording.conference_sid:
            params["ConferenceSid"] = recording.conference_sid
        self._sender.send_callback(
            recording.deliveries, "recording-callback", recording.status_callback,
            recording.status_callback_method, params,
        )


def wav_bytes(recording: SimRecording, now: float) -> bytes:
    """A playable WAV: one tone per channel (440 Hz, and 660 Hz on the second), at most MEDIA_MAX_S long."""
    seconds = max(0.5, min(MEDIA_MAX_S, float(recording.duration_s(now))))
    frames = int(seconds * MEDIA_SAMPLE_RATE)
    tones = (440.0, 660.0)[: recording.channels]
    data = bytearray()
    for n in range(frames):
        for tone in tones:
            data += struct.pack("<h", int(6000 * math.sin(2 * math.pi * tone * n / MEDIA_SAMPLE_RATE)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(recording.channels)
        out.setsampwidth(2)
        out.setframerate(MEDIA_SAMPLE_RATE)
        out.writeframes(bytes(data))
    return buffer.getvalue()
