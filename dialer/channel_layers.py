"""How the channel layer talks to Redis (production sets REDIS_URL).

A consumer waits for its next event with a blocking pop (channels_redis: BZPOPMIN, 5 s at a time). redis-py 8 gives
every connection a 5 s read timeout by default, so an idle socket's wait ran into it and the consumer crashed every
~5 s: consoles and wallboards reconnecting all day (django/channels_redis#422). Reads here wait longer than the
pop, and still end if Redis stops answering.
"""

from __future__ import annotations

BLOCKING_POP_S = 5  # channels_redis' own BZPOPMIN timeout
READ_TIMEOUT_S = 3 * BLOCKING_POP_S


def redis_channel_layer(url: str) -> dict:
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A wallboard receives every event of its campaign: the default 100 queued per socket is short.
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": READ_TIMEOUT_S}], "capacity": 500},
    }
