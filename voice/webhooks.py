"""Twilio webhook views: verify the signature, store raw, process, answer fast (TwiML or 204).

Views parse and delegate to `voice.inbox`; nothing here decides call state.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from voice import inbox, twiml
from voice.models import WebhookEvent

log = logging.getLogger(__name__)

Kind = WebhookEvent.Kind
VOICE_KINDS = (Kind.VOICE, Kind.DIAL)


class _RateLimitedLog:
    """At most one warning per interval, with a count of what was held back (a forged flood must not
    flood the logs too)."""

    def __init__(self, interval_s: float = 10.0):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last = 0.0
        self._held = 0

    def warning(self, message: str, *args) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        log.warning(message + " (%d similar held back)", *args, held)


forged_log = _RateLimitedLog()


def signature_is_valid(request: HttpRequest) -> bool:
    """Check X-Twilio-Signature against the public URL Twilio called: PUBLIC_BASE_URL + path + query."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    token = settings.TWILIO_AUTH_TOKEN
    # An empty token signs like any other key: anyone could compute it. Production never starts without one
    # (dialer/checks.py); this keeps a misconfigured process from accepting anything meanwhile.
    if not token or (token == settings.SANDBOX_AUTH_TOKEN and not settings.TWILIO_SANDBOX):
        return False
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    return RequestValidator(token).validate(url, request.POST, signature)



def _params(request: HttpRequest) -> dict:
    return {key: values[0] if len(values) == 1 else values for key, values in request.POST.lists()}


def _twiml_response(document: str) -> HttpResponse:
    return HttpResponse(document, content_type="text/xml")


def twilio_webhook(kind: str):
    """The one signature decorator, always on. Forged or unsigned: 403, a log line, nothing stored."""

    def decorate(view):
        @csrf_exempt
        @require_POST
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not signature_is_valid(request):
                forged_log.warning("refused %s webhook with a bad or missing signature from %s",
                                   kind, request.META.get("REMOTE_ADDR", "?"))
                return HttpResponse("invalid signature", status=403, content_type="text/plain")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _handle(request: HttpRequest, kind: str) -> HttpResponse:
    voice = kind in VOICE_KINDS
    try:
        received = inbox.webhook_receive(kind=kind, route=request.resolver_match.url_name,
                                         path=request.get_full_path(), params=_params(request),
                                         headers=dict(request.headers))
    except Exception:
        if not voice:
            raise
        # A voice URL answers TwiML whatever happens: Twilio would otherwise play "an application error".
        log.exception("could not record a %s webhook", kind)
        return _twiml_response(twiml.polite_hangup())
    if voice:
        return _twiml_response(received.answer or twiml.polite_hangup())
    if received.malformed:
        return HttpResponse(f"malformed webhook: {received.malformed}", status=400, content_type="text/plain")
    return HttpResponse(status=204)


def _view(kind: str):
    @twilio_webhook(kind)
    def view(request: HttpRequest) -> HttpResponse:
        return _handle(request, kind)

    return view


customer_queue = _view(Kind.VOICE)
customer_join_conference = _view(Kind.VOICE)
voicemail = _view(Kind.VOICE)
safe_harbor = _view(Kind.VOICE)
fallback = _view(Kind.VOICE)
dial = _view(Kind.DIAL)
amd_status = _view(Kind.AMD)
status = _view(Kind.STATUS)
conference_events = _view(Kind.CONFERENCE)
agent_status = _view(Kind.STATUS)
recording_status = _view(Kind.RECORDING)
