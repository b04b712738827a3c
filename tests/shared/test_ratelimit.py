"""The rate limiter against the real Redis: each state transition of DESIGN.md §4.

Times are driven through the script's test-only time override (``now_ms``) so each test
says exactly when a request happens; one test uses Redis's own clock.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import redis.asyncio
from redis.cluster import key_slot

from shared.ratelimit import (
    AsyncRateLimiter,
    Policy,
    RateLimiter,
    decision_headers,
    keys_for,
)
from shared.ratelimit.limiter import SCRIPT_SHA

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/15"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = 1_800_000_000 * 1000 // DAY * DAY  # the start of a day: every bucket starts here
BIG = {"minute": 1_000, "hour": 10_000, "day": 100_000}


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


@pytest.fixture
def user(client):
    user_id = f"test-{uuid.uuid4()}"
    yield user_id
    client.delete(*keys_for(user_id))


def limiter(client, **policy) -> RateLimiter:
    return RateLimiter(client, Policy(**policy))


def run(lim, user, limits, times):
    return [lim.check(user, limits, now_ms=t) for t in times]


def hour_limit(n: int) -> dict[str, int]:
    return {**BIG, "hour": n}


# Thresholds and rounding ------------------------------------------------------------------


def test_thresholds_round_down_in_decimal():
    p = Policy(soft_ratio=0.8, grace_ratio=1.1, grace_seconds=300)
    t = p.thresholds("minute", 10)
    assert (t.soft, t.limit, t.grace, t.grace_ms) == (8, 10, 11, 60_000)  # grace ≤ window
    assert p.thresholds("hour", 10).grace_ms == 300_000
    assert p.thresholds("minute", 1).soft == 0 and p.thresholds("minute", 1).grace == 1
    assert p.thresholds("minute", 25).grace == 27  # floor(27.5)
    assert Policy(soft_ratio=0.29).thresholds("day", 100).soft == 29  # not 28.999…
    with pytest.raises(ValueError):
        Policy(soft_ratio=0)
    with pytest.raises(ValueError):
        p.thresholds("day", -1)


# ok → soft → grace → blocked ------------------------------------------------------------


def test_a_fresh_user_goes_ok_soft_grace_then_blocked(client, user):
    lim = limiter(client)
    got = run(lim, user, hour_limit(10), [T0 + i for i in range(13)])

    states = [d.by_window["hour"].state for d in got]
    assert states == ["ok"] * 8 + ["soft"] * 2 + ["grace"] + ["blocked"] * 2
    assert [d.allowed for d in got] == [True] * 11 + [False] * 2
    assert [d.warning for d in got[7:11]] == [None, "soft", "soft", "grace"]
    assert got[10].by_window["hour"].grace_until_ms == T0 + 10 + 300_000
    assert got[11].violated == ["hour"] and got[11].binding.window == "hour"
    assert [d.by_window["hour"].count for d in got] == list(range(1, 12)) + [11, 11]


def test_a_blocked_request_consumes_nothing_in_any_window(client, user):
    lim = limiter(client)
    limits = {"minute": 100, "hour": 100, "day": 2}
    run(lim, user, limits, [T0, T0 + 1])
    before = [client.hgetall(k) for k in keys_for(user)]

    blocked = lim.check(user, limits, now_ms=T0 + 2)

    assert not blocked.allowed and blocked.violated == ["day"]
    assert blocked.by_window["minute"].state == "ok"
    assert [w.count for w in blocked.windows] == [2, 2, 2]
    after = [client.hgetall(k) for k in keys_for(user)]
    assert {k: v for k, v in after[2].items() if k != b"x"} == {
        k: v for k, v in before[2].items() if k != b"x"
    }
    assert after[:2] == before[:2]  # the windows it did not violate are untouched


def test_peek_changes_nothing(client, user):
    lim = limiter(client)
    run(lim, user, hour_limit(10), [T0 + i for i in range(8)])
    for _ in range(5):
        peek = lim.peek(user, hour_limit(10), now_ms=T0 + 100)
        assert peek.by_window["hour"].count == 8 and peek.by_window["hour"].state == "soft"
    assert lim.check(user, hour_limit(10), now_ms=T0 + 101).by_window["hour"].count == 9


# Grace ------------------------------------------------------------------------------------


def test_grace_lasts_the_grace_length_then_blocks(client, user):
    lim = limiter(client, grace_seconds=300)
    run(lim, user, hour_limit(20), [T0 + i for i in range(21)])  # 21st opens grace at T0+20
    opened = T0 + 20

    assert lim.check(user, hour_limit(20), now_ms=opened + 299_999).by_window["hour"].state == (
        "grace"
    )
    late = lim.check(user, hour_limit(20), now_ms=opened + 300_000)
    assert not late.allowed and late.violated == ["hour"]


def test_grace_is_never_longer_than_the_window(client, user):
    lim = limiter(client, grace_seconds=300)
    limits = {**BIG, "minute": 10}
    got = run(lim, user, limits, [T0 + i for i in range(11)])
    assert got[-1].by_window["minute"].grace_until_ms == T0 + 10 + MIN


def test_grace_cannot_reopen_until_grace_plus_window_has_passed(client, user):
    lim = limiter(client, grace_seconds=300)  # the minute's grace: 60 s, reopens after 120 s
    limits = {**BIG, "minute": 10}
    run(lim, user, limits, [T0 + i for i in range(11)])  # grace opens at T0 + 10
    opened = T0 + 10

    def fill_to_limit(t: int) -> int:
        while lim.peek(user, limits, now_ms=t).by_window["minute"].count < 10:
            assert lim.check(user, limits, now_ms=t).allowed
            t += 1
        return t

    # 100 s in, the count has decayed below the limit and the grace period is over;
    # passing the limit again would need a new grace period: not before opened + 120 s.
    t = fill_to_limit(T0 + 100_000)
    refused = lim.check(user, limits, now_ms=t)
    assert refused.violated == ["minute"]
    assert refused.by_window["minute"].grace_reopens_at_ms == opened + 60_000 + MIN

    t = fill_to_limit(opened + 60_000 + MIN)
    again = lim.check(user, limits, now_ms=t)
    assert again.allowed and again.by_window["minute"].state == "grace"
    assert again.by_window["minute"].grace_until_ms == t + 60_000


def test_no_grace_when_the_grace_length_is_zero(client, user):
    lim = limiter(client, grace_seconds=0)
    got = run(lim, user, hour_limit(10), [T0 + i for i in range(11)])
    assert got[-1].violated == ["hour"]


def test_blocked_stays_blocked_until_the_count_is_back_to_the_limit(client, user):
    """Even inside an open grace period: once blocked, c must come back to L."""
    lim = limiter(client, grace_seconds=300)
    limits = {**BIG, "minute": 10}
    start = T0 + 59_000  # 11 requests just before the minute bucket ends
    run(lim, user, limits, [start + i for i in range(11)])
    blocked = lim.check(user, limits, now_ms=start + 20)
    assert blocked.violated == ["minute"]
    # In the next bucket the count decays; at 10 the grace ceiling (11) would allow one
    # more, and grace is still open, but the window stays blocked until c ≤ 10.
    t = start + 1_000 + 6_000  # ceil(11 · 53/60) = 10
    peek = lim.peek(user, limits, now_ms=t)
    assert peek.by_window["minute"].count == 10
    assert peek.by_window["minute"].grace_until_ms is not None
    assert lim.check(user, limits, now_ms=t).by_window["minute"].state == "blocked"
    free_at = start + 20 + blocked.retry_after_ms
    assert lim.check(user, limits, now_ms=free_at - 1).by_window["minute"].state == "blocked"
    assert lim.check(user, limits, now_ms=free_at).by_window["minute"].state == "soft"


# retry_after and reset ----------------------------------------------------------------------


def test_retry_after_is_the_moment_the_count_is_back_to_the_limit(client, user):
    lim = limiter(client, grace_seconds=0)
    limits = {**BIG, "minute": 6}
    run(lim, user, limits, [T0 + 30_000 + i for i in range(6)])
    blocked = lim.check(user, limits, now_ms=T0 + 30_010)
    assert not blocked.allowed
    # next bucket at T0+60 s holds prev = 6; ceil(6 · (60 - e)/60) ≤ 5 once e ≥ 10 s
    assert blocked.retry_after_ms == 60_000 + 10_000 - 30_010
    assert blocked.retry_after == 40  # whole seconds, rounded up: never early
    at = T0 + 30_010 + blocked.retry_after_ms
    assert not lim.peek(user, limits, now_ms=at - 1).allowed
    assert lim.check(user, limits, now_ms=at).allowed
    headers = decision_headers(blocked)
    assert headers["Retry-After"] == "40"


def test_reset_is_when_the_count_has_drained_to_zero(client, user):
    lim = limiter(client)
    d = lim.check(user, BIG, now_ms=T0 + 15_000)
    assert d.by_window["minute"].reset_ms == 2 * MIN - 15_000
    assert d.by_window["minute"].reset == 105
    assert lim.peek(user, BIG, now_ms=T0 + 2 * MIN).by_window["minute"].count == 0


def test_a_zero_limit_blocks_everything(client, user):
    d = limiter(client).check(user, {**BIG, "day": 0}, now_ms=T0)
    assert not d.allowed and d.violated == ["day"]
    assert d.retry_after_ms == DAY


def test_reset_forgets_counts_grace_and_blocks(client, user):
    lim = limiter(client)
    run(lim, user, hour_limit(2), [T0, T0 + 1, T0 + 2, T0 + 3])
    assert not lim.peek(user, hour_limit(2), now_ms=T0 + 4).allowed
    lim.reset(user)
    assert all(not client.exists(k) for k in keys_for(user))
    assert lim.check(user, hour_limit(2), now_ms=T0 + 5).by_window["hour"].count == 1


# Keys, Redis clock, NOSCRIPT --------------------------------------------------------------


def test_keys_share_one_cluster_slot_and_expire(client, user):
    keys = keys_for(user)
    assert keys == [f"rl:{{u:{user}}}:m", f"rl:{{u:{user}}}:h", f"rl:{{u:{user}}}:d"]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    lim = limiter(client)
    lim.check(user, BIG)  # Redis's own clock
    ttls = [client.pttl(k) for k in keys]
    assert all(0 < ttl <= 2 * size for ttl, size in zip(ttls, (MIN, HOUR, DAY), strict=True))


def _redis_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_a_key_outlives_its_counts_and_its_grace_lockout(client, user):
    lim = limiter(client, grace_seconds=300)  # minute: grace 60 s, no reopening for 120 s
    limits = {**BIG, "minute": 1}
    before = _redis_ms(client)
    lim.check(user, limits, now_ms=T0)
    minute_key = keys_for(user)[0]
    assert client.pexpiretime(minute_key) >= before + 2 * MIN  # its count drains by then

    start = T0 + 59_000  # late in a bucket: counts drain 61 s on, the lockout 120 s on
    lim.reset(user)
    run(lim, user, {**BIG, "minute": 10}, [start + i for i in range(10)])
    before = _redis_ms(client)
    opened = lim.check(user, {**BIG, "minute": 10}, now_ms=start + 10)
    assert opened.by_window["minute"].state == "grace"
    assert client.pexpiretime(minute_key) >= before + 60_000 + MIN


def test_checks_use_the_redis_clock_by_default(client, user):
    lim = limiter(client)
    first = lim.check(user, BIG)
    second = lim.check(user, BIG)
    redis_now = client.time()
    assert first.now_ms <= second.now_ms <= redis_now[0] * 1000 + redis_now[1] // 1000
    assert second.by_window["day"].count == 2


def test_checks_survive_a_flushed_script_cache(client, user):
    lim = limiter(client)
    lim.check(user, BIG)
    client.script_flush()
    assert client.script_exists(SCRIPT_SHA) == [False]

    assert lim.check(user, BIG).by_window["minute"].count == 2
    assert client.script_exists(SCRIPT_SHA) == [True]


# Concurrency ------------------------------------------------------------------------------


def _parallel_checks(n: int, limits: dict[str, int], user: str, now_ms: int | None) -> list:
    local = threading.local()

    def one(_):
        if not hasattr(local, "limiter"):  # each thread: its own connection
            local.limiter = limiter(redis.Redis.from_url(REDIS_URL))
        return local.limiter.check(user, limits, now_ms=now_ms)

    with ThreadPoolExecutor(max_workers=64) as pool:
        return list(pool.map(one, range(n)))


def test_hundreds_of_parallel_checks_never_exceed_the_allowance(client, user):
    limits = {"minute": 100, "hour": 1_000, "day": 10_000}  # allowance: floor(1.1 · 100)
    got = _parallel_checks(400, limits, user, now_ms=T0 + 1_000)
    assert sum(d.allowed for d in got) == 110
    counts = sorted(d.by_window["minute"].count for d in got if d.allowed)
    assert counts == list(range(1, 111))  # every allowed request saw its own count
    assert client.hget(keys_for(user)[0], "c") == b"110"


def test_parallel_checks_on_the_redis_clock_stay_within_the_allowance(client, user):
    limits = {"minute": 1_000, "hour": 150, "day": 10_000}
    got = _parallel_checks(300, limits, user, now_ms=None)
    allowed = sum(d.allowed for d in got)
    assert allowed <= 165
    assert lim_count(client, user, limits) == allowed


def lim_count(client, user, limits) -> int:
    return limiter(client).peek(user, limits).by_window["hour"].count


# Async variant ----------------------------------------------------------------------------


def test_the_async_limiter_makes_the_same_decisions(client, user):
    async def go():
        aclient = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            lim = AsyncRateLimiter(aclient, Policy())
            got = [await lim.check(user, hour_limit(3), now_ms=T0 + i) for i in range(5)]
            peek = await lim.peek(user, hour_limit(3), now_ms=T0 + 10)
            await aclient.script_flush()
            again = await lim.peek(user, hour_limit(3), now_ms=T0 + 10)
            await lim.reset(user)
            return got, peek, again
        finally:
            await aclient.aclose()

    got, peek, again = asyncio.run(go())
    assert [d.by_window["hour"].state for d in got] == ["ok", "ok", "soft", "blocked", "blocked"]
    assert peek.by_window["hour"].count == again.by_window["hour"].count == 3
    assert not client.exists(*keys_for(user))


# Headers ----------------------------------------------------------------------------------


def test_headers_follow_the_ietf_draft_and_name_the_binding_window(client, user):
    lim = limiter(client)
    limits = {"minute": 10, "hour": 500, "day": 2000}
    got = run(lim, user, limits, [T0 + i for i in range(9)])[-1]

    h = decision_headers(got)
    assert h["RateLimit-Policy"] == '"minute";q=10;w=60, "hour";q=500;w=3600, "day";q=2000;w=86400'
    assert h["RateLimit"] == '"minute";r=1;t=120, "hour";r=491;t=7200, "day";r=1991;t=172800'
    assert (h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"], h["X-RateLimit-Used"]) == (
        "10",
        "1",
        "9",
    )
    assert h["X-RateLimit-Reset"] == "120"
    assert h["X-RateLimit-Warning"] == "soft"
    assert "Retry-After" not in h
