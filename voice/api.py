"""The JSON API for agents and integrations (seed-compatible paths).

Authentication is the Django session (log in at /accounts/login/), with CSRF for browsers: send the
`csrftoken` cookie back in an `X-CSRFToken` header. Errors are JSON: 400 names the fields, 401 not
logged in, 403 not a member, 409 an action that is illegal now.
"""

from __future__ import annotations

import json
from functools import wraps

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods

from campaigns import services
from campaigns.exceptions import BadInput, IllegalAction, NotAllowed
from campaigns.models import AgentSession, Campaign
from campaigns.selectors import session_json
from realtime.events import call_event
from voice import floor, selectors


def api(*methods: str):
    """Parse JSON, authenticate, and turn the project's exceptions into JSON answers."""

    def decorate(view):
        @require_http_methods(list(methods))
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return JsonResponse({"error": "log in first"}, status=401)
            try:
                body = _json_body(request)
                return view(request, body, *args, **kwargs)
            except BadInput as exc:
                return JsonResponse({"error": str(exc), "fields": exc.fields}, status=400)
            except NotAllowed as exc:
                return JsonResponse({"error": str(exc)}, status=403)
            except IllegalAction as exc:
                return JsonResponse({"error": str(exc)}, status=409)

        return wrapper

    return decorate


# No request of this API nests deeper than a contact object in a list in the body.
MAX_JSON_DEPTH = 8
MAX_ID = 2**63 - 1


def _json_body(request: HttpRequest) -> dict:
    if request.method != "POST" or not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("the body is not valid JSON", {"body": str(exc)[:200]}) from exc
    except RecursionError as exc:
        raise BadInput("the body nests too deep", {"body": f"at most {MAX_JSON_DEPTH} levels"}) from exc
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object", {"body": "expected an object"})
    _check_values(body)
    return body


def _check_values(body: dict) -> None:
    """Refuse what no field accepts, naming where it is: nesting past MAX_JSON_DEPTH and NUL characters
    (PostgreSQL stores no NUL in text)."""
    stack: list[tuple[str, object, int]] = [("", body, 1)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadInput("the body nests too deep", {where or "body": f"at most {MAX_JSON_DEPTH} levels"})
        if isinstance(value, str) and "\x00" in value:
            raise BadInput("text may not contain NUL characters", {where or "body": "contains a NUL character"})
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise BadInput("text may not contain NUL characters", {where or "body": "a key contains NUL"})
                stack.append((f"{where}.{key}" if where else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))


def _session(request: HttpRequest, campaign: Campaign) -> AgentSession:
    session = AgentSession.objects.filter(agent=request.user, campaign=campaign).first()
    if session is None or session.state == AgentSession.State.OFFLINE:
        raise IllegalAction("join the campaign first")
    return session


def _softphone_json(softphone: floor.Softphone) -> dict:
    return {"token": softphone.token, "identity": softphone.identity, "params": softphone.params,
            "sandbox": softphone.sandbox}


@api("POST")
def campaign_create(request: HttpRequest, body: dict):
    if not services.user_is_manager(request.user):
        raise NotAllowed("only managers create campaigns")
    # All or nothing: a creator who cannot join (still working another campaign) gets a 409 and no campaign, so a
    # retry after leaving the other one does not create it twice.
    with transaction.atomic():
        campaign, report = services.campaign_create(data=body, by=request.user)
        _, softphone = floor.agent_join(user=request.user, campaign=campaign)
    return JsonResponse({"campaign": selectors.campaign_detail(campaign=campaign, user=request.user),
                         "import": report, "softphone": _softphone_json(softphone),
                         "token": softphone.token}, status=201)


@api("GET")
def campaign_get(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    return JsonResponse({"campaign": selectors.campaign_detail(campaign=campaign, user=request.user)})


@api("POST")
def campaign_join(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    session, softphone = floor.agent_join(user=request.user, campaign=campaign)
    return JsonResponse({"session": session_json(session), "softphone": _softphone_json(softphone)})


@api("POST")
def campaign_ready(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    session = floor.agent_set_ready(session=_session(request, campaign))
    return JsonResponse({"session": session_json(session)})


@api("POST")
def campaign_pause(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    reason = str(body.get("reason", ""))
    session = floor.agent_pause(session=_session(request, campaign), reason=reason)
    return JsonResponse({"session": session_json(session)})


@api("POST")
def campaign_leave(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    session = floor.agent_leave(session=_session(request, campaign))
    return JsonResponse({"session": session_json(session)})


@api("POST")
def campaign_dial_next(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    calls = floor.dial_next(session=_session(request, campaign))
    return JsonResponse({"calls": [call_event(c) for c in calls]}, status=201)


@api("POST")
def campaign_disposition(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise BadInput("a disposition needs a code", {"code": "required"})
    callback_at = None
    if body.get("callback_at"):
        try:
            callback_at = parse_datetime(str(body["callback_at"]))
        except ValueError:  # well formed but impossible: 30 February, an offset of +99:00
            callback_at = None
        if callback_at is None or callback_at.tzinfo is None:
            raise BadInput("bad callback time", {"callback_at": "an ISO 8601 time with a UTC offset"})
    call_id = body.get("call_id")
    if call_id is not None and (not isinstance(call_id, int) or isinstance(call_id, bool)
                                or not 0 < call_id <= MAX_ID):
        raise BadInput("bad call id", {"call_id": "an integer"})
    disposition = floor.disposition_record(session=_session(request, campaign), code=code,
                                              notes=str(body.get("notes", ""))[:5000], callback_at=callback_at,
                                              call_id=call_id)
    return JsonResponse({"disposition": {"id": disposition.pk, "call_id": disposition.call_id,
                                         "code": disposition.code.code}}, status=201)


@api("POST")
def campaign_hangup(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    call = floor.agent_hang_up(session=_session(request, campaign), machine=bool(body.get("machine")))
    return JsonResponse({"call": call_event(call)})


@api("POST")
def campaign_status(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    if not services.user_is_manager(request.user):
        raise NotAllowed("only managers start, pause or end campaigns")
    status = body.get("status")
    if status not in Campaign.Status.values:
        raise BadInput("unknown status", {"status": f"one of {', '.join(Campaign.Status.values)}"})
    campaign = floor.campaign_set_status(campaign=campaign, status=status, by=request.user)
    return JsonResponse({"campaign": selectors.campaign_detail(campaign=campaign, user=request.user)})


@api("POST")
def campaign_end(request: HttpRequest, body: dict, campaign_id: int):
    campaign = services.access_campaign(request.user, campaign_id)
    if not services.user_is_manager(request.user):
        raise NotAllowed("only managers end campaigns")
    campaign = floor.campaign_set_status(campaign=campaign, status=Campaign.Status.ENDED, by=request.user)
    return JsonResponse({"campaign": selectors.campaign_detail(campaign=campaign, user=request.user)})


@api("POST")
def token(request: HttpRequest, body: dict):
    session = AgentSession.objects.filter(agent=request.user).exclude(state=AgentSession.State.OFFLINE).first()
    if session is None:
        raise IllegalAction("join a campaign first")
    return JsonResponse({"softphone": _softphone_json(floor.softphone_for(session))})
