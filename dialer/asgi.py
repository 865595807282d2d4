"""ASGI entry point: HTTP through Django's WSGI handler on a fixed pool of threads, WebSockets through Channels
(authenticated, same-origin).

Why HTTP is not served by Django's ASGI handler: with sync views and sync middleware (all of ours), it gives every
request a thread of its own and crosses between that thread and the event loop four times per request; a burst
of webhooks becomes hundreds of threads fighting over the GIL and the database pool. Here the plain WSGI handler
runs on a fixed number of threads (the rest queue in the event loop, where waiting costs nothing): the stack's own
cost per request fell from 1.85 to 1.05 ms of CPU with a2wsgi, and to 0.6-0.8 ms for webhooks, which are read
and answered whole (one hop to a thread and one back; benchmarks/webhook_load.py, the forged floor).

Twilio's webhooks have threads of their own (`WEB_REQUEST_CONCURRENCY`), apart from the pages, the JSON API and
the downloads (`WEB_PAGE_CONCURRENCY`, through a2wsgi, which streams): a person who said "hello" must not wait
behind a manager's report or a download whose browser went away (the WSGI handler finishes a streamed response
even when nobody reads it).
"""

import asyncio
import contextvars
import functools
import gc
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
# Django must be set up before the consumers (and their models) are imported.
get_asgi_application()

from dialer.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()

from a2wsgi import WSGIMiddleware  # noqa: E402
from a2wsgi.wsgi import build_environ  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from dialer.urls import WEBHOOK_PREFIX  # noqa: E402
from realtime import events  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

log = logging.getLogger(__name__)


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with WEBHOOK_MIDDLEWARE instead of MIDDLEWARE (settings.py says why).

    Django builds a handler's middleware chain from settings.MIDDLEWARE when the handler is made; the list is
    swapped for that moment only, at start-up, before any request thread exists."""

    def load_middleware(self, is_async=False):
        pages = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.WEBHOOK_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = pages


# The most a webhook's body may be: Twilio's are under 4 KB. Bodies are held whole in the event loop while they
# wait for a thread, so a flood of large unsigned posts must not make a worker hold megabytes each.
WEBHOOK_MAX_BODY = 64 * 1024


class WholeRequestOnThreads:
    """Twilio's webhooks on a WSGI handler, with one hop from the event loop to a thread and one back.

    a2wsgi streams both ways: the request thread waited on the event loop for the body, for the response's start
    and for each chunk of it (four round trips through the loop per request, each waking the loop and then the
    thread, and each waiting behind whatever else the loop was doing). A webhook's request and its answer are a
    few hundred bytes: here the loop reads the body whole, the thread runs the handler and collects the answer
    whole (TwiML or an empty 204, never streamed), and the loop sends it.

    A body longer than `max_body` (declared or read) is refused (413) before it is read further: no Twilio
    webhook comes near it, and nobody gets to make a process buffer more."""

    def __init__(self, app, *, threads: int, max_body: int):
        self.app = app
        self.max_body = max_body
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="webhook")

    async def __call__(self, scope, receive, send):
        declared = dict(scope.get("headers", ())).get(b"content-length", b"0")
        if not declared.isdigit():
            await _answer(send, 400, b"malformed Content-Length")
            return
        if int(declared) > self.max_body:
            await _answer(send, 413, b"request body too large")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await _answer(send, 413, b"request body too large")
                return
        environ = build_environ(scope, io.BytesIO(body))
        environ["CONTENT_LENGTH"] = str(len(body))  # read whole: also right for a chunked request
        run = functools.partial(contextvars.copy_context().run, self._respond, environ)
        status, headers, content = await asyncio.get_running_loop().run_in_executor(self.executor, run)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _respond(self, environ: dict) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]),
                          [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]]
            return chunks.append

        response = self.app(environ, start_response)
        try:
            chunks.extend(response)
        finally:
            # Django's request_finished (closing this thread's database connection when it must) runs here, in
            # the thread that used it. The webhook has committed by then: a failure here must not turn its answer
            # into a 500 (Twilio would retry it, or play an application error).
            close = getattr(response, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing a webhook's response failed")
        return started[0], started[1], b"".join(chunks)


async def _answer(send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})


class HttpOnThreads:
    """HTTP requests on the WSGI handler: Twilio's webhooks on `webhook_threads` (through WebhookHandler),
    everything else on `page_threads`; requests beyond them wait in the event loop.

    The event loop serving the requests is also the one the threads hand realtime events to (realtime.events): a
    process that serves no socket yet still publishes on a loop that lives, never on a new one per event."""

    def __init__(self, *, webhook_threads: int, page_threads: int):
        self.webhooks = WholeRequestOnThreads(WebhookHandler(), threads=webhook_threads, max_body=min(
            settings.DATA_UPLOAD_MAX_MEMORY_SIZE or WEBHOOK_MAX_BODY, WEBHOOK_MAX_BODY))
        self.pages = WSGIMiddleware(get_wsgi_application(), workers=max(1, page_threads))

    async def __call__(self, scope, receive, send):
        events.serve_on(asyncio.get_running_loop())
        pool = self.webhooks if scope["path"].startswith("/" + WEBHOOK_PREFIX) else self.pages
        await pool(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": HttpOnThreads(webhook_threads=settings.WEB_REQUEST_CONCURRENCY,
                              page_threads=settings.WEB_PAGE_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


# The objects the app made while loading (Django, the models, URL and template machinery: most of a worker's heap)
# live as long as the process. Left in the collector's oldest generation, every full collection walked them all
# and held the GIL meanwhile: under 150 callbacks/s a web worker stalled 70-150 ms several times a minute, every
# request in it waiting (GC_PAUSE_LOG_MS in a benchmarks/webhook_load.py run). Frozen, a full collection walks
# only what the requests made since: 15-20 ms. (Collected first, so no garbage of the start-up is frozen for good.)
gc.collect()
gc.freeze()
# Each collection of the youngest generation promotes whatever the requests in flight hold at that instant. At
# Python's default (every 700 allocations) that filled the older generations fast enough to bring a full
# collection several times a minute under load, 27-35 ms each (GC_PAUSE_LOG_MS). Every 10,000 allocations, 14
# times fewer promotions: at 150 callbacks/s, pauses >= 10 ms went from 6-7 a run to 0-1 and AMD -> redirect p99
# from 221-353 to 129-179 ms over three alternating pairs (docs/performance.md). Reference counting frees most
# garbage anyway; only cycles wait for a collection.
gc.set_threshold(10_000, 10, 10)

if settings.GC_PAUSE_LOG_MS:
    _gc_log = logging.getLogger("dialer.gc")
    _gc_started = [0.0]

    def _log_gc_pause(phase: str, info: dict) -> None:
        """A collection that held this process longer than GC_PAUSE_LOG_MS (every thread waits for it)."""
        if phase == "start":
            _gc_started[0] = time.perf_counter()
            return
        took_ms = (time.perf_counter() - _gc_started[0]) * 1000
        if took_ms >= settings.GC_PAUSE_LOG_MS:
            _gc_log.warning("garbage collection of generation %d held the process %.1f ms", info["generation"],
                            took_ms)

    gc.callbacks.append(_log_gc_pause)
