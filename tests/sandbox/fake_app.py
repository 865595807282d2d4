"""A tiny stand-in for the Dialer app: records the sandbox's webhooks, checks their signatures, answers TwiML.

Runs an aiohttp server on its own thread and loop, so tests stay synchronous like the app's own code.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

HOLD = '<?xml version="1.0" encoding="UTF-8"?><Response><Play loop="0">https://example.com/hold.mp3</Play></Response>'


@dataclass
class Hit:
    """One request the app received."""

    method: str
    path: str
    url: str
    params: dict[str, str]
    multi: dict[str, list[str]]
    headers: dict[str, str]
    signature_valid: bool
    at: float = field(default_factory=time.monotonic)


Responder = str | int | Callable[[Hit], "tuple[int, str] | str | int"]


class FakeApp:
    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.hits: list[Hit] = []
        self.routes: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- scripting ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def clear(self) -> None:
        with self._lock:
            self.hits.clear()
            self.routes.clear()

    def requests_to(self, path: str, **match: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path and all(h.params.get(k) == v for k, v in match.items())]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0, **match: str) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests_to(path, **match)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} {match}: {len(found)} of {count} requests after {timeout} s")
            time.sleep(0.01)

    # -- server ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else request.query
        multi: dict[str, list[str]] = {}
        for key, value in form.items():
            multi.setdefault(key, []).append(str(value))
        signature = request.headers.get("X-Twilio-Signature", "")
        params_for_signature = form if request.method == "POST" else {}
        hit = Hit(
            method=request.method,
            path=request.path,
            url=str(request.url),
            params={k: v[0] for k, v in multi.items()},
            multi=multi,
            headers=dict(request.headers),
            signature_valid=self.validator.validate(str(request.url), params_for_signature, signature),
        )
        with self._lock:
            self.hits.append(hit)
            responder = self.routes.get(request.path)
        if responder is None:
            return web.Response(status=204)
        outcome: Any = responder(hit) if callable(responder) else responder
        if isinstance(outcome, int):
            return web.Response(status=outcome)
        status, body = outcome if isinstance(outcome, tuple) else (200, outcome)
        return web.Response(status=status, text=body, content_type="text/xml")

    def start(self) -> FakeApp:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def open_() -> None:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(app, access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

            loop.run_until_complete(open_())
            ready.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-app", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class SandboxHttpClient(TwilioHttpClient):
    """What the app does: the real twilio HTTP client with scheme and host rewritten to the sandbox."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._base = urlsplit(base_url)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any):  # type: ignore[override]
        parts = urlsplit(url)
        url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)
