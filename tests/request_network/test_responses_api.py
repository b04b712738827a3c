"""Reading a request's response: 404 until it exists, then served and cached in Redis."""

from __future__ import annotations

import uuid

import orjson
import pytest
from fastapi.testclient import TestClient
from request_api_helpers import PASSWORD, assert_problem, closed_port, make_settings

from request_network.app import create_app
from request_network.models import EXPORTED

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HITS = [
    {"_id": "a1", "_source": {"title": "Across the gap", "year": 2021}},
    {"_id": "a2", "_source": {"title": "Diodes", "year": 2019}},
]


def response_url(request_id: str) -> str:
    return f"/api/v1/requests/{request_id}/response"


@pytest.fixture
def alice_id(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


@pytest.fixture
def alice(alice_id, login) -> dict[str, str]:
    return login("alice")


def test_response_before_a_result_exists_is_404_naming_the_status(client, seed, alice_id, alice):
    pending = seed.request(alice_id)
    in_transit = seed.request(alice_id, status=EXPORTED)

    body = assert_problem(client.get(response_url(pending), headers=alice), 404)
    assert "PENDING" in body["detail"]
    body = assert_problem(client.get(response_url(in_transit), headers=alice), 404)
    assert "IN_TRANSIT" in body["detail"]


def test_response_is_returned_with_its_hits(client, seed, alice_id, alice):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)

    reply = client.get(response_url(request_id), headers=alice)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["request_id"] == request_id
    assert body["status"] == "DONE"
    assert body["hits"] == HITS
    assert body["total"] == 2
    assert body["took_ms"] == 7


def test_second_read_is_served_from_redis(client, settings, seed, alice_id, alice, redis_client):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    key = f"resp:{request_id}"
    assert redis_client.exists(key) == 0

    first = client.get(response_url(request_id), headers=alice)
    assert first.status_code == 200
    assert redis_client.exists(key) == 1
    cached = orjson.loads(redis_client.get(key))
    assert (cached["request_id"], cached["hits"]) == (request_id, HITS)
    assert 0 < redis_client.ttl(key) <= settings.response_cache_ttl_seconds

    seed.delete_response(request_id)  # only the cache can answer now
    second = client.get(response_url(request_id), headers=alice)

    assert second.status_code == 200, second.text
    assert second.json() == first.json()


def test_cached_response_is_still_hidden_from_other_users(client, seed, alice_id, alice, login):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    assert client.get(response_url(request_id), headers=alice).status_code == 200  # now cached
    seed.user("bob")

    body = assert_problem(client.get(response_url(request_id), headers=login("bob")), 404)
    assert "Across the gap" not in str(body)


def test_another_users_response_is_404_without_revealing_status(client, seed, alice_id, login):
    request_id = seed.request(alice_id, status=EXPORTED)
    seed.user("bob")

    body = assert_problem(client.get(response_url(request_id), headers=login("bob")), 404)
    assert "IN_TRANSIT" not in body["detail"]


def test_response_for_an_unknown_request_is_404(client, alice):
    assert_problem(client.get(response_url(str(uuid.uuid4())), headers=alice), 404)


def test_with_redis_unreachable_the_response_comes_from_the_database(api_db, seed, alice_id):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    settings = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(make_settings(api_db))) as up:  # login itself needs Redis
        token = up.post(
            "/api/v1/auth/login", data={"username": "alice", "password": PASSWORD}
        ).json()["access_token"]

    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        replies = [client.get(response_url(request_id), headers=headers) for _ in range(2)]

    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert reply.json()["hits"] == HITS
