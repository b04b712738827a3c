"""`GET /api/v1/admin/stats` reads every figure from the live tables: requests by status,
submissions per hour, turnaround percentiles, batches per day, refusals. On PostgreSQL
through the app, and the same service on SQLite (the demo's database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from request_api_helpers import (
    PASSWORD,
    VALID_QUERY,
    Seed,
    assert_problem,
    closed_port,
    make_settings,
)
from sqlalchemy import update

from request_network.app import create_app
from request_network.models import (
    COMPLETED,
    EXPORTED,
    Base,
    RateLimitViolation,
    Request,
    Response,
    User,
)
from request_network.services import stats
from shared.db import get_engine, transaction, utcnow
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _seed(seed, url: str) -> dict[str, str]:
    seed.profile_type()
    ids = {"root": seed.user("root", role="admin"), "alice": seed.user("alice")}
    ids["pending"] = seed.request(ids["alice"])
    ids["transit"] = seed.request(ids["alice"], status=EXPORTED)
    answered = [seed.request(ids["alice"], status=COMPLETED) for _ in range(4)]
    now = utcnow()
    with transaction(url) as session:
        five_minutes_ago = now - timedelta(minutes=5)
        session.execute(
            update(Request).where(Request.id.in_(answered)).values(created_at=five_minutes_ago)
        )
        session.add(RateLimitViolation(user_id=ids["alice"], window="minute", count=31, limit=30))
    for request_id in answered:
        seed.response(request_id, [])
    with transaction(url) as session:
        for i, request_id in enumerate(answered):  # turnarounds of 10, 20, 30 and 40 s
            created = session.get(Request, request_id).created_at
            session.execute(
                update(Response)
                .where(Response.request_id == request_id)
                .values(received_at=created + timedelta(seconds=10 * (i + 1)))
            )
    return ids


def _check(body: dict) -> None:
    assert body["requests_by_status"] == {
        "PENDING": 1,
        "IN_TRANSIT": 1,
        "COMPLETED": 4,
        "FAILED": 0,
        "EXPIRED": 0,
        "CANCELLED": 0,
    }
    hours = body["submissions_per_hour"]
    assert len(hours) == 24 and sum(h["count"] for h in hours) == 6
    turnaround = body["turnaround"]
    assert turnaround["responses"] == 4
    assert turnaround["p50_seconds"] == pytest.approx(25.0, abs=0.01)
    assert turnaround["p95_seconds"] == pytest.approx(38.5, abs=0.01)
    days = body["batches"]["days"]
    assert len(days) == 14
    today = days[-1]
    assert today["out"]["batches"] == 1 and today["in"]["batches"] == 4
    assert body["rate_limit_refusals_24h"] == {"minute": 1, "hour": 0, "day": 0}


def test_stats_on_postgresql(client, seed, api_db, login):
    _seed(seed, api_db)
    reply = client.get("/api/v1/admin/stats", headers=login("root"))
    assert reply.status_code == 200, reply.text
    _check(reply.json())
    assert_problem(client.get("/api/v1/admin/stats", headers=login("alice")), 403)
    assert_problem(client.get("/api/v1/admin/stats"), 401)


def test_stats_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'request.db'}"
    Base.metadata.create_all(get_engine(url))
    _seed(Seed(url), url)
    with transaction(url) as session:
        body = stats.stats(session=session)
    _check(body)


# Figures kept in Redis: rate-limit decisions, the response cache's hit ratio ---------------

# Counted in the Redis database of this run (FERRY_TEST_REDIS_URL: a private one), whose
# counters are shared by every user: they are emptied before and after.
STATS_REDIS_PATTERNS = ("rl:*", "resp:*", "auth:*")
DECISIONS_NONE = {"ok": 0, "soft": 0, "grace": 0, "blocked": 0}


@pytest.fixture
def redis_stats(api_db) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app on this run's Redis, its counters emptied; an admin's and Alice's logins."""
    cache = redis.Redis.from_url(REDIS_URL)

    def empty() -> None:
        keys = [k for p in STATS_REDIS_PATTERNS for k in cache.scan_iter(match=p, count=500)]
        if keys:
            cache.delete(*keys)

    empty()
    seed = Seed(api_db)
    seed.profile_type()
    users = {"root": seed.user("root", role="admin"), "alice": seed.user("alice")}
    with transaction(api_db) as session:  # soft past 8, grace up to 11, then refused
        session.get(User, users["alice"]).rate_limits = {"minute": 10}
    with TestClient(create_app(make_settings(api_db, redis_url=REDIS_URL))) as client:
        yield client, {name: _login(client, name) for name in users} | {"ids": users}
    empty()
    cache.close()


def _login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _stats(client: TestClient, root: dict[str, str]) -> dict:
    reply = client.get("/api/v1/admin/stats", headers=root)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_stats_count_rate_limit_decisions_by_state(redis_stats):
    client, who = redis_stats
    before = _stats(client, who["root"])["rate_limit_decisions"]
    assert before == {"last_hour": DECISIONS_NONE, "last_24h": DECISIONS_NONE}

    body = {"profile_type": "articles", "query": VALID_QUERY}
    replies = [client.post("/api/v1/requests", json=body, headers=who["alice"]) for _ in range(12)]
    assert [r.status_code for r in replies] == [202] * 11 + [429]
    assert [r.headers.get("x-ratelimit-warning") for r in replies[8:11]] == ["soft"] * 2 + ["grace"]
    client.get("/api/v1/rate-limits/me", headers=who["alice"])  # a peek: counts nothing

    counts = {"ok": 8, "soft": 2, "grace": 1, "blocked": 1}
    decisions = _stats(client, who["root"])["rate_limit_decisions"]
    assert decisions == {"last_hour": counts, "last_24h": counts}


def test_stats_show_the_response_caches_hit_ratio(redis_stats, api_db):
    client, who = redis_stats
    empty = _stats(client, who["root"])["response_cache"]
    assert empty["total"] == {"hits": 0, "misses": 0, "hit_ratio": None}

    request_id = Seed(api_db).request(who["ids"]["alice"], status=COMPLETED)
    Seed(api_db).response(request_id, [{"title": "a gap"}])
    url = f"/api/v1/requests/{request_id}/response"
    for _ in range(4):  # a miss (then cached), three hits
        assert client.get(url, headers=who["alice"]).status_code == 200

    figures = _stats(client, who["root"])["response_cache"]
    counts = {"hits": 3, "misses": 1, "hit_ratio": 0.75}
    assert figures["total"] == counts and figures["last_hour"] == counts
    assert figures["since"] is not None
    # the same counters the cache's own statistics read
    own = client.get("/api/v1/admin/cache/stats", headers=who["root"]).json()
    assert (own["total"]["hits"], own["total"]["misses"], own["total"]["hit_ratio"]) == (3, 1, 0.75)
    assert own["since"] == figures["since"]


def test_without_redis_the_figures_kept_there_are_null(redis_stats, api_db):
    client, who = redis_stats
    offline = make_settings(api_db, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(offline)) as no_redis:
        body = _stats(no_redis, who["root"])  # the token checks out (its deny-list fails open)
    assert body["rate_limit_decisions"] is None and body["response_cache"] is None
    assert body["requests_by_status"]["PENDING"] == 0  # the tables still answer
