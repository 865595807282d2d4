"""Twilio's REST API (2010-04-01), the subset the app uses, in Twilio's wire format.

Form bodies with repeated keys in, JSON out, Basic auth, legacy error bodies `{code, message, more_info,
status}` (twilio-python raises TwilioRestException for those). See twilio.md §1, §1.5 and §6.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from aiohttp import BasicAuth, web
from multidict import MultiDictProxy

from voice.sandbox.behaviours import is_client, is_valid_to
from voice.sandbox.clock import SimClock
from voice.sandbox.config import SandboxConfig
from voice.sandbox.engine import API_VERSION, Engine, OutboundRequest
from voice.sandbox.recordings import RECORDING_EVENTS, SimRecording, wav_bytes
from voice.sandbox.state import STATUS_EVENTS, Conference, Participant, SimCall
from voice.sandbox.twiml import Source

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)

PREFIX = "/2010-04-01/Accounts/{account_sid}"
SID = "{sid:[A-Za-z0-9]+}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def twilio_error(http_status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http_status,
    }
    return web.json_response(body, status=http_status)


class TwilioError(Exception):
    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.response = twilio_error(http_status, code, message)


def _authorized(request: web.Request, config: SandboxConfig) -> bool:
    header = request.headers.get("Authorization", "")
    try:
        auth = BasicAuth.decode(header)
    except ValueError:
        return False
    accepted = [(config.account_sid, config.auth_token)]
    if config.api_key_sid and config.api_key_secret:
        accepted.append((config.api_key_sid, config.api_key_secret))
    return any(
        hmac.compare_digest(auth.login, user) and hmac.compare_digest(auth.password, secret)
        for user, secret in accepted
    )


@web.middleware
async def twilio_api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, auth and injected errors for Twilio paths; Twilio-shaped 404s for anything unknown there."""
    if not request.path.startswith("/2010-04-01/"):
        return await handler(request)
    engine = request.app[ENGINE]
    config = engine.config
    engine.stats["rest_requests"] += 1
    if config.rest_latency_s:
        await asyncio.sleep(config.rest_latency_s)
    if not _authorized(request, config):
        response = twilio_error(401, 20003, "Authenticate")
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response
    if request.match_info.get("account_sid", config.account_sid) != config.account_sid:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    if config.rest_error_rate and engine.rest_rng.random() < config.rest_error_rate:
        engine.stats["rest_errors_injected"] += 1
        if config.rest_error_kind == "429":
            return twilio_error(429, 20429, "Too Many Requests")
        return twilio_error(500, 20500, "Internal Server Error")
    try:
        return await handler(request)
    except TwilioError as exc:
        return exc.response
    except web.HTTPNotFound:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    except web.HTTPMethodNotAllowed:
        return twilio_error(405, 20004, "Method not allowed")


# -- JSON views ---------------------------------------------------------------------------------------


def _date(clock: SimClock, sim_t: float | None) -> str | None:
    return clock.rfc2822(sim_t) if sim_t is not None else None


def call_json(call: SimCall, clock: SimClock) -> dict[str, Any]:
    uri = f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.sid}"
    answered_and_over = call.status == "completed" and call.answered_t is not None
    return {
        "sid": call.sid,
        "date_created": _date(clock, call.created_t),
        "date_updated": _date(clock, call.updated_t or call.created_t),
        "parent_call_sid": None,
        "account_sid": call.account_sid,
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from_,
        "from_formatted": call.from_,
        "phone_number_sid": None,
        "status": call.status,
        "start_time": _date(clock, call.started_t),
        "end_time": _date(clock, call.ended_t),
        "duration": str(call.duration_s) if answered_and_over else None,
        "price": None,
        "price_unit": "USD",
        "direction": call.direction,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": str(call.queue_time_ms),
        "trunk_sid": None,
        "uri": uri + ".json",
        "subresource_uris": {
            name: f"{uri}/{path}.json"
            for name, path in (
                ("notifications", "Notifications"),
                ("recordings", "Recordings"),
                ("payments", "Payments"),
                ("events", "Events"),
                ("siprec", "Siprec"),
                ("streams", "Streams"),
                ("transcriptions", "Transcriptions"),
                ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
                ("user_defined_messages", "UserDefinedMessages"),
            )
        },
    }


def conference_json(conference: Conference, clock: SimClock) -> dict[str, Any]:
    uri = f"/2010-04-01/Accounts/{conference.account_sid}/Conferences/{conference.sid}"
    return {
        "sid": conference.sid,
        "account_sid": conference.account_sid,
        "friendly_name": conference.friendly_name,
        "status": conference.status,
        "region": "us1",
        "reason_conference_ended": conference.reason_ended,
        "call_sid_ending_conference": conference.call_sid_ending,
        "date_created": _date(clock, conference.created_t),
        "date_updated": _date(clock, conference.updated_t or conference.created_t),
        "api_version": API_VERSION,
        "uri": uri + ".json",
        "subresource_uris": {"participants": f"{uri}/Participants.json", "recordings": f"{uri}/Recordings.json"},
    }


def participant_json(conference: Conference, participant: Participant, clock: SimClock) -> dict[str, Any]:
    return {
        "account_sid": conference.account_sid,
        "call_sid": participant.call_sid,
        "conference_sid": conference.sid,
        "label": participant.label,
        "muted": participant.muted,
        "hold": participant.hold,
        "coaching": participant.coaching,
        "call_sid_to_coach": participant.call_sid_to_coach,
        "start_conference_on_enter": participant.start_conference_on_enter,
        "end_conference_on_exit": participant.end_conference_on_exit,
        "status": "connected",
        "queue_time": "0",
        "date_created": _date(clock, participant.joined_t),
        "date_updated": _date(clock, participant.joined_t),
        "uri": f"/2010-04-01/Accounts/{conference.account_sid}/Conferences/{conference.sid}/Participants/"
        f"{participant.call_sid}.json",
    }


def _page(request: web.Request, key: str, items: list[dict[str, Any]], filters: dict[str, str]) -> web.Response:
    """A Twilio list page: exactly one non-meta key (twilio-python needs that), relative paging URIs."""
    try:
        page = max(0, int(request.query.get("Page", "0")))
        size = min(1000, max(1, int(request.query.get("PageSize", "50"))))
    except ValueError as exc:
        raise TwilioError(400, 20001, "Page and PageSize must be integers") from exc
    chunk = items[page * size : (page + 1) * size]

    def uri(n: int) -> str:
        return f"{request.path}?{urlencode({**filters, 'PageSize': size, 'Page': n})}"

    start = page * size
    return web.json_response(
        {
            key: chunk,
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if (page + 1) * size < len(items) else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "uri": uri(page),
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(0, len(chunk) - 1),
        }
    )


# -- Calls ------------------------------------------------------------------------------------------


def _valid_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(("http://", "https://"))


def _method(form: MultiDictProxy[Any], name: str) -> str:
    value = str(form.get(name) or "POST").upper()
    if value not in ("GET", "POST"):
        raise TwilioError(400, 21205, f"{name} must be GET or POST")
    return value


def _status_events(values: Iterable[str]) -> frozenset[str]:
    words = [word for value in values for word in str(value).replace(",", " ").split()]
    if not words:
        return frozenset({"completed"})
    # Unknown values are a warning at Twilio (21626); they simply subscribe to nothing.
    return frozenset(word for word in words if word in STATUS_EVENTS)


def _seconds(value: Any, default: float, low: float, high: float) -> float:
    try:
        return min(high, max(low, float(value))) if value not in (None, "") else default
    except ValueError:
        return default


def _call(request: web.Request) -> SimCall:
    call = request.app[ENGINE].calls.get(request.match_info["sid"])
    if call is None:
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return call


async def create_call(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    form = await request.post()
    to, from_ = str(form.get("To") or "").strip(), str(form.get("From") or "").strip()
    if not to:
        return twilio_error(400, 21201, "A 'To' phone number is required.")
    if not from_:
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not is_valid_to(to):
        return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    url, twiml = form.get("Url"), form.get("Twiml")
    if not url and not twiml:
        return twilio_error(400, 21205, "Url parameter is required.")
    for name in ("Url", "FallbackUrl", "StatusCallback", "AsyncAmdStatusCallback"):
        if form.get(name) and not _valid_url(str(form.get(name))):
            return twilio_error(400, 21205, f"{name} is not a valid URL: {form.get(name)}")
    machine_detection = form.get("MachineDetection")
    if machine_detection not in ("Enable", "DetectMessageEnd") or form.get("SendDigits"):
        machine_detection = None  # SendDigits disables AMD (twilio.md §1.1)
    request_ = OutboundRequest(
        to=to,
        from_=from_,
        url=str(url) if url else None,  # both given: Twiml is ignored
        method=_method(form, "Method"),
        twiml=None if url else str(twiml),
        fallback_url=str(form["FallbackUrl"]) if form.get("FallbackUrl") else None,
        fallback_method=_method(form, "FallbackMethod"),
        status_callback=str(form["StatusCallback"]) if form.get("StatusCallback") else None,
        status_callback_method=_method(form, "StatusCallbackMethod"),
        status_callback_events=_status_events(form.getall("StatusCallbackEvent", [])),
        timeout_s=_seconds(form.get("Timeout"), 60.0, 1.0, 600.0),
        machine_detection=str(machine_detection) if machine_detection else None,
        machine_detection_timeout_s=_seconds(form.get("MachineDetectionTimeout"), 30.0, 3.0, 59.0),
        async_amd=str(form.get("AsyncAmd") or "").lower() == "true",
        amd_callback=str(form["AsyncAmdStatusCallback"]) if form.get("AsyncAmdStatusCallback") else None,
        amd_callback_method=_method(form, "AsyncAmdStatusCallbackMethod"),
    )
    call = engine.create_call(request_)
    return web.json_response(call_json(call, engine.clock), status=201)


async def list_calls(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = {k: request.query[k] for k in ("To", "From", "Status") if request.query.get(k)}
    wanted = {"To": lambda c: c.to, "From": lambda c: c.from_, "Status": lambda c: c.status}
    selected = [
        c
        for c in reversed(list(engine.calls.values()))  # newest first, like Twilio
        if all(wanted[name](c) == value for name, value in filters.items())
    ]
    return _page(request, "calls", [call_json(c, engine.clock) for c in selected], filters)


async def fetch_call(request: web.Request) -> web.Response:
    return web.json_response(call_json(_call(request), request.app[ENGINE].clock))


async def update_call(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    call = _call(request)
    form = await request.post()
    if call.ended:
        return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
    status = form.get("Status")
    if status is not None and status not in ("canceled", "completed"):
        return twilio_error(400, 21218, "Status must be 'canceled' or 'completed'.")
    url, twiml = form.get("Url"), form.get("Twiml")
    for name in ("Url", "FallbackUrl", "StatusCallback"):
        if form.get(name) and not _valid_url(str(form.get(name))):
            return twilio_error(400, 21205, f"{name} is not a valid URL: {form.get(name)}")
    if form.get("FallbackUrl"):
        call.fallback_url, call.fallback_method = str(form["FallbackUrl"]), _method(form, "FallbackMethod")
    if form.get("StatusCallback") and url:
        # Twilio only honours a new StatusCallback together with a new Url (twilio.md §1.4).
        call.status_callback = str(form["StatusCallback"])
        call.status_callback_method = _method(form, "StatusCallbackMethod")
    if status:
        engine.cancel_or_complete(call, str(status))
    elif url:
        engine.redirect(call, Source(kind="rest-redirect", url=str(url), method=_method(form, "Method")))
    elif twiml:
        engine.redirect(call, Source(kind="twiml", twiml=str(twiml)))
    return web.json_response(call_json(call, engine.clock))


# -- Conferences ------------------------------------------------------------------------------------


def _conference(request: web.Request) -> Conference:
    conference = request.app[ENGINE].rooms.by_sid.get(request.match_info["sid"])
    if conference is None:
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return conference


def _participant(request: web.Request, conference: Conference) -> Participant:
    key = request.match_info["call_sid"]
    for participant in conference.participants.values():
        if key in (participant.call_sid, participant.label):
            return participant
    raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")


async def list_conferences(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = {k: request.query[k] for k in ("FriendlyName", "Status") if request.query.get(k)}
    selected = [
        c
        for c in reversed(list(engine.rooms.by_sid.values()))
        if filters.get("FriendlyName", c.friendly_name) == c.friendly_name
        and filters.get("Status", c.status) == c.status
    ]
    return _page(request, "conferences", [conference_json(c, engine.clock) for c in selected], filters)


async def fetch_conference(request: web.Request) -> web.Response:
    return web.json_response(conference_json(_conference(request), request.app[ENGINE].clock))


async def update_conference(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = _conference(request)
    form = await request.post()
    status = form.get("Status")
    if status is not None and status != "completed":
        return twilio_error(400, 21218, "Status must be 'completed'.")
    if status == "completed":
        engine.end_conference(conference)
    return web.json_response(conference_json(conference, engine.clock))


async def list_participants(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = _conference(request)
    items = [participant_json(conference, p, engine.clock) for p in conference.participants.values()]
    return _page(request, "participants", items, {})


async def fetch_participant(request: web.Request) -> web.Response:
    conference = _conference(request)
    return web.json_response(participant_json(conference, _participant(request, conference), request.app[ENGINE].clock))


# Participants API create parameters -> the <Conference> attributes the new call joins with.
PARTICIPANT_ATTRS = {
    "Muted": "muted",
    "Label": "participantLabel",
    "StartConferenceOnEnter": "startConferenceOnEnter",
    "EndConferenceOnExit": "endConferenceOnExit",
    "Beep": "beep",
    "ConferenceStatusCallback": "statusCallback",
    "ConferenceStatusCallbackMethod": "statusCallbackMethod",
    "ConferenceRecordingStatusCallback": "recordingStatusCallback",
    "ConferenceRecordingStatusCallbackMethod": "recordingStatusCallbackMethod",
}


async def create_participant(request: web.Request) -> web.Response:
    """Dial `To` (a number, or `client:<identity>`: an emulated softphone that answers at once) and put the call in
    the room when it answers, with the given flags. The path names the room by SID (it must be active) or by
    FriendlyName (created if none is active)."""
    engine = request.app[ENGINE]
    key = request.match_info["sid"]
    if key.startswith("CF"):
        conference = _conference(request)
        if not conference.active:
            return twilio_error(400, 21218, f"Conference {key} is not active")
    else:
        conference = engine.rooms.open_named(key)
    form = await request.post()
    to, from_ = str(form.get("To") or "").strip(), str(form.get("From") or "").strip()
    if not to:
        return twilio_error(400, 21201, "A 'To' phone number is required.")
    if not from_:
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not (is_valid_to(to) or is_client(to)):
        return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number or client.")
    attrs = {name: str(form[param]) for param, name in PARTICIPANT_ATTRS.items() if form.get(param)}
    if str(form.get("Coaching") or "").lower() == "true":
        coach = str(form.get("CallSidToCoach") or "")
        if coach not in conference.participants:
            return twilio_error(400, 21218, "CallSidToCoach must name a participant of this conference")
        attrs["coach"] = coach
    events = [w for v in form.getall("ConferenceStatusCallbackEvent", []) for w in str(v).replace(",", " ").split()]
    if events:
        attrs["statusCallbackEvent"] = " ".join(events)
    record = str(form.get("ConferenceRecord") or "").lower()
    if record in ("true", "record-from-start"):
        attrs["record"] = "record-from-start"
    document = "<Response><Dial><Conference{}>{}</Conference></Dial></Response>".format(
        "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items()), escape(conference.friendly_name)
    )
    if form.get("StatusCallback") and not _valid_url(str(form["StatusCallback"])):
        return twilio_error(400, 21205, f"StatusCallback is not a valid URL: {form['StatusCallback']}")
    call = engine.create_call(
        OutboundRequest(
            to=to,
            from_=from_,
            twiml=document,
            status_callback=str(form["StatusCallback"]) if form.get("StatusCallback") else None,
            status_callback_method=_method(form, "StatusCallbackMethod"),
            status_callback_events=_status_events(form.getall("StatusCallbackEvent", [])),
            timeout_s=_seconds(form.get("Timeout"), 60.0, 5.0, 600.0),
        )
    )
    pending = Participant(
        call_sid=call.sid,
        label=attrs.get("participantLabel"),
        muted=attrs.get("muted", "").lower() == "true",
        hold=False,
        start_conference_on_enter=attrs.get("startConferenceOnEnter", "true").lower() == "true",
        end_conference_on_exit=attrs.get("endConferenceOnExit", "").lower() == "true",
        joined_t=engine.clock.now(),
        coaching="coach" in attrs,
        call_sid_to_coach=attrs.get("coach"),
    )
    body = participant_json(conference, pending, engine.clock)
    body.update(status="queued", queue_time=str(call.queue_time_ms))
    return web.json_response(body, status=201)


async def update_participant(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = _conference(request)
    participant = _participant(request, conference)
    form = await request.post()

    def flag(name: str) -> bool | None:
        value = form.get(name)
        return None if value is None else str(value).lower() == "true"

    coach_sid = str(form.get("CallSidToCoach") or "") or None
    coaching = flag("Coaching")
    if coaching and not (coach_sid or participant.call_sid_to_coach):
        return twilio_error(400, 21218, "CallSidToCoach is required when Coaching is true")
    if coach_sid and coach_sid not in conference.participants:
        return twilio_error(400, 21218, f"CallSidToCoach {coach_sid} is not a participant of this conference")
    engine.rooms.set_flags(
        conference,
        participant.call_sid,
        hold=flag("Hold"),
        muted=flag("Muted"),
        coaching=coaching,
        call_sid_to_coach=coach_sid,
    )
    return web.json_response(participant_json(conference, participant, engine.clock))


async def kick_participant(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = _conference(request)
    participant = _participant(request, conference)
    call = engine.calls.get(participant.call_sid)
    if call is not None:
        engine.rooms.leave(call, "participant_kicked")
    return web.Response(status=204)


# -- Recordings -------------------------------------------------------------------------------------


def recording_json(recording: SimRecording, clock: SimClock) -> dict[str, Any]:
    uri = f"/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"
    done = not recording.live
    return {
        "sid": recording.sid,
        "account_sid": recording.account_sid,
        "call_sid": recording.call_sid,
        "conference_sid": recording.conference_sid,
        "status": recording.status,
        "source": recording.source,
        "channels": recording.channels,
        "track": recording.track,
        "duration": str(recording.duration_s(clock.now())) if done else "-1",
        "start_time": _date(clock, recording.started_t),
        "date_created": _date(clock, recording.started_t),
        "date_updated": _date(clock, recording.ended_t or recording.started_t),
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "api_version": API_VERSION,
        "media_url": f"https://api.twilio.com{uri}",
        "uri": uri + ".json",
        "subresource_uris": {"transcriptions": f"{uri}/Transcriptions.json"},
        "encryption_details": None,
    }


def _recording(request: web.Request) -> SimRecording:
    recording = request.app[ENGINE].recorder.by_sid.get(request.match_info["rsid"])
    # A deleted recording is gone for every purpose (Twilio answers 404).
    if recording is None or recording.status == "deleted":
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return recording


def _current(request: web.Request, *, call_sid: str | None = None, conference_sid: str | None = None) -> SimRecording:
    """The recording a `.../Recordings/{RE|Twilio.CURRENT}.json` path names, within its call or conference."""
    recorder = request.app[ENGINE].recorder
    key = request.match_info["rsid"]
    if key == "Twilio.CURRENT":
        if call_sid:
            recording = recorder.current_for_call(call_sid)
        else:
            recording = recorder.current_for_conference(conference_sid or "")
    else:
        recording = recorder.by_sid.get(key)
        owner = recording.call_sid if call_sid else (recording.conference_sid if recording else None)
        if recording is not None and owner != (call_sid or conference_sid):
            recording = None
    if recording is None or recording.status == "deleted":
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return recording


async def create_call_recording(request: web.Request) -> web.Response:
    """Start recording a live call (RecordingSource StartCallRecordingAPI)."""
    engine = request.app[ENGINE]
    call = _call(request)
    form = await request.post()
    if call.status != "in-progress":
        return twilio_error(400, 21220, "Call is not in-progress. Cannot start recording.")
    channels = str(form.get("RecordingChannels") or "mono").lower()
    if channels not in ("mono", "dual"):
        return twilio_error(400, 21218, "RecordingChannels must be mono or dual")
    callback = form.get("RecordingStatusCallback")
    if callback and not _valid_url(str(callback)):
        return twilio_error(400, 21205, f"RecordingStatusCallback is not a valid URL: {callback}")
    events = form.getall("RecordingStatusCallbackEvent", [])
    words = [w for value in events for w in str(value).replace(",", " ").split()]
    recording = engine.recorder.start(
        call_sid=call.sid,
        conference_sid=None,
        source="StartCallRecordingAPI",
        channels=2 if channels == "dual" else 1,
        track=str(form.get("RecordingTrack") or "both"),
        status_callback=str(callback) if callback else None,
        status_callback_method=_method(form, "RecordingStatusCallbackMethod"),
        status_callback_events=frozenset(w for w in words if w in RECORDING_EVENTS) or frozenset({"completed"}),
    )
    call.note("recording-started", engine.clock.now(), recording_sid=recording.sid, channels=channels)
    return web.json_response(recording_json(recording, engine.clock), status=201)


async def _update_recording(request: web.Request, recording: SimRecording) -> web.Response:
    engine = request.app[ENGINE]
    form = await request.post()
    status = str(form.get("Status") or "")
    if status not in ("paused", "in-progress", "stopped"):
        return twilio_error(400, 21218, "Status must be paused, in-progress or stopped")
    if not recording.live:
        return twilio_error(400, 21220, "Recording is not in-progress or paused.")
    behaviour = str(form.get("PauseBehavior") or "silence")
    if behaviour not in ("skip", "silence"):
        return twilio_error(400, 21218, "PauseBehavior must be skip or silence")
    engine.recorder.set_status(recording, status, pause_behavior=behaviour)
    return web.json_response(recording_json(recording, engine.clock))


async def update_call_recording(request: web.Request) -> web.Response:
    call = _call(request)
    return await _update_recording(request, _current(request, call_sid=call.sid))


async def list_call_recordings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    call = _call(request)
    items = [
        recording_json(r, engine.clock)
        for r in reversed(list(engine.recorder.by_sid.values()))
        if r.call_sid == call.sid and r.status != "deleted"
    ]
    return _page(request, "recordings", items, {})


async def update_conference_recording(request: web.Request) -> web.Response:
    conference = _conference(request)
    return await _update_recording(request, _current(request, conference_sid=conference.sid))


async def list_conference_recordings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = _conference(request)
    items = [
        recording_json(r, engine.clock)
        for r in reversed(list(engine.recorder.by_sid.values()))
        if r.conference_sid == conference.sid and r.status != "deleted"
    ]
    return _page(request, "recordings", items, {})


async def list_recordings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    filters = {k: request.query[k] for k in ("CallSid", "ConferenceSid") if request.query.get(k)}
    items = [
        recording_json(r, engine.clock)
        for r in reversed(list(engine.recorder.by_sid.values()))
        if r.status != "deleted"
        and filters.get("CallSid", r.call_sid) == r.call_sid
        and filters.get("ConferenceSid", r.conference_sid) == r.conference_sid
    ]
    return _page(request, "recordings", items, filters)


async def fetch_recording(request: web.Request) -> web.Response:
    return web.json_response(recording_json(_recording(request), request.app[ENGINE].clock))


async def delete_recording(request: web.Request) -> web.Response:
    request.app[ENGINE].recorder.delete(_recording(request))
    return web.Response(status=204)


async def recording_media(request: web.Request) -> web.Response:
    """The audio, once the recording is over. Only `.wav` is generated (an `.mp3` URL is a 404 here)."""
    engine = request.app[ENGINE]
    recording = _recording(request)
    if recording.live:
        raise TwilioError(404, 20404, "The recording is not completed yet")
    return web.Response(body=wav_bytes(recording, engine.clock.now()), content_type="audio/x-wav")


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/Calls.json", create_call)
    app.router.add_get(f"{PREFIX}/Calls.json", list_calls)
    app.router.add_get(f"{PREFIX}/Calls/{SID}.json", fetch_call)
    app.router.add_post(f"{PREFIX}/Calls/{SID}.json", update_call)
    app.router.add_get(f"{PREFIX}/Conferences.json", list_conferences)
    app.router.add_get(f"{PREFIX}/Conferences/{SID}.json", fetch_conference)
    app.router.add_post(f"{PREFIX}/Conferences/{SID}.json", update_conference)
    app.router.add_get(f"{PREFIX}/Conferences/{SID}/Participants.json", list_participants)
    # A FriendlyName may stand in for the SID when creating a participant.
    app.router.add_post(f"{PREFIX}/Conferences/{{sid:[^/]+}}/Participants.json", create_participant)
    participant = f"{PREFIX}/Conferences/{SID}/Participants/{{call_sid:[^/]+}}.json"
    app.router.add_get(participant, fetch_participant)
    app.router.add_post(participant, update_participant)
    app.router.add_delete(participant, kick_participant)
    rsid = "{rsid:[A-Za-z0-9.]+}"
    app.router.add_post(f"{PREFIX}/Calls/{SID}/Recordings.json", create_call_recording)
    app.router.add_get(f"{PREFIX}/Calls/{SID}/Recordings.json", list_call_recordings)
    app.router.add_post(f"{PREFIX}/Calls/{SID}/Recordings/{rsid}.json", update_call_recording)
    app.router.add_get(f"{PREFIX}/Conferences/{SID}/Recordings.json", list_conference_recordings)
    app.router.add_post(f"{PREFIX}/Conferences/{SID}/Recordings/{rsid}.json", update_conference_recording)
    app.router.add_get(f"{PREFIX}/Recordings.json", list_recordings)
    app.router.add_get(f"{PREFIX}/Recordings/{{rsid:RE[A-Za-z0-9]+}}.json", fetch_recording)
    app.router.add_delete(f"{PREFIX}/Recordings/{{rsid:RE[A-Za-z0-9]+}}.json", delete_recording)
    app.router.add_get(f"{PREFIX}/Recordings/{{rsid:RE[A-Za-z0-9]+}}.wav", recording_media)
