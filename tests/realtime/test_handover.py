"""Events published from a request thread are handed to the web process's event loop and not waited for: a
Twilio callback is answered whatever the screens' channel layer is doing (a slow Redis, a loop busy with
requests), and the event still goes out once the loop gets to it."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest
from channels.layers import InMemoryChannelLayer

from realtime import events


@dataclass
class ServerLoop:
    loop: asyncio.AbstractEventLoop
    busy: threading.Event  # the loop does nothing else until it is set

    def received(self, layer, channel) -> str:
        return asyncio.run_coroutine_threadsafe(layer.receive(channel), self.loop).result(5)["text"]


@pytest.fixture
def busy_loop(monkeypatch):
    """The process's server loop, with a wallboard page listening, then kept busy until `busy` is set."""
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
        loop.call_soon_threadsafe(busy.wait, 10)
        yield ServerLoop(loop, busy), layer, channel
    finally:
        busy.set()
        loop.call_soon_threadsafe(loop.stop)
        server.join(5)
        loop.close()


def publish(text: str) -> None:
    events._send_raw(("wallboard-1",), {"type": events.PUSH, "text": text})


def test_a_request_thread_does_not_wait_for_its_events_to_be_sent(busy_loop):
    server, layer, channel = busy_loop
    started = time.monotonic()
    publish("call 7 ringing")
    assert time.monotonic() - started < 1.0  # handed over, not waited for (it used to wait up to 5 s)
    server.busy.set()
    assert server.received(layer, channel) == "call 7 ringing"


def test_past_the_limit_of_sends_in_flight_a_publisher_waits_then_drops_the_event(busy_loop, monkeypatch, caplog):
    """A stalled loop (or Redis) does not pile up sends without end: past the limit the publisher waits, and
    after SEND_TIMEOUT_S the event is dropped with an error in the log; the sends already handed over still go."""
    server, layer, channel = busy_loop
    monkeypatch.setattr(events, "_in_flight", threading.BoundedSemaphore(1))
    monkeypatch.setattr(events, "SEND_TIMEOUT_S", 0.3)
    publish("first")
    started = time.monotonic()
    publish("second")
    assert 0.25 < time.monotonic() - started < 2.0  # waited for a free slot, then gave up
    assert "dropped" in caplog.text
    server.busy.set()
    assert server.received(layer, channel) == "first"
    publish("third")  # the slot is free again
    assert server.received(layer, channel) == "third"
