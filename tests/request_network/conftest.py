"""Fixtures for the request API: a real app on the PostgreSQL request database and Redis.

The API opens (and commits) its own transactions, so API tests cannot use the rollback
session. Instead every test that takes `api_db` gets an empty request database and leaves
it empty again (TRUNCATE ... CASCADE), and the Redis keys it caused are deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress

import pytest
import redis
from fastapi.testclient import TestClient
from request_api_helpers import (
    PASSWORD,
    TEST_REDIS_URL,
    Seed,
    clear_auth_keys,
    make_settings,
    truncate_request_db,
)

from request_network.app import create_app
from request_network.settings import RequestSettings


@pytest.fixture
def rq_url(pg_urls) -> str:
    return pg_urls["request"]


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def api_db(rq_url: str, redis_client: redis.Redis) -> Iterator[str]:
    """The request database, emptied before and after the test (and its cache keys)."""
    truncate_request_db(rq_url)
    clear_auth_keys(redis_client)
    yield rq_url
    ids = truncate_request_db(rq_url)
    clear_auth_keys(redis_client)
    if ids:
        with suppress(redis.RedisError):  # no Redis, no cache keys to remove
            redis_client.delete(*(f"resp:{i}" for i in ids))


@pytest.fixture
def settings(api_db: str) -> RequestSettings:
    return make_settings(api_db)


@pytest.fixture
def client(settings: RequestSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def seed(api_db: str) -> Seed:
    return Seed(api_db)


LoginFn = Callable[..., dict[str, str]]


@pytest.fixture
def login(client: TestClient) -> LoginFn:
    """``login(username, password)`` → Authorization headers (asserts the login worked)."""

    def _login(username: str, password: str = PASSWORD) -> dict[str, str]:
        reply = client.post("/api/v1/auth/login", data={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    return _login
