"""Admin routes of the response cache: statistics, clearing, maintenance — each audited,
each refused to users (403) and anonymous callers (401)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta

import pytest
import redis
from cache_helpers import (
    CACHE_REDIS_URL,
    cache_settings,
    clear_keys,
    hits_of_size,
    login,
    response_url,
)
from fastapi.testclient import TestClient
from request_api_helpers import assert_problem, closed_port
from sqlalchemy import select, update

from request_network.app import create_app
from request_network.models import AuditLog, Response
from request_network.services.response_cache import version_of
from shared.db import reading, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HITS = [{"_id": "a1", "_source": {"title": "Across the gap"}}]
STATS, CLEAR, OPTIMIZE = (
    "/api/v1/admin/cache/stats",
    "/api/v1/admin/cache",
    "/api/v1/admin/cache/optimize",
)
ROUTES = [("GET", STATS), ("DELETE", CLEAR), ("POST", OPTIMIZE)]


@pytest.fixture
def cache(api_db):
    client = redis.Redis.from_url(CACHE_REDIS_URL)
    clear_keys(client)
    yield client
    clear_keys(client)
    client.close()


@pytest.fixture
def app_for(api_db, cache):
    """``app_for(**settings)``: a running request API with the cache tests' Redis."""
    with ExitStack() as stack:

        def make(**overrides) -> TestClient:
            app = create_app(cache_settings(api_db, **overrides))
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    roles = {"root": "admin", "alice": "user", "bob": "user"}
    return {name: seed.user(name, role=role) for name, role in roles.items()}


def audit_rows(url: str, action: str) -> list[AuditLog]:
    with reading(url) as session:
        return list(
            session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        )


def cached(seed, client, headers, user_id: str, hits) -> tuple[str, bytes]:
    """A request of `user_id` with a response of `hits`, read once (so cached)."""
    request_id = seed.request(user_id)
    seed.response(request_id, hits)
    reply = client.get(response_url(request_id), headers=headers)
    assert reply.status_code == 200 and reply.headers["x-cache"] == "MISS"
    return request_id, reply.content


def test_stats_count_entries_bytes_reads_and_name_the_largest(app_for, seed, people, api_db):
    client = app_for()
    alice, root = login(client, "alice"), login(client, "root")
    big, big_body = cached(seed, client, alice, people["alice"], hits_of_size(5_000))
    mid, mid_body = cached(seed, client, alice, people["alice"], hits_of_size(2_000))
    small, small_body = cached(seed, client, alice, people["alice"], HITS)
    for _ in range(2):
        assert client.get(response_url(big), headers=alice).headers["x-cache"] == "HIT"
    etag = client.get(response_url(small), headers=alice).headers["etag"]
    not_modified = client.get(response_url(small), headers={**alice, "If-None-Match": etag})
    assert not_modified.status_code == 304

    reply = client.get(STATS, headers=root)

    assert reply.status_code == 200, reply.text
    stats = reply.json()
    sizes = {big: len(big_body), mid: len(mid_body), small: len(small_body)}
    assert (stats["entries"], stats["bytes"]) == (3, sum(sizes.values()))
    assert stats["total"] == {
        "hits": 4,
        "misses": 3,
        "hit_ratio": round(4 / 7, 4),
        "bytes_served": 2 * len(big_body) + len(small_body),
        "not_modified": 1,
        "fills": 3,
        "not_cached_oversize": 0,
    }
    assert stats["last_hour"] == {
        "hits": 4,
        "misses": 3,
        "hit_ratio": round(4 / 7, 4),
        "bytes_served": 2 * len(big_body) + len(small_body),
    }
    assert (stats["hours"][0]["hits"], stats["hours"][0]["misses"]) == (4, 3)
    assert len(stats["hours"]) == 24 and stats["since"] is not None
    assert [(e["request_id"], e["bytes"]) for e in stats["largest"]] == [
        (big, sizes[big]),
        (mid, sizes[mid]),
        (small, sizes[small]),
    ]
    assert {e["user_id"] for e in stats["largest"]} == {people["alice"]}
    assert all(0 < e["ttl_seconds"] <= 3600 for e in stats["largest"])
    assert set(stats["evictions"].values()) == {0}
    assert stats["last_maintenance"] is None
    (row,) = audit_rows(api_db, "cache.stats")
    assert (row.actor, row.detail["entries"]) == (people["root"], 3)


def test_delete_removes_one_request_one_user_or_everything_and_says_what_went(
    app_for, seed, people, api_db, cache
):
    client = app_for()
    alice, bob, root = login(client, "alice"), login(client, "bob"), login(client, "root")
    first, first_body = cached(seed, client, alice, people["alice"], HITS)
    second, second_body = cached(seed, client, alice, people["alice"], hits_of_size(3_000))
    bobs, bobs_body = cached(seed, client, bob, people["bob"], HITS)

    one = client.delete(CLEAR, params={"request_id": first}, headers=root)
    assert one.status_code == 200, one.text
    assert one.json() == {
        "scope": "request",
        "target": first,
        "entries": 1,
        "bytes": len(first_body),
    }
    assert cache.exists(f"resp:{first}") == 0 and cache.exists(f"resp:{second}") == 1

    user = client.delete(CLEAR, params={"user_id": people["bob"]}, headers=root).json()
    assert user == {"scope": "user", "target": people["bob"], "entries": 1, "bytes": len(bobs_body)}
    assert cache.exists(f"resp:{bobs}", f"resp:user:{people['bob']}") == 0

    everything = client.delete(CLEAR, headers=root).json()
    assert everything == {"scope": "all", "target": "all", "entries": 1, "bytes": len(second_body)}
    assert cache.exists(f"resp:{second}", f"resp:user:{people['alice']}") == 0

    assert client.get(response_url(first), headers=alice).headers["x-cache"] == "MISS"
    stats = client.get(STATS, headers=root).json()
    assert stats["evictions"]["cleared"] == 3 and stats["entries"] == 1
    rows = audit_rows(api_db, "cache.cleared")
    assert [(r.actor, r.target, r.detail["entries"]) for r in rows] == [
        (people["root"], first, 1),
        (people["root"], people["bob"], 1),
        (people["root"], "all", 1),
    ]
    assert_problem(client.delete(CLEAR, params={"request_id": "not-an-id"}, headers=root), 422)
    assert len(audit_rows(api_db, "cache.cleared")) == 3, "a refused call is not audited"


def test_delete_given_a_request_and_a_user_removes_it_only_if_it_is_theirs(
    app_for, seed, people, cache
):
    client = app_for()
    alice, root = login(client, "alice"), login(client, "root")
    request_id, body = cached(seed, client, alice, people["alice"], HITS)

    def clear(user_id: str) -> dict:
        params = {"request_id": request_id, "user_id": user_id}
        reply = client.delete(CLEAR, params=params, headers=root)
        assert reply.status_code == 200, reply.text
        return reply.json()

    assert clear(people["bob"])["entries"] == 0
    assert cache.exists(f"resp:{request_id}") == 1
    assert clear(people["alice"]) == {
        "scope": "request",
        "target": request_id,
        "entries": 1,
        "bytes": len(body),
    }
    assert cache.exists(f"resp:{request_id}") == 0


def test_optimize_drops_what_should_not_stay_and_prewarms_what_was_read(
    app_for, seed, people, api_db, cache
):
    client = app_for()
    short = app_for(response_cache_ttl_seconds=1)
    alice, root = login(client, "alice"), login(client, "root")
    carol = seed.user("carol")
    orphan, _ = cached(seed, client, login(client, "carol"), carol, HITS)
    oversized, _ = cached(seed, client, alice, people["alice"], hits_of_size(9_000))
    stale, _ = cached(seed, client, alice, people["alice"], HITS)
    expired, _ = cached(seed, client, alice, people["alice"], HITS)
    evicted, _ = cached(seed, client, alice, people["alice"], HITS)
    cleared, _ = cached(seed, client, alice, people["alice"], HITS)
    timed_out, _ = cached(seed, short, alice, people["alice"], HITS)
    kept, kept_body = cached(seed, client, alice, people["alice"], HITS)
    # What happened since: carol was disabled, a newer response arrived without an import
    # (so nothing invalidated it), an entry was made two hours ago under a longer TTL,
    # Redis evicted a body under memory pressure, an admin cleared one, one's TTL ran out.
    seed.set_active(carol, False)
    with transaction(api_db) as session:
        newer = session.get(Response, stale).received_at + timedelta(seconds=1)
        session.execute(
            update(Response).where(Response.request_id == stale).values(received_at=newer)
        )
    cache.hset(f"resp:meta:{expired}", "at", int(time.time()) - 7200)
    cache.delete(f"resp:{evicted}")
    assert client.delete(CLEAR, params={"request_id": cleared}, headers=root).status_code == 200
    deadline = time.monotonic() + 10
    while cache.exists(f"resp:{timed_out}") and time.monotonic() < deadline:
        time.sleep(0.05)  # polls Redis's own expiry, bounded
    assert cache.exists(f"resp:{timed_out}") == 0

    reply = app_for(response_cache_max_bytes=8_000).post(OPTIMIZE, headers=root)

    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["reconciled"] == {"ttl": 1, "memory": 1}, "gone by TTL, evicted by Redis"
    assert report["dropped"] == {
        "expired": 1,
        "oversized": 1,
        "orphaned": 1,
        "stale": 1,
        "memory": 0,
    }
    # Read within the hour and gone now: cached again from the database, at its version.
    assert report["prewarmed"] == 5
    for request_id in (stale, expired, evicted, cleared, timed_out):
        assert cache.exists(f"resp:{request_id}", f"resp:meta:{request_id}") == 2, request_id
    assert int(cache.hget(f"resp:meta:{stale}", "version")) == version_of(newer)
    assert cache.exists(f"resp:{orphan}", f"resp:{oversized}") == 0
    assert cache.get(f"resp:{kept}") == kept_body
    assert client.get(response_url(cleared), headers=alice).headers["x-cache"] == "HIT"

    stats = client.get(STATS, headers=root).json()
    assert stats["last_maintenance"] == report
    assert stats["entries"] == report["entries"] == 6
    assert stats["bytes"] == report["bytes"]
    assert {k: v for k, v in stats["evictions"].items() if v} == {
        "ttl": 1,
        "memory": 1,
        "expired": 1,
        "oversized": 1,
        "orphaned": 1,
        "stale": 1,
        "cleared": 1,
    }
    (row,) = audit_rows(api_db, "cache.optimized")
    assert (row.actor, row.detail["prewarmed"]) == (people["root"], 5)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_cache_routes_are_for_admins_only(app_for, people, method, path):
    client = app_for()
    assert_problem(client.request(method, path), 401)
    for name in ("alice", "bob"):
        assert_problem(client.request(method, path, headers=login(client, name)), 403)
    assert client.request(method, path, headers=login(client, "root")).status_code == 200


def test_with_redis_down_the_cache_routes_answer_503_and_audit_nothing(app_for, people, api_db):
    root = login(app_for(), "root")  # logging in needs Redis
    down = app_for(redis_url=f"redis://127.0.0.1:{closed_port()}/0")

    for method, path in ROUTES:
        reply = down.request(method, path, headers=root)
        assert "Redis" in assert_problem(reply, 503)["detail"], path
        assert reply.headers["retry-after"] == "5"
    for action in ("cache.stats", "cache.cleared", "cache.optimized"):
        assert audit_rows(api_db, action) == []
