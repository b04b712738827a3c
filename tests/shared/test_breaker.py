"""Circuit breakers: the state machine on a clock the test moves, the registry, and the Redis
client that passes every command through the "redis" breaker, against a closed port and a
real Redis."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401 (loaded, it shows every breaker's state in /metrics)
from shared import breaker
from shared.breaker import CircuitBreaker, CircuitOpen
from shared.cache import GuardedRedis, RedisCircuitOpen
from tests.conftest import REDIS_URL
from tests.e2e.e2e_support import free_port

STATE = "ferry_circuit_breaker_state"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_failures_in_a_row_and_a_success_clears_the_count():
    clock = Clock()
    b = CircuitBreaker("dep", failures=3, cooldown_s=10, clock=clock)
    for outcome in (b.failure, b.failure, b.success, b.failure, b.failure):
        outcome()
    assert b.state == breaker.CLOSED  # the success in between reset the count
    b.before()
    b.failure()
    assert b.state == breaker.OPEN
    with pytest.raises(CircuitOpen) as refused:
        b.before()
    assert refused.value.retry_after == 10 and "dep is failing" in str(refused.value)
    clock.now += 4
    with pytest.raises(CircuitOpen) as later:
        b.before()
    assert later.value.retry_after == 6


def test_half_open_lets_one_trial_through_which_closes_or_reopens_it():
    clock = Clock()
    b = CircuitBreaker("dep", failures=1, cooldown_s=10, clock=clock)
    b.failure()
    clock.now += 10
    assert b.state == breaker.HALF_OPEN
    b.before()  # the trial
    with pytest.raises(CircuitOpen):
        b.before()  # one at a time
    b.failure()  # the trial failed: open for another cool-down
    assert b.state == breaker.OPEN and b.snapshot().retry_after == 10
    clock.now += 10
    b.before()
    b.success()
    assert b.state == breaker.CLOSED and b.snapshot().failures == 0
    b.before()


def test_a_trial_never_reported_is_given_up_after_a_cool_down():
    clock = Clock()
    b = CircuitBreaker("dep", failures=1, cooldown_s=10, clock=clock)
    b.failure()
    clock.now += 10
    b.before()  # a trial whose caller never reports
    clock.now += 10
    b.before()  # another is let through


def test_the_registry_configures_every_breaker_and_tells_listeners():
    seen: list[tuple[str, str]] = []
    breaker.on_change(lambda name, state: seen.append((name, state)))
    breaker.configure(failures=1, cooldown_s=5)
    b = breaker.breaker("thing")
    assert breaker.breaker("thing") is b and (b.threshold, b.cooldown_s) == (1, 5)
    b.failure()
    assert REGISTRY.get_sample_value(STATE, {"dependency": "thing"}) == 2  # open, in /metrics
    b.success()
    assert REGISTRY.get_sample_value(STATE, {"dependency": "thing"}) == 0
    assert seen[-3:] == [("thing", "closed"), ("thing", "open"), ("thing", "closed")]
    assert breaker.snapshots()["thing"]["state"] == "closed"


def test_redis_commands_fail_at_once_while_their_servers_breaker_is_open():
    breaker.configure(failures=2, cooldown_s=60)
    gone = GuardedRedis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1, socket_timeout=1
    )
    for _ in range(2):  # real refused connections
        with pytest.raises(redis.ConnectionError) as exc:
            gone.ping()
        assert not isinstance(exc.value, RedisCircuitOpen)
    with pytest.raises(RedisCircuitOpen) as fast:  # not sent: no connection was tried
        gone.get("x")
    assert fast.value.retry_after > 0
    with pytest.raises(RedisCircuitOpen):
        gone.pipeline().get("x").get("y").execute()


def test_an_error_in_a_command_is_not_redis_being_down():
    breaker.configure(failures=1, cooldown_s=60)
    client = GuardedRedis.from_url(REDIS_URL)
    with pytest.raises(redis.ResponseError):
        client.execute_command("NO-SUCH-COMMAND")
    assert breaker.breaker("redis", client.target).state == breaker.CLOSED
    assert client.ping()
    client.close()


def test_each_redis_server_has_its_own_breaker_and_the_metric_shows_the_worst():
    breaker.configure(failures=1, cooldown_s=60)
    gone = GuardedRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    live = GuardedRedis.from_url(REDIS_URL)
    with pytest.raises(redis.ConnectionError):
        gone.ping()
    assert breaker.breaker("redis", gone.target).state == breaker.OPEN
    assert live.ping(), "another server's breaker stays closed"
    assert set(breaker.snapshots()) == {f"redis@{gone.target}", f"redis@{live.target}"}
    assert REGISTRY.get_sample_value(STATE, {"dependency": "redis"}) == 2
    live.close()
