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


def test_past_the_limit_of_sends_in_flight_a_publisher_waits_then_drops_the_event(monkeypatch, caplog):
    """A stalled loop (or Redis) does not pile up sends without end: past the limit the publisher waits, and
    after SEND_TIMEOUT_S the event is dropped with an error in the log; the sends already handed over still go."""
    layer = InMemoryChannelLayer()
    monkeypatch.setattr(events, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(events, "_in_flight", threading.BoundedSemaphore(1))
    monkeypatch.setattr(events, "SEND_TIMEOUT_S", 0.3)
    loop = asyncio.new_event_loop()
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()
    busy = threading.Event()
    try:
        channel = asyncio.run_coroutine_threadsafe(layer.new_channel(), loop).result(5)
        asyncio.run_coroutine_threadsafe(layer.group_add("wallboard-1", channel), loop).result(5)
        monkeypatch.setattr(events, "_server_loop", loop)
        loop.call_soon_threadsafe(busy.wait, 10)

        events._send_raw(("wallboard-1",), {"type": events.PUSH, "text": "first"})
        started = time.monotonic()
        events._send_raw(("wallboard-1",), {"type": events.PUSH, "text": "second"})
        assert 0.25 < time.monotonic() - started < 2.0  # waited for a free slot, then gave up
        assert "dropped" in caplog.text

        busy.set()
        received = asyncio.run_coroutine_threadsafe(layer.receive(channel), loop).result(5)
        assert received["text"] == "first"
        events._send_raw(("wallboard-1",), {"type": events.PUSH, "text": "third"})  # the slot is free again
        received = asyncio.run_coroutine_threadsafe(layer.receive(channel), loop).result(5)
        assert received["text"] == "third"
    finally:
        busy.set()
        loop.call_soon_threadsafe(loop.stop)
        server.join(5)
        loop.close()
