"""Per-user rate limit on the JSON API: 429 with Retry-After once a user has made API_THROTTLE_RATE requests in
the current API_THROTTLE_WINDOW_S window (anonymous callers are counted per address).

Twilio's webhooks under /api/voice/ are not counted: a valid burst from Twilio must pass, and a forged one is
refused by the signature check before it touches the database. Counters live in the default cache (Redis when
REDIS_URL is set, so every process shares them).
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

THROTTLED_PREFIX = "/api/"
EXEMPT_PREFIX = "/api/voice/"


def _client_key(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"addr:{request.META.get('REMOTE_ADDR', '?')}"


def throttle_hit(key: str, *, rate: int, window_s: int, now: float | None = None) -> float:
    """Count one request for `key`; 0 if it may pass, else the seconds until the window resets."""
    now = time.time() if now is None else now
    window = int(now // window_s)
    cache_key = f"api-throttle:{key}:{window}"
    # add() is atomic in every cache backend, incr() in Redis and locmem: no lost updates between processes.
    cache.add(cache_key, 0, timeout=window_s + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr: this request starts the window
        cache.add(cache_key, 1, timeout=window_s + 1)
        count = 1
    if count <= rate:
        return 0.0
    return (window + 1) * window_s - now


class ApiThrottleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        path = request.path_info
        if path.startswith(THROTTLED_PREFIX) and not path.startswith(EXEMPT_PREFIX):
            wait_s = throttle_hit(_client_key(request), rate=settings.API_THROTTLE_RATE,
                                  window_s=settings.API_THROTTLE_WINDOW_S)
            if wait_s:
                retry_after = max(1, math.ceil(wait_s))
                response = JsonResponse({"error": f"too many requests: try again in {retry_after} s"}, status=429)
                response["Retry-After"] = str(retry_after)
                return response
        return self.get_response(request)
