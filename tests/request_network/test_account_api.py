"""A user's own account on the request network: the profile, and the password change that
applies at once, ends every other session and API key, and travels as a bcrypt hash only.
Real PostgreSQL and Redis through the app."""

from __future__ import annotations

import pytest
from request_api_helpers import PASSWORD, assert_problem
from sqlalchemy import select

from request_network.models import AuditLog, User, UserChange
from shared.db import transaction

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ME, PASSWORD_ROUTE = "/api/v1/users/me", "/api/v1/users/me/password"
NEW_PASSWORD = "a much longer new passphrase"


@pytest.fixture
def alice(seed, api_db) -> str:
    seed.profile_type()
    return seed.user("alice")


def changes(api_db: str, user_id: str) -> list[UserChange]:
    with transaction(api_db) as session:
        rows = session.scalars(
            select(UserChange).where(UserChange.user_id == user_id).order_by(UserChange.seq)
        ).all()
        session.expunge_all()
        return list(rows)


def test_the_profile_changes_here_and_goes_to_the_authority(client, login, alice, api_db):
    auth = login("alice")
    me = client.get(ME, headers=auth).json()
    assert me["username"] == "alice" and me["display_name"] is None
    assert me["notification_preferences"] == {"channels": {}}  # the defaults
    assert me["changes_on_their_way"] == 0

    prefs = {"channels": {"request.completed": ["in_app", "email"]}}
    body = {"display_name": "Alice A.", "notification_preferences": prefs}
    changed = client.patch(ME, json=body, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["display_name"] == "Alice A."
    assert changed.json()["changes_on_their_way"] == 1
    (change,) = changes(api_db, alice)
    assert (change.version, change.base_version) == (1, 1)
    assert change.data == body

    # The same values again change nothing; null clears one.
    assert client.patch(ME, json=body, headers=auth).json()["changes_on_their_way"] == 1
    cleared = client.patch(ME, json={"display_name": None}, headers=auth).json()
    assert cleared["display_name"] is None and cleared["changes_on_their_way"] == 2
    assert [c.data for c in changes(api_db, alice)][1] == {"display_name": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an address"}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"notification_preferences": {"sms": True}}, "notification_preferences"),
        ({"notification_preferences": {"channels": {"no.such": []}}}, "channels"),
        ({"notification_preferences": {"channels": {"request.failed": ["sms"]}}}, "channels"),
        ({"role": "admin"}, "role"),
    ],
)
def test_a_bad_profile_field_is_named(client, login, alice, body, field):
    refused = client.patch(ME, json=body, headers=login("alice"))
    assert_problem(refused, 422)
    assert field in refused.text


def test_a_password_change_ends_other_sessions_and_keys_and_travels_as_a_hash(
    client, login, alice, api_db
):
    old_session, this_session = login("alice"), login("alice")
    key = client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["requests:read"]}, headers=old_session
    ).json()["key"]
    assert client.get(ME, headers={"X-API-Key": key}).status_code == 200

    wrong = {"current_password": "not it", "new_password": NEW_PASSWORD}
    assert_problem(client.post(PASSWORD_ROUTE, json=wrong, headers=this_session), 403)
    short = {"current_password": PASSWORD, "new_password": "short"}
    assert "new_password" in client.post(PASSWORD_ROUTE, json=short, headers=this_session).text
    same = {"current_password": PASSWORD, "new_password": PASSWORD}
    assert_problem(client.post(PASSWORD_ROUTE, json=same, headers=this_session), 422)
    assert client.get(ME, headers=old_session).status_code == 200, "nothing changed yet"

    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = client.post(PASSWORD_ROUTE, json=body, headers=this_session)
    assert changed.status_code == 200, changed.text
    assert changed.headers["Cache-Control"] == "no-store"
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert client.get(ME, headers=fresh).status_code == 200

    for stale in (old_session, this_session, {"X-API-Key": key}):
        assert_problem(client.get(ME, headers=stale), 401)
    refused = client.post("/api/v1/auth/login", data={"username": "alice", "password": PASSWORD})
    assert_problem(refused, 401)
    assert client.get(ME, headers=login("alice", NEW_PASSWORD)).status_code == 200

    (change,) = changes(api_db, alice)
    assert set(change.data) == {"password_hash"}
    assert change.data["password_hash"].startswith("$2b$")
    assert NEW_PASSWORD not in repr(change.data)
    with transaction(api_db) as session:
        user = session.get_one(User, alice)
        assert user.password_hash == change.data["password_hash"]
        actions = session.scalars(select(AuditLog.action).where(AuditLog.target == alice)).all()
    assert "user.password_changed" in actions


def test_a_key_cannot_change_the_password_or_profile(client, login, alice):
    auth = login("alice")
    key = client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["requests:read"]}, headers=auth
    ).json()["key"]
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_problem(client.post(PASSWORD_ROUTE, json=body, headers={"X-API-Key": key}), 403)
    assert_problem(client.patch(ME, json={"email": "a@b.example"}, headers={"X-API-Key": key}), 403)
    assert_problem(client.get(ME), 401)
