"""`GET /api/v1/admin/stats` on the response network reads its figures from the live tables:
real rows in PostgreSQL (requests, executions at known times, batches), every figure
checked against what was stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from response_api_helpers import (
    PASSWORD,
    add_user,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)

from response_network import models as rs
from response_network.app import create_app
from shared.db import transaction, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
STATS = "/api/v1/admin/stats"


@pytest.fixture
def rs_client(pg_urls, tmp_path) -> Iterator[tuple[TestClient, str]]:
    import redis

    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    clear_auth_keys(cache)
    add_user(url, "root", role="admin")
    with TestClient(create_app(make_settings(url, transfer_dir=tmp_path / "t"))) as client:
        yield client, url
    empty_response_db(url)
    clear_auth_keys(cache)


def _stats(client: TestClient) -> dict[str, Any]:
    login = client.post("/api/v1/auth/login", data={"username": "root", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    reply = client.get(STATS, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:00:00Z")


def _profile(name: str) -> rs.ProfileType:
    return rs.ProfileType(
        name=name,
        index=name,
        fields={"title": "text"},
        return_fields=["title"],
        max_size=10,
        rate_limits={"minute": 5, "hour": 50, "day": 100},
        version=1,
    )


def _batch(direction: str, seq: int, records: int, errors: int, at: datetime) -> rs.Batch:
    stream = "requests" if direction == "in" else "results"
    return rs.Batch(
        id=str(uuid.uuid4()),
        direction=direction,
        stream=stream,
        source="request" if direction == "in" else "response",
        destination="response" if direction == "in" else "request",
        seq=seq,
        digest="0" * 64,
        filename=f"{stream}-x-{seq:08d}.jsonl",
        record_count=records,
        error_count=errors,
        processing_ms=40 * seq,
        bytes=100,
        created_at=at,
    )


def test_an_empty_network_has_every_bucket_at_zero(rs_client):
    client, _ = rs_client
    stats = _stats(client)
    assert stats["requests_by_status"] == {
        "QUEUED": 0,
        "RUNNING": 0,
        "DONE": 0,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    hours = stats["executions_per_hour"]
    assert len(hours) == 24
    assert hours[-1]["hour"] == _hour(datetime.fromisoformat(stats["at"]))
    assert all(h["executions"] == h["failed"] == 0 for h in hours)
    assert stats["profile_types"] == []
    assert len(stats["batches"]["days"]) == 14
    assert all(d["in"]["batches"] == d["out"]["batches"] == 0 for d in stats["batches"]["days"])


def test_figures_come_from_the_stored_rows(rs_client):
    client, url = rs_client
    now = utcnow()
    batch_id = str(uuid.uuid4())
    # (profile type, request status, [(minutes ago, execution status, took_ms)])
    plan = [
        ("articles", rs.DONE, [(10, rs.DONE, 10)]),
        ("articles", rs.DONE, [(5 * 60, rs.FAILED, None), (90, rs.DONE, 30)]),
        ("articles", rs.RUNNING, [(5, rs.RUNNING, None)]),
        ("payroll", rs.DONE, [(25 * 60, rs.DONE, 7)]),  # before the last 24 hours
        ("ghost", rs.FAILED, [(20, rs.FAILED, None)]),  # a profile type nobody defined
        ("articles", rs.QUEUED, []),
        ("articles", rs.CANCELLED, []),
    ]
    started: list[tuple[datetime, str]] = []
    with transaction(url) as session:
        session.add_all([_profile("articles"), _profile("payroll")])
        for profile_type, status, runs in plan:
            rid = str(uuid.uuid4())
            session.add(
                rs.ImportedRequest(
                    id=rid,
                    user_id="u-1",
                    profile_type=profile_type,
                    query={},
                    submitted_at=now,
                    batch_id=batch_id,
                    status=status,
                )
            )
            session.flush()
            for minutes, run_status, took in runs:
                at = now - timedelta(minutes=minutes)
                started.append((at, run_status))
                session.add(
                    rs.Execution(request_id=rid, started_at=at, status=run_status, took_ms=took)
                )
        session.add_all(
            [
                _batch("in", 1, 7, 0, now),
                _batch("out", 1, 5, 0, now),
                _batch("out", 2, 5, 1, now),
                _batch("in", 2, 3, 0, now - timedelta(days=20)),  # before the last 14 days
            ]
        )

    stats = _stats(client)
    assert stats["requests_by_status"] == {
        "QUEUED": 1,
        "RUNNING": 1,
        "DONE": 3,
        "FAILED": 1,
        "CANCELLED": 1,
    }

    hours = {h["hour"]: (h["executions"], h["failed"]) for h in stats["executions_per_hour"]}
    assert len(hours) == 24
    first = min(hours)
    expected: dict[str, list[int]] = {}
    for at, run_status in started:
        if _hour(at) >= first:
            counts = expected.setdefault(_hour(at), [0, 0])
            counts[0] += 1
            counts[1] += run_status == rs.FAILED
    assert {k: list(v) for k, v in hours.items() if v != (0, 0)} == expected
    assert sum(n for n, _ in hours.values()) == 5  # the one 25 hours ago is not counted

    figures = {p["profile_type"]: p for p in stats["profile_types"]}
    assert figures == {
        "articles": {
            "profile_type": "articles",
            "executions": 4,
            "failures": 1,
            "failure_rate": round(1 / 3, 4),  # of the three finished
            "p50_ms": 20.0,
            "p95_ms": 29.0,  # 10 + 0.95 × (30 − 10)
        },
        "ghost": {
            "profile_type": "ghost",
            "executions": 1,
            "failures": 1,
            "failure_rate": 1.0,
            "p50_ms": None,
            "p95_ms": None,
        },
        "payroll": {
            "profile_type": "payroll",
            "executions": 0,
            "failures": 0,
            "failure_rate": 0.0,
            "p50_ms": None,
            "p95_ms": None,
        },
    }
    assert [p["profile_type"] for p in stats["profile_types"]] == ["articles", "ghost", "payroll"]

    days = stats["batches"]["days"]
    assert len(days) == 14
    today = {d["day"]: d for d in days}[now.strftime("%Y-%m-%d")]
    assert today["in"] == {
        "batches": 1,
        "records": 7,
        "processing_ms_mean": 40.0,
        "error_rate": 0.0,
    }
    assert today["out"] == {
        "batches": 2,
        "records": 10,
        "processing_ms_mean": 60.0,
        "error_rate": 0.1,
    }
    assert sum(d["in"]["batches"] for d in days) == 1
