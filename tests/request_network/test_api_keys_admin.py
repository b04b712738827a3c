"""Admins disable and enable any user's API key: refused at once in every API process,
working again once enabled, audited, idempotent, and distinct from the owner's revocation.

Real PostgreSQL and Redis; "every API process" is two apps on the same database and Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import assert_problem, closed_port, make_settings
from sqlalchemy import select, update

from request_network.app import create_app
from request_network.models import ApiKey, AuditLog
from shared.db import get_engine, transaction
from shared.security.revocation import DISABLED_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEYS = "/api/v1/api-keys"
ADMIN_KEYS = "/api/v1/admin/api-keys"
ME = "/api/v1/auth/me"


def create_key(client, headers, scopes=("requests:read",), **extra) -> dict:
    reply = client.post(KEYS, json={"name": "ci", "scopes": list(scopes), **extra}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


def as_key(body: dict) -> dict[str, str]:
    return {"X-API-Key": body["key"]}


def set_state(client, key_id: str, verb: str, headers) -> dict:
    reply = client.post(f"{ADMIN_KEYS}/{key_id}/{verb}", headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def audit_actions(settings) -> list[tuple[str, str, str]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
        return [(a.action, a.actor, a.target) for a in rows if a.action != "api_key.created"]


_ROLES = {"alice": "user", "olga": "operator", "root": "admin"}


@pytest.fixture
def people(seed, login) -> dict[str, dict[str, str]]:
    seed.profile_type()
    ids = {name: seed.user(name, role=role) for name, role in _ROLES.items()}
    return {name: {"id": ids[name], **login(name)} for name in _ROLES}


def headers(person: dict[str, str]) -> dict[str, str]:
    return {"Authorization": person["Authorization"]}


@pytest.fixture
def second(settings) -> Iterator[TestClient]:
    """Another API process: its own app on the same database and Redis."""
    with TestClient(create_app(settings)) as other:
        yield other


def test_a_disabled_key_is_refused_at_once_everywhere_and_works_again_once_enabled(
    client, second, settings, people
):
    alice, root = headers(people["alice"]), headers(people["root"])
    body = create_key(client, alice)
    assert client.get(ME, headers=as_key(body)).status_code == 200
    assert second.get(ME, headers=as_key(body)).status_code == 200

    out = set_state(client, body["key_id"], "disable", root)

    assert out["changed"] is True and out["status"] == "disabled"
    assert out["user_id"] == people["alice"]["id"] and out["disabled_by"] == people["root"]["id"]
    for api in (client, second):
        detail = assert_problem(api.get(ME, headers=as_key(body)), 401)["detail"]
        assert "disabled by an admin" in detail
    item = client.get(KEYS, headers=alice).json()["items"][0]
    assert item["status"] == "disabled" and item["disabled_at"] is not None

    out = set_state(second, body["key_id"], "enable", root)

    assert out["changed"] is True and out["status"] == "active" and out["disabled_at"] is None
    for api in (client, second):
        assert api.get(ME, headers=as_key(body)).status_code == 200
    assert audit_actions(settings) == [
        ("api_key.disabled", people["root"]["id"], body["key_id"]),
        ("api_key.enabled", people["root"]["id"], body["key_id"]),
    ]


def test_disabling_twice_is_a_200_that_says_so_and_is_audited_once(client, settings, people):
    body = create_key(client, headers(people["alice"]))
    root = headers(people["root"])

    first = set_state(client, body["key_id"], "disable", root)
    again = set_state(client, body["key_id"], "disable", root)
    set_state(client, body["key_id"], "enable", root)
    enabled_again = set_state(client, body["key_id"], "enable", root)

    assert (first["changed"], again["changed"], enabled_again["changed"]) == (True, False, False)
    assert again["status"] == "disabled" and again["disabled_at"] == first["disabled_at"]
    assert [a for a, _, _ in audit_actions(settings)] == ["api_key.disabled", "api_key.enabled"]


def test_the_disable_mark_holds_even_where_the_row_still_says_enabled(
    client, settings, people, redis_client
):
    """The Redis mark refuses the key even if a lagging row disagrees (as for revocation)."""
    body = create_key(client, headers(people["alice"]))
    set_state(client, body["key_id"], "disable", headers(people["root"]))
    assert redis_client.exists(DISABLED_KEY + body["key_id"])
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(update(ApiKey).values(disabled_at=None, disabled_by=None))

    assert "disabled" in assert_problem(client.get(ME, headers=as_key(body)), 401)["detail"]

    # Enabling clears the mark even though the row already says enabled.
    out = set_state(client, body["key_id"], "enable", headers(people["root"]))
    assert out["changed"] is False
    assert not redis_client.exists(DISABLED_KEY + body["key_id"])
    assert client.get(ME, headers=as_key(body)).status_code == 200


def test_disabled_is_not_revoked_the_owner_may_still_revoke_for_good(client, settings, people):
    alice, root = headers(people["alice"]), headers(people["root"])
    body = create_key(client, alice)
    set_state(client, body["key_id"], "disable", root)

    assert client.delete(f"{KEYS}/{body['key_id']}", headers=alice).status_code == 204

    for verb in ("enable", "disable"):
        reply = client.post(f"{ADMIN_KEYS}/{body['key_id']}/{verb}", headers=root)
        assert "revoked" in assert_problem(reply, 409)["detail"]
    assert "revoked" in assert_problem(client.get(ME, headers=as_key(body)), 401)["detail"]
    assert client.get(KEYS, headers=alice).json()["items"][0]["status"] == "revoked"


def test_the_owner_may_rotate_a_disabled_key_but_it_stays_disabled(client, people):
    alice, root = headers(people["alice"]), headers(people["root"])
    body = create_key(client, alice)
    set_state(client, body["key_id"], "disable", root)

    rotated = client.post(f"{KEYS}/{body['key_id']}/rotate", headers=alice)

    assert rotated.status_code == 200 and rotated.json()["status"] == "disabled"
    assert_problem(client.get(ME, headers=as_key(rotated.json())), 401)
    set_state(client, body["key_id"], "enable", root)
    assert client.get(ME, headers=as_key(rotated.json())).status_code == 200


@pytest.mark.parametrize("verb", ["disable", "enable"])
def test_only_admins_may_disable_or_enable(client, people, verb):
    body = create_key(client, headers(people["alice"]))
    url = f"{ADMIN_KEYS}/{body['key_id']}/{verb}"

    assert_problem(client.post(url), 401)
    for name in ("alice", "olga"):  # the owner too
        assert_problem(client.post(url, headers=headers(people[name])), 403)
    admin_key = create_key(client, headers(people["root"]), scopes=["admin"])
    assert client.post(url, headers=as_key(admin_key)).status_code == 200
    no_admin_scope = create_key(client, headers(people["root"]), scopes=["requests:read"])
    assert (
        "admin" in assert_problem(client.post(url, headers=as_key(no_admin_scope)), 403)["detail"]
    )


def test_an_unknown_key_is_a_404_and_a_malformed_id_a_422(client, people):
    root = headers(people["root"])
    assert_problem(client.post(f"{ADMIN_KEYS}/abcdefghijkl/disable", headers=root), 404)
    assert_problem(client.post(f"{ADMIN_KEYS}/ABC/enable", headers=root), 422)


def test_without_redis_disable_still_holds_and_enable_fails_closed(client, api_db, people):
    body = create_key(client, headers(people["alice"]))
    root = headers(people["root"])
    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings)) as down:
        disabled = down.post(f"{ADMIN_KEYS}/{body['key_id']}/disable", headers=root)
        refused = down.get(ME, headers=as_key(body))
        enable = down.post(f"{ADMIN_KEYS}/{body['key_id']}/enable", headers=root)
        still = down.get(ME, headers=as_key(body))

    assert disabled.status_code == 200 and disabled.json()["changed"] is True
    assert_problem(refused, 401)
    assert "Redis" in assert_problem(enable, 503)["detail"]
    assert_problem(still, 401)  # the failed enable changed nothing
    set_state(client, body["key_id"], "enable", root)  # Redis back: enabled
    assert client.get(ME, headers=as_key(body)).status_code == 200
