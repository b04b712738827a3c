"""The hourly `cache_maintenance` beat task: a real worker (`ferry request worker`) runs it
against the real database and Redis, it pre-warms a response read recently whose entry was
invalidated, and its report is kept for the cache statistics."""

from __future__ import annotations

import secrets
from datetime import timedelta

import orjson
import pytest
import redis
from cache_helpers import CACHE_REDIS_URL, cache_settings, clear_keys, login, response_url
from fastapi.testclient import TestClient

from request_network.app import create_app
from request_network.services import response_cache
from shared.celery_app import make_celery
from tests.e2e.e2e_support import Logs, Service, base_environment, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# The worker's own broker (and result backend): a Redis database no other test consumes.
BROKER = "redis://127.0.0.1:6379/8"
HITS = [{"_id": "a1", "_source": {"title": "Across the gap"}}]


@pytest.fixture
def cache(api_db):
    client = redis.Redis.from_url(CACHE_REDIS_URL)
    clear_keys(client)
    yield client
    clear_keys(client)
    client.close()


@pytest.fixture
def worker(api_db, cache, tmp_path):
    broker = redis.Redis.from_url(BROKER)
    broker.flushdb()
    env = base_environment() | {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_JWT_SECRET": secrets.token_urlsafe(36),
        "FERRY_REQUEST_API_KEY_PEPPER": secrets.token_urlsafe(36),
        "FERRY_REQUEST_DATABASE_URL": api_db,
        "FERRY_REQUEST_REDIS_URL": CACHE_REDIS_URL,
        "FERRY_REQUEST_BROKER_URL": BROKER,
        "FERRY_REQUEST_TRANSFER_DIR": str(tmp_path / "transfer"),
    }
    logs = Logs(tmp_path / "logs")
    service = Service(
        "request-worker", ["request", "worker", "--concurrency", "1"], env, logs, tmp_path
    )
    yield service, logs
    service.stop()
    broker.flushdb()
    broker.close()


def test_the_task_is_on_the_hourly_beat(monkeypatch):
    monkeypatch.setenv("FERRY_REQUEST_MODE", "demo")
    from request_network import tasks

    entry = tasks.celery.conf.beat_schedule["cache_maintenance"]
    assert entry["task"] == "request.cache_maintenance"
    assert entry["task"] in tasks.celery.tasks
    assert entry["schedule"] == timedelta(hours=1)


def test_cache_maintenance_runs_on_a_worker_and_prewarms_what_was_read(api_db, seed, cache, worker):
    service, logs = worker
    seed.profile_type()
    alice_id = seed.user("alice")
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    with TestClient(create_app(cache_settings(api_db))) as client:
        alice = login(client, "alice")
        body = client.get(response_url(request_id), headers=alice).content
        assert response_cache.invalidate(cache, [request_id]) == 1  # e.g. a cancel
        assert cache.exists(f"resp:{request_id}") == 0
        app = make_celery("cache-test", broker=BROKER, eager=False, queue="ferry.request", beat={})

        result = app.send_task("request.cache_maintenance", queue="ferry.request")

        def finished() -> bool:
            service.ensure_alive()
            return result.ready()

        wait_until(finished, timeout=120, what="the cache_maintenance task", details=logs.report)
        report = result.get(timeout=5)
        assert report["prewarmed"] == 1, report
        assert cache.get(f"resp:{request_id}") == body, "cached again, the same bytes"
        assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "HIT"
    assert orjson.loads(cache.hget("resp:stats", "last_optimize")) == report
    assert cache.hget("resp:stats", "evicted_invalidated") == b"1"
