"""The limiter's tally of decisions per hour, against the real Redis: each check counts its
decision (ok, soft, grace, blocked) in the same EVALSHA that decides it, peeks count nothing,
and the reader sums the last hour and the last 24 hours.

Each test counts under its own prefix, so nothing else in the database adds to its counts.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.ratelimit import (
    AsyncRateLimiter,
    Policy,
    RateLimiter,
    keys_for,
    read_tally,
    tally_key,
)
from shared.ratelimit.tally import TTL_SECONDS
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

HOUR_MS = 3_600_000
T0 = 1_800_000_000 * 1000 // HOUR_MS * HOUR_MS  # the start of an hour
BIG = {"minute": 1_000, "hour": 10_000, "day": 100_000}
NONE = {"ok": 0, "soft": 0, "grace": 0, "blocked": 0}


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


@pytest.fixture
def prefix(client):
    name = f"test-tally-{uuid.uuid4().hex}:"
    yield name
    keys = list(client.scan_iter(match=f"{name}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def user(client):
    user_id = f"test-{uuid.uuid4()}"
    yield user_id
    client.delete(*keys_for(user_id))


def counted(client, prefix: str, at_ms: int) -> dict[str, int]:
    raw = client.hgetall(tally_key(prefix, at_ms / 1000))
    return NONE | {k.decode(): int(v) for k, v in raw.items()}


def test_each_check_counts_its_decision_and_a_peek_counts_nothing(client, prefix, user):
    lim = RateLimiter(client, Policy(), tally=prefix)
    limits = {**BIG, "minute": 10}  # soft above 8, grace up to 11, then blocked
    states = [lim.check(user, limits, now_ms=T0 + i).state for i in range(12)]
    assert states == ["ok"] * 8 + ["soft"] * 2 + ["grace", "blocked"]
    lim.peek(user, limits, now_ms=T0 + 12)

    assert counted(client, prefix, T0) == {"ok": 8, "soft": 2, "grace": 1, "blocked": 1}
    assert 24 * 3600 < client.ttl(tally_key(prefix, T0 / 1000)) <= TTL_SECONDS

    lim.check(user, limits, now_ms=T0 + HOUR_MS)  # the next hour: the next hash
    assert counted(client, prefix, T0 + HOUR_MS) == NONE | {"ok": 1}
    assert counted(client, prefix, T0)["ok"] == 8


def commands_of(client, call) -> list[tuple]:
    """The commands `call` sends through `client` (each with its arguments)."""
    sent = []
    send = client.execute_command

    def recording(*args, **options):
        sent.append(args)
        return send(*args, **options)

    client.execute_command = recording
    try:
        call()
    finally:
        del client.execute_command
    return sent


def test_the_count_rides_on_the_checks_own_round_trip(client, prefix, user):
    lim = RateLimiter(client, Policy(), tally=prefix)
    lim.check(user, BIG, now_ms=T0)  # the script is loaded: no NOSCRIPT retry below
    sent = commands_of(client, lambda: lim.check(user, BIG, now_ms=T0 + 1))
    assert [c[0] for c in sent] == ["EVALSHA"]
    assert sent[0][2:7] == (4, *keys_for(user), tally_key(prefix, T0 / 1000))
    assert counted(client, prefix, T0)["ok"] == 2
    peeked = commands_of(client, lambda: lim.peek(user, BIG, now_ms=T0 + 2))
    assert peeked[0][2:6] == (3, *keys_for(user))  # a peek names no tally


def test_a_limiter_without_a_tally_names_only_the_users_keys(client, user):
    lim = RateLimiter(client, Policy())
    lim.check(user, BIG, now_ms=T0)
    sent = commands_of(client, lambda: lim.check(user, BIG, now_ms=T0 + 1))
    assert sent[0][2:6] == (3, *keys_for(user))


def test_the_async_limiter_counts_alike(prefix, user, client):
    async def go() -> str:
        aclient = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            lim = AsyncRateLimiter(aclient, Policy(), tally=prefix)
            return (await lim.check(user, {**BIG, "minute": 1}, now_ms=T0)).state
        finally:
            await aclient.aclose()

    assert asyncio.run(go()) == "soft"  # 1 of 1: past the soft threshold (0)
    assert counted(client, prefix, T0) == NONE | {"soft": 1}


def test_the_reader_sums_the_last_hour_and_day_with_the_oldest_hour_pro_rata(client, prefix):
    now = T0 / 1000 + 900  # a quarter into the hour: three quarters of the one before count
    for hours_ago, ok in ((0, 1), (1, 4), (23, 10), (24, 40), (25, 1000)):
        client.hset(tally_key(prefix, now - 3600 * hours_ago), mapping={"ok": ok, "blocked": 4})

    tally = read_tally(client, prefix, now)
    assert tally["last_hour"] == NONE | {"ok": 1 + 3, "blocked": 4 + 3}
    assert tally["last_24h"] == NONE | {"ok": 1 + 4 + 10 + 30, "blocked": 3 * 4 + 3}


def test_the_reader_raises_when_redis_cannot_answer(prefix):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.RedisError):
        read_tally(down, prefix)
