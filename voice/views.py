"""HTTP views for recordings and supervision: parse, authorise, delegate (to voice.recordings / voice.supervision).

JSON endpoints answer like the rest of the API (400 names the field, 401, 403, 409); a Twilio request that fails
is a 502 with what Twilio said, and nothing was changed here.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from campaigns import services as campaign_services
from campaigns.exceptions import BadInput, IllegalAction, NotAllowed
from voice import gateway, recordings, supervision
from voice.api import _session, api
from voice.models import Recording


def twilio_errors_are_502(view):
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except gateway.GatewayError as exc:
            return JsonResponse({"error": f"Twilio could not do it: {exc}"}, status=502)

    return wrapper


# -- supervision ---------------------------------------------------------------------------------------------


@twilio_errors_are_502
@api("POST", "DELETE")
def supervise(request: HttpRequest, body: dict, campaign_id: int):
    """POST {call_id, mode: listen | whisper | barge | leave}; DELETE leaves."""
    campaign = campaign_services.access_campaign(request.user, campaign_id)
    mode = body.get("mode")
    if request.method == "DELETE" or mode == "leave":
        ended = supervision.supervision_stop(user=request.user, campaign=campaign)
        return JsonResponse({"supervision": supervision.supervision_json(ended), "softphone": None})
    current, phone = supervision.supervision_start(user=request.user, campaign=campaign,
                                                   call_id=body.get("call_id"), mode=str(mode or ""))
    softphone = None if phone is None else {"token": phone.token, "identity": phone.identity,
                                            "params": phone.params, "sandbox": phone.sandbox, "supervisor": True}
    return JsonResponse({"supervision": supervision.supervision_json(current), "softphone": softphone})


# -- the agent pauses and resumes the recording ------------------------------------------------------------------


@twilio_errors_are_502
@api("POST")
def recording_pause(request: HttpRequest, body: dict, campaign_id: int):
    """POST {action: pause | resume} for the recording of the caller's own talk."""
    campaign = campaign_services.access_campaign(request.user, campaign_id)
    action = body.get("action")
    if action not in ("pause", "resume"):
        raise BadInput("unknown action", {"action": "pause or resume"})
    recording = recordings.recording_set_paused(session=_session(request, campaign), paused=action == "pause")
    return JsonResponse({"recording": {"id": recording.pk, "status": recording.status}})


# -- playback ---------------------------------------------------------------------------------------------------


def _recording_or_403(request: HttpRequest, recording_id: int) -> Recording:
    try:
        return recordings.access_recording(request.user, recording_id)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc


@login_required
@require_GET
def recording_detail(request: HttpRequest, recording_id: int) -> HttpResponse:
    recording = _recording_or_403(request, recording_id)
    events = recording.call.events.filter(kind__startswith="Recording").order_by("created_at", "id")
    return render(request, "voice/recording.html", {
        "recording": recording, "call": recording.call, "events": events,
        "is_manager": campaign_services.user_is_manager(request.user),
    })


@login_required
@require_GET
def recording_audio(request: HttpRequest, recording_id: int) -> HttpResponse:
    """The audio, streamed from Twilio through us: the browser never sees Twilio's URL or credentials."""
    recording = _recording_or_403(request, recording_id)
    try:
        content_type, chunks = recordings.recording_audio(recording=recording)
    except IllegalAction as exc:
        return HttpResponse(str(exc), status=404, content_type="text/plain")
    except gateway.GatewayError as exc:
        return HttpResponse(f"Twilio could not serve the recording: {exc}", status=502, content_type="text/plain")
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="call-{recording.call_id}.wav"'
    return response



@login_required
@require_POST
def recording_delete(request: HttpRequest, recording_id: int) -> HttpResponse:
    recording = _recording_or_403(request, recording_id)
    if not campaign_services.user_is_manager(request.user):
        raise PermissionDenied("only managers delete recordings")
    try:
        recordings.recording_delete(recording=recording, by=request.user)
        messages.success(request, "The recording was deleted, here and at Twilio.")
    except (IllegalAction, gateway.GatewayError) as exc:
        messages.error(request, f"The recording was not deleted: {exc}")
    return redirect("recording-detail", recording_id=recording.pk)
