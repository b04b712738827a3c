"""`GET /api/v1/admin/stats` reads every figure from the live tables: requests by status,
submissions per hour, turnaround percentiles, batches per day, refusals. On PostgreSQL
through the app, and the same service on SQLite (the demo's database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from request_api_helpers import assert_problem
from sqlalchemy import update

from request_network.models import (
    COMPLETED,
    EXPORTED,
    Base,
    RateLimitViolation,
    Request,
    Response,
)
from request_network.services import stats
from shared.db import get_engine, transaction, utcnow

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
    from request_api_helpers import Seed

    url = f"sqlite:///{tmp_path / 'request.db'}"
    Base.metadata.create_all(get_engine(url))
    _seed(Seed(url), url)
    with transaction(url) as session:
        body = stats.stats(session=session)
    _check(body)
