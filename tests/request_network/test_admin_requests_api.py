"""Admins follow every user's requests: by status (as users see it), user, age and "stuck"
(still waiting, no change for longer than a threshold). Real PostgreSQL through the app."""

from __future__ import annotations

import threading
import typing
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from request_api_helpers import assert_problem
from sqlalchemy import select, update

from request_network.models import (
    COMPLETED,
    EXPORTED,
    FAILED,
    PUBLIC_STATES,
    AuditLog,
    OutboxEntry,
    Request,
    RequestExport,
)
from request_network.services import admin_requests, lifecycle
from shared.db import transaction, utcnow
from shared.problems import Problem

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


def test_sorting(client, root, world):
    def order(sort: str) -> list[dict]:
        reply = client.get(REQUESTS, params={"sort": sort}, headers=root)
        assert reply.status_code == 200, reply.text
        return reply.json()["items"]

    oldest = {world[n] for n in ("old_pending", "old_transit", "done")}  # one time, two days ago
    newest = order("-created_at")  # the default
    default = client.get(REQUESTS, headers=root).json()["items"]
    assert [r["id"] for r in newest] == [r["id"] for r in default]
    assert {r["id"] for r in newest[-3:]} == oldest
    assert {r["id"] for r in order("created_at")[:3]} == oldest
    names = [r["username"] for r in order("username")]
    assert names == sorted(names) and [r["username"] for r in order("-username")] == names[::-1]
    ids = [r["id"] for r in order("id")]
    assert ids == sorted(ids) and [r["id"] for r in order("-id")] == ids[::-1]
    # age: the youngest first, the submission time the other way round
    assert {r["id"] for r in order("age")[-3:]} == oldest
    assert {r["id"] for r in order("-age")[:3]} == oldest
    # batch: the requests a batch carried by its id, those not sent yet last either way
    for sort in ("batch_id", "-batch_id"):
        batches = [r["batch_id"] for r in order(sort)]
        sent = [b for b in batches if b is not None]
        assert len(sent) == 2 and batches[2:] == [None] * 4
        assert sent == sorted(sent, reverse=sort.startswith("-"))
    for bad in ("query", "--id", "batch"):
        refused = assert_problem(client.get(REQUESTS, params={"sort": bad}, headers=root), 422)
        assert "query.sort" in refused["detail"]


def test_refusals(client, root, world, login):
    assert_problem(client.get(REQUESTS, params={"status": "EXPORTED"}, headers=root), 422)
    assert_problem(client.get(REQUESTS, params={"stuck_hours": 0}, headers=root), 422)
    assert_problem(client.get(REQUESTS, params={"older_than_hours": 2**63}, headers=root), 422)
    assert_problem(client.get(REQUESTS, headers=login("alice")), 403)
    assert_problem(client.get(REQUESTS), 401)


def action(client, headers, request_id: str, verb: str):
    return client.post(f"{REQUESTS}/{request_id}/{verb}", headers=headers)


def test_cancel_and_retry(client, root, world, api_db):
    cancelled = action(client, root, world["in_transit"], "cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "id": world["in_transit"],
        "status": "CANCELLED",
        "was": "IN_TRANSIT",
        "attempt": 1,
        "cancellation_sent": True,
    }
    assert found(client, root, status="CANCELLED") == {world["in_transit"]}
    with transaction(api_db) as session:
        entry = session.scalars(
            select(OutboxEntry).where(OutboxEntry.request_id == world["in_transit"])
        ).one()
        assert (entry.attempt, entry.cancelled) == (1, True)

    retried = action(client, root, world["failed"], "retry")
    assert retried.status_code == 200, retried.text
    assert retried.json() == {
        "id": world["failed"],
        "status": "PENDING",
        "was": "FAILED",
        "attempt": 2,
        "cancellation_sent": None,
    }
    with transaction(api_db) as session:
        actions = session.scalars(
            select(AuditLog.action).where(
                AuditLog.target.in_([world["in_transit"], world["failed"]])
            )
        ).all()
        entry = session.scalars(
            select(OutboxEntry).where(OutboxEntry.request_id == world["failed"])
        ).one()
        assert (entry.attempt, entry.cancelled) == (2, False)
    assert sorted(actions) == ["request.cancelled", "request.retried"]

    # A cancelled request may be retried; what is already on its way may not be, nor may a
    # finished one be cancelled.
    assert action(client, root, world["in_transit"], "retry").json()["attempt"] == 2
    for name, verb in (("failed", "retry"), ("done", "cancel"), ("done", "retry")):
        refused = action(client, root, world[name], verb)
        assert_problem(refused, 409)
        assert "the request is" in refused.json()["detail"]


def test_cancel_and_retry_refusals(client, root, world, login):
    assert_problem(action(client, root, "00000000-0000-4000-8000-000000000000", "cancel"), 404)
    assert_problem(action(client, root, "not-a-uuid", "retry"), 422)
    for verb in ("cancel", "retry"):
        assert_problem(action(client, login("alice"), world["fresh"], verb), 403)
        assert_problem(action(client, {}, world["fresh"], verb), 401)


def test_a_retry_drops_the_cached_failed_answer(client, root, world, seed, login):
    bob = login("bob")
    seed.response(world["failed"], hits=[])
    first = client.get(f"/api/v1/requests/{world['failed']}/response", headers=bob)
    assert first.status_code == 200
    again = client.get(f"/api/v1/requests/{world['failed']}/response", headers=bob)
    assert again.headers["X-Cache"] == "HIT"

    assert action(client, root, world["failed"], "retry").status_code == 200
    gone = client.get(f"/api/v1/requests/{world['failed']}/response", headers=bob)
    assert_problem(gone, 404)
    assert "PENDING" in gone.json()["detail"]


def test_concurrent_retries_send_the_request_once(world, api_db):
    """Two admins retry the same failed request at the same moment: one wins."""
    start = threading.Barrier(2)

    def attempt() -> str:
        start.wait()
        try:
            with transaction(api_db) as session:
                return str(
                    lifecycle.retry(world["failed"], session=session, cache=None, actor="a")[
                        "attempt"
                    ]
                )
        except Problem as refused:
            return str(refused.status)

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: attempt(), range(2)))
    assert outcomes == ["2", "409"]
    with transaction(api_db) as session:
        entries = session.scalars(
            select(OutboxEntry).where(OutboxEntry.request_id == world["failed"])
        ).all()
        assert [e.attempt for e in entries] == [2]
        assert session.get_one(Request, world["failed"]).attempt == 2


def test_the_status_filter_names_every_state_users_see():
    assert typing.get_args(admin_requests.PublicStatus) == PUBLIC_STATES
