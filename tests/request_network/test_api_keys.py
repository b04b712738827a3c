"""API keys, managed over the request API: issue once, list without secrets, revoke at once.

Real PostgreSQL and Redis (DB 15; the `api_db` fixture clears the `auth:*` keys).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import assert_problem, closed_port, make_settings
from sqlalchemy import select, update

from request_network.app import create_app
from request_network.models import ApiKey, AuditLog
from shared.db import get_engine, transaction
from shared.security.api_keys import key_hmac
from shared.security.revocation import REVOKED_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEYS = "/api/v1/api-keys"
KEY_SHAPE = re.compile(r"ferry_live_([a-z2-7]{12})_[0-9A-Za-z]{38}")


def create_key(client, headers, scopes=("requests:read",), **extra) -> dict:
    reply = client.post(KEYS, json={"name": "ci", "scopes": list(scopes), **extra}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


@pytest.fixture
def alice(seed, login) -> dict[str, str]:
    seed.profile_type()
    seed.user("alice")
    return login("alice")


@pytest.fixture
def bob(seed, login, alice) -> dict[str, str]:
    seed.user("bob")
    return login("bob")


def test_created_key_is_returned_once_in_the_documented_format(client, alice):
    before = datetime.now(UTC)
    body = create_key(client, alice, scopes=["requests:write", "requests:read"])

    match = KEY_SHAPE.fullmatch(body["key"])
    assert match, body["key"]
    assert body["key_id"] == match[1]
    assert body["prefix"] == f"ferry_live_{match[1]}"
    assert body["scopes"] == ["requests:read", "requests:write"]
    assert body["status"] == "active" and body["environment"] == "live"
    assert body["last_used_at"] is None and body["revoked_at"] is None
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(days=89) < expires < before + timedelta(days=91)


def test_expiry_is_chosen_in_days(client, alice):
    body = create_key(client, alice, expires_in_days=7)
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(days=7)


def test_listing_shows_own_keys_newest_first_and_never_the_key(client, alice):
    first = create_key(client, alice)
    second = create_key(client, alice, scopes=["requests:write"], name="other")

    reply = client.get(KEYS, headers=alice)

    assert reply.status_code == 200, reply.text
    items = reply.json()["items"]
    assert [i["key_id"] for i in items] == [second["key_id"], first["key_id"]]
    for item, made in zip(items, (second, first), strict=True):
        assert item["prefix"] == made["prefix"] and item["name"] == made["name"]
        assert set(item) >= {"created_at", "last_used_at", "expires_at", "revoked_at", "scopes"}
        assert "key" not in item
    for made in (first, second):
        assert made["key"] not in reply.text
        assert made["key"][len(made["prefix"]) + 1 :] not in reply.text


def test_users_see_only_their_own_keys(client, alice, bob):
    create_key(client, alice)
    assert client.get(KEYS, headers=bob).json()["items"] == []


def test_the_database_holds_the_key_id_and_a_peppered_hmac_never_the_key(client, settings, alice):
    body = create_key(client, alice)

    with transaction(settings.database_url) as session:
        row = session.execute(select(ApiKey)).scalar_one()
        audit_rows = session.execute(select(AuditLog)).scalars().all()
    pepper = settings.api_key_pepper.get_secret_value()
    assert row.key_id == body["key_id"]
    assert row.key_hmac == key_hmac(body["key"], pepper)
    stored = json.dumps([str(getattr(row, c.key)) for c in ApiKey.__table__.columns])
    assert body["key"] not in stored and body["key"][-38:] not in stored
    assert [a.action for a in audit_rows] == ["api_key.created"]
    assert body["key"] not in json.dumps([a.detail for a in audit_rows])


def test_revoked_key_stops_working_on_the_next_request(client, alice, redis_client):
    body = create_key(client, alice)
    key = {"X-API-Key": body["key"]}
    assert client.get("/api/v1/requests", headers=key).status_code == 200

    assert client.delete(f"{KEYS}/{body['key_id']}", headers=alice).status_code == 204

    detail = assert_problem(client.get("/api/v1/requests", headers=key), 401)["detail"]
    assert "revoked" in detail
    assert redis_client.exists(REVOKED_KEY + body["key_id"])
    listed = client.get(KEYS, headers=alice).json()["items"][0]
    assert listed["status"] == "revoked" and listed["revoked_at"] is not None


def test_revoking_twice_is_fine_and_audited_once(client, settings, alice):
    body = create_key(client, alice)
    for _ in range(2):
        assert client.delete(f"{KEYS}/{body['key_id']}", headers=alice).status_code == 204
    with transaction(settings.database_url) as session:
        actions = session.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars().all()
    assert actions == ["api_key.created", "api_key.revoked"]


def test_revocation_holds_even_where_the_row_still_says_active(client, settings, alice):
    """The Redis mark decides on the next call even if a cached or lagging row disagrees."""
    body = create_key(client, alice)
    client.delete(f"{KEYS}/{body['key_id']}", headers=alice)
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(revoked_at=None))

    assert_problem(client.get("/api/v1/requests", headers={"X-API-Key": body["key"]}), 401)


def test_another_users_key_cannot_be_revoked_and_keeps_working(client, alice, bob):
    body = create_key(client, alice)

    assert_problem(client.delete(f"{KEYS}/{body['key_id']}", headers=bob), 404)
    assert client.get("/api/v1/requests", headers={"X-API-Key": body["key"]}).status_code == 200


def test_revoking_an_unknown_key_is_a_404_problem(client, alice):
    assert_problem(client.delete(f"{KEYS}/abcdefghijkl", headers=alice), 404)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x", "scopes": ["requests:everything"]},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["requests:read"]},
        {"name": "x\n", "scopes": ["requests:read"]},
        {"name": "x", "scopes": ["requests:read"], "expires_in_days": 0},
        {"name": "x", "scopes": ["requests:read"], "expires_in_days": 366},
        {"name": "x", "scopes": ["requests:read"], "key": "ferry_live_chosen"},
    ],
    ids=["unknown-scope", "no-scope", "no-name", "control-char", "expiry-0", "expiry-366", "extra"],
)
def test_invalid_key_requests_are_422_problems(client, alice, payload):
    assert_problem(client.post(KEYS, json=payload, headers=alice), 422)


@pytest.mark.parametrize("scope", ["admin", "operator"])
def test_a_user_cannot_grant_a_key_more_than_their_role(client, alice, scope):
    reply = client.post(KEYS, json={"name": "x", "scopes": [scope]}, headers=alice)
    assert scope in assert_problem(reply, 403)["detail"]


def test_an_admin_may_grant_admin_scope(client, seed, login):
    seed.profile_type()
    seed.user("root", role="admin")
    body = create_key(client, login("root"), scopes=["admin", "operator", "requests:read"])
    assert body["scopes"] == ["admin", "operator", "requests:read"]


def test_a_key_cannot_create_keys_even_with_keys_manage(client, alice):
    body = create_key(client, alice, scopes=["keys:manage", "requests:read"])
    key = {"X-API-Key": body["key"]}

    reply = client.post(KEYS, json={"name": "x", "scopes": ["requests:read"]}, headers=key)
    assert "login session" in assert_problem(reply, 403)["detail"]
    assert client.get(KEYS, headers=key).status_code == 200  # keys:manage lists
    assert client.delete(f"{KEYS}/{body['key_id']}", headers=key).status_code == 204


def test_active_keys_per_user_are_capped(client, alice):
    from request_network.services.api_keys import MAX_ACTIVE_KEYS_PER_USER

    made = [create_key(client, alice) for _ in range(MAX_ACTIVE_KEYS_PER_USER)]
    assert_problem(
        client.post(KEYS, json={"name": "x", "scopes": ["requests:read"]}, headers=alice), 409
    )

    client.delete(f"{KEYS}/{made[0]['key_id']}", headers=alice)
    create_key(client, alice)


def test_issuing_a_key_fails_closed_without_redis(api_db, seed, alice):
    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as down:
        reply = down.post(KEYS, json={"name": "x", "scopes": ["requests:read"]}, headers=alice)
        listed = down.get(KEYS, headers=alice)

    body = assert_problem(reply, 503)
    assert "Redis" in body["detail"]
    assert reply.headers["retry-after"]
    assert listed.status_code == 200 and listed.json()["items"] == []
