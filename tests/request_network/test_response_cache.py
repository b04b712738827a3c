"""The response cache's read path: a first read fills it, later reads send the same bytes
from it with the same strong ETag, If-None-Match gives 304, entries carry the TTL setting,
large responses are served but not kept, another user never sees a cached response, and with
Redis down the database answers and a metric says so. A hit is served only to the entry's
owner and only to a caller that authenticates now; cleared, cancelled and retried requests
are not served from their old entries; maintenance warms only responses read before."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import redis
from cache_helpers import (
    CACHE_REDIS_URL,
    assert_etag_of,
    cache_settings,
    clear_keys,
    hits_of_size,
    login,
    response_url,
)
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from request_api_helpers import assert_problem, closed_port

from request_network.app import create_app
from request_network.models import FAILED, Response
from request_network.settings import RequestSettings
from shared.db import reading

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HITS = [
    {"_id": "a1", "_source": {"title": "Across the gap", "year": 2021}},
    {"_id": "a2", "_source": {"title": "Diodes", "year": 2019}},
]
FIELDS = {"request_id", "status", "total", "hits", "error", "executed_at", "took_ms", "received_at"}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def cache(api_db):
    client = redis.Redis.from_url(CACHE_REDIS_URL)
    clear_keys(client)
    yield client
    clear_keys(client)
    client.close()


@pytest.fixture
def app_for(api_db, cache):
    """``app_for(**settings)``: a running request API with this file's Redis database."""
    with ExitStack() as stack:

        def make(**overrides) -> TestClient:
            app = create_app(cache_settings(api_db, **overrides))
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def alice_id(seed) -> str:
    seed.profile_type()
    return seed.user("alice")


def test_a_first_read_fills_the_cache_and_later_reads_send_its_bytes(
    app_for, seed, alice_id, cache
):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    client = app_for()
    alice = login(client, "alice")
    hits = metric("ferry_response_cache_lookups_total", outcome="hit")
    misses = metric("ferry_response_cache_lookups_total", outcome="miss")
    served = metric("ferry_response_cache_served_bytes_total")

    first = client.get(response_url(request_id), headers=alice)

    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["cache-control"] == "private, no-cache"
    etag = assert_etag_of(first)
    body = first.json()
    assert set(body) == FIELDS
    assert (body["request_id"], body["hits"], body["total"]) == (request_id, HITS, 2)
    assert body["executed_at"] == "2024-05-01T12:00:00Z"
    assert cache.get(f"resp:{request_id}") == first.content, "the bytes sent are the bytes kept"

    second = client.get(response_url(request_id), headers=alice)
    third = client.get(response_url(request_id), headers=alice)

    for reply in (second, third):
        assert reply.status_code == 200
        assert reply.headers["x-cache"] == "HIT"
        assert reply.headers["etag"] == etag, "one strong ETag for a hit and a miss"
        assert reply.content == first.content
    assert metric("ferry_response_cache_lookups_total", outcome="miss") == misses + 1
    assert metric("ferry_response_cache_lookups_total", outcome="hit") == hits + 2
    assert metric("ferry_response_cache_served_bytes_total") == served + 2 * len(first.content)


def test_if_none_match_is_a_304_without_a_body_from_the_cache_or_the_database(
    app_for, seed, alice_id, cache
):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    client = app_for()
    alice = login(client, "alice")
    etag = client.get(response_url(request_id), headers=alice).headers["etag"]

    def read(tags: str):
        return client.get(response_url(request_id), headers={**alice, "If-None-Match": tags})

    for tags in (etag, f'"elsewhere", W/{etag}', "*"):
        reply = read(tags)
        assert reply.status_code == 304, tags
        assert reply.content == b""
        assert (reply.headers["etag"], reply.headers["x-cache"]) == (etag, "HIT")

    changed = read('"a-copy-of-something-else"')
    assert changed.status_code == 200
    assert changed.headers["x-cache"] == "HIT" and changed.json()["hits"] == HITS

    cache.delete(f"resp:{request_id}", f"resp:meta:{request_id}")  # the entry is gone
    reply = read(etag)
    assert reply.status_code == 304 and reply.content == b""
    assert (reply.headers["etag"], reply.headers["x-cache"]) == (etag, "MISS")
    assert read(etag).headers["x-cache"] == "HIT", "the database read filled the cache again"


def test_an_entry_lives_as_long_as_the_ttl_setting_says(app_for, seed, alice_id, cache):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    client = app_for(response_cache_ttl_seconds=120)

    client.get(response_url(request_id), headers=login(client, "alice"))

    for key in (f"resp:{request_id}", f"resp:meta:{request_id}"):
        assert 0 < cache.ttl(key) <= 120, key


def test_the_old_setting_name_still_sets_the_ttl_unless_the_new_one_is_set(monkeypatch):
    monkeypatch.setenv("FERRY_REQUEST_MODE", "demo")
    assert RequestSettings().response_cache_ttl_seconds == 3600
    monkeypatch.setenv("FERRY_REQUEST_RESPONSE_CACHE_SECONDS", "77")
    assert RequestSettings().response_cache_ttl_seconds == 77
    monkeypatch.setenv("FERRY_REQUEST_RESPONSE_CACHE_TTL_SECONDS", "88")
    assert RequestSettings().response_cache_ttl_seconds == 88


def test_a_response_over_the_size_cap_is_served_but_not_cached(app_for, seed, alice_id, cache):
    big_id, small_id = seed.request(alice_id), seed.request(alice_id)
    big_hits = hits_of_size(20_000)
    seed.response(big_id, big_hits)
    seed.response(small_id, HITS)
    client = app_for(response_cache_max_bytes=8_000)
    alice = login(client, "alice")

    replies = [client.get(response_url(big_id), headers=alice) for _ in range(2)]

    for reply in replies:
        assert reply.status_code == 200
        assert len(reply.content) > 8_000
        assert reply.json()["hits"] == big_hits
        assert reply.headers["x-cache"] == "MISS"
        assert_etag_of(reply)
    assert replies[0].headers["etag"] == replies[1].headers["etag"]
    assert cache.exists(f"resp:{big_id}", f"resp:meta:{big_id}") == 0
    assert cache.hget("resp:stats", "not_cached_oversize") == b"2"
    client.get(response_url(small_id), headers=alice)
    assert client.get(response_url(small_id), headers=alice).headers["x-cache"] == "HIT"


def stats(cache) -> dict[bytes, bytes]:
    return cache.hgetall("resp:stats")


def test_a_cached_response_stays_hidden_from_another_user_even_with_its_etag(
    app_for, seed, alice_id, cache
):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    seed.user("bob")
    client = app_for()
    alice, bob = login(client, "alice"), login(client, "bob")
    etag = client.get(response_url(request_id), headers=alice).headers["etag"]
    assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "HIT"
    counted = stats(cache)

    for headers in (bob, {**bob, "If-None-Match": etag}, {**bob, "If-None-Match": "*"}):
        reply = client.get(response_url(request_id), headers=headers)
        body = assert_problem(reply, 404)  # not a 304: that would say the entry exists
        assert "Across the gap" not in reply.text and "IN_TRANSIT" not in body["detail"]
        assert "etag" not in reply.headers and "x-cache" not in reply.headers

    assert stats(cache) == counted, "another user's look at an entry counts nothing"
    assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "HIT"


def test_with_redis_down_the_database_answers_and_a_metric_counts_it(api_db, seed, alice_id):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    with TestClient(create_app(cache_settings(api_db))) as up:  # logging in needs Redis
        alice = login(up, "alice")
    down = cache_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    before = metric("ferry_response_cache_redis_unavailable_total", step="read")

    with TestClient(create_app(down)) as client:
        replies = [client.get(response_url(request_id), headers=alice) for _ in range(2)]

    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert reply.json()["hits"] == HITS
        assert reply.headers["x-cache"] == "MISS"
        assert_etag_of(reply)
    assert metric("ferry_response_cache_redis_unavailable_total", step="read") == before + 2


def test_the_api_document_describes_the_304_and_the_cache_headers(api_db):
    operation = create_app(cache_settings(api_db)).openapi()["paths"][
        "/api/v1/requests/{request_id}/response"
    ]["get"]

    responses = operation["responses"]
    for status in ("200", "304"):
        assert {"ETag", "X-Cache"} <= set(responses[status]["headers"]), status
    assert "content" not in responses["304"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ResponseOut"
    )
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "if-none-match"


def test_a_revoked_api_key_gets_nothing_from_the_cache(app_for, seed, alice_id, cache):
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    client = app_for()
    alice = login(client, "alice")
    made = client.post(
        "/api/v1/api-keys", json={"name": "reader", "scopes": ["requests:read"]}, headers=alice
    ).json()
    key = {"X-API-Key": made["key"]}
    assert client.get(response_url(request_id), headers=key).headers["x-cache"] == "MISS"
    assert client.get(response_url(request_id), headers=key).headers["x-cache"] == "HIT"

    assert client.delete(f"/api/v1/api-keys/{made['key_id']}", headers=alice).status_code == 204
    reply = client.get(response_url(request_id), headers=key)

    assert_problem(reply, 401)
    assert "Across the gap" not in reply.text
    assert cache.exists(f"resp:{request_id}") == 1, "the entry stays for the owner's other calls"


def test_a_cleared_cancelled_or_retried_request_is_not_served_from_its_old_entry(
    app_for, seed, alice_id, cache
):
    seed.user("root", role="admin")
    pending, failed = seed.request(alice_id), seed.request(alice_id, status=FAILED)
    for request_id in (pending, failed):
        seed.response(request_id, HITS)
    client = app_for()
    alice, root = login(client, "alice"), login(client, "root")

    def read(request_id: str):
        return client.get(response_url(request_id), headers=alice)

    for request_id in (pending, failed):
        assert [read(request_id).headers["x-cache"] for _ in range(2)] == ["MISS", "HIT"]

    cleared = client.delete("/api/v1/admin/cache", params={"request_id": failed}, headers=root)
    assert cleared.status_code == 200 and cleared.json()["entries"] == 1
    assert read(failed).headers["x-cache"] == "MISS", "the database answered"

    cancel = client.post(f"/api/v1/admin/requests/{pending}/cancel", headers=root)
    assert cancel.status_code == 200, cancel.text
    assert cache.exists(f"resp:{pending}") == 0
    assert read(pending).headers["x-cache"] == "MISS"

    assert read(failed).headers["x-cache"] == "HIT"
    retry = client.post(f"/api/v1/admin/requests/{failed}/retry", headers=root)
    assert retry.status_code == 200, retry.text
    reply = read(failed)
    body = assert_problem(reply, 404)  # the retried request waits for its new answer
    assert "no response yet" in body["detail"] and "Across the gap" not in reply.text


def test_the_first_read_is_noted_and_maintenance_warms_only_responses_read_before(
    app_for, seed, alice_id, cache, api_db
):
    seed.user("root", role="admin")
    request_id = seed.request(alice_id)
    seed.response(request_id, HITS)
    client = app_for()
    alice, root = login(client, "alice"), login(client, "root")
    cache.zadd("resp:reads", {request_id: time.time()})  # as if an answer before this was read

    report = client.post("/api/v1/admin/cache/optimize", headers=root).json()

    assert report["prewarmed"] == 0, "a hit notes no first read, so an unread answer waits"
    assert cache.exists(f"resp:{request_id}") == 0
    assert first_read_at(api_db, request_id) is None
    assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "MISS"
    noted = first_read_at(api_db, request_id)
    assert noted is not None
    assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "HIT"
    assert first_read_at(api_db, request_id) == noted

    cache.delete(f"resp:{request_id}", f"resp:meta:{request_id}")
    report = client.post("/api/v1/admin/cache/optimize", headers=root).json()

    assert report["prewarmed"] == 1, "read before: warmed again"
    assert client.get(response_url(request_id), headers=alice).headers["x-cache"] == "HIT"


def first_read_at(url: str, request_id: str):
    with reading(url) as session:
        return session.get(Response, request_id).first_read_at
