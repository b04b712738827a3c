"""Rotating an API key: a new secret under the same key id, shown once; the old secret keeps
working for the grace period and is refused after it; one previous secret at most.

Real PostgreSQL and Redis. The grace period ends by moving its deadline in the database
(`previous_valid_until`), never by waiting.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from request_api_helpers import assert_problem, closed_port, make_settings
from sqlalchemy import select, update

from request_network.app import create_app
from request_network.models import ApiKey, AuditLog, User
from request_network.services import api_keys
from shared.cache import get_redis
from shared.db import get_engine, transaction, utcnow
from shared.problems import Problem
from shared.security.api_keys import key_hmac

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"


def create_key(client, headers, scopes=("requests:read",), **extra) -> dict:
    reply = client.post(KEYS, json={"name": "ci", "scopes": list(scopes), **extra}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


def rotate(client, key_id: str, headers) -> dict:
    reply = client.post(f"{KEYS}/{key_id}/rotate", headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def as_key(body: dict) -> dict[str, str]:
    return {"X-API-Key": body["key"]}


def works(client, body: dict) -> bool:
    return client.get(ME, headers=as_key(body)).status_code == 200


def end_grace(settings) -> None:
    """The grace period is over: its stored deadline is moved into the past."""
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(previous_valid_until=utcnow() - timedelta(seconds=1)))


def listed(client, headers) -> dict:
    reply = client.get(KEYS, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()["items"][0]


@pytest.fixture
def alice(seed, login) -> dict[str, str]:
    seed.profile_type()
    seed.user("alice")
    return login("alice")


def test_rotation_shows_a_new_secret_once_and_both_secrets_work(client, alice):
    old = create_key(client, alice)
    before = utcnow()

    reply = client.post(f"{KEYS}/{old['key_id']}/rotate", headers=alice)

    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    new = reply.json()
    assert new["key"] != old["key"]
    assert new["key_id"] == old["key_id"] and new["prefix"] == old["prefix"]
    assert new["key"].startswith(old["prefix"] + "_")
    assert new["expires_at"] == old["expires_at"]  # scopes, name, expiry stay
    assert new["scopes"] == old["scopes"] and new["name"] == old["name"]
    assert datetime.fromisoformat(new["rotated_at"]) >= before
    assert works(client, new) and works(client, old)


def test_listing_shows_both_secrets_masked_with_their_expiry(client, alice):
    old = create_key(client, alice)
    new = rotate(client, old["key_id"], alice)

    reply = client.get(KEYS, headers=alice)

    item = reply.json()["items"][0]
    current, previous = item["secrets"]
    assert current == {
        "which": "current",
        "prefix": old["prefix"],
        "valid_until": old["expires_at"],
    }
    assert previous["which"] == "previous" and previous["prefix"] == old["prefix"]
    until = datetime.fromisoformat(previous["valid_until"])
    rotated = datetime.fromisoformat(item["rotated_at"])
    assert until == rotated + timedelta(hours=24)  # the default grace period
    for body in (old, new):
        assert body["key"] not in reply.text
        assert body["key"][len(body["prefix"]) + 1 :] not in reply.text


def test_the_old_secret_is_refused_once_the_grace_period_is_over(client, settings, alice):
    old = create_key(client, alice)
    new = rotate(client, old["key_id"], alice)

    end_grace(settings)

    detail = assert_problem(client.get(ME, headers=as_key(old)), 401)["detail"]
    assert "rotation" in detail and "expired" in detail
    assert works(client, new)
    item = listed(client, alice)
    assert [s["which"] for s in item["secrets"]] == ["current"]
    assert item["status"] == "active"


def test_rotating_again_within_the_grace_period_ends_the_older_secret_at_once(client, alice):
    first = create_key(client, alice)
    second = rotate(client, first["key_id"], alice)
    third = rotate(client, first["key_id"], alice)

    assert_problem(client.get(ME, headers=as_key(first)), 401)
    assert works(client, second) and works(client, third)
    assert [s["which"] for s in listed(client, alice)["secrets"]] == ["current", "previous"]


def test_the_database_keeps_hmacs_only_and_the_rotation_is_audited(client, settings, alice):
    old = create_key(client, alice)
    new = rotate(client, old["key_id"], alice)

    with transaction(settings.database_url) as session:
        row = session.execute(select(ApiKey)).scalar_one()
        audit_rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
    pepper = settings.api_key_pepper.get_secret_value()
    assert row.key_hmac == key_hmac(new["key"], pepper)
    assert row.previous_key_hmac == key_hmac(old["key"], pepper)
    stored = json.dumps([str(getattr(row, c.key)) for c in ApiKey.__table__.columns])
    assert new["key"][-38:] not in stored and old["key"][-38:] not in stored
    assert [a.action for a in audit_rows] == ["api_key.created", "api_key.rotated"]
    assert audit_rows[1].target == old["key_id"]
    assert new["key"] not in json.dumps([a.detail for a in audit_rows])


def test_no_grace_period_refuses_the_old_secret_at_once(api_db, seed, alice):
    settings = make_settings(api_db, api_key_rotation_grace_hours=0)
    with TestClient(create_app(settings)) as client:
        old = create_key(client, alice)
        new = rotate(client, old["key_id"], alice)

        assert_problem(client.get(ME, headers=as_key(old)), 401)
        assert works(client, new)
        assert [s["which"] for s in listed(client, alice)["secrets"]] == ["current"]


def test_the_grace_period_never_outlasts_the_key(api_db, seed, alice):
    settings = make_settings(api_db, api_key_rotation_grace_hours=72)
    with TestClient(create_app(settings)) as client:
        old = create_key(client, alice, expires_in_days=1)
        rotate(client, old["key_id"], alice)
        previous = listed(client, alice)["secrets"][1]

    assert previous["valid_until"] == old["expires_at"]


@pytest.mark.parametrize("hours", [-1, 24 * 30 + 1])
def test_the_grace_setting_is_bounded(api_db, hours):
    with pytest.raises(ValidationError):
        make_settings(api_db, api_key_rotation_grace_hours=hours)


def test_a_key_may_rotate_itself_with_its_current_secret_only(client, alice):
    own = create_key(client, alice, scopes=["keys:manage", "requests:read"])
    other = create_key(client, alice)

    reply = client.post(f"{KEYS}/{other['key_id']}/rotate", headers=as_key(own))
    assert "only itself" in assert_problem(reply, 403)["detail"]

    new = rotate(client, own["key_id"], as_key(own))  # still in the grace period: old works
    reply = client.post(f"{KEYS}/{own['key_id']}/rotate", headers=as_key(own))
    assert "previous secret" in assert_problem(reply, 403)["detail"]
    assert works(client, new) and works(client, other)


def test_a_key_without_keys_manage_cannot_rotate(client, alice):
    body = create_key(client, alice, scopes=["requests:read"])
    reply = client.post(f"{KEYS}/{body['key_id']}/rotate", headers=as_key(body))
    assert "keys:manage" in assert_problem(reply, 403)["detail"]


def test_another_users_key_is_a_404_and_keeps_its_secret(client, seed, login, alice):
    body = create_key(client, alice)
    seed.user("bob")

    assert_problem(client.post(f"{KEYS}/{body['key_id']}/rotate", headers=login("bob")), 404)
    assert_problem(client.post(f"{KEYS}/{body['key_id']}/rotate"), 401)
    assert_problem(client.post(f"{KEYS}/abcdefghijkl/rotate", headers=alice), 404)
    assert_problem(client.post(f"{KEYS}/NOT-A-KEY-ID/rotate", headers=alice), 422)
    assert works(client, body)


def test_revoked_and_expired_keys_cannot_be_rotated(client, settings, alice):
    revoked = create_key(client, alice)
    client.delete(f"{KEYS}/{revoked['key_id']}", headers=alice)
    reply = client.post(f"{KEYS}/{revoked['key_id']}/rotate", headers=alice)
    assert "revoked" in assert_problem(reply, 409)["detail"]

    expired = create_key(client, alice)
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(
            update(ApiKey)
            .where(ApiKey.key_id == expired["key_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    reply = client.post(f"{KEYS}/{expired['key_id']}/rotate", headers=alice)
    assert "expired" in assert_problem(reply, 409)["detail"]


def test_a_revoked_key_refuses_both_secrets(client, alice):
    old = create_key(client, alice)
    new = rotate(client, old["key_id"], alice)
    assert client.delete(f"{KEYS}/{old['key_id']}", headers=alice).status_code == 204

    for body in (old, new):
        assert "revoked" in assert_problem(client.get(ME, headers=as_key(body)), 401)["detail"]


def test_rotation_fails_closed_without_redis(client, api_db, alice):
    body = create_key(client, alice)
    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as down:
        reply = down.post(f"{KEYS}/{body['key_id']}/rotate", headers=alice)
        still = down.get(ME, headers=as_key(body))

    assert "Redis" in assert_problem(reply, 503)["detail"]
    assert still.status_code == 200  # nothing changed


def test_of_two_rotations_racing_one_wins_and_the_other_is_a_409(client, settings, alice):
    """The second rotation read the key before the first committed: its conditional UPDATE
    finds the secret it read replaced, changes nothing and answers 409."""
    body = create_key(client, alice)
    cache = get_redis(settings.redis_url)

    with transaction(settings.database_url) as late:
        stale = late.execute(select(ApiKey)).scalar_one()  # read before the winner commits
        owner = late.get(User, stale.user_id)
        with transaction(settings.database_url) as first:
            winner, secret = api_keys.rotate_key(
                settings,
                cache,
                session=first,
                user=first.get(User, stale.user_id),
                key_id=body["key_id"],
            )
        with pytest.raises(Problem) as refused:
            api_keys.rotate_key(settings, cache, session=late, user=owner, key_id=body["key_id"])

    assert refused.value.status == 409
    assert works(client, {"key": secret}) and works(client, body)  # the winner's rotation
    with transaction(settings.database_url) as session:
        actions = session.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars().all()
    assert actions == ["api_key.created", "api_key.rotated"]
