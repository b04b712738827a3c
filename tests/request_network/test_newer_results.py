"""A request answered again (a newer result: executed later) replaces its stored response on
the request network, whole or split into parts, on PostgreSQL and SQLite; the same result
once more, or an older one, changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from request_network import models as rq
from response_network import models as rs
from tests.transfer.protocol.test_bulk_exchange import BACKENDS, make_gap, request_states


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def run_again(gap, request_id: str, *, later: timedelta, hits: list[dict], status=rs.DONE):
    """The response network answers `request_id` again and exports the new result."""
    result = gap.rs.get(rs.Result, request_id)
    gap.rs.execute(
        update(rs.Result)
        .where(rs.Result.request_id == request_id)
        .values(
            executed_at=result.executed_at + later,
            hits=hits,
            total=len(hits),
            status=status,
            error=None if status == rs.DONE else "boom",
            batch_id=None,
        )
    )
    gap.rs.commit()
    gap.export_results()


def details(gap, request_id: str) -> list[str]:
    rows = gap.rq.scalars(
        select(rq.RequestEvent.detail)
        .where(rq.RequestEvent.request_id == request_id)
        .order_by(rq.RequestEvent.id)
    )
    return list(rows)


def test_a_newer_result_replaces_the_stored_response_and_an_older_one_does_not(gap):
    failed, answered = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([failed], failed=frozenset([failed]))
    gap.add_results([answered], hits=2)
    gap.export_results()
    assert {o.status for o in gap.import_results()} == {"imported"}
    first = gap.rq.get(rq.Response, answered).executed_at

    run_again(gap, failed, later=timedelta(minutes=5), hits=[{"id": "x", "n": 9}])
    run_again(gap, answered, later=timedelta(minutes=5), hits=[{"id": "y", "n": 1}])
    assert {o.status for o in gap.import_results("results-*")} >= {"imported"}

    gap.rq.expire_all()
    assert gap.rq.get(rq.Response, failed).hits == [{"id": "x", "n": 9}]
    assert gap.rq.get(rq.Response, failed).error is None
    assert request_states(gap.rq) == {failed: rq.COMPLETED, answered: rq.COMPLETED}
    assert details(gap, failed) == ["boom", "a newer result"]
    assert gap.rq.get(rq.Response, answered).hits == [{"id": "y", "n": 1}]

    # An older run arriving late (its executed_at before the stored one) changes nothing.
    run_again(gap, answered, later=-timedelta(minutes=10), hits=[{"id": "old", "n": 0}])
    gap.import_results("results-*")
    gap.rq.expire_all()
    assert gap.rq.get(rq.Response, answered).hits == [{"id": "y", "n": 1}]
    assert gap.rq.get(rq.Response, answered).executed_at > first
    assert details(gap, answered) == ["", "a newer result"]


def test_a_newer_result_in_parts_replaces_the_stored_response(gap):
    gap.limit(batch_max_line_bytes=2048)
    (request_id,) = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([request_id], hits=2)
    gap.export_results()
    gap.import_results()

    many = [{"id": f"{request_id}-{k}", "n": k} for k in range(120)]  # ~7 KB: in parts
    run_again(gap, request_id, later=timedelta(minutes=1), hits=many)
    gap.import_results("results-*")

    gap.rq.expire_all()
    assert gap.rq.get(rq.Response, request_id).hits == many
    assert details(gap, request_id) == ["", "a newer result"]
