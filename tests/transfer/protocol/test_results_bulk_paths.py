"""The bulk paths of the results exchange keep their guarantees, on PostgreSQL and SQLite.

Import: a chunk's writes run behind the reader, yet a batch refused in a later chunk leaves
nothing of the earlier ones, and a result arriving again in another batch changes nothing
(no second event, no second notification). Export: results are read over a connection of
their own without row locks, and a result executed again after it was read is not marked
exported: it goes out with the next export.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from request_network import models as rq
from request_network.services.arrivals import HANDLERS, apply_results
from response_network import models as rs
from response_network.services import exchange as rs_exchange
from shared.db import get_engine
from shared.migrate import upgrade
from tests.conftest import _drop_database, _fresh_database, network_settings
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    QUERY,
    count,
    make_gap,
    request_states,
)
from transfer.format import uuid7s
from transfer.format.names import is_uuid7
from transfer.protocol.config import outbound_from
from transfer.protocol.exchange import BulkHandler


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys, monkeypatch):
    # Chunks of two records: every batch below is applied over several chunks.
    monkeypatch.setitem(HANDLERS, "result", BulkHandler(apply_results, chunk=2))
    yield from make_gap(request, tmp_path, keys)


def _answered(session: Session) -> dict[str, int]:
    """The answers' notification events, final history events and responses written."""
    session.expire_all()
    kinds = ("request.completed", "request.failed")
    return {
        "notifications": count(session, rq.NotificationEvent, rq.NotificationEvent.kind.in_(kinds)),
        "final events": count(
            session, rq.RequestEvent, rq.RequestEvent.status.in_([rq.COMPLETED, rq.FAILED])
        ),
        "responses": count(session, rq.Response),
    }


def test_a_batch_refused_in_a_later_chunk_leaves_nothing_of_the_earlier_ones(gap):
    ids = gap.seed(5)
    gap.export_requests()
    gap.import_requests()
    stranger = str(uuid.uuid4())
    gap.rs.add(
        rs.ImportedRequest(
            id=stranger,
            user_id="u-x",
            profile_type="articles",
            query=QUERY,
            submitted_at=datetime.now(UTC),
            batch_id=gap.rs.execute(select(rs.Batch.id)).scalars().first(),
        )
    )
    gap.rs.commit()
    gap.add_results(ids)
    gap.add_results([stranger])  # executed last: its record comes last, in the third chunk
    gap.export_results()
    (outcome,) = gap.import_results()
    assert outcome.status == "quarantined"
    assert any(stranger in r and "never sent" in r for r in outcome.reasons), outcome.reasons
    assert _answered(gap.rq) == {"notifications": 0, "final events": 0, "responses": 0}
    assert set(request_states(gap.rq).values()) == {rq.EXPORTED}


def test_results_arriving_again_in_later_batches_apply_once(gap):
    gap.limit(batch_max_records=4)
    ids = gap.seed(7)
    gap.export_requests()
    gap.import_requests()
    gap.add_results(ids[:4], failed=frozenset(ids[3:4]))
    gap.export_results()
    assert [o.status for o in gap.import_results()] == ["imported"] * 2
    once = _answered(gap.rq)
    assert once == {"notifications": 4, "final events": 4, "responses": 4}

    # Sent again (as a resend under new sequence numbers would) beside three new ones: the
    # chunks holding answered requests take the careful path, the others the deferred one.
    gap.rs.execute(update(rs.Result).values(batch_id=None))
    gap.rs.commit()
    gap.add_results(ids[4:])
    gap.export_results()
    outcomes = gap.import_results("results-*")
    assert sorted(o.status for o in outcomes).count("imported") == 3
    assert _answered(gap.rq) == {"notifications": 7, "final events": 7, "responses": 7}
    states = request_states(gap.rq)
    assert [states[rid] for rid in ids] == [rq.COMPLETED] * 3 + [rq.FAILED] + [rq.COMPLETED] * 3
    about = gap.rq.execute(
        select(rq.NotificationEvent.data).where(rq.NotificationEvent.kind.like("request.%"))
    ).scalars()
    assert sorted(d["request_id"] for d in about) == sorted(ids), "one notification each"


# -- export ------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def response_db(request, tmp_path, keys):
    """The response network on a database of its own, its session bound to the engine (as
    the export job's is), with results committed for three requests."""
    if request.param == "postgres":
        name = f"ferry_test_results_export_{uuid.uuid4().hex[:8]}"
        url = _fresh_database(name)
    else:
        name, url = None, f"sqlite:///{tmp_path / 'response.db'}"
    settings = network_settings("response", tmp_path, keys, database_url=url)
    upgrade("response", url)
    engine = get_engine(url)
    session = Session(engine, expire_on_commit=False)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for k, rid in enumerate(ids):
        session.add(
            rs.ImportedRequest(
                id=rid,
                user_id="u-1",
                profile_type="articles",
                query=QUERY,
                submitted_at=start,
                batch_id="b",
                status=rs.DONE,
            )
        )
        session.add(
            rs.Result(
                request_id=rid,
                status=rs.DONE,
                total=1,
                hits=[{"id": f"{rid}-0"}],
                executed_at=start + timedelta(seconds=k),
                took_ms=2,
            )
        )
    session.commit()
    try:
        yield settings, session, ids
    finally:
        session.close()
        engine.dispose()
        if name is not None:
            _drop_database(name)


def _exported(session: Session) -> dict[str, str | None]:
    session.expire_all()
    return dict(session.execute(select(rs.Result.request_id, rs.Result.batch_id)).all())


def test_an_export_marks_what_it_read_and_not_a_result_executed_again_since(response_db):
    settings, session, ids = response_db
    read = [(row[0], row[8], row[5]) for row in rs_exchange._unexported_rows(None, session=session)]
    assert [rid for rid, _, _ in read] == ids, "oldest first"
    # Meanwhile the executor runs the second one again (a retry) and commits.
    with Session(session.get_bind()) as executor:
        executor.execute(
            update(rs.Result)
            .where(rs.Result.request_id == ids[1])
            .values(executed_at=datetime(2026, 12, 2, tzinfo=UTC), hits=[{"id": "new"}])
        )
        executor.commit()
    rs_exchange._mark_exported(session, read, "batch-1")
    session.commit()
    assert _exported(session) == {ids[0]: "batch-1", ids[1]: None, ids[2]: "batch-1"}

    # The export job's own path: the newer result is the one that goes out next.
    report = rs_exchange.export_results(outbound_from(settings), session=session)
    session.commit()
    assert report.results == 1 and report.batches[0].record_ids == (ids[1],)
    line = report.batches[0].path.read_text().splitlines()[-2]
    assert '"hits":[{"id":"new"}]' in line
    assert _exported(session)[ids[1]] == report.batches[0].batch_id
    assert rs_exchange.export_results(outbound_from(settings), session=session).results == 0


def test_uuid7s_are_distinct_uuid7_in_time_order():
    early = uuid7s(500, datetime(2026, 12, 1, tzinfo=UTC))
    late = uuid7s(500, datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert all(is_uuid7(i) for i in early + late)
    assert len(set(early + late)) == 1000
    assert max(early) < min(late), "a later millisecond sorts after"
