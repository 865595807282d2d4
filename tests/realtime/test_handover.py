"""Events published from a request thread are handed to the web process's event loop and not waited for: a
Twilio callback is answered whatever the screens' channel layer is doing (a slow Redis, a loop busy with
requests), and the event still goes out once the loop gets to it."""

from __future__ import annotations

import asyncio
import threading
import time

from channels.layers import InMemoryChannelLayer

from realtime import events


def test_a_request_thread_does_not_wait_for_its_events_to_be_sent(monkeypatch):
    layer = InMemoryChannelLayer()
    monkeypatch.setattr(events, "get_channel_layer", lambda: layer)
    loop = asyncio.new_event_loop()
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()
    busy = threading.Event()
    try:
        channel = asyncio.run_coroutine_threadsafe(layer.new_channel(), loop).result(5)
        asyncio.run_coroutine_threadsafe(layer.group_add("wallboard-1", channel), loop).result(5)
        monkeypatch.setattr(events, "_server_loop", loop)
        loop.call_soon_threadsafe(busy.wait, 10)  # the loop is busy until released

        started = time.monotonic()
        events._send_raw(("wallboard-1",), {"type": events.PUSH, "text": "call 7 ringing"})
        assert time.monotonic() - started < 1.0  # handed over, not waited for (it used to wait up to 5 s)

        busy.set()
        message = asyncio.run_coroutine_threadsafe(layer.receive(channel), loop).result(5)
        assert message["text"] == "call 7 ringing"
    finally:
        busy.set()
        loop.call_soon_threadsafe(loop.stop)
        server.join(5)
        loop.close()
