"""Helpers for response API tests: settings, committed users, an emptied database, and the
test Redis DB's login keys (the API commits its own transactions, so no rollback session)."""

from __future__ import annotations

import uuid
from typing import Any

import redis

from response_network.models import Base, User
from response_network.settings import ResponseSettings
from shared.db import get_engine, transaction
from shared.security.passwords import hash_password

TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "correct horse battery"
JWT_SECRET = "test-secret-for-the-response-api-0123456789"
LOGIN = "/api/v1/auth/login"


def empty_response_db(url: str) -> None:
    """Delete every row of every response-network table, children first."""
    with get_engine(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def clear_auth_keys(client: redis.Redis) -> None:
    """Delete the login counters, locks and revocations tests leave (`auth:*`)."""
    try:
        keys = list(client.scan_iter(match="auth:*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # no Redis, nothing to clean


def make_settings(database_url: str, **overrides: Any) -> ResponseSettings:
    values: dict[str, Any] = dict(
        mode="production",
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        jwt_secret=JWT_SECRET,
        bcrypt_rounds=4,
        # A notification stream ends at once (after one look) unless a test wants it open.
        notification_stream_seconds=0.05,
    )
    values.update(overrides)
    return ResponseSettings(**values)


def add_user(url: str, username: str, password: str = PASSWORD, *, role: str = "admin") -> str:
    """A committed response-network user (the authority's own row, as the CLI makes it)."""
    user_id = str(uuid.uuid4())
    with transaction(url) as session:
        session.add(
            User(
                id=user_id,
                username=username,
                password_hash=hash_password(password, rounds=4),
                role=role,
                profile_type="articles",
                active=True,
                version=1,
            )
        )
    return user_id


WRONG = "wrong password"


def attempt(client, username: str, password: str = WRONG):
    return client.post(LOGIN, data={"username": username, "password": password})


def assert_problem(reply, status: int) -> dict[str, Any]:
    """The reply is RFC 9457 problem+json with the given status; returns the body."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    return body
