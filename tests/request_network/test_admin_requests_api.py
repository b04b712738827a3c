"""Admins follow every user's requests: by status (as users see it), user, age and "stuck"
(still waiting, no change for longer than a threshold). Real PostgreSQL through the app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from request_api_helpers import assert_problem
from sqlalchemy import update

from request_network.models import COMPLETED, EXPORTED, FAILED, Request, RequestExport
from shared.db import transaction, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REQUESTS = "/api/v1/admin/requests"


@pytest.fixture
def world(seed, api_db) -> dict[str, str]:
    seed.profile_type()
    ids = {"root": seed.user("root", role="admin"), "alice": seed.user("alice")}
    ids["bob"] = seed.user("bob")
    ids["fresh"] = seed.request(ids["alice"])
    ids["old_pending"] = seed.request(ids["alice"])
    ids["in_transit"] = seed.request(ids["bob"], status=EXPORTED)
    ids["old_transit"] = seed.request(ids["bob"], status=EXPORTED)
    ids["done"] = seed.request(ids["alice"], status=COMPLETED)
    ids["failed"] = seed.request(ids["bob"], status=FAILED)
    two_days_ago = utcnow() - timedelta(days=2)
    with transaction(api_db) as session:
        for name in ("old_pending", "old_transit", "done"):
            session.execute(
                update(Request)
                .where(Request.id == ids[name])
                .values(created_at=two_days_ago, updated_at=two_days_ago)
            )
        session.execute(
            update(RequestExport)
            .where(RequestExport.request_id == ids["old_transit"])
            .values(at=two_days_ago)
        )
    return ids


@pytest.fixture
def root(world, login) -> dict[str, str]:
    return login("root")


def found(client, root, **params) -> set[str]:
    reply = client.get(REQUESTS, params=params, headers=root)
    assert reply.status_code == 200, reply.text
    return {row["id"] for row in reply.json()["items"]}


def test_filters(client, root, world):
    named = {v: k for k, v in world.items()}
    assert {named[i] for i in found(client, root)} == {
        "fresh",
        "old_pending",
        "in_transit",
        "old_transit",
        "done",
        "failed",
    }
    assert {named[i] for i in found(client, root, status="PENDING")} == {"fresh", "old_pending"}
    assert {named[i] for i in found(client, root, status="IN_TRANSIT")} == {
        "in_transit",
        "old_transit",
    }
    assert {named[i] for i in found(client, root, status="FAILED")} == {"failed"}
    assert {named[i] for i in found(client, root, user_id=world["bob"])} == {
        "in_transit",
        "old_transit",
        "failed",
    }
    assert {named[i] for i in found(client, root, older_than_hours=24)} == {
        "old_pending",
        "old_transit",
        "done",
    }
    # stuck: still waiting for the answer, no change for a day (the completed one is not)
    assert {named[i] for i in found(client, root, stuck_hours=24)} == {
        "old_pending",
        "old_transit",
    }


def test_rows_say_who_and_where(client, root, world):
    rows = client.get(REQUESTS, params={"user_id": world["bob"]}, headers=root).json()
    assert rows["total"] == 3
    transit = next(r for r in rows["items"] if r["id"] == world["old_transit"])
    assert transit["username"] == "bob" and transit["status"] == "IN_TRANSIT"
    assert transit["batch_id"] is not None and transit["age_seconds"] >= 2 * 86400 - 60
    page = client.get(REQUESTS, params={"limit": 2, "offset": 1}, headers=root).json()
    assert (len(page["items"]), page["total"]) == (2, 6)


def test_refusals(client, root, world, login):
    assert_problem(client.get(REQUESTS, params={"status": "EXPORTED"}, headers=root), 422)
    assert_problem(client.get(REQUESTS, params={"stuck_hours": 0}, headers=root), 422)
    assert_problem(client.get(REQUESTS, params={"older_than_hours": 2**63}, headers=root), 422)
    assert_problem(client.get(REQUESTS, headers=login("alice")), 403)
    assert_problem(client.get(REQUESTS), 401)
