"""The live pages: the agent console and the manager wallboard, plus the small JSON reads they make.

The pages are server-rendered shells; static/js/console.js and static/js/wallboard.js fill them from the
WebSocket (realtime.consumers) and act only through the JSON API (voice.api).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from campaigns import services
from campaigns.exceptions import NotAllowed
from campaigns.models import AgentSession, Campaign
from campaigns.states import transitions_json
from voice import live

PAUSE_REASONS = ("Break", "Lunch", "Meeting", "Training", "Admin work")
VOICE_SDK = "twilio-voice-sdk/twilio.min.js"


def _campaign_or_403(request: HttpRequest, campaign_id: int) -> Campaign:
    try:
        return services.access_campaign(request.user, campaign_id)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc


def _api_urls(campaign_id: int) -> dict:
    names = {"join": "join", "ready": "ready", "pause": "pause", "leave": "leave", "dialNext": "dial-next",
             "disposition": "disposition", "hangup": "hangup", "status": "status", "gone": "gone"}
    urls = {key: reverse(f"api-campaign-{name}", args=[campaign_id]) for key, name in names.items()}
    urls["token"] = reverse("api-token")
    # Recording pause/resume and supervision have their own views (voice.views).
    urls["recording"] = reverse("api-campaign-recording", args=[campaign_id])
    urls["supervise"] = reverse("api-campaign-supervise", args=[campaign_id])
    return urls


def _softphone_config() -> dict:
    sdk_found = bool(finders.find(VOICE_SDK))
    return {
        # The join response says which driver to use; these are what each driver needs.
        "publicBaseUrl": settings.PUBLIC_BASE_URL,
        "sandboxBaseUrl": settings.TWILIO_API_BASE_URL if settings.TWILIO_SANDBOX else None,
        "sandboxToken": settings.TWILIO_SANDBOX_CONTROL_TOKEN if settings.TWILIO_SANDBOX else None,
        "sdkUrl": static(VOICE_SDK) if sdk_found else None,
    }


@login_required
@ensure_csrf_cookie  # the page's API calls send it back in X-CSRFToken
def console(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_403(request, campaign_id)
    codes = [{"code": c.code, "label": c.label, "hotkey": c.hotkey, "schedules_callback": c.schedules_callback}
             for c in campaign.disposition_codes.all()]
    is_manager = services.user_is_manager(request.user)
    config = {
        "campaignId": campaign.pk,
        # Managers watch: they get an agent session only when they choose to take calls.
        "watchOnly": is_manager,
        "dialMode": campaign.dial_mode,
        "wsPath": f"/ws/campaigns/{campaign.pk}/",
        "api": _api_urls(campaign.pk),
        "statsUrl": reverse("console-stats", args=[campaign.pk]),
        "cardUrl": reverse("console-card", args=[campaign.pk, 0]).replace("/0/", "/{call}/"),
        "codes": codes,
        "softphone": _softphone_config(),
    }
    return render(request, "campaigns/console.html", {
        "campaign": campaign, "codes": codes, "pause_reasons": PAUSE_REASONS, "config": config,
        "is_manager": is_manager,
    })


@login_required
@ensure_csrf_cookie
def wallboard(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_403(request, campaign_id)
    if not services.user_is_manager(request.user):
        raise PermissionDenied("only managers see the wallboard")
    config = {
        "campaignId": campaign.pk,
        "wsPath": f"/ws/campaigns/{campaign.pk}/wallboard/",
        "api": _api_urls(campaign.pk),
        "statsUrl": reverse("wallboard-stats", args=[campaign.pk]),
        "transitions": transitions_json(),
        "softphone": _softphone_config(),  # the manager's own phone, to supervise talks
        "userId": request.user.pk,
    }
    return render(request, "campaigns/wallboard.html", {"campaign": campaign, "config": config})


# -- JSON reads for the pages -----------------------------------------------------------------------------


def json_read(view):
    """GET only; 401/403 as JSON, the way the API answers, so the pages show one kind of error."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "log in first"}, status=401)
        try:
            return view(request, *args, **kwargs)
        except NotAllowed as exc:
            return JsonResponse({"error": str(exc)}, status=403)

    return wrapper


@json_read
def console_stats(request: HttpRequest, campaign_id: int) -> JsonResponse:
    campaign = services.access_campaign(request.user, campaign_id)
    session = AgentSession.objects.filter(agent=request.user, campaign=campaign).first()
    return JsonResponse({"stats": live.agent_stats_today(session=session)})


@json_read
def console_card(request: HttpRequest, campaign_id: int, call_id: int) -> JsonResponse:
    call = live.access_call(request.user, campaign_id=campaign_id, call_id=call_id)
    return JsonResponse(live.contact_card(call=call))


@json_read
def wallboard_stats(request: HttpRequest, campaign_id: int) -> JsonResponse:
    campaign = services.access_campaign(request.user, campaign_id)
    if not services.user_is_manager(request.user):
        raise NotAllowed("only managers see the wallboard")
    return JsonResponse({"stats": live.wallboard_stats(campaign=campaign)})
