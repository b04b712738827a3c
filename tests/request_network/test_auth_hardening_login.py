"""Login throttling per client and per account, lockout after repeated failures, and the
admin's view and lift of a lock; none of it reveals whether an account exists.

Real PostgreSQL and Redis (DB 15; `api_db` clears the `auth:*` keys around each test).
"""

from __future__ import annotations

from datetime import timedelta

import bcrypt
import pytest
from fastapi.testclient import TestClient
from request_api_helpers import PASSWORD, assert_problem, clear_auth_keys, make_settings
from sqlalchemy import select

from request_network.app import create_app
from request_network.models import AccountLock, AuditLog
from shared.db import transaction, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LOGIN = "/api/v1/auth/login"
MAX_FAILURES, LOCKOUT_MINUTES = 3, 7
WRONG = "wrong password"


@pytest.fixture
def settings(api_db):
    return make_settings(
        api_db,
        login_max_failures=MAX_FAILURES,
        login_lockout_minutes=LOCKOUT_MINUTES,
        login_attempts_per_minute_per_ip=100,
        login_attempts_per_minute_per_account=50,
    )


@pytest.fixture
def alice(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


@pytest.fixture
def admin(seed, login, alice) -> dict[str, str]:
    seed.user("root", role="admin")
    return login("root")


def attempt(client, username: str, password: str = WRONG):
    return client.post(LOGIN, data={"username": username, "password": password})


def shape(reply) -> tuple:
    """What a caller can see, minus the countdown (which ticks between two replies)."""
    return reply.status_code, reply.json(), sorted(reply.headers.keys())


def client_with(api_db, **limits) -> TestClient:
    return TestClient(create_app(make_settings(api_db, **limits)))


# Throttling -----------------------------------------------------------------------------


def test_attempts_per_client_address_are_limited(api_db, alice):
    with client_with(api_db, login_attempts_per_minute_per_ip=3) as client:
        replies = [attempt(client, f"user{i}") for i in range(3)]
        blocked = attempt(client, "alice", PASSWORD)  # even the right password

    assert [r.status_code for r in replies] == [401, 401, 401]
    body = assert_problem(blocked, 429)
    assert body["title"] == "Too many login attempts"
    assert 0 < int(blocked.headers["retry-after"]) <= 60


def test_attempts_per_account_are_limited_and_look_the_same_for_unknown_names(api_db, alice):
    with client_with(api_db, login_attempts_per_minute_per_account=2) as client:
        known = [attempt(client, "alice") for _ in range(3)]
        unknown = [attempt(client, "ghost") for _ in range(3)]
        other = attempt(client, "alice2")

    assert [shape(r) for r in known] == [shape(r) for r in unknown]
    assert_problem(known[-1], 429)
    assert other.status_code == 401  # another name is not held back


# Lockout --------------------------------------------------------------------------------


def test_failures_lock_the_account_even_against_the_right_password(client, settings, alice):
    replies = [attempt(client, "alice") for _ in range(MAX_FAILURES)]
    after = attempt(client, "alice", PASSWORD)

    assert [r.status_code for r in replies] == [401] * (MAX_FAILURES - 1) + [429]
    body = assert_problem(after, 429)
    assert body["title"] == "Login temporarily locked"
    assert "alice" not in after.text
    assert LOCKOUT_MINUTES * 60 - 5 < int(after.headers["retry-after"]) <= LOCKOUT_MINUTES * 60
    with transaction(settings.database_url) as session:
        lock = session.get(AccountLock, alice)
    assert lock.failures == MAX_FAILURES
    expected = utcnow() + timedelta(minutes=LOCKOUT_MINUTES)
    assert abs((lock.locked_until - expected).total_seconds()) < 60


def test_the_lock_is_audited_without_the_password(client, settings, alice):
    for _ in range(MAX_FAILURES):
        attempt(client, "alice")

    with transaction(settings.database_url) as session:
        rows = session.execute(select(AuditLog)).scalars().all()
    assert [(r.action, r.actor, r.target) for r in rows] == [("account.locked", "system", alice)]
    assert rows[0].detail["failures"] == MAX_FAILURES
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


def test_a_good_login_forgets_earlier_failures(client, alice):
    for _ in range(MAX_FAILURES - 1):
        attempt(client, "alice")
    assert attempt(client, "alice", PASSWORD).status_code == 200
    replies = [attempt(client, "alice") for _ in range(MAX_FAILURES - 1)]
    assert [r.status_code for r in replies] == [401] * (MAX_FAILURES - 1)


def test_the_database_lock_holds_when_redis_forgets(client, alice, redis_client):
    for _ in range(MAX_FAILURES):
        attempt(client, "alice")
    clear_auth_keys(redis_client)  # e.g. Redis restarted without persistence

    assert_problem(attempt(client, "alice", PASSWORD), 429)


# The admin's view ------------------------------------------------------------------------


def test_admin_sees_and_lifts_a_lock_and_the_lift_is_audited(client, settings, alice, admin):
    for _ in range(MAX_FAILURES):
        attempt(client, "alice")
    url = f"/api/v1/admin/users/{alice}/lock"

    shown = client.get(url, headers=admin)
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert view["locked"] is True and view["username"] == "alice"
    assert view["locked_failures"] == MAX_FAILURES and view["redis"] == "ok"

    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).json()["locked"] is False
    assert attempt(client, "alice", PASSWORD).status_code == 200
    with transaction(settings.database_url) as session:
        rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
    root_id = client.get("/api/v1/auth/me", headers=admin).json()["user_id"]
    assert [(r.action, r.actor, r.target) for r in rows] == [
        ("account.locked", "system", alice),
        ("account.unlocked", root_id, alice),
    ]
    assert rows[1].detail["was_locked"] is True


def test_admin_view_counts_failures_before_a_lock(client, alice, admin):
    attempt(client, "alice")
    view = client.get(f"/api/v1/admin/users/{alice}/lock", headers=admin).json()
    assert (view["locked"], view["failures"], view["locked_until"]) == (False, 1, None)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_lock_of_an_unknown_user_is_a_404(client, admin, method):
    assert_problem(client.request(method, "/api/v1/admin/users/nobody/lock", headers=admin), 404)


@pytest.mark.parametrize("role", ["user", "operator"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_only_admins_see_or_lift_locks(client, seed, login, alice, role, method):
    seed.user("someone", role=role)
    reply = client.request(method, f"/api/v1/admin/users/{alice}/lock", headers=login("someone"))
    assert_problem(reply, 403)
