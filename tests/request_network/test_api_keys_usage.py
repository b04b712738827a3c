"""API key usage: calls per day over the last 30 days, the last use and the rate limiter's
refusals by window, per key and per user, on the owner's key list and in the admin's view
of the user; counted without a database write per call.

Real PostgreSQL and Redis. Earlier days are seeded as the counters the API writes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import VALID_QUERY, assert_problem, closed_port, make_settings
from sqlalchemy import event, update

from request_network.app import create_app
from request_network.models import ApiKey
from request_network.services.api_key_usage import counter
from shared.db import get_engine, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"
NO_REFUSALS = {"minute": 0, "hour": 0, "day": 0}


def create_key(client, headers, scopes=("requests:read", "requests:write")) -> dict:
    reply = client.post(KEYS, json={"name": "ci", "scopes": list(scopes)}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


def as_key(body: dict) -> dict[str, str]:
    return {"X-API-Key": body["key"]}


def submit(client, body: dict):
    return client.post(
        "/api/v1/requests",
        json={"profile_type": "articles", "query": VALID_QUERY},
        headers=as_key(body),
    )


def keys_page(client, headers) -> tuple[dict[str, dict], dict]:
    reply = client.get(KEYS, headers=headers)
    assert reply.status_code == 200, reply.text
    page = reply.json()
    return {item["key_id"]: item for item in page["items"]}, page["usage"]


@pytest.fixture
def alice(seed, login) -> dict[str, str]:
    seed.profile_type(rate_limits={"minute": 1, "hour": 100, "day": 1000})
    seed.user("alice")
    return login("alice")


def test_calls_and_refusals_are_counted_per_key_and_per_user(client, alice):
    busy, quiet = create_key(client, alice), create_key(client, alice)
    today = utcnow().date().isoformat()

    for _ in range(3):
        assert client.get(ME, headers=as_key(busy)).status_code == 200
    assert submit(client, busy).status_code == 202
    assert_problem(submit(client, busy), 429)  # over the minute's limit of 1
    assert client.get(ME, headers=as_key(quiet)).status_code == 200

    keys, user = keys_page(client, alice)  # with the login token: not a key's call

    usage = keys[busy["key_id"]]["usage"]
    assert usage["requests"] == 5 and usage["requests_by_day"] == {today: 5}
    assert usage["refused"] == {"minute": 1, "hour": 0, "day": 0}
    assert usage["last_used_at"] is not None
    assert usage["since"] == (utcnow().date() - timedelta(days=29)).isoformat()
    quiet_usage = keys[quiet["key_id"]]["usage"]
    assert (quiet_usage["requests"], quiet_usage["refused"]) == (1, NO_REFUSALS)
    assert user["requests"] == 6 and user["requests_by_day"] == {today: 6}
    assert user["refused"] == {"minute": 1, "hour": 0, "day": 0}
    assert user["last_used_at"] == max(usage["last_used_at"], quiet_usage["last_used_at"])


def test_only_the_last_30_days_count(client, alice, redis_client):
    body = create_key(client, alice)
    client.get(ME, headers=as_key(body))
    today = utcnow().date()
    for days_ago, calls in ((1, 4), (29, 2), (30, 7)):
        redis_client.set(counter(body["key_id"], today - timedelta(days=days_ago)), calls)

    usage = keys_page(client, alice)[0][body["key_id"]]["usage"]

    assert usage["requests_by_day"] == {
        (today - timedelta(days=29)).isoformat(): 2,
        (today - timedelta(days=1)).isoformat(): 4,
        today.isoformat(): 1,
    }
    assert usage["requests"] == 7


def test_a_key_that_is_refused_is_not_counted(client, settings, alice):
    """A key refused by its revocation mark (a lagging row says active) counts nothing."""
    body = create_key(client, alice)
    client.get(ME, headers=as_key(body))
    client.delete(f"{KEYS}/{body['key_id']}", headers=alice)
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(revoked_at=None))

    assert_problem(client.get(ME, headers=as_key(body)), 401)

    assert keys_page(client, alice)[0][body["key_id"]]["usage"]["requests"] == 1


def test_counting_a_call_writes_nothing_to_the_database(client, settings, alice):
    body = create_key(client, alice)
    client.get(ME, headers=as_key(body))  # the first use writes last_used_at (once a minute)
    writes: list[str] = []

    def spy(_conn, _cursor, statement, _params, _context, _many):
        if not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement)

    engine = get_engine(settings.database_url)
    event.listen(engine, "before_cursor_execute", spy)
    try:
        for _ in range(3):
            assert client.get(ME, headers=as_key(body)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", spy)

    assert writes == []
    assert keys_page(client, alice)[0][body["key_id"]]["usage"]["requests"] == 4


def test_the_admin_sees_a_users_key_usage(client, seed, login, alice):
    body = create_key(client, alice)
    client.get(ME, headers=as_key(body))
    submit(client, body)
    submit(client, body)
    seed.user("root", role="admin")
    root = login("root")
    user_id = client.get(ME, headers=alice).json()["user_id"]

    details = client.get(f"/api/v1/admin/users/{user_id}", headers=root)

    assert details.status_code == 200, details.text
    found = details.json()
    assert found["api_key_usage"]["requests"] == 3
    assert found["api_key_usage"]["refused"] == {"minute": 1, "hour": 0, "day": 0}
    assert found["api_keys"][0]["usage"]["requests"] == 3
    violations = client.get(
        "/api/v1/admin/rate-limits/violations", params={"user_id": user_id}, headers=root
    ).json()["items"]
    assert [(v["window"], v["key_id"]) for v in violations] == [("minute", body["key_id"])]


def test_a_refusal_with_a_login_session_is_not_a_keys(client, alice):
    body = create_key(client, alice)
    for _ in range(2):
        client.post(
            "/api/v1/requests",
            json={"profile_type": "articles", "query": VALID_QUERY},
            headers=alice,
        )

    keys, user = keys_page(client, alice)

    assert keys[body["key_id"]]["usage"]["refused"] == NO_REFUSALS
    assert user["refused"] == NO_REFUSALS and user["requests"] == 0


def test_without_redis_the_list_still_answers_with_what_the_database_knows(client, api_db, alice):
    body = create_key(client, alice)
    submit(client, body)
    submit(client, body)  # refused: a violation row

    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as down:
        keys, user = keys_page(down, alice)

    usage = keys[body["key_id"]]["usage"]
    assert usage["requests"] is None and usage["requests_by_day"] is None
    assert usage["refused"]["minute"] == 1 and usage["last_used_at"] is not None
    assert user["requests"] is None and user["refused"]["minute"] == 1
