"""The query executor on real PostgreSQL against a real OpenSearch-compatible server."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from ferry.demo import DATA, expected_ids
from response_network import models as rs
from response_network.services.documents import read_jsonl
from response_network.services.executor import claim, execute, prune_executions, requeue_stale
from response_network.services.identity import load_profile_types
from response_network.services.search import SearchBackend, make_client
from shared.db import utcnow

pytestmark = pytest.mark.postgres

MATCHING = {
    "query": {
        "all": [
            {"match": {"field": "title", "value": "ferry"}},
            {"range": {"field": "year", "gte": 1990}},
        ]
    },
    "size": 50,
}


@pytest.fixture
def backend(osmem_clone):
    backend = SearchBackend(make_client(osmem_clone.url, compat_headers=False))
    backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    yield backend
    backend.close()


@pytest.fixture
def queue(rs_session):
    load_profile_types(DATA / "profile_types.json", session=rs_session)
    batch = rs.Batch(
        id=str(uuid.uuid4()),
        direction="in",
        stream="requests",
        source="request",
        destination="response",
        seq=1,
        digest="0" * 64,
        filename="x.jsonl",
        record_count=0,
        bytes=0,
    )
    rs_session.add(batch)

    def add(query: dict, profile_type: str = "articles") -> str:
        rid = str(uuid.uuid4())
        rs_session.add(
            rs.ImportedRequest(
                id=rid,
                user_id="u1",
                profile_type=profile_type,
                query=query,
                submitted_at=utcnow(),
                batch_id=batch.id,
            )
        )
        rs_session.flush()
        return rid

    return add


def test_runs_queries_and_records_per_request_errors(rs_session, backend, queue):
    good = queue(MATCHING)
    empty = queue({"query": {"term": {"field": "category", "value": "no-such-category"}}})
    bad_field = queue({"query": {"match": {"field": "secret", "value": "x"}}})
    unknown_profile = queue(MATCHING, profile_type="missing")

    ids = claim(session=rs_session, limit=10)
    assert sorted(ids) == sorted([good, empty, bad_field, unknown_profile])
    report = execute(backend, ids, session=rs_session, chunk_size=1, timeout_s=10)
    assert (report.done, report.failed) == (2, 2)

    result = rs_session.get(rs.Result, good)
    assert result.status == rs.DONE
    assert {h["id"] for h in result.hits} == expected_ids()
    assert result.total == len(expected_ids())
    assert set(result.hits[0]["source"]) <= {"title", "category", "year", "published"}
    assert rs_session.get(rs.Result, empty).total == 0
    assert "secret" in rs_session.get(rs.Result, bad_field).error
    assert "unknown profile type" in rs_session.get(rs.Result, unknown_profile).error
    rows = rs_session.execute(select(rs.ImportedRequest.id, rs.ImportedRequest.status)).all()
    statuses = {rid: status for rid, status in rows}
    assert statuses == {
        good: rs.DONE,
        empty: rs.DONE,
        bad_field: rs.FAILED,
        unknown_profile: rs.FAILED,
    }
    execution = rs_session.execute(
        select(rs.Execution).where(rs.Execution.request_id == good)
    ).scalar_one()
    assert execution.status == rs.DONE and execution.finished_at is not None


def test_unreachable_search_engine_fails_requests_not_the_worker(rs_session, queue):
    rid = queue(MATCHING)
    dead = SearchBackend(make_client("http://127.0.0.1:9", compat_headers=False, timeout=2))
    report = execute(
        dead, claim(session=rs_session, limit=5), session=rs_session, chunk_size=5, timeout_s=2
    )
    assert (report.done, report.failed) == (0, 1)
    assert rs_session.get(rs.Result, rid).error


def test_claimed_requests_left_running_are_requeued(rs_session, queue):
    rid = queue(MATCHING)
    assert claim(session=rs_session, limit=5) == [rid]
    assert claim(session=rs_session, limit=5) == [], "a claimed request is not claimed again"
    assert requeue_stale(session=rs_session, older_than=timedelta(minutes=30)) == 0
    assert requeue_stale(session=rs_session, older_than=timedelta(seconds=-1)) == 1
    assert rs_session.get(rs.ImportedRequest, rid).status == rs.QUEUED
    lost = rs_session.execute(select(rs.Execution).where(rs.Execution.request_id == rid))
    assert lost.scalar_one().error == "worker lost"


def test_old_executions_are_pruned_but_each_requests_latest_stays(rs_session, queue):
    twice, once = queue(MATCHING), queue(MATCHING)
    long_ago = utcnow() - timedelta(days=90)
    for rid, runs in ((twice, 2), (once, 1)):
        for _ in range(runs):
            rs_session.add(
                rs.Execution(
                    request_id=rid,
                    started_at=long_ago,
                    finished_at=long_ago,
                    status=rs.FAILED,
                    error="boom",
                )
            )
    rs_session.flush()
    running = rs.Execution(request_id=once, started_at=long_ago, status=rs.RUNNING)
    rs_session.add(running)
    rs_session.flush()

    assert prune_executions(session=rs_session, older_than=timedelta(days=30)) == 2
    left = rs_session.execute(
        select(rs.Execution.request_id, rs.Execution.status).order_by(rs.Execution.id)
    ).all()
    assert [tuple(r) for r in left] == [(twice, rs.FAILED), (once, rs.RUNNING)]
    assert prune_executions(session=rs_session, older_than=timedelta(days=30)) == 0
