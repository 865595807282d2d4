"""The channel layer as production configures it (REDIS_URL), against the real Redis: an idle socket's wait for
its next event must outlast redis-py's read timeout, or every quiet console reconnects every few seconds."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from channels_redis.core import RedisChannelLayer

from dialer.channel_layers import BLOCKING_POP_S, redis_channel_layer

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def test_a_quiet_socket_keeps_waiting_for_its_next_event():
    layer = RedisChannelLayer(**redis_channel_layer(REDIS_URL)["CONFIG"])
    quiet_s = BLOCKING_POP_S + 2.0  # longer than one blocking pop, and than redis-py 8's default read timeout

    async def scenario() -> dict:
        channel = await layer.new_channel(prefix=f"test-{uuid.uuid4().hex[:8]}")

        async def later():
            await asyncio.sleep(quiet_s)
            await layer.send(channel, {"type": "event.push", "text": "hello"})

        sender = asyncio.create_task(later())
        try:
            return await asyncio.wait_for(layer.receive(channel), timeout=quiet_s + 10)
        finally:
            await sender
            await layer.flush()
            await layer.close_pools()

    try:
        message = asyncio.run(scenario())
    except ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}")
    assert message["text"] == "hello"
