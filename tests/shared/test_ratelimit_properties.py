"""Random request timelines through the real Lua script, against a pure-Python model.

The model is written from DESIGN.md §4 directly: it keeps every fixed bucket's count in a
dict, computes the sliding count as ``bucket[i] + ceil(bucket[i-1] · (W - e) / W)``, and
applies the ok / soft / grace / blocked rules with the rounding of `shared.ratelimit.policy`.
Each step's time is passed to the script through its test-only time override, so the
timelines can span days in milliseconds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ratelimit import WINDOWS, Policy, RateLimiter, keys_for

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/15"


class Model:
    """One user's windows, the simple way."""

    def __init__(self, policy: Policy, limits: dict[str, int]) -> None:
        self.t = {w: policy.thresholds(w, limits[w]) for w in WINDOWS}
        self.buckets: dict[str, dict[int, int]] = {w: defaultdict(int) for w in WINDOWS}
        self.grace_opened: dict[str, int | None] = dict.fromkeys(WINDOWS)
        self.latched = dict.fromkeys(WINDOWS, False)

    def count(self, w: str, now: int) -> int:
        size = self.t[w].window_ms
        i, e = divmod(now, size)
        prev = self.buckets[w].get(i - 1, 0)
        return self.buckets[w].get(i, 0) + -(-prev * (size - e) // size)

    def grace_active(self, w: str, now: int) -> bool:
        g, t = self.grace_opened[w], self.t[w]
        return g is not None and t.grace_ms > 0 and now < g + t.grace_ms

    def state(self, w: str, now: int) -> str:
        """Where a request made at `now` falls in window `w`."""
        t, c, g = self.t[w], self.count(w, now) + 1, self.grace_opened[w]
        may_open = t.grace_ms > 0 and (g is None or now >= g + t.grace_ms + t.window_ms)
        if self.latched[w] and c > t.limit:
            return "blocked"
        if c <= t.soft:
            return "ok"
        if c <= t.limit:
            return "soft"
        if c <= t.grace and (self.grace_active(w, now) or may_open):
            return "grace"
        return "blocked"

    def check(self, now: int, *, charge: bool) -> tuple[bool, dict[str, str]]:
        states = {w: self.state(w, now) for w in WINDOWS}
        allowed = "blocked" not in states.values()
        if charge and not allowed:
            for w, s in states.items():
                self.latched[w] = self.latched[w] or s == "blocked"
        if charge and allowed:
            for w in WINDOWS:
                if states[w] == "grace" and not self.grace_active(w, now):
                    self.grace_opened[w] = now
                self.buckets[w][now // self.t[w].window_ms] += 1
                self.latched[w] = False
        return allowed, states

    def fits_at(self, now: int) -> bool:
        """Every window would take one more request within its limit at `now`."""
        return all(self.count(w, now) + 1 <= self.t[w].limit for w in WINDOWS)


@pytest.fixture(scope="module")
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


gaps = st.one_of(
    st.integers(0, 1_500),
    st.integers(0, 70_000),
    st.integers(0, 4_000_000),
    st.integers(0, 100_000_000),
)
timelines = st.lists(st.tuples(gaps, st.sampled_from(["check", "check", "check", "peek"])))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    limits=st.fixed_dictionaries(
        {"minute": st.integers(0, 6), "hour": st.integers(0, 14), "day": st.integers(0, 30)}
    ),
    soft=st.sampled_from([0.5, 0.8, 0.9, 1.0]),
    grace=st.sampled_from([1.0, 1.1, 1.25, 1.5, 2.0]),
    grace_seconds=st.sampled_from([0, 1, 30, 300, 7_200, 200_000]),
    start=st.integers(0, 4_000_000_000_000),
    steps=timelines.map(lambda s: s[:60]),
)
def test_script_agrees_with_the_model_on_every_decision(
    client, limits, soft, grace, grace_seconds, start, steps
):
    policy = Policy(soft_ratio=soft, grace_ratio=grace, grace_seconds=grace_seconds)
    limiter = RateLimiter(client, policy)
    model = Model(policy, limits)
    user = f"prop-{uuid.uuid4()}"
    now = start
    try:
        for gap, action in steps:
            now += gap
            charge = action == "check"
            run = limiter.check if charge else limiter.peek
            got = run(user, limits, now_ms=now)
            allowed, states = model.check(now, charge=charge)

            assert got.now_ms == now
            assert got.allowed == allowed
            assert {w.window: w.state for w in got.windows} == states
            for w in got.windows:
                assert w.count == model.count(w.window, now)
                assert w.limit == limits[w.window]
                active = model.grace_active(w.window, now)
                assert (w.grace_until_ms is not None) == active
                if active:
                    assert w.grace_until_ms == model.grace_opened[w.window] + (
                        model.t[w.window].grace_ms
                    )
                # reset: the count drains to zero exactly then, not a millisecond before
                assert model.count(w.window, now + w.reset_ms) == 0
                if w.reset_ms:
                    assert model.count(w.window, now + w.reset_ms - 1) > 0
            if not got.allowed:
                _check_retry_after(model, got, now, latched=charge)
    finally:
        client.delete(*keys_for(user))


def _check_retry_after(model: Model, got, now: int, *, latched: bool) -> None:
    """retry_after is never earlier than the real moment the counts fall back to L."""
    retry = got.retry_after_ms
    assert got.retry_after * 1000 >= retry
    limits = {w: model.t[w].limit for w in WINDOWS}
    if 0 in limits.values():
        return  # a zero limit never opens: retry_after is only "look again later"
    # then the request is allowed (nothing else happening in between) ...
    assert model.check(now + retry, charge=False)[0]
    # ... and the window that decides it is still over its limit a millisecond earlier
    binding = got.binding.window
    assert model.count(binding, now + retry - 1) + 1 > limits[binding]
    for w in got.windows:
        if w.state == "blocked":
            # each violated window is back to c ≤ L exactly at its own retry time ...
            assert model.count(w.window, now + w.retry_after_ms) + 1 <= limits[w.window]
            assert model.count(w.window, now + w.retry_after_ms - 1) + 1 > limits[w.window]
            if latched:  # ... and a refused check keeps it blocked until then
                assert model.state(w.window, now + w.retry_after_ms - 1) == "blocked"
