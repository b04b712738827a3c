"""Admins see the request network's users: a filtered, sorted page, and one user's details
(limits in force with live usage, API keys without their secret, recent requests, lock).
Real PostgreSQL and Redis through the request app."""

from __future__ import annotations

import pytest
from request_api_helpers import VALID_QUERY, assert_problem, closed_port, make_settings

from request_network.app import create_app
from request_network.models import AccountLock, User
from shared.db import transaction, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
USERS = "/api/v1/admin/users"


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    ids = {"root": seed.user("root", role="admin")}
    for name in ("alice", "bob", "carol_x", "dave"):
        ids[name] = seed.user(name)
    seed.set_active(ids["dave"], False)
    return ids


@pytest.fixture
def root(people, login) -> dict[str, str]:
    return login("root")


def names(reply) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [row["username"] for row in reply.json()["items"]]


def test_users_are_filtered_sorted_and_paged(client, root, people, api_db):
    assert names(client.get(USERS, headers=root)) == ["alice", "bob", "carol_x", "dave", "root"]
    assert names(client.get(USERS, params={"sort": "-username"}, headers=root))[0] == "root"
    assert names(client.get(USERS, params={"role": "admin"}, headers=root)) == ["root"]
    assert names(client.get(USERS, params={"status": "inactive"}, headers=root)) == ["dave"]
    # the name filter is a substring, with LIKE's wildcards taken literally
    assert names(client.get(USERS, params={"name": "_x"}, headers=root)) == ["carol_x"]
    assert names(client.get(USERS, params={"name": "%"}, headers=root)) == []
    page = client.get(USERS, params={"limit": 2, "offset": 2}, headers=root).json()
    assert [r["username"] for r in page["items"]] == ["carol_x", "dave"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    past = client.get(USERS, params={"offset": 50}, headers=root).json()
    assert past["items"] == [] and past["total"] == 5

    with transaction(api_db) as session:
        session.add(AccountLock(user_id=people["bob"], failures=5, locked_until=utcnow().replace(
            year=utcnow().year + 1), updated_at=utcnow()))  # fmt: skip
    locked = client.get(USERS, params={"status": "locked"}, headers=root).json()["items"]
    assert [(r["username"], r["locked"]) for r in locked] == [("bob", True)]


def test_a_users_details(client, root, people, login, api_db):
    alice = login("alice")
    for _ in range(3):
        submitted = client.post(
            "/api/v1/requests",
            json={"profile_type": "articles", "query": VALID_QUERY},
            headers=alice,
        )
        assert submitted.status_code == 202, submitted.text
    created = client.post(
        "/api/v1/api-keys", json={"name": "report", "scopes": ["requests:read"]}, headers=alice
    )
    secret = created.json()["key"]

    reply = client.get(f"{USERS}/{people['alice']}", headers=root)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["username"], body["role"], body["active"]) == ("alice", "user", True)
    minute = next(w for w in body["limits"] if w["window"] == "minute")
    assert (minute["limit"], minute["source"], minute["count"]) == (30, "profile_type", 3)
    assert body["usage_state"] == "ok"
    assert [k["name"] for k in body["api_keys"]] == ["report"]
    assert secret not in reply.text and body["api_keys"][0]["prefix"] in secret
    assert len(body["recent_requests"]) == 3
    assert {r["status"] for r in body["recent_requests"]} == {"PENDING"}
    assert body["lock"]["locked"] is False


def test_details_without_redis_still_show_the_limits(people, api_db, login, client):
    """The limiter down: the limits in force show, usage is unknown (null), no error."""
    root = login("root")
    offline = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    from fastapi.testclient import TestClient

    with TestClient(create_app(offline)) as no_redis:
        reply = no_redis.get(f"{USERS}/{people['alice']}", headers=root)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {w["limit"] for w in body["limits"]} == {30, 500, 2000}
    assert body["usage_state"] is None and all(w["count"] is None for w in body["limits"])
    assert body["lock"]["redis"] == "unavailable"


def test_unknown_user_is_404_and_malformed_input_422(client, root, people):
    assert_problem(client.get(f"{USERS}/no-such-user", headers=root), 404)
    assert_problem(client.get(USERS, params={"sort": "password"}, headers=root), 422)
    assert_problem(client.get(USERS, params={"name": "a\x00"}, headers=root), 422)


def test_only_admins_see_users(client, people, login):
    alice = login("alice")
    assert_problem(client.get(USERS, headers=alice), 403)
    assert_problem(client.get(f"{USERS}/{people['alice']}", headers=alice), 403)
    assert_problem(client.get(USERS), 401)


def test_the_user_list_reads_no_password_hash(client, root, people, api_db):
    with transaction(api_db) as session:
        hashes = [u.password_hash for u in session.query(User).all()]
    reply = client.get(USERS, headers=root)
    assert not any(h in reply.text for h in hashes)
