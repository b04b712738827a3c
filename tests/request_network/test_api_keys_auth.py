"""Calling the request API with `X-API-Key`: scopes, roles, expiry, malformed keys refused
before any database work, last-used bookkeeping, and behaviour without Redis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import VALID_QUERY, assert_problem, closed_port, make_settings
from sqlalchemy import event, select, update

from request_network.app import create_app
from request_network.models import ApiKey, User
from shared.db import get_engine, transaction, utcnow
from shared.security.api_keys import CHECKSUM_LENGTH, checksum, generate_key
from shared.security.revocation import KEY_USED

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"


def create_key(client, headers, scopes=("requests:read",), **extra) -> dict:
    reply = client.post(KEYS, json={"name": "ci", "scopes": list(scopes), **extra}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


def as_key(body: dict) -> dict[str, str]:
    return {"X-API-Key": body["key"]}


@contextmanager
def counting_sql(url: str) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = get_engine(url)

    def spy(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", spy)


@pytest.fixture
def alice(seed, login) -> dict[str, str]:
    seed.profile_type()
    seed.user("alice")
    return login("alice")


def test_a_key_opens_what_its_scopes_allow(client, alice):
    body = create_key(client, alice, scopes=["requests:read", "requests:write"])

    submitted = client.post(
        "/api/v1/requests",
        json={"profile_type": "articles", "query": VALID_QUERY},
        headers=as_key(body),
    )
    assert submitted.status_code == 202, submitted.text
    listed = client.get("/api/v1/requests", headers=as_key(body))
    assert listed.status_code == 200 and listed.json()["total"] == 1


def test_a_read_only_key_cannot_submit(client, alice):
    body = create_key(client, alice, scopes=["requests:read"])
    reply = client.post(
        "/api/v1/requests",
        json={"profile_type": "articles", "query": VALID_QUERY},
        headers=as_key(body),
    )
    assert "requests:write" in assert_problem(reply, 403)["detail"]


def test_a_write_only_key_cannot_read(client, alice):
    body = create_key(client, alice, scopes=["requests:write"])
    reply = client.get("/api/v1/requests", headers=as_key(body))
    assert "requests:read" in assert_problem(reply, 403)["detail"]


def test_me_shows_the_key_and_its_effective_scopes(client, alice):
    body = create_key(client, alice, scopes=["requests:read"])

    me = client.get(ME, headers=as_key(body)).json()
    assert (me["via"], me["key_id"], me["scopes"]) == ("api_key", body["key_id"], ["requests:read"])
    jwt_me = client.get(ME, headers=alice).json()
    assert jwt_me["via"] == "jwt" and jwt_me["key_id"] is None
    assert set(jwt_me["scopes"]) == {"requests:read", "requests:write", "keys:manage"}


def test_a_key_never_exceeds_its_owners_current_role(client, seed, login, settings):
    seed.profile_type()
    root = seed.user("root", role="admin")
    body = create_key(client, login("root"), scopes=["admin", "requests:read"])
    lock_url = f"/api/v1/admin/users/{root}/lock"
    assert client.get(lock_url, headers=as_key(body)).status_code == 200

    with transaction(settings.database_url) as session:  # the authority demotes root
        session.get(User, root).role = "user"

    assert client.get(ME, headers=as_key(body)).json()["scopes"] == ["requests:read"]
    assert_problem(client.get(lock_url, headers=as_key(body)), 403)


def test_an_admin_key_without_the_admin_scope_cannot_use_admin_routes(client, seed, login):
    seed.profile_type()
    root = seed.user("root", role="admin")
    body = create_key(client, login("root"), scopes=["requests:read"])
    reply = client.get(f"/api/v1/admin/users/{root}/lock", headers=as_key(body))
    assert "admin" in assert_problem(reply, 403)["detail"]


def test_an_expired_key_is_refused(client, settings, alice):
    body = create_key(client, alice)
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))

    assert "expired" in assert_problem(client.get(ME, headers=as_key(body)), 401)["detail"]
    assert client.get(KEYS, headers=alice).json()["items"][0]["status"] == "expired"


def test_a_key_of_a_deactivated_user_is_refused(client, seed, settings, alice):
    body = create_key(client, alice)
    with transaction(settings.database_url) as session:
        user_id = session.execute(select(User.id).where(User.username == "alice")).scalar_one()
    seed.set_active(user_id, False)
    assert_problem(client.get(ME, headers=as_key(body)), 401)


def _typo(key: str) -> str:
    return key[:20] + ("A" if key[20] != "A" else "B") + key[21:]


@pytest.mark.parametrize(
    "mangle",
    [
        _typo,
        lambda k: k[:-1],
        lambda k: k + "0",
        lambda k: "ferry_live_short",
        lambda k: "not a key at all",
        lambda k: k.replace("ferry_live_", "ferry_test_"),  # checksum breaks too
    ],
    ids=["typo", "truncated", "extended", "short", "garbage", "environment"],
)
def test_malformed_keys_are_refused_before_any_sql(client, settings, alice, mangle):
    body = create_key(client, alice)
    with counting_sql(settings.database_url) as statements:
        reply = client.get("/api/v1/requests", headers={"X-API-Key": mangle(body["key"])})

    assert "malformed" in assert_problem(reply, 401)["detail"]
    assert statements == []


def test_an_empty_key_header_is_refused_before_any_sql(client, settings, alice):
    with counting_sql(settings.database_url) as statements:
        assert_problem(client.get("/api/v1/requests", headers={"X-API-Key": ""}), 401)
    assert statements == []


def test_a_key_for_another_environment_is_refused_before_any_sql(client, settings, alice):
    other = generate_key("test").key
    with counting_sql(settings.database_url) as statements:
        reply = client.get("/api/v1/requests", headers={"X-API-Key": other})
    assert "test key" in assert_problem(reply, 401)["detail"]
    assert statements == []


def test_a_well_formed_unknown_key_costs_one_lookup_and_is_refused(client, settings, alice):
    """The control for the tests above: the counter does see the lookup of a valid shape."""
    with counting_sql(settings.database_url) as statements:
        reply = client.get("/api/v1/requests", headers={"X-API-Key": generate_key("live").key})
    assert assert_problem(reply, 401)["detail"] == "invalid API key"
    assert len(statements) == 1 and "api_keys" in statements[0]


def test_a_forged_secret_with_a_valid_checksum_is_refused(client, alice):
    body = create_key(client, alice)
    stem = body["key"][:-CHECKSUM_LENGTH]
    stem = stem[:-1] + ("A" if stem[-1] != "A" else "B")
    reply = client.get(ME, headers={"X-API-Key": stem + checksum(stem)})
    assert assert_problem(reply, 401)["detail"] == "invalid API key"


def test_last_used_is_recorded_at_most_once_a_minute(client, settings, alice, redis_client):
    body = create_key(client, alice)

    def last_used():
        with transaction(settings.database_url) as session:
            return session.execute(select(ApiKey.last_used_at)).scalar_one()

    assert last_used() is None
    client.get(ME, headers=as_key(body))
    first = last_used()
    assert first is not None
    client.get(ME, headers=as_key(body))
    assert last_used() == first  # throttled

    # A minute later (simulated: the slot expired, the stored time is older).
    redis_client.delete(KEY_USED + body["key_id"])
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(last_used_at=first - timedelta(minutes=2)))
    client.get(ME, headers=as_key(body))
    assert last_used() > first - timedelta(minutes=2)
    assert client.get(KEYS, headers=alice).json()["items"][0]["last_used_at"] is not None


def test_a_bearer_token_and_a_key_together_are_refused(client, alice):
    body = create_key(client, alice)
    assert_problem(client.get(ME, headers={**alice, **as_key(body)}), 401)


def test_a_key_sent_as_a_bearer_token_points_to_the_right_header(client, alice):
    body = create_key(client, alice)
    reply = client.get(ME, headers={"Authorization": f"Bearer {body['key']}"})
    assert "X-API-Key" in assert_problem(reply, 401)["detail"]


def test_keys_keep_working_without_redis_and_revocations_still_hold(client, api_db, alice):
    """The database row is authoritative: a Redis outage neither opens nor revives a key."""
    live = create_key(client, alice)
    revoked = create_key(client, alice)
    assert client.delete(f"{KEYS}/{revoked['key_id']}", headers=alice).status_code == 204

    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as down:
        ok = down.get("/api/v1/requests", headers=as_key(live))
        refused = down.get("/api/v1/requests", headers=as_key(revoked))
        revoke_now = down.delete(f"{KEYS}/{live['key_id']}", headers=as_key(live))
        after = down.get("/api/v1/requests", headers=as_key(live))

    assert ok.status_code == 200, ok.text
    assert_problem(refused, 401)
    assert revoke_now.status_code == 403  # a read-only key lacks keys:manage
    assert after.status_code == 200
