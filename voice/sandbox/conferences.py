"""Conference rooms created by `<Dial><Conference>`: membership, start/end rules and their callbacks."""

from __future__ import annotations

import time

from voice.sandbox.clock import SimClock
from voice.sandbox.recordings import RECORDING_EVENTS, Recorder
from voice.sandbox.state import Conference, Participant, SimCall, TimelineEntry, new_sid
from voice.sandbox.webhooks import WebhookSender

# statusCallbackEvent words (space-separated on <Conference>) -> the StatusCallbackEvent values they enable.
EVENT_WORDS = {
    "start": ("conference-start",),
    "end": ("conference-end",),
    "join": ("participant-join",),
    "leave": ("participant-leave",),
    "mute": ("participant-mute", "participant-unmute"),
    "hold": ("participant-hold", "participant-unhold"),
    "modify": ("participant-modify",),
}
DEFAULT_EVENT_WORDS = ("start", "end")


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() == "true"


class ConferenceRooms:
    def __init__(
        self, *, clock: SimClock, sender: WebhookSender, account_sid: str, calls: dict[str, SimCall], recorder: Recorder
    ) -> None:
        self._recorder = recorder
        self._clock = clock
        self._sender = sender
        self._account_sid = account_sid
        self._calls = calls
        self.by_sid: dict[str, Conference] = {}

    def reset(self) -> None:
        self.by_sid.clear()

    def active_named(self, name: str) -> Conference | None:
        # Many conferences may share a FriendlyName, but only one is active at a time (twilio.md §6).
        for conference in self.by_sid.values():
            if conference.friendly_name == name and conference.active:
                return conference
        return None

    def open_named(self, name: str) -> Conference:
        """The active room with this name, created (not started) if there is none: a Participants API create."""
        conference = self.active_named(name)
        if conference is None:
            now = self._clock.now()
            conference = Conference(
                sid=new_sid("CF"), account_sid=self._account_sid, friendly_name=name, created_t=now, updated_t=now
            )
            self.by_sid[conference.sid] = conference
            conference.history.append(_entry("created", now))
        return conference

    def bridged(self, call: SimCall) -> bool:
        """Whether the callee is talking to someone: in a started room with another participant, not on hold."""
        conference = self.by_sid.get(call.conference_sid or "")
        if conference is None or conference.status != "in-progress":
            return False
        me = conference.participants.get(call.sid)
        if me is None or me.hold:
            return False
        return any(sid != call.sid and not p.hold for sid, p in conference.participants.items())

    # -- membership ----------------------------------------------------------------------------------

    def join(self, call: SimCall, name: str, attrs: dict[str, str]) -> Participant:
        conference = self.open_named(name)
        now = self._clock.now()
        if conference.status_callback is None and attrs.get("statusCallback"):
            # The first participant that asks for conference events configures them for the room.
            words = (attrs.get("statusCallbackEvent") or " ".join(DEFAULT_EVENT_WORDS)).replace(",", " ").split()
            conference.status_callback = attrs["statusCallback"]
            conference.status_callback_method = (attrs.get("statusCallbackMethod") or "POST").upper()
            conference.status_callback_events = frozenset(e for w in words for e in EVENT_WORDS.get(w, ()))
        if attrs.get("record") == "record-from-start" and not conference.record:
            conference.record = True
            conference.recording_callback = attrs.get("recordingStatusCallback") or None
            conference.recording_callback_method = (attrs.get("recordingStatusCallbackMethod") or "POST").upper()
            words = (attrs.get("recordingStatusCallbackEvent") or "completed").replace(",", " ").split()
            conference.recording_callback_events = frozenset(w for w in words if w in RECORDING_EVENTS)
        coach = (attrs.get("coach") or "").strip()
        participant = Participant(
            call_sid=call.sid,
            label=attrs.get("participantLabel"),
            muted=_flag(attrs.get("muted"), False),
            hold=False,
            start_conference_on_enter=_flag(attrs.get("startConferenceOnEnter"), True),
            end_conference_on_exit=_flag(attrs.get("endConferenceOnExit"), False),
            joined_t=now,
            coaching=bool(coach),
            call_sid_to_coach=coach or None,
        )
        conference.participants[call.sid] = participant
        call.conference_sid = conference.sid
        call.note("conference-join", now, conference_sid=conference.sid, friendly_name=name)
        conference.history.append(_entry("participant-join", now, call_sid=call.sid))
        self._event(conference, "participant-join", participant)
        starters = any(p.start_conference_on_enter for p in conference.participants.values())
        if conference.status == "init" and len(conference.participants) >= 2 and starters:
            conference.status = "in-progress"
            conference.updated_t = now
            conference.history.append(_entry("conference-start", now))
            self._event(conference, "conference-start")
            if conference.record:
                self._recorder.start(
                    call_sid=None,
                    conference_sid=conference.sid,
                    source="Conference",
                    channels=1,  # conference recordings are mixed mono (twilio.md, Recordings)
                    status_callback=conference.recording_callback,
                    status_callback_method=conference.recording_callback_method,
                    status_callback_events=conference.recording_callback_events,
                )
        self._notify_members(conference, extra=call)
        return participant

    def leave(self, call: SimCall, reason: str) -> None:
        """Take the call out of its room (idempotent). May end the room, which releases everyone else."""
        conference = self.by_sid.get(call.conference_sid or "")
        call.conference_sid = None
        if conference is None:
            return
        participant = conference.participants.pop(call.sid, None)
        if participant is None:
            return
        now = self._clock.now()
        participant.left.set()
        call.note("conference-leave", now, conference_sid=conference.sid, reason=reason)
        conference.history.append(_entry("participant-leave", now, call_sid=call.sid, reason=reason))
        self._event(conference, "participant-leave", participant, ReasonParticipantLeft=reason)
        if participant.end_conference_on_exit:
            self.end(conference, "participant-with-end-conference-on-exit-left", call.sid)
        elif not conference.participants:
            self.end(conference, "last-participant-left", call.sid)
        else:
            self._notify_members(conference, extra=call)

    def end(self, conference: Conference, reason: str, call_sid_ending: str | None = None) -> None:
        if not conference.active:
            return
        started = conference.status == "in-progress"
        now = self._clock.now()
        conference.status = "completed"
        conference.updated_t = now
        conference.reason_ended = reason
        conference.call_sid_ending = call_sid_ending
        for participant in list(conference.participants.values()):
            conference.participants.pop(participant.call_sid, None)
            participant.left.set()
            call = self._calls.get(participant.call_sid)
            if call is not None:
                call.conference_sid = None
                call.note("conference-leave", now, conference_sid=conference.sid, reason="conference_ended")
                call.notify(now)
            self._event(conference, "participant-leave", participant, ReasonParticipantLeft="conference_ended")
        conference.history.append(_entry("conference-end", now, reason=reason))
        self._recorder.conference_ended(conference.sid)
        if started:
            extra = {"ReasonConferenceEnded": reason, "Reason": reason}
            if call_sid_ending:
                extra["CallSidEndingConference"] = call_sid_ending
            self._event(conference, "conference-end", **extra)

    def set_flags(
        self,
        conference: Conference,
        call_sid: str,
        *,
        hold: bool | None,
        muted: bool | None,
        coaching: bool | None = None,
        call_sid_to_coach: str | None = None,
    ) -> None:
        participant = conference.participants[call_sid]
        if coaching is not None or call_sid_to_coach:
            new_coaching = participant.coaching if coaching is None else coaching
            new_target = (call_sid_to_coach or participant.call_sid_to_coach) if new_coaching else None
            if (new_coaching, new_target) != (participant.coaching, participant.call_sid_to_coach):
                participant.coaching, participant.call_sid_to_coach = new_coaching, new_target
                conference.history.append(
                    _entry("participant-modify", self._clock.now(), call_sid=call_sid, coaching=str(new_coaching))
                )
                self._event(conference, "participant-modify", participant)
        if hold is not None and hold != participant.hold:
            participant.hold = hold
            self._event(conference, "participant-hold" if hold else "participant-unhold", participant)
        if muted is not None and muted != participant.muted:
            participant.muted = muted
            self._event(conference, "participant-mute" if muted else "participant-unmute", participant)
        self._notify_members(conference)

    # -- plumbing ------------------------------------------------------------------------------------

    def _notify_members(self, conference: Conference, extra: SimCall | None = None) -> None:
        now = self._clock.now()
        for sid in conference.participants:
            call = self._calls.get(sid)
            if call is not None:
                call.notify(now)
        if extra is not None:
            extra.notify(now)

    def _event(self, conference: Conference, event: str, participant: Participant | None = None, **extra: str) -> None:
        sequence = conference.sequence
        conference.sequence += 1
        if not conference.status_callback or event not in conference.status_callback_events:
            return
        params = {
            "AccountSid": conference.account_sid,
            "ConferenceSid": conference.sid,
            "FriendlyName": conference.friendly_name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(sequence),
            "Timestamp": self._clock.rfc2822(),
        }
        if participant is not None:
            params.update(
                CallSid=participant.call_sid,
                Muted=str(participant.muted).lower(),
                Hold=str(participant.hold).lower(),
                Coaching=str(participant.coaching).lower(),
                EndConferenceOnExit=str(participant.end_conference_on_exit).lower(),
                StartConferenceOnEnter=str(participant.start_conference_on_enter).lower(),
            )
            if participant.label:
                params["ParticipantLabel"] = participant.label
            if participant.call_sid_to_coach:
                params["CallSidToCoach"] = participant.call_sid_to_coach
        params.update(extra)
        self._sender.send_callback(
            conference.deliveries,
            "conference-callback",
            conference.status_callback,
            conference.status_callback_method,
            params,
        )


def _entry(event: str, sim_t: float, **detail: str) -> TimelineEntry:
    return TimelineEntry(event=event, sim_t=sim_t, wall=time.time(), detail=detail)
