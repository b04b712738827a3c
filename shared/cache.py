"""Redis clients. `fakeredis://` selects the in-process stand-in used by the embedded demo."""

from __future__ import annotations

from functools import cache

import redis


@cache
def get_redis(url: str) -> redis.Redis:
    if url.startswith("fakeredis://"):
        import fakeredis

        return fakeredis.FakeRedis(server=_fake_server())
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


@cache
def _fake_server():
    import fakeredis

    return fakeredis.FakeServer()


def redis_ok(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
