"""The web process's bound on HTTP requests inside Django (dialer/limits.py): a burst queues, nothing is refused."""

from __future__ import annotations

import asyncio

from dialer.limits import HttpConcurrencyLimit


class SlowApp:
    def __init__(self):
        self.inside = 0
        self.most_inside = 0
        self.served = 0

    async def __call__(self, scope, receive, send):
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        await asyncio.sleep(0.01)
        self.inside -= 1
        self.served += 1


def test_a_burst_waits_its_turn_and_every_request_is_served():
    app = SlowApp()
    limited = HttpConcurrencyLimit(app, limit=3)

    async def burst():
        await asyncio.gather(*(limited({"type": "http"}, None, None) for _ in range(20)))

    asyncio.run(burst())
    assert app.served == 20
    assert app.most_inside == 3


def test_websockets_are_not_counted():
    app = SlowApp()
    limited = HttpConcurrencyLimit(app, limit=1)

    async def sockets():
        await asyncio.gather(*(limited({"type": "websocket"}, None, None) for _ in range(5)))

    asyncio.run(sockets())
    assert app.most_inside == 5
