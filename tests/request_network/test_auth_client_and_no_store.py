"""Replies that carry a secret (a login's token, a new API key) are never cached, and login
counts attempts per client address as `shared.http.client_address` finds it: the TCP peer,
or behind a trusted proxy the client it forwards for.

Real PostgreSQL and Redis (DB 15; `api_db` clears the `auth:*` keys around each test).
"""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import PASSWORD, assert_problem, make_settings

from request_network.app import create_app
from request_network.settings import RequestSettings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LOGIN = "/api/v1/auth/login"
PROXY, OUTSIDER = ("10.0.0.2", 50000), ("203.0.113.9", 50000)
CLIENT_A, CLIENT_B = "198.51.100.1", "198.51.100.2"


@pytest.fixture
def alice(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


def assert_no_store(reply) -> None:
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["pragma"] == "no-cache"


def test_a_login_token_is_never_cached(client, alice):
    reply = client.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    assert_no_store(reply)


def test_a_new_api_key_is_never_cached(client, alice, login):
    reply = client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["requests:read"]}, headers=login("alice")
    )
    assert reply.status_code == 201, reply.text
    assert_no_store(reply)
    assert reply.json()["key"].startswith("ferry_")


# Client addresses -----------------------------------------------------------------------


def client_at(api_db: str, peer: tuple[str, int]) -> TestClient:
    settings = make_settings(
        api_db, trusted_proxies=["10.0.0.0/8"], login_attempts_per_minute_per_ip=2
    )
    return TestClient(create_app(settings), client=peer)


def via(client: TestClient, forwarded: str):
    return client.post(
        LOGIN,
        data={"username": "nobody", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded},
    )


def test_an_untrusted_peer_is_throttled_as_itself_whatever_it_forwards(api_db):
    with client_at(api_db, OUTSIDER) as client:
        replies = [via(client, f"198.51.100.{i}") for i in range(3)]

    assert [r.status_code for r in replies[:2]] == [401, 401]
    assert_problem(replies[2], 429)


def test_a_trusted_proxys_clients_are_throttled_separately(api_db):
    with client_at(api_db, PROXY) as client:
        first = [via(client, CLIENT_A) for _ in range(2)]
        blocked = via(client, CLIENT_A)
        other = via(client, f"{CLIENT_B}, 10.0.0.9")

    assert [r.status_code for r in first] == [401, 401]
    assert_problem(blocked, 429)
    assert other.status_code == 401


def test_a_malformed_forwarded_header_is_no_500_and_counts_against_the_proxy(api_db):
    with client_at(api_db, PROXY) as client:
        bad = [via(client, header) for header in ("not-an-ip", f"{CLIENT_A}, ,", "[::1")]
        good = via(client, CLIENT_A)

    assert [r.status_code for r in bad[:2]] == [401, 401]
    assert_problem(bad[2], 429)
    assert good.status_code == 401


def test_the_request_networks_env_names_still_set_the_login_limits(monkeypatch):
    monkeypatch.setenv("FERRY_REQUEST_MODE", "demo")
    monkeypatch.setenv("FERRY_REQUEST_TRUSTED_PROXIES", '["10.0.0.0/8"]')
    monkeypatch.setenv("FERRY_REQUEST_LOGIN_MAX_FAILURES", "9")
    monkeypatch.setenv("FERRY_REQUEST_LOGIN_LOCKOUT_MINUTES", "2")
    monkeypatch.setenv("FERRY_REQUEST_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP", "40")
    monkeypatch.setenv("FERRY_REQUEST_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "30")

    settings = RequestSettings()

    assert settings.trusted_proxies == [ip_network("10.0.0.0/8")]
    assert (
        settings.login_max_failures,
        settings.login_lockout_minutes,
        settings.login_attempts_per_minute_per_ip,
        settings.login_attempts_per_minute_per_account,
    ) == (9, 2, 40, 30)
