"""Batches left unacknowledged too long: their records go out again, once, in new batches.

On PostgreSQL and SQLite, with both networks' real services: results named by a lost
batch's kept copy (a split result's other parts included) reach the request network in
the new batches; users and profile types go again by version; a request batch's requests
return to the outbox; a batch is re-exported once, and an acknowledged or young one never.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from request_network import models as rq
from request_network.services import exchange as rq_exchange
from response_network import models as rs
from response_network.services import exchange as rs_exchange
from response_network.services.identity import create_user, export_identity
from shared.db import utcnow
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    PROFILE,
    count,
    make_gap,
    request_states,
)
from transfer.protocol.config import outbound_from

DAY = timedelta(days=1)


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def age(session, model, days: float = 2) -> None:
    """Every batch sent so far was written `days` ago."""
    session.execute(update(model).values(created_at=utcnow() - timedelta(days=days)))
    session.commit()


def reexport_results(gap, older_than=DAY):
    settings = gap.settings["response"]
    done = rs_exchange.reexport_unacked(
        session=gap.rs, source="response", outbox=settings.outbox, older_than=older_than
    )
    gap.rs.commit()
    return done


def test_a_lost_results_batch_goes_again_and_completes_what_it_carried(gap):
    gap.limit(batch_max_line_bytes=1024, batch_max_bytes=4096)
    small, split = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([small])
    gap.add_results([split], hits=400)  # parts over several batches
    sent = gap.export_results().batches
    first = sent[0]  # the small result and the first parts of the split one
    assert small in first.record_ids and split in first.record_ids
    # Every batch but the first reaches the request network; the first is lost.
    for b in sent[1:]:
        assert gap.import_results(b.path.name + "*")[0].status == "imported"
    assert gap.rq.get(rq.Response, split) is None, "its first parts are missing"

    assert reexport_results(gap) == [], "a young batch is left alone"
    age(gap.rs, rs.Batch)
    done = reexport_results(gap)
    # No ack has come back (nothing went to the response network yet): every batch is due.
    assert [d["file"] for d in done] == [b.path.name for b in sent]
    assert done[0] == {"file": first.path.name, "records": 2, "found_in": "kept copy"}
    assert reexport_results(gap) == [], "each batch once"
    flagged = gap.rs.scalars(select(rs.Batch).where(rs.Batch.reexported_at.is_not(None)))
    assert {b.id for b in flagged} == {b.batch_id for b in sent}
    audit = gap.rs.scalars(select(rs.AuditLog).where(rs.AuditLog.action == "batch.reexported"))
    assert [a.target for a in audit] == [b.path.name for b in sent]

    again = gap.export_results()
    assert again.results == 2 and min(b.seq for b in again.batches) > max(b.seq for b in sent)
    outcomes = gap.import_results()
    assert {o.status for o in outcomes} <= {"imported", "duplicate"}
    assert gap.rq.get(rq.Response, split).hits == [
        {"id": f"{split}-{k}", "n": k} for k in range(400)
    ]
    assert request_states(gap.rq) == {small: rq.COMPLETED, split: rq.COMPLETED}
    assert count(gap.rq, rq.Response) == 2 and count(gap.rq, rq.ResponsePart) == 0


def test_without_a_kept_copy_the_results_that_name_the_batch_go_again(gap):
    (rid,) = gap.seed(1)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([rid])
    (batch,) = gap.export_results().batches
    batch.path.unlink()
    age(gap.rs, rs.Batch)
    assert reexport_results(gap) == [
        {"file": batch.path.name, "records": 1, "found_in": "database"}
    ]
    assert gap.rs.get(rs.Result, rid).batch_id is None
    (again,) = gap.export_results().batches
    assert again.record_ids == (rid,)


def test_lost_identity_batches_send_their_users_and_profile_types_again(gap):
    gap.seed(0)
    out = outbound_from(gap.settings["response"])
    gap.rs.add(rs.ProfileType(version=1, exported_version=0, **PROFILE))
    gap.rs.flush()
    create_user(
        session=gap.rs,
        username="carol",
        password="correct horse 1",
        profile_type="articles",
        rounds=4,
    )
    create_user(
        session=gap.rs,
        username="dave",
        password="correct horse 2",
        profile_type="articles",
        rounds=4,
    )
    gap.rs.commit()
    first = export_identity(out, session=gap.rs)
    gap.rs.commit()
    assert sorted(b.stream for b in first) == ["profile_types", "users"]
    assert export_identity(out, session=gap.rs) == [], "nothing changed since"
    gap.rs.commit()
    age(gap.rs, rs.Batch)
    done = reexport_results(gap)
    assert sorted((d["records"], d["found_in"]) for d in done) == [
        (1, "kept copy"),
        (2, "kept copy"),
    ]
    again = export_identity(out, session=gap.rs)
    gap.rs.commit()
    records = {b.stream: b.count for b in again}
    assert records == {"profile_types": 1, "users": 2}


def test_a_lost_requests_batch_puts_its_unanswered_requests_back_in_the_outbox(gap):
    answered, waiting = gap.seed(2)
    (batch,) = gap.export_requests().batches
    gap.import_requests()
    gap.add_results([answered])
    gap.export_results()
    gap.import_results()
    gap.rq.execute(update(rq.Batch).values(acked_at=None))  # its ack never came back
    age(gap.rq, rq.Batch)
    assert rq_exchange.requeue_unacked(session=gap.rq, source="request", older_than=DAY) == 1
    gap.rq.commit()
    assert rq_exchange.requeue_unacked(session=gap.rq, source="request", older_than=DAY) == 0
    assert request_states(gap.rq) == {answered: rq.COMPLETED, waiting: rq.PENDING}
    assert gap.rq.get(rq.Batch, batch.batch_id).reexported_at is not None
    (again,) = gap.export_requests().batches
    assert again.record_ids == (waiting,)
