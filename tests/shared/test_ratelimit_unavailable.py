"""The limiter when its Redis goes away and comes back: a redis-server of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import redis

from shared.ratelimit import Policy, RateLimiter, RateLimiterUnavailable
from tests.e2e.e2e_support import free_port

pytestmark = pytest.mark.redis

LIMITS = {"minute": 10, "hour": 100, "day": 1000}


def start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    probe = redis.Redis(port=port)
    for _ in range(200):  # readiness, not a timing assertion
        try:
            probe.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.025)
    proc.terminate()
    raise RuntimeError("redis-server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM
    proc.wait()


@pytest.fixture
def port():
    if shutil.which("redis-server") is None:  # under CI a missing server is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("redis-server is not installed")
    return free_port()


def test_a_stopped_redis_is_reported_as_unavailable_not_as_a_crash(port):
    proc = start_redis(port)
    try:
        limiter = RateLimiter(
            redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2), Policy()
        )
        assert limiter.check("u1", LIMITS).allowed
    finally:
        stop(proc)

    for call in (limiter.check, limiter.peek):
        with pytest.raises(RateLimiterUnavailable):
            call("u1", LIMITS)
    with pytest.raises(RateLimiterUnavailable):
        limiter.reset("u1")


def test_checks_work_again_after_a_restart_with_an_empty_script_cache(port):
    client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2)
    limiter = RateLimiter(client, Policy())
    proc = start_redis(port)
    try:
        assert limiter.check("u1", LIMITS).by_window["minute"].count == 1
    finally:
        stop(proc)
    with pytest.raises(RateLimiterUnavailable):
        limiter.check("u1", LIMITS)

    proc = start_redis(port)  # a new server: no data, no scripts (NOSCRIPT, then reload)
    try:
        decision = limiter.check("u1", LIMITS)
        assert decision.allowed and decision.by_window["minute"].count == 1
    finally:
        stop(proc)
