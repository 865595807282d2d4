"""How a web worker serves HTTP (dialer/asgi.py): Twilio's webhooks have threads of their own, so a person who
answered never waits behind the pages, the API or a download."""

from __future__ import annotations

import asyncio
import gc
from urllib.parse import urlencode

import pytest
from asgiref.testing import ApplicationCommunicator

from dialer.asgi import HttpOnThreads
from tests.conftest import sign
from voice.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


def http_scope(method: str, path: str, query: str = "", headers: list[tuple[bytes, bytes]] = ()) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80)}


async def answer_of(request: ApplicationCommunicator) -> tuple[dict, bytes]:
    """The response's start message (status, headers) and its whole body."""
    start = await request.receive_output(timeout=10)
    body = b""
    while True:
        message = await request.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return start, body


async def response_of(request: ApplicationCommunicator) -> tuple[int, bytes]:
    start, body = await answer_of(request)
    return start["status"], body


def test_a_webhook_is_answered_while_every_page_thread_is_busy():
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "e" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    webhook_body = urlencode(params).encode()
    form = (b"content-type", b"application/x-www-form-urlencoded")

    async def scenario() -> tuple[int, int]:
        # A login whose body never finishes arriving: its thread waits inside Django, reading it (the CSRF check
        # looks for the form's token once a CSRF cookie is there).
        page = ApplicationCommunicator(app, http_scope("POST", "/accounts/login/", headers=[
            form, (b"content-length", b"1000"), (b"cookie", b"csrftoken=" + b"a" * 32)]))
        await page.send_input({"type": "http.request", "body": b"username=a", "more_body": True})
        await asyncio.sleep(0.3)
        hook = ApplicationCommunicator(app, http_scope(
            "POST", "/api/voice/status", "call=999999",
            headers=[form, (b"content-length", str(len(webhook_body)).encode()),
                     (b"x-twilio-signature", sign("/api/voice/status?call=999999", params).encode())]))
        await hook.send_input({"type": "http.request", "body": webhook_body, "more_body": False})
        hook_status, _ = await response_of(hook)  # with one shared pool this would wait behind the login
        await page.send_input({"type": "http.request", "body": b"x" * 990, "more_body": False})
        page_status, _ = await response_of(page)
        return hook_status, page_status

    hook_status, page_status = asyncio.run(scenario())
    assert hook_status == 204
    assert page_status == 403  # no CSRF token: refused, and its thread given back
    assert WebhookEvent.objects.get(call_sid=params["CallSid"]).status == WebhookEvent.Processing.IGNORED


def test_webhooks_skip_the_page_middleware_pages_keep_all_of_it(settings):
    """Twilio's webhooks skip the page middleware (sessions, CSRF, content policy, ...), which cost a tenth of a
    callback's CPU; pages keep every header they had, and building the webhook handler changes no setting."""
    pages_middleware = list(settings.MIDDLEWARE)
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    assert pages_middleware == settings.MIDDLEWARE
    params = {"CallSid": "CA" + "f" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    body = urlencode(params).encode()

    async def scenario():
        hook = ApplicationCommunicator(app, http_scope("POST", "/api/voice/status", "call=999998", headers=[
            (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode()),
            (b"x-twilio-signature", sign("/api/voice/status?call=999998", params).encode())]))
        await hook.send_input({"type": "http.request", "body": body, "more_body": False})
        hook_start, _ = await answer_of(hook)
        page = ApplicationCommunicator(app, http_scope("GET", "/accounts/login/"))
        await page.send_input({"type": "http.request", "body": b"", "more_body": False})
        page_start, _ = await answer_of(page)
        return hook_start, page_start

    hook_start, page_start = asyncio.run(scenario())
    hook_headers = {name.lower() for name, _value in hook_start["headers"]}
    page_headers = {name.lower() for name, _value in page_start["headers"]}
    assert (hook_start["status"], page_start["status"]) == (204, 200)
    assert b"x-content-type-options" in hook_headers  # SecurityMiddleware still answers for webhooks
    assert not hook_headers & {b"content-security-policy", b"x-frame-options", b"set-cookie", b"vary"}
    assert {b"content-security-policy", b"x-frame-options", b"x-content-type-options"} <= page_headers
    assert WebhookEvent.objects.get(call_sid=params["CallSid"]).status == WebhookEvent.Processing.IGNORED


def test_a_webhook_for_a_host_not_allowed_is_refused_before_anything_is_stored():
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "d" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    body = urlencode(params).encode()
    scope = http_scope("POST", "/api/voice/status", "call=999997", headers=[
        (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode()),
        (b"x-twilio-signature", sign("/api/voice/status?call=999997", params).encode())])
    scope["headers"] = [(b"host", b"evil.example"), *scope["headers"][1:]]

    async def scenario():
        hook = ApplicationCommunicator(app, scope)
        await hook.send_input({"type": "http.request", "body": body, "more_body": False})
        return await response_of(hook)

    status, _ = asyncio.run(scenario())
    assert status == 400
    assert not WebhookEvent.objects.filter(call_sid=params["CallSid"]).exists()


def signed_webhook(path: str, query: str, params: dict) -> tuple[dict, bytes]:
    body = urlencode(params).encode()
    return http_scope("POST", path, query, headers=[
        (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode()),
        (b"x-twilio-signature", sign(f"{path}?{query}", params).encode())]), body


def test_a_voice_webhook_whose_body_arrives_in_pieces_is_answered_with_its_twiml_whole():
    """Webhooks are read whole before their thread runs and answered whole: Twilio gets its TwiML, with the
    headers Django gave it."""
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "c" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "in-progress"}
    scope, body = signed_webhook("/api/voice/customer-queue", "call=999996", params)

    async def scenario():
        hook = ApplicationCommunicator(app, scope)
        for start in range(0, len(body), 20):
            await hook.send_input({"type": "http.request", "body": body[start:start + 20],
                                   "more_body": start + 20 < len(body)})
        return await answer_of(hook)

    start, answer = asyncio.run(scenario())
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-type"].startswith(b"text/xml")
    assert answer.startswith(b"<?xml") and b"<Hangup" in answer  # no such call: polite hang-up
    assert WebhookEvent.objects.get(call_sid=params["CallSid"]).kind == WebhookEvent.Kind.VOICE


def test_a_webhook_body_over_the_upload_limit_is_refused_before_it_is_read_on_and_nothing_is_stored(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "b" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1", "Padding": "x" * 1200}
    declared, body = signed_webhook("/api/voice/status", "call=999995", params)
    chunked = {**declared, "headers": [h for h in declared["headers"] if h[0] != b"content-length"]}

    async def scenario():
        # Its length says too much: refused before any of it is read.
        said = ApplicationCommunicator(app, declared)
        said_answer = await response_of(said)
        # Sent without a length (chunked): refused once what arrived is too much, the rest never waited for.
        hook = ApplicationCommunicator(app, chunked)
        await hook.send_input({"type": "http.request", "body": body[:600], "more_body": True})
        await hook.send_input({"type": "http.request", "body": body[600:1200], "more_body": True})
        return said_answer, await response_of(hook)

    (said_status, _), (status, _) = asyncio.run(scenario())
    assert (said_status, status) == (413, 413)
    assert not WebhookEvent.objects.filter(call_sid=params["CallSid"]).exists()


def test_a_chunked_webhook_without_a_length_is_read_whole_and_applied():
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "9" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    declared, body = signed_webhook("/api/voice/status", "call=999993", params)
    chunked = {**declared, "headers": [h for h in declared["headers"] if h[0] != b"content-length"]}

    async def scenario():
        hook = ApplicationCommunicator(app, chunked)
        await hook.send_input({"type": "http.request", "body": body[:40], "more_body": True})
        await hook.send_input({"type": "http.request", "body": body[40:], "more_body": False})
        return await response_of(hook)

    status, _ = asyncio.run(scenario())
    assert status == 204  # its signature checked against the whole form: Django saw every byte
    assert WebhookEvent.objects.get(call_sid=params["CallSid"]).status == WebhookEvent.Processing.IGNORED


def test_a_caller_gone_before_its_body_ends_is_not_processed():
    app = HttpOnThreads(webhook_threads=1, page_threads=1)
    params = {"CallSid": "CA" + "a" * 32, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
              "SequenceNumber": "1"}
    scope, body = signed_webhook("/api/voice/status", "call=999994", params)

    async def scenario():
        hook = ApplicationCommunicator(app, scope)
        await hook.send_input({"type": "http.request", "body": body[:30], "more_body": True})
        await hook.send_input({"type": "http.disconnect"})
        await hook.wait(timeout=5)  # the application returns without an answer
        return await hook.receive_nothing()

    assert asyncio.run(scenario())
    assert not WebhookEvent.objects.filter(call_sid=params["CallSid"]).exists()


def test_a_web_process_freezes_what_it_loaded_so_full_collections_stay_short_and_rare():
    """dialer.asgi (imported above, as a web worker imports it) moves the app's start-up objects out of the
    collector's reach: a full collection no longer walks them while every request of the worker waits; and it
    collects the young generation less often, so fewer in-flight objects are promoted towards full collections."""
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] >= 10_000
