"""Caps and one-per-owner rules hold when many requests race, against a real server.

`ferry request serve --workers 2` runs on a free port against the real PostgreSQL request
database and a real Redis; each test fires N ≥ 20 requests at once (asyncio + httpx, one
connection each) and then asserts the invariant in the database, and that every reply is
a success or a clean 4xx problem+json: never a 500. The server's Redis is DB 12, not the
suite's DB 15, so that other test runs clearing DB 15 cannot reset its login counters
mid-test.

- at most `MAX_ACTIVE_KEYS_PER_USER` active API keys per user (the owner's row is locked
  before the count, so two creates cannot both count 24);
- a key revoked by many calls at once is revoked and audited exactly once;
- one rate-limit override per user, and concurrent changes apply one after the other (each
  audit row's "before" is the previous row's "after");
- a burst of failed logins locks the account once: one `AccountLock` row, one audit row.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from request_api_helpers import JWT_SECRET, PASSWORD
from sqlalchemy import func, select

from request_network.models import AccountLock, ApiKey, AuditLog, RateLimitOverride
from request_network.services.api_keys import MAX_ACTIVE_KEYS_PER_USER
from shared.db import transaction
from tests.e2e.e2e_support import free_port
from tests.test_cli import FERRY, clean_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SERVER_REDIS_URL = "redis://127.0.0.1:6379/12"
MAX_FAILURES = 3
KEYS = "/api/v1/api-keys"


@dataclass(frozen=True)
class Server:
    base: str
    users: dict[str, str]  # username -> id
    log: Path


def _clear_server_redis() -> None:
    client = redis.Redis.from_url(SERVER_REDIS_URL)
    try:
        keys = [k for p in ("auth:*", "rl:*") for k in client.scan_iter(match=p, count=500)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _wait_until_serving(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60  # bounds a hang only
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the server did not come up: {log.read_text()}"
        time.sleep(0.1)


@pytest.fixture
def server(api_db, seed, tmp_path) -> Iterator[Server]:
    seed.profile_type()
    users = {name: seed.user(name) for name in ("alice", "bob", "carol")}
    users["root"] = seed.user("root", role="admin")
    _clear_server_redis()
    env = {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_DATABASE_URL": api_db,
        "FERRY_REQUEST_REDIS_URL": SERVER_REDIS_URL,
        "FERRY_REQUEST_JWT_SECRET": JWT_SECRET,
        "FERRY_REQUEST_API_KEY_PEPPER": "pepper-for-tests-0123456789abcdef0123",
        "FERRY_REQUEST_TRANSFER_DIR": str(tmp_path / "transfer"),
        # every racing request is admitted or queued (a 503 would hide the outcome)
        "FERRY_REQUEST_API_QUEUE": "500",
        "FERRY_REQUEST_API_QUEUE_WAIT_S": "120",
        "FERRY_REQUEST_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "FERRY_REQUEST_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP": "10000",
        "FERRY_REQUEST_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT": "10000",
        "FERRY_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    log_path = tmp_path / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [FERRY, "request", "serve", "--port", str(port), "--workers", "2"],
        env=clean_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, process, log_path)
        yield Server(base, users, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _clear_server_redis()


def _login(server: Server, username: str) -> dict[str, str]:
    reply = httpx.post(
        f"{server.base}/api/v1/auth/login",
        data={"username": username, "password": PASSWORD},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _race(server: Server, calls: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Send every (method, path, kwargs) at once, each on its own connection."""

    async def go() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=120) as client:
            return await asyncio.gather(
                *(client.request(method, path, **kw) for method, path, kw in calls)
            )

    return asyncio.run(go())


def _assert_clean(replies: list[httpx.Response], allowed: set[int], server: Server) -> Counter:
    codes = Counter(r.status_code for r in replies)
    assert set(codes) <= allowed, f"{codes}; server log:\n{server.log.read_text()[-4000:]}"
    for reply in replies:
        if reply.status_code >= 400:
            assert reply.headers["content-type"].startswith("application/problem+json")
            body = reply.json()
            assert body["status"] == reply.status_code and body["title"] and body["detail"]
    return codes


def _audit_rows(url: str, action: str, target: str | None = None) -> list[AuditLog]:
    with transaction(url) as session:
        query = select(AuditLog).where(AuditLog.action == action)
        if target is not None:
            query = query.where(AuditLog.target == target)
        return list(session.execute(query.order_by(AuditLog.id)).scalars())


def test_concurrent_key_creation_never_passes_the_cap(server, api_db):
    headers = _login(server, "alice")
    attempts = MAX_ACTIVE_KEYS_PER_USER + 15
    body = {"name": "racer", "scopes": ["requests:read"]}
    replies = _race(server, [("POST", KEYS, {"json": body, "headers": headers})] * attempts)

    codes = _assert_clean(replies, {201, 409}, server)
    assert codes == {201: MAX_ACTIVE_KEYS_PER_USER, 409: attempts - MAX_ACTIVE_KEYS_PER_USER}
    created = {r.json()["key_id"] for r in replies if r.status_code == 201}
    with transaction(api_db) as session:
        stored = set(
            session.execute(
                select(ApiKey.key_id).where(
                    ApiKey.user_id == server.users["alice"], ApiKey.revoked_at.is_(None)
                )
            ).scalars()
        )
    assert stored == created  # exactly the cap, and exactly the keys the 201s handed out
    assert len(_audit_rows(api_db, "api_key.created")) == MAX_ACTIVE_KEYS_PER_USER
    for refused in (r for r in replies if r.status_code == 409):
        assert refused.json()["title"] == "Too many API keys"


def test_racing_users_each_get_their_own_cap(server, api_db):
    """The lock is per owner: two users racing side by side both reach the cap."""
    callers = {name: _login(server, name) for name in ("bob", "carol")}
    body = {"name": "racer", "scopes": ["requests:read"]}
    calls = [
        ("POST", KEYS, {"json": body, "headers": callers[name]})
        for _ in range(MAX_ACTIVE_KEYS_PER_USER + 5)
        for name in callers
    ]
    replies = _race(server, calls)

    codes = _assert_clean(replies, {201, 409}, server)
    assert codes[201] == 2 * MAX_ACTIVE_KEYS_PER_USER
    with transaction(api_db) as session:
        per_user = dict(
            session.execute(select(ApiKey.user_id, func.count()).group_by(ApiKey.user_id)).all()
        )
    assert per_user == {server.users[n]: MAX_ACTIVE_KEYS_PER_USER for n in callers}


def test_a_key_revoked_by_many_calls_at_once_is_revoked_and_audited_once(server, api_db):
    headers = _login(server, "alice")
    made = httpx.post(
        f"{server.base}{KEYS}",
        json={"name": "doomed", "scopes": ["requests:read"]},
        headers=headers,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    key_id = made.json()["key_id"]

    replies = _race(server, [("DELETE", f"{KEYS}/{key_id}", {"headers": headers})] * 24)

    assert _assert_clean(replies, {204}, server) == {204: 24}
    assert len(_audit_rows(api_db, "api_key.revoked", key_id)) == 1
    with transaction(api_db) as session:
        key = session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one()
        assert key.revoked_at is not None


def test_concurrent_overrides_leave_one_row_and_apply_one_after_another(server, api_db):
    root = _login(server, "root")
    user_id = server.users["alice"]
    url = f"/api/v1/admin/users/{user_id}/rate-limits"
    values = list(range(1, 25))
    calls = [
        ("PUT", url, {"json": {"minute": v, "reason": f"set {v}"}, "headers": root}) for v in values
    ]
    replies = _race(server, calls)

    assert _assert_clean(replies, {200}, server) == {200: len(values)}
    with transaction(api_db) as session:
        rows = list(
            session.execute(
                select(RateLimitOverride).where(RateLimitOverride.user_id == user_id)
            ).scalars()
        )
    assert len(rows) == 1
    audits = _audit_rows(api_db, "rate_limits.set", user_id)
    assert sorted(a.detail["after"]["minute"] for a in audits) == values  # each set once
    # Serialised: each change saw the one committed before it, none was lost.
    assert audits[0].detail["before"] is None
    for earlier, later in zip(audits, audits[1:], strict=False):
        assert later.detail["before"] == earlier.detail["after"]
    assert rows[0].minute == audits[-1].detail["after"]["minute"]
    assert rows[0].reason == audits[-1].detail["reason"]


def test_a_burst_of_failed_logins_locks_the_account_once(server, api_db):
    attempts = 24
    form = {"username": "alice", "password": "not the password"}
    replies = _race(server, [("POST", "/api/v1/auth/login", {"data": form})] * attempts)

    codes = _assert_clean(replies, {401, 429}, server)  # 401 below the threshold, then 429
    assert codes[429] >= attempts - MAX_FAILURES
    with transaction(api_db) as session:
        locks = list(session.execute(select(AccountLock)).scalars())
    assert [lock.user_id for lock in locks] == [server.users["alice"]]  # one row
    assert locks[0].failures >= MAX_FAILURES and locks[0].locked_until is not None
    assert _audit_rows(api_db, "account.locked", server.users["alice"])
    good = httpx.post(
        f"{server.base}/api/v1/auth/login",
        data={"username": "alice", "password": PASSWORD},
        timeout=30,
    )
    assert good.status_code == 429  # locked, even with the right password
