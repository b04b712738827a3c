"""The limiter's list of thresholds crossed, against the real Redis: a check that passes the
soft threshold, opens a grace period or begins a block appends one entry in the same EVALSHA;
told once per crossing, not at every request past it; peeks and limiters without the list
write nothing; the reader parses, and drops only what it read.

Each test keeps its own list, so nothing else in the database adds to it.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from shared.ratelimit import Policy, RateLimiter, keys_for
from shared.ratelimit import crossings as crossings_list
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

T0 = 1_800_000_000_000 // 60_000 * 60_000  # the start of a minute
# soft after 8 of 10, grace up to 12 for 30 s; hour and day far away
LIMITS = {"minute": 10, "hour": 10_000, "day": 100_000}
POLICY = Policy(soft_ratio=0.8, grace_ratio=1.2, grace_seconds=30)


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


@pytest.fixture
def names(client):
    token = uuid.uuid4().hex
    user, tally, listed = f"test-{token}", f"test-tally-{token}:", f"test-crossings-{token}"
    yield user, tally, listed
    client.delete(*keys_for(user), listed, *client.scan_iter(match=f"{tally}*"))


def states(client, key) -> list[tuple[str, str, int, int]]:
    _, found = crossings_list.read(client, key, 1000)
    return [(c.state, c.window, c.count, c.limit) for c in found]


def test_each_threshold_is_told_once_as_it_is_crossed(client, names):
    user, tally, listed = names
    limiter = RateLimiter(client, POLICY, tally=tally, crossings=listed)
    allowed = [limiter.check(user, LIMITS, now_ms=T0 + k).allowed for k in range(14)]

    assert allowed == [True] * 12 + [False] * 2
    # 9th passes S = 8; 11th passes L = 10 and opens the grace period; 13th is refused
    # first (blocked); the 10th, 12th and 14th cross nothing new
    assert states(client, listed) == [
        ("soft", "minute", 9, 10),
        ("grace", "minute", 11, 10),
        ("blocked", "minute", 13, 10),
    ]
    read, found = crossings_list.read(client, listed, 10)
    assert read == 3 and {c.user_id for c in found} == {user}
    assert [c.at_ms for c in found] == [T0 + 8, T0 + 10, T0 + 12]


def test_the_soft_threshold_is_told_again_only_after_the_count_fell_back(client, names):
    user, tally, listed = names
    limiter = RateLimiter(client, POLICY, tally=tally, crossings=listed)
    for k in range(9):  # 9 in the first minute: soft once
        limiter.check(user, LIMITS, now_ms=T0 + k)
    # a minute later the sliding count is still past S (9 carried over, nearly in full)
    limiter.check(user, LIMITS, now_ms=T0 + 60_000)
    assert [s[0] for s in states(client, listed)] == ["soft"]
    # two minutes on, the count fell back to 1: plain ok, and the next crossing is told
    later = T0 + 180_000
    for k in range(9):
        limiter.check(user, LIMITS, now_ms=later + k)
    assert [s[0] for s in states(client, listed)] == ["soft", "soft"]


def test_several_windows_crossed_by_one_check_make_one_entry(client, names):
    user, tally, listed = names
    limiter = RateLimiter(client, POLICY, tally=tally, crossings=listed)
    tight = {"minute": 5, "hour": 5, "day": 100}
    for k in range(5):
        limiter.check(user, tight, now_ms=T0 + k)
    assert client.llen(listed) == 1
    assert sorted(states(client, listed)) == [("soft", "hour", 5, 5), ("soft", "minute", 5, 5)]


def test_peeks_and_limiters_without_the_list_write_nothing(client, names):
    user, tally, listed = names
    plain = RateLimiter(client, POLICY, tally=tally)
    for k in range(12):
        plain.check(user, LIMITS, now_ms=T0 + k)
    listing = RateLimiter(client, POLICY, tally=tally, crossings=listed)
    listing.peek(user, LIMITS, now_ms=T0 + 20)
    assert client.exists(listed) == 0
    with pytest.raises(ValueError, match="tally"):
        RateLimiter(client, POLICY, crossings=listed)


def test_forget_drops_what_was_read_and_keeps_what_came_after(client, names):
    user, tally, listed = names
    limiter = RateLimiter(client, POLICY, tally=tally, crossings=listed)
    for k in range(11):
        limiter.check(user, LIMITS, now_ms=T0 + k)
    read, first = crossings_list.read(client, listed, 100)
    assert [c.state for c in first] == ["soft", "grace"]
    again, same = crossings_list.read(client, listed, 100)  # read twice: the same keys
    assert [c.key for c in same] == [c.key for c in first]
    for k in range(11, 13):  # one more crossing arrives before the reader forgets
        limiter.check(user, LIMITS, now_ms=T0 + k)
    crossings_list.forget(client, listed, read)
    assert [s[0] for s in states(client, listed)] == ["blocked"]


@pytest.mark.parametrize(
    "entry",
    [b"", b"no tabs", b"u\t1\t", b"u\tx\tsoft:1:1:1", b"u\t1\tsoft:9:1:1", b"u\t1\tnope:1:1:1"],
)
def test_an_entry_that_is_not_one_gives_no_crossing(entry):
    assert crossings_list.parse(entry) == []
