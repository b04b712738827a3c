"""The response network's admins manage users through its API: list, read, create, update,
disable and reset a password, each audited, each bumping the version the next identity
export carries (the request network then holds the change). Real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from response_api_helpers import (
    JWT_SECRET,
    PASSWORD,
    TEST_REDIS_URL,
    add_user,
    assert_problem,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)
from sqlalchemy import select

from response_network.app import create_app
from response_network.models import AuditLog, ProfileType, User
from response_network.services.identity import export_identity
from shared.db import transaction, utcnow
from shared.security.passwords import verify_password
from tests.conftest import network_settings
from transfer.protocol.config import outbound_from

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
USERS = "/api/v1/admin/users"
NEW_PASSWORD = "a-fresh-password-9"


@pytest.fixture
def rs(pg_urls, tmp_path) -> Iterator[tuple[TestClient, str]]:
    import redis

    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    clear_auth_keys(cache)
    with transaction(url) as session:
        for name in ("articles", "payroll"):
            session.add(
                ProfileType(
                    name=name,
                    index=name,
                    fields={"title": "text"},
                    return_fields=["title"],
                    max_size=10,
                    rate_limits={"minute": 5, "hour": 50, "day": 100},
                    version=1,
                )
            )
    add_user(url, "root", role="admin")
    add_user(url, "olga", role="operator")
    settings = make_settings(url, transfer_dir=tmp_path / "transfer")
    with TestClient(create_app(settings)) as client:
        yield client, url
    empty_response_db(url)
    clear_auth_keys(cache)


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_create_read_update_disable_and_reset(rs):
    client, url = rs
    root = login(client, "root")
    created = client.post(
        USERS,
        json={"username": "dana", "password": PASSWORD, "profile_type": "articles"},
        headers=root,
    )
    assert created.status_code == 201, created.text
    dana = created.json()
    assert created.headers["location"] == f"{USERS}/{dana['id']}"
    assert (dana["role"], dana["version"], dana["replicated"]) == ("user", 1, False)
    assert PASSWORD not in created.text and "password" not in dana

    assert client.get(f"{USERS}/{dana['id']}", headers=root).json()["username"] == "dana"
    listed = client.get(USERS, params={"role": "user"}, headers=root).json()
    assert [u["username"] for u in listed["items"]] == ["dana"]

    updated = client.patch(
        f"{USERS}/{dana['id']}", json={"role": "operator", "profile_type": "payroll"}, headers=root
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["role"], updated.json()["version"]) == ("operator", 2)
    same = client.patch(f"{USERS}/{dana['id']}", json={"role": "operator"}, headers=root)
    assert same.json()["version"] == 2  # nothing changed, nothing to replicate

    reset = client.post(
        f"{USERS}/{dana['id']}/password", json={"password": NEW_PASSWORD}, headers=root
    )
    assert reset.status_code == 204
    login(client, "dana", NEW_PASSWORD)
    assert_problem(
        client.post("/api/v1/auth/login", data={"username": "dana", "password": PASSWORD}), 401
    )

    disabled = client.patch(f"{USERS}/{dana['id']}", json={"active": False}, headers=root)
    assert disabled.json()["active"] is False and disabled.json()["version"] == 4
    assert_problem(
        client.post("/api/v1/auth/login", data={"username": "dana", "password": NEW_PASSWORD}),
        401,
    )

    with transaction(url) as session:
        actions = session.execute(
            select(AuditLog.action, AuditLog.detail).where(AuditLog.target == dana["id"])
        ).all()
        stored = session.get(User, dana["id"])
        assert verify_password(NEW_PASSWORD, stored.password_hash)
    assert [a for a, _ in actions] == [
        "user.created",
        "user.updated",
        "user.password_reset",
        "user.updated",
    ]
    assert NEW_PASSWORD not in json.dumps([d for _, d in actions], default=str)


def test_changes_travel_with_the_next_identity_export(rs, tmp_path, keys):
    client, url = rs
    root = login(client, "root")
    dana = client.post(
        USERS,
        json={"username": "dana", "password": PASSWORD, "profile_type": "articles"},
        headers=root,
    ).json()
    client.patch(f"{USERS}/{dana['id']}", json={"active": False}, headers=root)
    settings = network_settings("response", tmp_path, keys, database_url=url)
    with transaction(url) as session:
        batches = export_identity(outbound_from(settings), session=session)
    assert batches
    lines = [
        json.loads(line) for batch in batches for line in batch.path.read_text().splitlines()[1:-1]
    ]
    (record,) = [r for r in lines if r.get("type") == "user" and r["id"] == dana["id"]]
    assert record["version"] == 2 and record["data"]["active"] is False
    assert client.get(f"{USERS}/{dana['id']}", headers=root).json()["replicated"] is True


def test_refusals(rs):
    client, _ = rs
    root = login(client, "root")
    body = {"username": "dana", "password": PASSWORD, "profile_type": "articles"}
    assert client.post(USERS, json=body, headers=root).status_code == 201
    assert_problem(client.post(USERS, json=body, headers=root), 409)
    unknown = {**body, "username": "erin", "profile_type": "nosuch"}
    assert_problem(client.post(USERS, json=unknown, headers=root), 422)
    too_long = {**body, "username": "fay", "password": "é" * 37}
    assert (
        "72 bytes" in assert_problem(client.post(USERS, json=too_long, headers=root), 422)["detail"]
    )
    assert_problem(client.patch(f"{USERS}/nobody", json={"active": False}, headers=root), 404)
    assert_problem(client.patch(f"{USERS}/nobody", json={"password": "x"}, headers=root), 422)
    operator = login(client, "olga")
    assert_problem(client.get(USERS, headers=operator), 403)
    assert_problem(client.post(USERS, json=body, headers=operator), 403)
    assert_problem(client.get(USERS), 401)


def test_details_and_list_show_the_last_login_and_a_failed_one_changes_nothing(rs):
    client, url = rs
    root = login(client, "root")
    vera = add_user(url, "vera", role="operator")

    def last_login() -> str | None:
        reply = client.get(f"{USERS}/{vera}", headers=root)
        assert reply.status_code == 200, reply.text
        return reply.json()["last_login_at"]

    def listed() -> str | None:
        rows = client.get(USERS, params={"name": "vera"}, headers=root).json()["items"]
        return next(r["last_login_at"] for r in rows if r["username"] == "vera")

    assert last_login() is None and listed() is None  # never logged in
    before = utcnow()
    login(client, "vera")
    after = utcnow()
    stamped = last_login()
    assert stamped is not None and before <= datetime.fromisoformat(stamped) <= after
    assert listed() == stamped

    failed = client.post("/api/v1/auth/login", data={"username": "vera", "password": "nope!"})
    assert failed.status_code == 401, failed.text
    assert last_login() == stamped
    assert client.get(f"{USERS}/{vera}", headers=root).json()["failed_logins"] == 0


def test_a_reset_ends_the_sessions_from_before_it(rs):
    client, url = rs
    root = login(client, "root")
    add_user(url, "otto", role="operator")
    before = login(client, "otto")
    assert client.get("/api/v1/admin/health", headers=before).status_code != 401
    with transaction(url) as session:
        otto = session.scalars(select(User.id).where(User.username == "otto")).one()
    reset = client.post(f"{USERS}/{otto}/password", json={"password": NEW_PASSWORD}, headers=root)
    assert reset.status_code == 204
    assert_problem(client.get("/api/v1/admin/health", headers=before), 401)
    after = login(client, "otto", NEW_PASSWORD)
    assert client.get("/api/v1/admin/health", headers=after).status_code != 401
    with transaction(url) as session:
        stored = session.get_one(User, otto)
        assert stored.password_set_version == stored.version and not stored.password_synced


def test_a_snapshot_sends_every_user_profile_type_and_setting(rs, tmp_path, keys):
    client, url = rs
    root = login(client, "root")
    unsigned = client.post("/api/v1/admin/snapshot", headers=root)
    assert_problem(unsigned, 503)  # this deployment has no signing key: said, not a 500
    assert "signing key" in unsigned.json()["detail"]

    signing = network_settings("response", tmp_path, keys, database_url=url)
    signing = signing.model_copy(
        update={"redis_url": TEST_REDIS_URL, "jwt_secret": SecretStr(JWT_SECRET)}
    )
    with TestClient(create_app(signing)) as signer:
        taken = signer.post("/api/v1/admin/snapshot", headers=root)
        assert taken.status_code == 200, taken.text
        streams = [b["stream"] for b in taken.json()["batches"]]
        assert streams == ["profile_types", "users", "settings"]
        by_stream = {b["stream"]: b["records"] for b in taken.json()["batches"]}
        assert by_stream["profile_types"] == 2 and by_stream["users"] == 2  # root and olga
        again = signer.post("/api/v1/admin/snapshot", headers=root).json()["batches"]
        assert [b["stream"] for b in again] == streams, "a snapshot sends all, changed or not"
    with transaction(url) as session:
        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.action == "identity.snapshot")
        ).all()
    assert len(actions) == 2


def test_the_list_sorts_by_profile_type_state_last_login_and_custom_limits(rs):
    client, url = rs
    pia, quinn = add_user(url, "pia", role="user"), add_user(url, "quinn", role="user")
    with transaction(url) as session:
        session.get(User, pia).profile_type = "payroll"
        session.get(User, quinn).active = False
        session.get(User, quinn).rate_limits = {"minute": 2}
    root = login(client, "root")  # root's last login: now

    def names(sort: str) -> list[str]:
        reply = client.get(USERS, params={"sort": sort}, headers=root)
        assert reply.status_code == 200, reply.text
        return [r["username"] for r in reply.json()["items"]]

    assert names("profile_type")[-1] == "pia" and names("-profile_type")[0] == "pia"
    assert names("state")[-1] == "quinn" and names("-state")[0] == "quinn"
    assert names("last_login_at")[0] == "root" and names("-last_login_at")[0] == "root"
    assert names("custom_limits")[-1] == "quinn" and names("-custom_limits")[0] == "quinn"
    refused = assert_problem(client.get(USERS, params={"sort": "version"}, headers=root), 422)
    assert "query.sort" in refused["detail"]
