"""The only module that talks to Twilio's REST API (and the only importer of `twilio.rest`).

Every request goes to `TWILIO_API_BASE_URL`, so the sandbox (or any Twilio-compatible fake) stands in
for Twilio with nothing else changed. Results and errors are typed so services never parse Twilio's
exceptions; retries happen only where Twilio says a request was not processed (429 / 20429) or where
repeating it is harmless (5xx on an idempotent request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlparse, urlunparse

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.rest import Client

log = logging.getLogger(__name__)

NOT_IN_PROGRESS = 21220
NOT_FOUND = 20404
INVALID_TO_CODES = frozenset({21211, 21214, 21217, 13224})
TOO_MANY_REQUESTS = 20429
RETRY_DELAYS_S = (0.1, 0.3, 0.9)


class GatewayError(Exception):
    """A REST request failed. `retryable` says whether trying again later may work."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable


class CallAlreadyEnded(GatewayError):
    """Twilio says the call is not in progress (21220): the callee is gone."""


class InvalidNumber(GatewayError):
    """The number can never be dialed (21211 and friends)."""


class NotFound(GatewayError):
    """Twilio does not know the resource (404 / 20404): a call it forgot, or one it never placed."""


class Ambiguous(GatewayError):
    """No answer came back (timeout, connection reset): Twilio may or may not have acted on the request."""


@dataclass(frozen=True)
class CallInfo:
    sid: str
    status: str
    answered_by: str
    duration_s: int | None
    to: str = ""
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class AmdSettings:
    mode: str
    timeout_s: int
    speech_threshold_ms: int
    speech_end_threshold_ms: int
    silence_timeout_ms: int


class BaseUrlHttpClient(TwilioHttpClient):
    """Sends every request to the configured base URL, whatever host twilio-python built.

    The rewrite runs after the client applied edge/region, so those settings cannot misroute it.
    """

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self._base = urlparse(base_url)

    def request(self, method, url, *args, **kwargs):
        parts = urlparse(url)
        url = urlunparse(parts._replace(scheme=self._base.scheme, netloc=self._base.netloc))
        return super().request(method, url, *args, **kwargs)


@cache
def _client_for(base_url: str, account_sid: str, auth_token: str, api_key: str, api_secret: str,
                timeout_s: float) -> Client:
    http_client = BaseUrlHttpClient(base_url, timeout=timeout_s, pool_connections=True)
    if api_key and api_secret:
        return Client(api_key, api_secret, account_sid, http_client=http_client)
    return Client(account_sid, auth_token, http_client=http_client)


def client() -> Client:
    # Cached per configuration: tests and the demo change settings at run time.
    return _client_for(
        settings.TWILIO_API_BASE_URL, settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_API_KEY, settings.TWILIO_API_SECRET, settings.TWILIO_HTTP_TIMEOUT_S,
    )


def _translate(exc: Exception) -> GatewayError:
    if isinstance(exc, TwilioRestException):
        code, status = exc.code, exc.status
        message = f"Twilio {status} {code}: {exc.msg}"
        if code == NOT_IN_PROGRESS:
            return CallAlreadyEnded(message, code=code, status=status)
        if code in INVALID_TO_CODES:
            return InvalidNumber(message, code=code, status=status)
        if status == 404 or code == NOT_FOUND:
            return NotFound(message, code=code, status=status)
        retryable = status == 429 or code == TOO_MANY_REQUESTS or (status or 0) >= 500
        return GatewayError(message, code=code, status=status, retryable=retryable)
    # Connection errors and timeouts: we cannot know whether Twilio processed the request.
    return Ambiguous(f"Twilio unreachable: {exc}", retryable=True)


def _call(op, *, idempotent: bool):
    """Run one REST operation with retries where they are safe."""
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            return op()
        except (TwilioException, OSError) as exc:
            error = _translate(exc)
            not_processed = error.status == 429 or error.code == TOO_MANY_REQUESTS
            safe = not_processed or (idempotent and error.retryable)
            if delay is None or not safe:
                raise error from exc
            log.warning("twilio request failed (attempt %d), retrying: %s", attempt + 1, error)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _call_info(call) -> CallInfo:
    duration = int(call.duration) if call.duration not in (None, "") else None
    created = call.date_created if isinstance(call.date_created, dt.datetime) else None
    return CallInfo(sid=call.sid, status=call.status, answered_by=call.answered_by or "", duration_s=duration,
                    to=call.to or "", created_at=created)


# -- operations ------------------------------------------------------------------------------------


def create_call(*, to: str, from_: str, url: str, status_callback: str, amd_callback: str, amd: AmdSettings,
                timeout_s: int, fallback_url: str | None = None) -> CallInfo:
    """Place an outbound call with asynchronous AMD. Not retried on 5xx: a retry could ring twice."""

    def op():
        return client().calls.create(
            to=to, from_=from_, caller_id=from_, url=url, method="POST", fallback_url=fallback_url,
            status_callback=status_callback, status_callback_method="POST",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            timeout=timeout_s,
            machine_detection=amd.mode,
            machine_detection_timeout=amd.timeout_s,
            machine_detection_speech_threshold=amd.speech_threshold_ms,
            machine_detection_speech_end_threshold=amd.speech_end_threshold_ms,
            machine_detection_silence_timeout=amd.silence_timeout_ms,
            async_amd="true", async_amd_status_callback=amd_callback, async_amd_status_callback_method="POST",
        )

    return _call_info(_call(op, idempotent=False))


def redirect_call(*, sid: str, url: str) -> None:
    """Interrupt whatever the call runs and fetch new TwiML from `url`. Idempotent."""
    _call(lambda: client().calls(sid).update(url=url, method="POST"), idempotent=True)


def hangup_call(*, sid: str, ringing_only: bool = False) -> None:
    """End a call. ringing_only: `canceled`, which leaves an answered call alone (a released sibling)."""
    status = "canceled" if ringing_only else "completed"
    try:
        _call(lambda: client().calls(sid).update(status=status), idempotent=True)
    except CallAlreadyEnded:
        return


def fetch_call(*, sid: str) -> CallInfo:
    return _call_info(_call(lambda: client().calls(sid).fetch(), idempotent=True))


def find_calls(*, to: str, limit: int = 20) -> list[CallInfo]:
    """Twilio's newest calls to one number: how an ambiguous create (no answer, so no SID) is looked up."""
    return [_call_info(c) for c in _call(lambda: client().calls.list(to=to, limit=limit), idempotent=True)]


@dataclass(frozen=True)
class Softphone:
    """What a browser needs to place its leg into a room: an agent's, or a supervising manager's."""

    token: str
    identity: str
    params: dict
    sandbox: bool


def softphone_token(*, identity: str, ttl_s: int = 3600) -> str:
    """A Voice SDK access token. Signed with the API key (Twilio refuses tokens signed with the auth token).

    In sandbox mode there is no API key: the token is still a well-formed JWT for the emulated softphone.
    """
    key = settings.TWILIO_API_KEY or "SK" + "0" * 32
    # Without an API key (sandbox) nothing verifies the token; a derived 64-byte key keeps it well-formed.
    secret = settings.TWILIO_API_SECRET or hashlib.sha256(settings.TWILIO_AUTH_TOKEN.encode()).hexdigest()
    token = AccessToken(settings.TWILIO_ACCOUNT_SID, key, secret, identity=identity, ttl=ttl_s)
    token.add_grant(VoiceGrant(outgoing_application_sid=settings.TWILIO_TWIML_APP_SID, incoming_allow=True))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else jwt


# -- recordings and supervision ---------------------------------------------------------------------------

CURRENT_RECORDING = "Twilio.CURRENT"


@dataclass(frozen=True)
class RecordingInfo:
    sid: str
    status: str
    channels: int


def start_call_recording(*, call_sid: str, status_callback: str, dual: bool = True) -> RecordingInfo:
    """Record a live call from now on (both directions; dual-channel: the customer on one channel, the room they
    hear on the other). Not retried on 5xx: a retry could start a second recording (look first: call_recordings)."""

    def op():
        return client().calls(call_sid).recordings.create(
            recording_channels="dual" if dual else "mono",
            recording_status_callback=status_callback, recording_status_callback_method="POST",
            recording_status_callback_event=["in-progress", "completed", "absent"],
        )

    recording = _call(op, idempotent=False)
    return _recording_info(recording)


def call_recordings(*, call_sid: str) -> list[RecordingInfo]:
    """The recordings of a call, newest first: how a start that got no answer (or whose sender died) is looked up
    before it is sent again."""
    return [_recording_info(r) for r in _call(lambda: client().calls(call_sid).recordings.list(limit=20),
                                              idempotent=True)]


def _recording_info(recording) -> RecordingInfo:
    return RecordingInfo(sid=recording.sid, status=recording.status, channels=int(recording.channels or 1))


def set_call_recording_status(*, call_sid: str, status: str, recording_sid: str = CURRENT_RECORDING) -> str:
    """Pause (`paused`, keeping the gap as silence so the timeline stays true) or resume (`in-progress`) a call's
    recording. Idempotent."""

    def op():
        kwargs = {"pause_behavior": "silence"} if status == "paused" else {}
        return client().calls(call_sid).recordings(recording_sid).update(status=status, **kwargs)

    return _call(op, idempotent=True).status


def delete_recording(*, sid: str) -> None:
    """Delete a recording at Twilio; one already gone counts as deleted."""
    try:
        _call(lambda: client().recordings(sid).delete(), idempotent=True)
    except GatewayError as exc:
        if exc.status != 404:
            raise


def recording_media(*, media_url: str, chunk_size: int = 64 * 1024):
    """(content type, byte chunks) of a completed recording's WAV, fetched with the account's credentials from
    TWILIO_API_BASE_URL (Twilio's media URL names api.twilio.com; the path is what counts)."""
    base = urlparse(settings.TWILIO_API_BASE_URL)
    url = urlunparse(urlparse(media_url + ".wav")._replace(scheme=base.scheme, netloc=base.netloc))
    auth = ((settings.TWILIO_API_KEY, settings.TWILIO_API_SECRET) if settings.TWILIO_API_KEY
            and settings.TWILIO_API_SECRET else (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN))
    try:
        response = requests.get(url, auth=auth, stream=True, timeout=settings.TWILIO_HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        raise GatewayError(f"Twilio unreachable: {exc}", retryable=True) from exc
    if response.status_code != 200:
        response.close()
        raise GatewayError(f"Twilio {response.status_code} fetching recording media", status=response.status_code)

    def chunks():
        with response:
            yield from response.iter_content(chunk_size)

    return response.headers.get("Content-Type", "audio/x-wav"), chunks()


def update_participant(*, conference_sid: str, call_sid: str, muted: bool, coach_call_sid: str | None) -> None:
    """Set a supervisor's flags in a room: muted (listen), coaching `coach_call_sid` (whisper), or neither (barge).
    Idempotent."""

    def op():
        kwargs = {"muted": muted, "coaching": coach_call_sid is not None}
        if coach_call_sid:
            kwargs["call_sid_to_coach"] = coach_call_sid
        return client().conferences(conference_sid).participants(call_sid).update(**kwargs)

    _call(op, idempotent=True)


def remove_participant(*, conference_sid: str, call_sid: str) -> None:
    """Take a participant out of a room (the rest of the room carries on); one already gone is fine."""
    try:
        _call(lambda: client().conferences(conference_sid).participants(call_sid).delete(), idempotent=True)
    except GatewayError as exc:
        if exc.status != 404:
            raise


def conference_sid_for(*, room: str) -> str | None:
    """The in-progress conference named `room` (only one can be, per name)."""
    rooms = _call(lambda: client().conferences.list(friendly_name=room, status="in-progress", limit=1),
                  idempotent=True)
    return rooms[0].sid if rooms else None
