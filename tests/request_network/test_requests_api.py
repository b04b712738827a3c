"""Submitting, listing and reading requests through the request API (DESIGN.md §4, §5)."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from request_api_helpers import PASSWORD, VALID_QUERY, assert_problem, make_settings
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from request_network.app import create_app
from request_network.models import (
    EXPORTED,
    OutboxEntry,
    Request,
    RequestEvent,
    RequestExport,
    User,
)
from shared.query_spec import MAX_SPEC_BYTES

pytestmark = pytest.mark.postgres

REQUESTS = "/api/v1/requests"


@pytest.fixture
def alice(seed, login) -> dict[str, str]:
    """Alice's Authorization headers; she queries with the `articles` profile type."""
    seed.profile_type()
    seed.user("alice")
    return login("alice")


@pytest.fixture
def db(api_db):
    engine = create_engine(api_db)
    with Session(engine) as session:
        yield session
    engine.dispose()


def submit(client, headers, query=None, profile_type="articles", **extra):
    body = {"profile_type": profile_type, "query": VALID_QUERY if query is None else query}
    return client.post(REQUESTS, json=body | extra, headers=headers)


def locs(body: dict) -> list[str]:
    return [e["loc"] for e in body.get("errors", [])]


# Submitting ------------------------------------------------------------------------------


def test_valid_query_is_accepted_with_id_location_and_pending_status(client, alice):
    reply = submit(client, alice)

    assert reply.status_code == 202, reply.text
    body = reply.json()
    request_id = body["id"]
    assert str(uuid.UUID(request_id)) == request_id
    assert body["status"] == "PENDING"
    assert reply.headers["location"] == f"/api/v1/requests/{request_id}"
    assert body["links"]["self"] == reply.headers["location"]

    shown = client.get(reply.headers["location"], headers=alice)
    assert shown.status_code == 200
    assert shown.json()["status"] == "PENDING"
    assert shown.json()["query"] == VALID_QUERY


def test_submitted_request_and_its_pending_event_are_stored(client, alice, db):
    request_id = submit(client, alice).json()["id"]

    stored = db.get(Request, request_id)
    assert stored is not None
    assert stored.status == "PENDING"
    assert stored.profile_type == "articles"
    assert stored.query == VALID_QUERY
    assert db.get(User, stored.user_id).username == "alice"
    events = (
        db.execute(select(RequestEvent).where(RequestEvent.request_id == request_id))
        .scalars()
        .all()
    )
    assert [e.status for e in events] == ["PENDING"]
    assert events[0].at is not None
    queued = db.execute(select(OutboxEntry).where(OutboxEntry.request_id == request_id)).scalar()
    assert (queued.user_id, queued.profile_type, queued.query) == (
        stored.user_id,
        "articles",
        VALID_QUERY,
    )


def test_a_refused_query_stores_nothing(client, alice, db):
    submit(client, alice, query={"query": {"match": {"field": "secret", "value": "x"}}})
    assert db.execute(select(Request)).first() is None


def test_unknown_profile_type_is_a_422(client, alice):
    body = assert_problem(submit(client, alice, profile_type="nosuchtype"), 422)
    assert "body.profile_type" in locs(body)


def test_profile_type_that_is_not_the_users_is_a_422(client, seed, alice):
    seed.profile_type("payroll", fields={"salary": "integer"})
    body = assert_problem(
        submit(
            client,
            alice,
            profile_type="payroll",
            query={"query": {"range": {"field": "salary", "gte": 0}}},
        ),
        422,
    )
    assert "body.profile_type" in locs(body)


def test_query_on_a_field_the_profile_does_not_allow_is_a_422_naming_the_path(client, alice):
    query = {
        "query": {
            "all": [
                {"match": {"field": "title", "value": "gap"}},
                {"term": {"field": "secret_flag", "value": "yes"}},
            ]
        }
    }
    body = assert_problem(submit(client, alice, query=query), 422)
    assert "body.query.query.all.1.term.field" in locs(body)
    assert "secret_flag" in str(body["errors"])


def test_returning_a_field_the_profile_does_not_allow_is_a_422(client, seed, login):
    seed.profile_type(return_fields=["title"])
    seed.user("bob")
    query = {"query": {"match": {"field": "title", "value": "x"}}, "fields": ["title", "body"]}
    body = assert_problem(submit(client, login("bob"), query=query), 422)
    assert "body.query.fields.1" in locs(body)


def test_size_over_the_profile_maximum_is_a_422(client, alice):
    body = assert_problem(submit(client, alice, query=VALID_QUERY | {"size": 51}), 422)
    assert "body.query.size" in locs(body)


def test_unknown_field_in_the_body_is_a_422_naming_it(client, alice):
    body = assert_problem(submit(client, alice, index="hr-secrets"), 422)
    assert "body.index" in locs(body)
    assert "index" in body["detail"]


def test_unknown_field_in_the_query_spec_is_a_422_naming_it(client, alice):
    query = VALID_QUERY | {"highlight": {"fields": {"body": {}}}}
    body = assert_problem(submit(client, alice, query=query), 422)
    assert "body.query.highlight" in locs(body)


def test_unknown_key_inside_a_clause_is_a_422_naming_it(client, alice):
    query = {"query": {"match": {"field": "title", "value": "x", "script": "boom"}}}
    body = assert_problem(submit(client, alice, query=query), 422)
    assert "body.query.query.match.script" in locs(body)


def test_query_over_16_kib_is_a_422(client, alice):
    big = {"query": {"terms": {"field": "category", "values": ["v" * 1000] * 17}}}
    assert len(json.dumps(big)) > MAX_SPEC_BYTES
    body = assert_problem(submit(client, alice, query=big), 422)
    assert "body.query" in locs(body)
    assert str(MAX_SPEC_BYTES) in json.dumps(body["errors"])


def test_query_just_under_16_kib_is_accepted(client, alice):
    query = {"query": {"terms": {"field": "category", "values": ["v" * 1000] * 15}}}
    assert len(json.dumps(query)) < MAX_SPEC_BYTES
    assert submit(client, alice, query=query).status_code == 202


def test_body_over_the_configured_max_body_bytes_is_a_413(api_db, seed):
    """`max_body_bytes` bounds the whole request body before anything parses it."""
    settings = make_settings(api_db, max_body_bytes=1024)
    seed.profile_type()
    seed.user("carol")
    query = {"query": {"terms": {"field": "category", "values": [f"c{i:04d}" for i in range(300)]}}}
    assert 1024 < len(json.dumps(query)) < MAX_SPEC_BYTES
    with TestClient(create_app(settings)) as client:
        token = client.post(
            "/api/v1/auth/login", data={"username": "carol", "password": PASSWORD}
        ).json()["access_token"]
        reply = submit(client, {"Authorization": f"Bearer {token}"}, query=query)
    assert_problem(reply, 413)


@pytest.mark.parametrize(
    "dsl",
    [
        {"query": {"bool": {"must": [{"match": {"title": "gap"}}]}}},
        {"query": {"match_all": {}}},
        {"query": {"script": {"script": "ctx._source"}}},
        {"bool": {"must": []}},
    ],
    ids=["bool", "match_all", "script", "bare-bool"],
)
def test_raw_elasticsearch_dsl_is_a_422(client, alice, dsl):
    body = assert_problem(submit(client, alice, query=dsl), 422)
    assert any(loc.startswith("body.query") for loc in locs(body))


def test_query_that_is_not_an_object_is_a_422(client, alice):
    body = assert_problem(submit(client, alice, query=["match", "title"]), 422)
    assert "body.query" in locs(body)


def test_malformed_json_body_is_a_422_problem(client, alice):
    reply = client.post(
        REQUESTS,
        content=b'{"profile_type": "articles", "query": ',
        headers=alice | {"Content-Type": "application/json"},
    )
    assert_problem(reply, 422)


# Listing ---------------------------------------------------------------------------------


def test_list_is_paginated_newest_first_with_total(client, alice):
    ids = [submit(client, alice).json()["id"] for _ in range(5)]

    first = client.get(REQUESTS, params={"limit": 2, "offset": 0}, headers=alice).json()
    second = client.get(REQUESTS, params={"limit": 2, "offset": 2}, headers=alice).json()
    last = client.get(REQUESTS, params={"limit": 2, "offset": 4}, headers=alice).json()
    beyond = client.get(REQUESTS, params={"limit": 2, "offset": 10}, headers=alice).json()

    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert (second["total"], second["offset"]) == (5, 2)
    listed = [r["id"] for page in (first, second, last) for r in page["items"]]
    assert listed == list(reversed(ids))
    assert len(last["items"]) == 1
    assert beyond["items"] == [] and beyond["total"] == 5


def test_list_items_carry_status_and_history(client, alice):
    request_id = submit(client, alice).json()["id"]
    item = client.get(REQUESTS, headers=alice).json()["items"][0]
    assert item["id"] == request_id
    assert item["status"] == "PENDING"
    assert [e["status"] for e in item["history"]] == ["PENDING"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"limit": "lots"}, "query.limit"),
    ],
)
def test_bad_paging_parameters_are_422s(client, alice, params, loc):
    body = assert_problem(client.get(REQUESTS, params=params, headers=alice), 422)
    assert loc in locs(body)


def test_limit_of_100_is_allowed(client, alice):
    assert client.get(REQUESTS, params={"limit": 100}, headers=alice).status_code == 200


def test_list_shows_only_the_callers_own_requests(client, seed, login, alice):
    seed.user("bob")
    bob = login("bob")
    mine = {submit(client, alice).json()["id"] for _ in range(2)}
    theirs = submit(client, bob).json()["id"]

    page = client.get(REQUESTS, headers=alice).json()
    assert {r["id"] for r in page["items"]} == mine
    assert page["total"] == 2
    bobs = client.get(REQUESTS, headers=bob).json()
    assert [r["id"] for r in bobs["items"]] == [theirs] and bobs["total"] == 1


# Reading one -----------------------------------------------------------------------------


def test_another_users_request_is_404_not_403(client, seed, login, alice):
    seed.user("bob")
    theirs = submit(client, login("bob")).json()["id"]

    reply = client.get(f"{REQUESTS}/{theirs}", headers=alice)
    random_id = client.get(f"{REQUESTS}/{uuid.uuid4()}", headers=alice)

    body = assert_problem(reply, 404)
    assert body == assert_problem(random_id, 404) | {"instance": body["instance"]}
    assert theirs not in body["detail"]


def test_unknown_request_id_is_404(client, alice):
    assert_problem(client.get(f"{REQUESTS}/{uuid.uuid4()}", headers=alice), 404)


@pytest.mark.parametrize(
    "request_id", ["not-a-uuid", "x" * 200, "%27--", str(uuid.uuid4()).upper()]
)
def test_malformed_request_id_is_a_422_naming_it(client, alice, request_id):
    body = assert_problem(client.get(f"{REQUESTS}/{request_id}", headers=alice), 422)
    assert "path.request_id" in body["detail"]


def test_exported_request_is_shown_as_in_transit_with_its_batch(client, alice, db, seed):
    request_id = submit(client, alice).json()["id"]
    exported = seed.request(db.get(Request, request_id).user_id, status=EXPORTED)

    body = client.get(f"{REQUESTS}/{request_id}", headers=alice).json()
    assert body["status"] == "PENDING"
    body = client.get(f"{REQUESTS}/{exported}", headers=alice).json()
    assert body["status"] == "IN_TRANSIT"
    assert [e["status"] for e in body["history"]] == ["PENDING", "EXPORTED"]
    batch = db.get(RequestExport, exported).batch
    assert body["history"][1]["detail"] == f"in {batch.filename}"
    listed = client.get(REQUESTS, headers=alice).json()
    assert {r["id"]: r["status"] for r in listed["items"]} == {
        request_id: "PENDING",
        exported: "IN_TRANSIT",
    }
