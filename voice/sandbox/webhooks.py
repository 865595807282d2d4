"""Signed webhook delivery to the app, and the ways real Twilio misbehaves doing it.

TwiML fetches (voice Url, <Redirect>, Dial action, fallback) are awaited by the call and never tampered
with. Callbacks (status, AMD, conference) are fire-and-forget like Twilio's: each goes out as its own
request, so they may be duplicated, delayed past each other, or (status and conference ones) dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urldefrag, urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from voice.sandbox.clock import SimClock
from voice.sandbox.config import SandboxConfig
from voice.sandbox.state import Delivery

log = logging.getLogger("voice.sandbox.webhooks")

USER_AGENT = "TwilioProxy/1.1"
# Callbacks Twilio does not guarantee: status and conference events may be lost. The AMD verdict is kept,
# so "drop" tests exercise the app's reconciliation, not a call that can never be classified.
DROPPABLE_KINDS = frozenset({"status-callback", "conference-callback"})


@dataclass
class FetchResult:
    ok: bool
    url: str
    http_status: int | None = None
    body: str = ""
    error: str | None = None


def signed_request(url: str, method: str, params: dict[str, str], auth_token: str) -> tuple[str, str | None, str]:
    """(request URL, form body or None, X-Twilio-Signature) exactly as twilio's RequestValidator checks it.

    POST signs the URL plus the sorted params; GET puts the params in the query string and signs the URL
    alone. The URL is signed as configured (no port added); a `#` fragment is Twilio's connection-override
    syntax and is never sent.
    """
    url = urldefrag(url).url
    validator = RequestValidator(auth_token)
    if method.upper() == "GET":
        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(params)
        return url, None, validator.compute_signature(url, {})
    return url, urlencode(params), validator.compute_signature(url, params)


class WebhookSender:
    def __init__(
        self, *, config: Callable[[], SandboxConfig], clock: SimClock, rng: random.Random, stats: Counter[str]
    ) -> None:
        self._config = config
        self._clock = clock
        self._rng = rng
        self._stats = stats
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        # No per-host cap: Twilio does not queue its webhooks behind each other, and load tests need the fan-out.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})

    async def close(self) -> None:
        self.cancel_pending()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def cancel_pending(self) -> None:
        for task in list(self._pending):
            task.cancel()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- TwiML fetches -------------------------------------------------------------------------------

    async def fetch(
        self, log_to: list[Delivery], kind: str, url: str, method: str, params: dict[str, str]
    ) -> FetchResult:
        """Fetch a TwiML document; never raises for HTTP trouble (the caller decides on fallback)."""
        delivery = self._record(log_to, kind, url, method, params, uuid.uuid4().hex)
        result = await self._send(delivery)
        if delivery.error is None and delivery.http_status is not None and 200 <= delivery.http_status < 300:
            return FetchResult(ok=True, url=url, http_status=delivery.http_status, body=result)
        return FetchResult(
            ok=False,
            url=url,
            http_status=delivery.http_status,
            body=result,
            error=delivery.error or f"HTTP {delivery.http_status}",
        )

    # -- callbacks -----------------------------------------------------------------------------------

    def send_callback(self, log_to: list[Delivery], kind: str, url: str, method: str, params: dict[str, str]) -> None:
        config = self._config()
        token = uuid.uuid4().hex
        if kind in DROPPABLE_KINDS and config.drop_status_rate and self._rng.random() < config.drop_status_rate:
            delivery = self._record(log_to, kind, url, method, params, token)
            delivery.dropped = True
            self._stats["webhooks_dropped"] += 1
            return
        copies = 2 if config.duplicate_rate and self._rng.random() < config.duplicate_rate else 1
        for copy in range(copies):
            delivery = self._record(log_to, kind, url, method, params, token)
            delivery.duplicate = copy > 0
            if delivery.duplicate:
                self._stats["webhooks_duplicated"] += 1
            delivery.delay_s = self._rng.uniform(0.0, config.jitter_s) if config.jitter_s else 0.0
            task = asyncio.ensure_future(self._send(delivery, delay_s=delivery.delay_s))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    # -- plumbing ------------------------------------------------------------------------------------

    def _record(
        self, log_to: list[Delivery], kind: str, url: str, method: str, params: dict[str, str], token: str
    ) -> Delivery:
        delivery = Delivery(
            kind=kind,
            url=url,
            method=method.upper(),
            params=dict(params),
            idempotency_token=token,
            sim_t=self._clock.now(),
            wall=time.time(),
        )
        log_to.append(delivery)
        return delivery

    async def _send(self, delivery: Delivery, delay_s: float = 0.0) -> str:
        """Deliver one request, recording its outcome on `delivery`; returns the response body."""
        if delay_s:
            await self._clock.sleep(delay_s)
        config = self._config()
        url, body, signature = signed_request(delivery.url, delivery.method, delivery.params, config.auth_token)
        headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": delivery.idempotency_token}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        assert self._session is not None, "WebhookSender.start() not called"
        started = time.monotonic()
        text = ""
        self._stats["webhooks_sent"] += 1
        try:
            async with self._session.request(
                delivery.method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=config.webhook_timeout_s),
            ) as response:
                delivery.http_status = response.status
                text = await response.text(errors="replace")
        except TimeoutError:
            delivery.error = f"timeout after {config.webhook_timeout_s:g} s"
        except (aiohttp.ClientError, ValueError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        delivery.elapsed_ms = round((time.monotonic() - started) * 1000.0, 1)
        if delivery.failed:
            self._stats["webhook_failures"] += 1
            log.warning(
                "webhook %s %s %s failed: %s",
                delivery.kind,
                delivery.method,
                url,
                delivery.error or delivery.http_status,
            )
        return text
