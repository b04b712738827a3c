"""The query executor on real PostgreSQL against a real OpenSearch-compatible server."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from osmem_server import OsmemServer
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from ferry.demo import DATA, expected_ids
from response_network import models as rs
from response_network.services.documents import read_jsonl
from response_network.services.executor import (
    ExecutionReport,
    claim,
    execute,
    prune_executions,
    requeue_stale,
    run_queued,
)
from response_network.services.identity import load_profile_types
from response_network.services.search import SearchBackend, make_client
from shared import breaker, health_probes
from shared.db import utcnow
from tests.e2e.e2e_support import free_port, wait_until

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


def start_search(port: int) -> OsmemServer:
    """A search server of its own on `port`, with the demo articles."""
    server = OsmemServer.start(addr=f"127.0.0.1:{port}")
    with SearchBackend(make_client(server.url, compat_headers=False)) as loader:
        loader.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    return server


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


def statements_of_execute(rs_session, backend, queue, n: int) -> list[str]:
    """The first word of each statement one `execute` of `n` claimed requests sends."""
    ids = [queue(MATCHING) for _ in range(n - 1)] + [queue(MATCHING, profile_type="missing")]
    claimed = claim(session=rs_session, limit=n)
    rs_session.add(  # one of them ran before: its result is replaced, not added again
        rs.Result(request_id=ids[0], status=rs.FAILED, hits=[], error="boom", batch_id="b")
    )
    rs_session.flush()
    seen: list[str] = []

    def statement(_conn, _cursor, sql, *_args) -> None:
        seen.append(sql.split(None, 1)[0].upper())

    event.listen(Engine, "before_cursor_execute", statement)
    try:
        report = execute(backend, claimed, session=rs_session, chunk_size=50, timeout_s=10)
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
    assert (report.done, report.failed) == (n - 1, 1)
    rerun = rs_session.get(rs.Result, ids[0])
    assert (rerun.status, rerun.error, rerun.batch_id) == (rs.DONE, None, None)
    ran = rs_session.execute(select(rs.Execution.status).where(rs.Execution.request_id.in_(ids)))
    assert sorted(ran.scalars()) == sorted([rs.DONE] * (n - 1) + [rs.FAILED])
    return seen


def test_the_statements_of_an_execution_do_not_grow_with_the_batch(rs_session, backend, queue):
    """A batch is read, searched and recorded in the same statements whatever its size: the
    requests, their earlier results, their profile types (one of them unknown), then the
    flush (one UPDATE of the requests, one of the earlier result, one INSERT of the new
    ones) and one UPDATE of the executions."""
    few = statements_of_execute(rs_session, backend, queue, 3)
    assert few == ["SELECT"] * 3 + ["UPDATE", "UPDATE", "INSERT", "UPDATE"]
    rs_session.rollback()
    load_profile_types(DATA / "profile_types.json", session=rs_session)
    assert statements_of_execute(rs_session, backend, queue, 40) == few


def test_unreachable_search_engine_defers_requests_not_fails_them(rs_session, queue):
    rid = queue(MATCHING)
    dead = SearchBackend(make_client("http://127.0.0.1:9", compat_headers=False, timeout=2))
    report = execute(
        dead, claim(session=rs_session, limit=5), session=rs_session, chunk_size=5, timeout_s=2
    )
    assert (report.done, report.failed, report.deferred) == (0, 0, 1)
    assert rs_session.get(rs.ImportedRequest, rid).status == rs.QUEUED  # waits for the cluster
    assert rs_session.get(rs.Result, rid) is None
    ran = rs_session.execute(select(rs.Execution).where(rs.Execution.request_id == rid))
    assert ran.scalars().all() == [], "the search that never ran leaves no execution"


def test_the_search_breaker_opens_while_the_server_is_stopped_and_closes_when_it_returns(
    rs_session, queue
):
    """A real osmem-server stopped and started again on the same port."""
    breaker.configure(failures=2, cooldown_s=1.0)
    port = free_port()
    server = start_search(port)
    url = server.url
    ids = [queue(MATCHING) for _ in range(3)]

    @contextmanager
    def unit():
        yield rs_session
        rs_session.flush()

    def run() -> ExecutionReport:
        with SearchBackend(make_client(url, compat_headers=False, timeout=2)) as backend:
            return run_queued(backend, unit, limit=10, chunk_size=1, timeout_s=2)

    server.close()
    assert run() == ExecutionReport(0, 0, 3)  # the first chunk fails, 2nd opens the breaker
    assert breaker.breaker("search").state == breaker.OPEN
    assert run() == ExecutionReport(), "while open nothing is claimed"
    statuses = {rs_session.get(rs.ImportedRequest, rid).status for rid in ids}
    assert statuses == {rs.QUEUED}
    probe = health_probes.breakers_probe(timeout_s=1.0)
    finding = probe.check()
    assert finding.status == "degraded" and "search open" in finding.reason

    server = start_search(port)
    try:
        half_open = lambda: breaker.breaker("search").state == breaker.HALF_OPEN  # noqa: E731
        wait_until(half_open, timeout=10, what="the search breaker to let a trial through")
        assert run() == ExecutionReport(3, 0, 0)  # the trial succeeds: closed again
        assert breaker.breaker("search").state == breaker.CLOSED
        assert probe.check().status == "ok"
    finally:
        server.close()
    assert {rs_session.get(rs.ImportedRequest, rid).status for rid in ids} == {rs.DONE}


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
