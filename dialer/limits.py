"""Bound how many HTTP requests one ASGI process runs inside Django at once.

Django's ASGI handler gives every request a thread of its own for its sync code (`ThreadSensitiveContext`), so a
burst of webhooks starts as many threads as there are requests in flight: they fight over the GIL and over the
process's database pool (`DATABASE_POOL_MAX`), and past the pool's size requests wait for a connection until
`DATABASE_POOL_TIMEOUT` and fail with a 500 (measured by benchmarks/webhook_load.py: 500s from 30 req/s on a loaded
machine). With this bound the extra requests wait in the event loop, where waiting costs nothing, and the ones
inside get the CPU and a connection. WebSockets are not counted: they are long-lived and mostly idle.
"""

from __future__ import annotations

import asyncio


class HttpConcurrencyLimit:
    """ASGI middleware: at most `limit` HTTP requests of this process inside `app` at once; the rest queue (FIFO)."""

    def __init__(self, app, *, limit: int):
        self.app = app
        self.limit = max(1, limit)
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._slots is None:  # made on first use, inside the server's event loop
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            return await self.app(scope, receive, send)
