"""Cancel and retry across the gap, on PostgreSQL and SQLite: each sending of a request is
numbered (the record's version); the response network runs a retried request once more,
once, a cancelled one not at all (if it has not started); the request network keeps one
answer per request and sets aside answers to earlier sendings or to cancelled requests.
The response side runs the real executor against a real OpenSearch-compatible server."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ferry.demo import DATA
from request_network import models as rq
from request_network.services import lifecycle
from response_network import models as rs
from response_network.services.documents import read_jsonl
from response_network.services.exchange import apply_requests
from response_network.services.executor import claim, execute
from response_network.services.identity import load_profile_types
from response_network.services.search import SearchBackend, make_client
from shared.db import utcnow
from shared.problems import Problem
from shared.security.clock import as_utc
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    count,
    make_gap,
    request_states,
)
from transfer.format import Record

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


@pytest.fixture(scope="module")
def backend(osmem_server):
    search = osmem_server.clone()
    backend = SearchBackend(make_client(search.url, compat_headers=False))
    backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    yield backend
    backend.close()
    search.close()


def run(gap, backend) -> dict[str, int]:
    """The response network's executor: claim what is queued, run it, record it."""
    ids = claim(session=gap.rs, limit=100)
    gap.rs.commit()
    report = execute(backend, ids, session=gap.rs, chunk_size=10, timeout_s=10)
    gap.rs.commit()
    return {"done": report.done, "failed": report.failed, "deferred": report.deferred}


def load_profiles(gap) -> None:
    load_profile_types(DATA / "profile_types.json", session=gap.rs)
    gap.rs.commit()


def cancel(gap, rid: str) -> dict:
    out = lifecycle.cancel(rid, session=gap.rq, cache=None, actor="u-root")
    gap.rq.commit()
    return out


def retry(gap, rid: str) -> dict:
    out = lifecycle.retry(rid, session=gap.rq, cache=None, actor="u-root")
    gap.rq.commit()
    return out


def events(gap, rid: str) -> list[tuple[str, str]]:
    rows = gap.rq.execute(
        select(rq.RequestEvent.status, rq.RequestEvent.detail)
        .where(rq.RequestEvent.request_id == rid)
        .order_by(rq.RequestEvent.id)
    )
    return [tuple(r) for r in rows]


def imported(gap, rid: str) -> rs.ImportedRequest:
    gap.rs.expire_all()
    return gap.rs.get_one(rs.ImportedRequest, rid)


def executions(gap, rid: str) -> list[tuple[int, str]]:
    rows = gap.rs.execute(
        select(rs.Execution.attempt, rs.Execution.status)
        .where(rs.Execution.request_id == rid)
        .order_by(rs.Execution.id)
    )
    return [tuple(r) for r in rows]


def test_a_failed_request_retried_runs_once_more_and_gets_exactly_one_answer(gap, backend):
    (rid,) = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    # The response network does not know the profile type yet: the request fails there.
    assert run(gap, backend) == {"done": 0, "failed": 1, "deferred": 0}
    gap.export_results()
    gap.import_results()
    assert request_states(gap.rq) == {rid: rq.FAILED}

    load_profiles(gap)  # the cause is fixed
    out = retry(gap, rid)
    assert out == {"id": rid, "status": rq.PENDING, "was": "FAILED", "attempt": 2}
    assert gap.rq.get(rq.Response, rid) is None, "the failed answer goes with the retry"
    sent = gap.export_requests()
    assert sent.requests == 1
    assert gap.rq.get_one(rq.Request, rid).attempt == 2

    gap.import_requests()
    assert (imported(gap, rid).status, imported(gap, rid).attempt) == (rs.QUEUED, 2)
    assert run(gap, backend) == {"done": 1, "failed": 0, "deferred": 0}
    assert executions(gap, rid) == [(1, rs.FAILED), (2, rs.DONE)]
    assert gap.export_results().results == 1
    assert [o.status for o in gap.import_results()] == ["duplicate", "imported"]

    assert request_states(gap.rq) == {rid: rq.COMPLETED}
    response = gap.rq.get_one(rq.Response, rid)
    assert response.status == "DONE" and response.hits, response.hits
    assert count(gap.rq, rq.Response) == 1
    history = [step.status for step in gap.rq.get_one(rq.Request, rid).history]
    assert history == [rq.EXPORTED, rq.FAILED, rq.PENDING, rq.EXPORTED, rq.COMPLETED]
    audit = gap.rq.scalars(select(rq.AuditLog.action).where(rq.AuditLog.target == rid)).all()
    assert audit == ["request.retried"]

    # Either sending arriving once more (a re-export, an operator's copy) changes nothing.
    request_data = {
        "user_id": "u-alice",
        "profile_type": "articles",
        "query": imported(gap, rid).query,
        "submitted_at": "2026-01-01T00:00:01+00:00",
    }
    for version in (1, 2):
        apply_requests(gap.rs, [Record("request", rid, version, request_data)], "b-replay")
        gap.rs.commit()
    assert (imported(gap, rid).status, imported(gap, rid).attempt) == (rs.DONE, 2)
    assert run(gap, backend) == {"done": 0, "failed": 0, "deferred": 0}


def test_an_answer_to_an_earlier_sending_is_set_aside(gap, backend):
    load_profiles(gap)
    (rid,) = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    assert run(gap, backend) == {"done": 1, "failed": 0, "deferred": 0}
    gap.export_results()  # the answer to sending 1 waits in the response outbox

    # The request network gives up on it meanwhile: it expires, and an admin retries it.
    past = utcnow() - timedelta(days=30)
    gap.rq.execute(update(rq.Request).where(rq.Request.id == rid).values(updated_at=past))
    gap.rq.commit()
    assert lifecycle.expire_unanswered(session=gap.rq, older_than=timedelta(days=7)) == 1
    gap.rq.commit()
    assert request_states(gap.rq) == {rid: rq.EXPIRED}
    assert retry(gap, rid)["attempt"] == 2
    gap.export_requests()
    gap.import_requests()
    assert run(gap, backend) == {"done": 1, "failed": 0, "deferred": 0}
    gap.export_results()

    # Both answers arrive: the one to sending 1 is set aside, the one to sending 2 is kept.
    outcomes = gap.import_results()
    assert [o.status for o in outcomes] == ["imported", "imported"]
    assert request_states(gap.rq) == {rid: rq.COMPLETED}
    assert count(gap.rq, rq.Response) == 1
    gap.rs.expire_all()
    result = gap.rs.get_one(rs.Result, rid)
    assert result.attempt == 2
    kept = gap.rq.get_one(rq.Response, rid)
    assert as_utc(kept.executed_at) == as_utc(result.executed_at)
    details = [d for _, d in events(gap, rid)]
    assert "an answer to sending 1 set aside: sending 2 is current" in details
    assert executions(gap, rid) == [(1, rs.DONE), (2, rs.DONE)]


def test_cancel_before_export_sends_nothing(gap):
    (rid,) = gap.seed(1)
    out = cancel(gap, rid)
    assert out == {
        "id": rid,
        "status": rq.CANCELLED,
        "was": "PENDING",
        "attempt": 1,
        "cancellation_sent": False,
    }
    assert request_states(gap.rq) == {rid: rq.CANCELLED}
    assert count(gap.rq, rq.OutboxEntry) == 0
    assert gap.export_requests().requests == 0
    assert [s for s, _ in events(gap, rid)] == [rq.CANCELLED]


def test_a_cancellation_in_transit_stops_the_request_on_the_response_network(gap, backend):
    load_profiles(gap)
    stopped, runs = gap.seed(2)
    first = gap.export_requests()
    assert first.requests == 2
    out = cancel(gap, stopped)
    assert (out["was"], out["cancellation_sent"]) == ("IN_TRANSIT", True)
    second = gap.export_requests()
    assert [b.record_ids for b in second.batches] == [(stopped,)]
    history = gap.rq.get_one(rq.Request, stopped).history
    assert history[-1].detail.startswith("the cancellation in "), history

    gap.import_requests()  # the request, then its cancellation
    assert imported(gap, stopped).status == rs.CANCELLED
    assert run(gap, backend) == {"done": 1, "failed": 0, "deferred": 0}
    assert executions(gap, stopped) == []
    gap.export_results()
    gap.import_results()
    assert request_states(gap.rq) == {stopped: rq.CANCELLED, runs: rq.COMPLETED}
    assert gap.rq.get(rq.Response, stopped) is None


def test_a_cancellation_arriving_before_its_request_still_stops_it(gap, backend, tmp_path):
    load_profiles(gap)
    (rid,) = gap.seed(1)
    first = gap.export_requests().batches[0]
    cancel(gap, rid)
    gap.export_requests()
    # The operator carries the cancellation's batch first (the request's comes later).
    held = tmp_path / "held"
    held.mkdir()
    files = list(first.path.parent.glob(first.path.name + "*"))
    for f in files:
        shutil.move(f, held / f.name)
    gap.import_requests()
    assert imported(gap, rid).status == rs.CANCELLED
    for f in files:
        shutil.move(held / f.name, f)
    gap.import_requests()
    assert imported(gap, rid).status == rs.CANCELLED
    assert run(gap, backend) == {"done": 0, "failed": 0, "deferred": 0}


def test_an_answer_after_the_cancellation_is_set_aside_and_a_retry_runs_it(gap, backend):
    load_profiles(gap)
    (rid,) = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    assert run(gap, backend) == {
        "done": 1,
        "failed": 0,
        "deferred": 0,
    }  # it ran before the cancellation
    cancel(gap, rid)
    gap.export_requests()
    gap.import_requests()
    assert imported(gap, rid).status == rs.DONE, "too late to stop: it has run"
    gap.export_results()
    gap.import_results()
    assert request_states(gap.rq) == {rid: rq.CANCELLED}
    assert gap.rq.get(rq.Response, rid) is None
    assert events(gap, rid)[-1] == (
        rq.CANCELLED,
        "an answer arrived after the cancellation and was set aside",
    )

    assert retry(gap, rid)["was"] == "CANCELLED"
    gap.export_requests()
    gap.import_requests()
    assert (imported(gap, rid).status, imported(gap, rid).attempt) == (rs.QUEUED, 2)
    assert run(gap, backend) == {"done": 1, "failed": 0, "deferred": 0}
    gap.export_results()
    gap.import_results()
    assert request_states(gap.rq) == {rid: rq.COMPLETED}
    assert count(gap.rq, rq.Response) == 1


def test_only_waiting_requests_are_cancelled_and_only_finished_ones_retried(gap):
    pending, done = gap.seed(2)
    gap.rq.execute(update(rq.Request).where(rq.Request.id == done).values(status=rq.COMPLETED))
    gap.rq.commit()
    for action, rid, state in (
        (lifecycle.retry, pending, "PENDING"),
        (lifecycle.cancel, done, "COMPLETED"),
        (lifecycle.retry, done, "COMPLETED"),
    ):
        with pytest.raises(Problem) as refused:
            action(rid, session=gap.rq, cache=None, actor="u-root")
        gap.rq.rollback()
        assert refused.value.status == 409 and state in refused.value.detail
    with pytest.raises(Problem) as missing:
        lifecycle.cancel(MISSING, session=gap.rq, cache=None, actor="u-root")
    assert missing.value.status == 404
    cancel(gap, pending)
    with pytest.raises(Problem) as twice:
        lifecycle.cancel(pending, session=gap.rq, cache=None, actor="u-root")
    assert twice.value.status == 409


def test_unanswered_requests_expire_and_a_late_answer_is_still_taken(gap, backend):
    load_profiles(gap)
    sent, fresh = gap.seed(2)
    gap.export_requests()  # both leave; `sent` is not answered in time
    (waiting,) = gap.seed(1)  # never exported
    past, now = utcnow() - timedelta(days=8), utcnow()
    gap.rq.execute(
        update(rq.Request).where(rq.Request.id.in_([waiting, sent])).values(updated_at=past)
    )
    gap.rq.execute(update(rq.Request).where(rq.Request.id == fresh).values(updated_at=now))
    gap.rq.commit()
    assert lifecycle.expire_unanswered(session=gap.rq, older_than=timedelta(days=7)) == 2
    gap.rq.commit()
    assert request_states(gap.rq) == {waiting: rq.EXPIRED, sent: rq.EXPIRED, fresh: rq.EXPORTED}
    assert lifecycle.expire_unanswered(session=gap.rq, older_than=timedelta(days=7)) == 0
    assert count(gap.rq, rq.OutboxEntry) == 0, "an expired request is not sent any more"
    assert gap.export_requests().requests == 0

    gap.import_requests()
    assert run(gap, backend) == {"done": 2, "failed": 0, "deferred": 0}
    gap.export_results()
    gap.import_results()
    states = request_states(gap.rq)
    assert states == {waiting: rq.EXPIRED, sent: rq.COMPLETED, fresh: rq.COMPLETED}
    assert [s for s, _ in events(gap, sent)] == [rq.EXPIRED, rq.COMPLETED]
