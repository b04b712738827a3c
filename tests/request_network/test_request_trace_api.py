"""Through the request API: a submission keeps the id of its HTTP call (`X-Request-ID`) as
its correlation id, the first read of its response is noted, and admins read its trace
(`GET /api/v1/admin/requests/{request_id}/trace`). Real PostgreSQL and Redis."""

from __future__ import annotations

import re

import pytest
from request_api_helpers import VALID_QUERY, assert_problem

from request_network.models import Request, Response
from request_network.services import trace
from shared.db import transaction

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    return {"root": seed.user("root", role="admin"), "alice": seed.user("alice")}


def submit(client, headers: dict[str, str]) -> tuple[str, str]:
    """(request id, the X-Request-ID of the reply)."""
    body = {"profile_type": "articles", "query": VALID_QUERY}
    reply = client.post("/api/v1/requests", json=body, headers=headers)
    assert reply.status_code == 202, reply.text
    return reply.json()["id"], reply.headers["X-Request-ID"]


def stored(api_db: str, request_id: str) -> Request:
    with transaction(api_db) as session:
        return session.get_one(Request, request_id)


def test_a_submission_keeps_the_id_of_its_call(client, people, login, api_db):
    alice = login("alice")
    rid, echoed = submit(client, alice | {"X-Request-ID": "ticket-4711:retry.2"})
    assert echoed == "ticket-4711:retry.2"
    assert stored(api_db, rid).correlation_id == "ticket-4711:retry.2"

    for headers in (alice, alice | {"X-Request-ID": "not well formed!"}):
        rid, echoed = submit(client, headers)
        assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
        assert stored(api_db, rid).correlation_id == echoed


def test_admins_read_the_trace_and_the_first_read_is_in_it(client, people, login, seed, api_db):
    alice, root = login("alice"), login("root")
    rid, cid = submit(client, alice)
    url = f"/api/v1/admin/requests/{rid}/trace"

    reply = client.get(url, headers=root)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["request_id"], body["correlation_id"], body["status"]) == (rid, cid, "PENDING")
    assert [s["step"] for s in body["steps"]] == list(trace.STEPS)
    assert [s["done"] for s in body["steps"]] == [True] + [False] * 6
    assert body["username"] == "alice"

    seed.response(rid, [{"title": "a gap"}])
    assert client.get(f"/api/v1/requests/{rid}/response", headers=alice).status_code == 200
    with transaction(api_db) as session:
        first_read = session.get_one(Response, rid).first_read_at
    assert first_read is not None
    assert client.get(f"/api/v1/requests/{rid}/response", headers=alice).status_code == 200
    with transaction(api_db) as session:  # the cached read leaves it as it was
        assert session.get_one(Response, rid).first_read_at == first_read

    steps = {s["step"]: s for s in client.get(url, headers=root).json()["steps"]}
    assert steps["first_read"]["done"] and steps["first_read"]["at"] is not None
    assert steps["executed"]["details"]["hits"] == 1


def test_only_admins_read_a_trace(client, people, login):
    rid, _ = submit(client, login("alice"))
    url = f"/api/v1/admin/requests/{rid}/trace"
    assert_problem(client.get(url, headers=login("alice")), 403)
    assert_problem(client.get(url), 401)
    root = login("root")
    assert_problem(client.get(f"/api/v1/admin/requests/{MISSING}/trace", headers=root), 404)
    assert_problem(client.get("/api/v1/admin/requests/not-a-uuid/trace", headers=root), 422)
