"""The one place TwiML is built. Every document is small, valid, and ends the call when it should."""

from __future__ import annotations

from django.conf import settings
from django.templatetags.static import static
from twilio.twiml.voice_response import Dial, VoiceResponse

from voice.links import webhook_url

SORRY = "We are sorry, this call cannot be completed right now. Goodbye."


def _absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL + path


def default_hold_audio() -> str:
    return _absolute(static("audio/hold.wav"))


def hold(*, audio_url: str = "") -> str:
    """Hold audio while AMD decides; loop=0 repeats until a REST redirect interrupts it."""
    response = VoiceResponse()
    response.play(audio_url or default_hold_audio(), loop=0)
    return str(response)


def conference(*, room: str, session_id: int, agent: bool, announcement: str = "") -> str:
    """Join the agent's room. The agent's leg keeps the room alive between customers. `announcement` (a recorded
    campaign's notice) plays to the customer first, before the talk and its recording begin."""
    response = VoiceResponse()
    if announcement:
        response.say(announcement)
    dial = Dial()
    dial.conference(
        room,
        beep=False,
        start_conference_on_enter=True,
        end_conference_on_exit=False,
        wait_url="" if not agent else None,
        status_callback=webhook_url("conference-events", session=session_id),
        status_callback_method="POST",
        status_callback_event="start end join leave",
    )
    response.append(dial)
    if not agent:
        # The customer leaves when the agent ends the talk; nothing more to run.
        response.hangup()
    return str(response)


def supervisor(*, room: str, muted: bool, coach_call_sid: str | None) -> str:
    """A manager's softphone joins an agent's room: muted to listen, coaching the agent's leg to whisper (only the
    agent hears them), neither to barge. Never starts or ends the room: the talk is not theirs."""
    response = VoiceResponse()
    dial = Dial()
    options = {"coach": coach_call_sid} if coach_call_sid else {}
    dial.conference(room, beep=False, muted=muted, start_conference_on_enter=False, end_conference_on_exit=False,
                    **options)
    response.append(dial)
    response.hangup()
    return str(response)


def message_then_hangup(*, text: str = "", audio_url: str = "") -> str:
    response = VoiceResponse()
    if audio_url:
        response.play(audio_url)
    elif text:
        response.say(text)
    response.hangup()
    return str(response)


def hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def polite_hangup() -> str:
    """For an unknown or ended call, or an internal error: never Twilio's 'application error'."""
    response = VoiceResponse()
    response.say(SORRY)
    response.hangup()
    return str(response)
