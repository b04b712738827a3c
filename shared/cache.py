"""Redis clients. `fakeredis://` selects the in-process stand-in used by the embedded demo.

A real Redis is reached through `GuardedRedis`: every command and pipeline passes this
process's circuit breaker of that server (`shared.breaker`: `redis@host:port`). While it is
open a command fails at once with `RedisCircuitOpen`, a `redis.ConnectionError`, so every
caller's existing "Redis cannot answer" path takes it (the limiter fails open or closed,
the response cache is skipped), without first waiting for a connect timeout.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from redis.client import Pipeline

from shared.breaker import CircuitOpen, breaker

#: Errors that say Redis itself is unwell (what the breaker counts).
DOWN = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError)
BREAKER = "redis"


class RedisCircuitOpen(redis.ConnectionError):
    """Not sent: the breaker is open. `retry_after`: seconds until it lets a trial through."""

    def __init__(self, cause: CircuitOpen) -> None:
        super().__init__(str(cause))
        self.retry_after = cause.retry_after


def _target(client: redis.Redis) -> str:
    """The server a client talks to (never its password): host:port, or the socket path."""
    kwargs = client.connection_pool.connection_kwargs
    return kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _guarded(target: str, call, *args: Any, **kwargs: Any) -> Any:
    guard = breaker(BREAKER, target)
    try:
        guard.before()
    except CircuitOpen as exc:
        raise RedisCircuitOpen(exc) from None
    try:
        result = call(*args, **kwargs)
    except DOWN:
        guard.failure()
        raise
    except Exception:
        guard.success()  # Redis answered (an error in the command is not Redis being down)
        raise
    guard.success()
    return result


class GuardedPipeline(Pipeline):
    target = ""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return _guarded(self.target, super().execute, raise_on_error)


class GuardedRedis(redis.Redis):
    """A redis-py client whose commands and pipelines pass the "redis" breaker of its server
    (`redis@host:port`)."""

    @property
    def target(self) -> str:
        found = self.__dict__.get("_target")
        if found is None:
            found = self.__dict__["_target"] = _target(self)
        return found

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return _guarded(self.target, super().execute_command, *args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.target = self.target
        return pipe


@cache
def get_redis(url: str) -> redis.Redis:
    if url.startswith("fakeredis://"):
        import fakeredis

        return fakeredis.FakeRedis(server=_fake_server())
    return GuardedRedis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


@cache
def _fake_server():
    import fakeredis

    return fakeredis.FakeServer()


def redis_ok(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
