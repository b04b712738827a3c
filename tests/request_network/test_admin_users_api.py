"""Admins see the request network's users: a filtered, sorted page, and one user's details
(limits in force with live usage, API keys without their secret, recent requests, lock).
Real PostgreSQL and Redis through the request app."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from request_api_helpers import PASSWORD, VALID_QUERY, assert_problem, closed_port, make_settings
from sqlalchemy import select

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


def test_users_sort_by_profile_type_state_last_login_and_custom_limits(
    client, seed, people, login, api_db
):
    seed.profile_type("payroll")
    erin = seed.user("erin", profile_type="payroll")
    now = utcnow()
    with transaction(api_db) as session:
        session.get(User, people["carol_x"]).rate_limits = {"minute": 3}
        session.add(AccountLock(user_id=people["bob"], locked_until=now + timedelta(hours=1)))
        session.add(AccountLock(user_id=erin, last_login_at=now - timedelta(days=1)))
    root = login("root")  # root's last login: now

    def sorted_by(sort: str) -> list[str]:
        return names(client.get(USERS, params={"sort": sort}, headers=root))

    assert sorted_by("profile_type")[-1] == "erin" and sorted_by("-profile_type")[0] == "erin"
    # active before inactive, and unlocked before locked
    assert sorted_by("state")[-2:] == ["bob", "dave"]
    assert sorted_by("-state")[:2] == ["dave", "bob"]
    assert sorted_by("last_login_at")[:2] == ["erin", "root"]  # never: last either way
    assert sorted_by("-last_login_at")[:2] == ["root", "erin"]
    assert sorted_by("custom_limits")[-1] == "carol_x"
    assert sorted_by("-custom_limits")[0] == "carol_x"
    for bad in ("password_hash", "-", "state-"):
        refused = assert_problem(client.get(USERS, params={"sort": bad}, headers=root), 422)
        assert "query.sort" in refused["detail"]


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


# Last login ------------------------------------------------------------------------------


def _last_login(client, root, user_id: str) -> str | None:
    reply = client.get(f"{USERS}/{user_id}", headers=root)
    assert reply.status_code == 200, reply.text
    return reply.json()["last_login_at"]


def _listed_last_login(client, root, username: str) -> str | None:
    rows = client.get(USERS, params={"name": username}, headers=root).json()["items"]
    return next(r["last_login_at"] for r in rows if r["username"] == username)


def test_details_and_list_show_the_last_login_and_a_failed_one_changes_nothing(
    client, root, people, login
):
    alice = people["alice"]
    assert _last_login(client, root, alice) is None  # never logged in
    assert _listed_last_login(client, root, "alice") is None

    before = utcnow()
    login("alice")
    after = utcnow()
    stamped = _last_login(client, root, alice)
    assert stamped is not None and before <= datetime.fromisoformat(stamped) <= after
    assert _listed_last_login(client, root, "alice") == stamped

    failed = client.post("/api/v1/auth/login", data={"username": "alice", "password": "nope!"})
    assert failed.status_code == 401, failed.text
    assert _last_login(client, root, alice) == stamped
    assert _last_login(client, root, people["bob"]) is None


def test_a_login_clears_recorded_failures_and_stamps_the_same_row(
    client, root, people, login, api_db
):
    with transaction(api_db) as session:
        session.add(AccountLock(user_id=people["bob"], failures=4, updated_at=utcnow()))
    login("bob")
    with transaction(api_db) as session:
        lock = session.get(AccountLock, people["bob"])
        assert (lock.failures, lock.locked_until) == (0, None)
        assert lock.last_login_at is not None


def test_concurrent_logins_of_one_account_all_succeed_on_one_row(people, settings, api_db):
    """Each login upserts the account's lock row: none fails on a duplicate key."""
    from request_network.services import auth
    from shared.cache import get_redis

    n = 6
    start = threading.Barrier(n)

    def one(i: int):
        start.wait()
        with transaction(api_db) as session:
            return auth.login(
                settings,
                get_redis(settings.redis_url),
                session=session,
                username="carol_x",
                password=PASSWORD,
                client=f"10.0.0.{i}",
            )

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    assert all(r.token is not None and r.refusal is None for r in results)
    with transaction(api_db) as session:
        rows = (
            session.execute(select(AccountLock).where(AccountLock.user_id == people["carol_x"]))
            .scalars()
            .all()
        )
        assert len(rows) == 1 and rows[0].last_login_at is not None


def test_logins_stamp_the_last_login_on_sqlite(tmp_path):
    """The demo's database takes the same upsert (SQLite's ON CONFLICT): a first login makes
    the row, a later one updates it."""
    from request_api_helpers import Seed

    from request_network.models import Base
    from request_network.services import auth
    from shared.cache import get_redis
    from shared.db import get_engine

    url = f"sqlite:///{tmp_path / 'request.db'}"
    Base.metadata.create_all(get_engine(url))
    seed = Seed(url)
    seed.profile_type()
    name = f"sqlite-{uuid.uuid4().hex[:12]}"  # the in-process Redis stand-in is shared
    user_id = seed.user(name)
    settings = make_settings(url, redis_url="fakeredis://")
    stamps = []
    for _ in range(2):
        with transaction(url) as session:
            result = auth.login(
                settings,
                get_redis(settings.redis_url),
                session=session,
                username=name,
                password=PASSWORD,
                client="127.0.0.1",
            )
        assert result.token is not None
        with transaction(url) as session:
            stamps.append(session.get(AccountLock, user_id).last_login_at)
    assert stamps[0] is not None and stamps[1] >= stamps[0]
