"""The response network's login has the request network's protection: throttling per client
and per account, lockout after repeated failures (an `AccountLock` row and Redis), an
audited lock, the 72-byte password rule, fail-closed without Redis, and token replies that
no cache keeps; none of it reveals whether an account exists.

Real PostgreSQL (the response database, emptied around each test) and Redis (DB 15, its
`auth:*` keys cleared around each test), through the real response app.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import bcrypt
import pytest
import redis
from fastapi.testclient import TestClient
from response_api_helpers import (
    PASSWORD,
    TEST_REDIS_URL,
    WRONG,
    add_user,
    assert_problem,
    attempt,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)
from sqlalchemy import func, select

from response_network.app import create_app
from response_network.models import AccountLock, AuditLog
from shared.db import transaction, utcnow
from tests.request_network.request_api_helpers import closed_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MAX_FAILURES, LOCKOUT_MINUTES = 3, 7


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def rs_db(pg_urls, redis_client) -> Iterator[str]:
    url = pg_urls["response"]
    empty_response_db(url)
    clear_auth_keys(redis_client)
    yield url
    empty_response_db(url)
    clear_auth_keys(redis_client)


def client_with(rs_db: str, **overrides) -> TestClient:
    limits = dict(
        login_max_failures=MAX_FAILURES,
        login_lockout_minutes=LOCKOUT_MINUTES,
        login_attempts_per_minute_per_ip=100,
        login_attempts_per_minute_per_account=50,
    )
    return TestClient(create_app(make_settings(rs_db, **(limits | overrides))))


@pytest.fixture
def client(rs_db) -> Iterator[TestClient]:
    with client_with(rs_db) as test_client:
        yield test_client


@pytest.fixture
def alice(rs_db) -> str:
    return add_user(rs_db, "alice")


def shape(reply) -> tuple:
    """What a caller can see, minus the countdown (which ticks between two replies)."""
    return reply.status_code, reply.json(), sorted(reply.headers.keys())


# A good login ---------------------------------------------------------------------------


def test_a_good_login_is_a_token_no_cache_keeps(client, alice):
    reply = attempt(client, "alice", PASSWORD)

    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["pragma"] == "no-cache"
    token = reply.json()["access_token"]
    batches = client.get("/api/v1/admin/batches", headers={"Authorization": f"Bearer {token}"})
    assert batches.status_code == 200, batches.text


# Throttling -----------------------------------------------------------------------------


def test_attempts_per_client_address_are_limited(rs_db, alice):
    with client_with(rs_db, login_attempts_per_minute_per_ip=3) as client:
        replies = [attempt(client, f"user{i}") for i in range(3)]
        blocked = attempt(client, "alice", PASSWORD)  # even the right password

    assert [r.status_code for r in replies] == [401, 401, 401]
    body = assert_problem(blocked, 429)
    assert body["title"] == "Too many login attempts"
    assert 0 < int(blocked.headers["retry-after"]) <= 60


def test_attempts_per_account_are_limited_and_look_the_same_for_unknown_names(rs_db, alice):
    with client_with(rs_db, login_attempts_per_minute_per_account=2) as client:
        known = [attempt(client, "alice") for _ in range(3)]
        unknown = [attempt(client, "ghost") for _ in range(3)]
        other = attempt(client, "alice2")

    assert [shape(r) for r in known] == [shape(r) for r in unknown]
    assert_problem(known[-1], 429)
    assert other.status_code == 401  # another name is not held back


# Lockout --------------------------------------------------------------------------------


def test_failures_lock_the_account_even_against_the_right_password(client, rs_db, alice):
    replies = [attempt(client, "alice") for _ in range(MAX_FAILURES)]
    after = attempt(client, "alice", PASSWORD)

    assert [r.status_code for r in replies] == [401] * (MAX_FAILURES - 1) + [429]
    body = assert_problem(after, 429)
    assert body["title"] == "Login temporarily locked"
    assert "alice" not in after.text
    assert LOCKOUT_MINUTES * 60 - 5 < int(after.headers["retry-after"]) <= LOCKOUT_MINUTES * 60
    with transaction(rs_db) as session:
        lock = session.get(AccountLock, alice)
    assert lock.failures == MAX_FAILURES
    expected = utcnow() + timedelta(minutes=LOCKOUT_MINUTES)
    assert abs((lock.locked_until - expected).total_seconds()) < 60


def test_the_lock_is_audited_without_the_password(client, rs_db, alice):
    for _ in range(MAX_FAILURES):
        attempt(client, "alice")

    with transaction(rs_db) as session:
        rows = session.execute(select(AuditLog)).scalars().all()
    assert [(r.action, r.actor, r.target) for r in rows] == [("account.locked", "system", alice)]
    assert rows[0].detail["failures"] == MAX_FAILURES
    assert rows[0].detail["username"] == "alice"
    assert rows[0].detail["client"] == "testclient"
    assert WRONG not in str(rows[0].detail)


def test_lockout_replies_are_identical_for_unknown_usernames(client, alice):
    known = [attempt(client, "alice") for _ in range(MAX_FAILURES + 2)]
    known.append(attempt(client, "alice", PASSWORD))
    unknown = [attempt(client, "ghost") for _ in range(MAX_FAILURES + 2)]
    unknown.append(attempt(client, "ghost", PASSWORD))

    assert [shape(r) for r in known] == [shape(r) for r in unknown]
    for k, u in zip(known, unknown, strict=True):
        if k.status_code == 429:
            assert abs(int(k.headers["retry-after"]) - int(u.headers["retry-after"])) <= 2


def test_locked_logins_still_do_the_same_bcrypt_work(client, alice, monkeypatch):
    for name in ("alice", "ghost"):
        for _ in range(MAX_FAILURES):
            attempt(client, name)
    calls: list[str] = []
    real = bcrypt.hashpw

    def spy(secret: bytes, salt: bytes) -> bytes:
        calls.append(salt.split(b"$")[2].decode())
        return real(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    attempt(client, "alice", PASSWORD)
    known = calls[:]
    calls.clear()
    attempt(client, "ghost", PASSWORD)
    assert known and calls == known


def test_a_good_login_forgets_earlier_failures(client, rs_db, alice):
    for _ in range(MAX_FAILURES - 1):
        attempt(client, "alice")
    assert attempt(client, "alice", PASSWORD).status_code == 200
    replies = [attempt(client, "alice") for _ in range(MAX_FAILURES - 1)]
    assert [r.status_code for r in replies] == [401] * (MAX_FAILURES - 1)
    with transaction(rs_db) as session:
        row = session.get(AccountLock, alice)  # made by the good login, to stamp it
        assert (row.failures, row.locked_until) == (0, None)  # no lock was ever written
        assert row.last_login_at is not None


def test_the_database_lock_holds_when_redis_forgets(client, alice, redis_client):
    for _ in range(MAX_FAILURES):
        attempt(client, "alice")
    clear_auth_keys(redis_client)  # e.g. Redis restarted without persistence

    assert_problem(attempt(client, "alice", PASSWORD), 429)


# Passwords over bcrypt's 72 bytes -------------------------------------------------------


def test_a_password_over_72_bytes_is_a_422_naming_the_field(client, alice):
    password = "é" * 37  # 37 characters, 74 bytes

    reply = attempt(client, "alice", password)

    body = assert_problem(reply, 422)
    assert [e["loc"] for e in body["errors"]] == ["body.password"]


def test_a_password_of_exactly_72_bytes_logs_in(client, rs_db):
    password = "é" * 36  # 36 characters, 72 bytes
    add_user(rs_db, "bob", password)

    assert attempt(client, "bob", password).status_code == 200
    assert attempt(client, "bob", password[:-1]).status_code == 401


def test_a_password_over_256_characters_is_a_422(client, alice):
    body = assert_problem(attempt(client, "alice", "x" * 257), 422)
    assert "body.password" in [e["loc"] for e in body["errors"]]


def test_too_long_passwords_neither_count_nor_lock(client, alice):
    for _ in range(MAX_FAILURES + 1):
        assert_problem(attempt(client, "alice", "x" * 73), 422)
    assert attempt(client, "alice", PASSWORD).status_code == 200


# Without Redis --------------------------------------------------------------------------


def test_without_redis_login_fails_closed_alike_for_every_name(rs_db, alice):
    down = make_settings(rs_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(down)) as client:
        replies = [attempt(client, name, PASSWORD) for name in ("alice", "nobody")]

    bodies = [assert_problem(reply, 503) for reply in replies]
    assert bodies[0] == bodies[1]  # no hint whether the account exists
    assert all(int(r.headers["retry-after"]) > 0 for r in replies)
    assert "access_token" not in replies[0].text
    with transaction(rs_db) as session:
        assert session.execute(select(func.count()).select_from(AccountLock)).scalar_one() == 0
