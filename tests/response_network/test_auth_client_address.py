"""Whose attempts a login counts on the response network: the TCP peer's, or, behind a
trusted proxy (`trusted_proxies`), the client the proxy names in X-Forwarded-For. Also: the
login settings on the response network's env names, and the two networks' counters kept
apart when they share one Redis (the demo does).

Real PostgreSQL and Redis through the real apps; the test client's peer address is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network

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
from sqlalchemy import select

from request_network.app import create_app as create_request_app
from response_network.app import create_app
from response_network.models import AuditLog
from response_network.settings import ResponseSettings
from shared.db import transaction
from tests.request_network import request_api_helpers as rq

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PROXY, OUTSIDER = ("10.0.0.2", 50000), ("203.0.113.9", 50000)
CLIENT_A, CLIENT_B = "198.51.100.1", "198.51.100.2"


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


def client_at(rs_db: str, peer: tuple[str, int], **overrides) -> TestClient:
    values = dict(trusted_proxies=["10.0.0.0/8"], login_attempts_per_minute_per_ip=2)
    settings = make_settings(rs_db, **(values | overrides))
    return TestClient(create_app(settings), client=peer)


def via(client: TestClient, forwarded: str, username: str = "nobody", password: str = WRONG):
    return client.post(
        "/api/v1/auth/login",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": forwarded},
    )


def test_an_untrusted_peer_is_throttled_as_itself_whatever_it_forwards(rs_db):
    with client_at(rs_db, OUTSIDER) as client:
        replies = [via(client, f"198.51.100.{i}") for i in range(3)]

    assert [r.status_code for r in replies[:2]] == [401, 401]
    assert_problem(replies[2], 429)


def test_a_trusted_proxys_clients_are_throttled_separately(rs_db):
    with client_at(rs_db, PROXY) as client:
        first = [via(client, CLIENT_A) for _ in range(2)]
        blocked = via(client, CLIENT_A)
        other = via(client, f"{CLIENT_B}, 10.0.0.9")  # one more trusted hop on the way

    assert [r.status_code for r in first] == [401, 401]
    assert_problem(blocked, 429)
    assert other.status_code == 401  # B has a window of its own


def test_the_forwarded_client_is_the_one_the_lock_audit_names(rs_db):
    alice = add_user(rs_db, "alice")
    limits = dict(login_attempts_per_minute_per_ip=50, login_max_failures=3)
    with client_at(rs_db, PROXY, **limits) as client:
        replies = [via(client, CLIENT_A, "alice") for _ in range(3)]
    assert replies[-1].status_code == 429

    with transaction(rs_db) as session:
        (row,) = session.execute(select(AuditLog)).scalars().all()
    assert (row.action, row.target, row.detail["client"]) == ("account.locked", alice, CLIENT_A)


def test_a_malformed_forwarded_header_is_no_500_and_counts_against_the_proxy(rs_db):
    with client_at(rs_db, PROXY) as client:
        bad = [via(client, header) for header in ("not-an-ip", f"{CLIENT_A}, ,", "[::1")]
        good = via(client, CLIENT_A)

    assert [r.status_code for r in bad[:2]] == [401, 401]
    assert_problem(bad[2], 429)  # all three were the proxy's own attempts
    assert good.status_code == 401


def test_a_forwarded_client_logs_in(rs_db):
    add_user(rs_db, "alice")
    with client_at(rs_db, PROXY) as client:
        reply = via(client, CLIENT_A, "alice", PASSWORD)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"


def test_the_login_settings_come_from_the_response_networks_env(monkeypatch):
    monkeypatch.setenv("FERRY_RESPONSE_MODE", "demo")
    monkeypatch.setenv("FERRY_RESPONSE_TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.7"]')
    monkeypatch.setenv("FERRY_RESPONSE_LOGIN_MAX_FAILURES", "9")
    monkeypatch.setenv("FERRY_RESPONSE_LOGIN_LOCKOUT_MINUTES", "2")
    monkeypatch.setenv("FERRY_RESPONSE_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP", "40")
    monkeypatch.setenv("FERRY_RESPONSE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "30")

    settings = ResponseSettings()

    assert settings.trusted_proxies == [ip_network("10.0.0.0/8"), ip_network("192.0.2.7/32")]
    assert (
        settings.login_max_failures,
        settings.login_lockout_minutes,
        settings.login_attempts_per_minute_per_ip,
        settings.login_attempts_per_minute_per_account,
    ) == (9, 2, 40, 30)


def test_by_default_no_proxy_is_trusted(monkeypatch):
    monkeypatch.setenv("FERRY_RESPONSE_MODE", "demo")
    assert ResponseSettings().trusted_proxies == []


@pytest.mark.parametrize("value", ['["10.0.0.1/8"]', '["proxy.example"]', "10.0.0.0/8"])
def test_a_trusted_proxy_that_is_not_a_network_is_refused(monkeypatch, value):
    monkeypatch.setenv("FERRY_RESPONSE_MODE", "demo")
    monkeypatch.setenv("FERRY_RESPONSE_TRUSTED_PROXIES", value)
    with pytest.raises(ValueError, match="trusted_proxies"):
        ResponseSettings()


@pytest.fixture
def request_db(pg_urls, redis_client) -> Iterator[str]:
    url = pg_urls["request"]
    rq.truncate_request_db(url)
    yield url
    rq.truncate_request_db(url)


def test_a_lock_on_one_network_leaves_the_same_name_free_on_the_other(rs_db, request_db):
    """Both networks on one Redis: each counts its own failures under its own keys."""
    add_user(rs_db, "alice")
    rq.Seed(request_db).user("alice", PASSWORD)
    with client_at(rs_db, OUTSIDER, login_attempts_per_minute_per_ip=50) as response_client:
        replies = [attempt(response_client, "alice") for _ in range(5)]
        locked = attempt(response_client, "alice", PASSWORD)
    request_settings = rq.make_settings(request_db, login_max_failures=5)
    with TestClient(create_request_app(request_settings), client=OUTSIDER) as request_client:
        request_reply = attempt(request_client, "alice", PASSWORD)

    assert replies[-1].status_code == 429
    assert_problem(locked, 429)
    assert request_reply.status_code == 200, request_reply.text
