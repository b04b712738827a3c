"""Acks on real PostgreSQL: they flow both ways until every data batch is acknowledged, an
`acks` batch goes out when nothing else would (and never ping-pongs), quarantined batches are
reported back, and batches unacknowledged too long are flagged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from ledger_support import Gap, count, seed_request_side
from sqlalchemy import select, update

from request_network import models as rq
from response_network import models as rs
from shared.db import utcnow
from shared.records import AckData
from tests.conftest import network_settings
from transfer.protocol import acks, ledger

pytestmark = pytest.mark.postgres


@pytest.fixture
def net(tmp_path, keys, pg_urls):
    return {
        "request": network_settings("request", tmp_path, keys, database_url=pg_urls["request"]),
        "response": network_settings("response", tmp_path, keys, database_url=pg_urls["response"]),
    }


@pytest.fixture
def gap(net, rq_session, rs_session):
    return Gap(net, rq_session, rs_session)


def test_acks_flow_both_ways_until_every_batch_is_acknowledged(gap, rq_session):
    seed_request_side(rq_session, 2)
    assert gap.request_exports() == ["requests"]
    gap.carry_to_response()
    assert gap.response_imports() == [("requests", "imported")]
    gap.execute_all()
    assert gap.response_exports() == ["results"], "the results batch carries the ack"
    gap.carry_to_request()
    assert gap.request_imports() == [("results", "imported")]
    assert gap.unacked() == {"request": [], "response": [("results", 1)]}

    # nothing pending on the request side, but the results need their ack: an acks batch
    assert gap.request_exports() == ["acks"]
    assert gap.request_exports() == [], "one acks batch is enough"
    gap.carry_to_response()
    assert gap.response_imports() == [("acks", "imported")]
    assert gap.unacked() == {"request": [], "response": []}
    assert gap.response_exports() == [], "an acks batch never asks for an ack: no ping-pong"

    # the next round acknowledges the acks batch in passing
    seed_request_side(rq_session, 1)
    assert gap.request_exports() == ["requests"]
    gap.carry_to_response()
    gap.response_imports()
    gap.execute_all()
    assert gap.response_exports() == ["results"]
    gap.carry_to_request()
    gap.request_imports()
    assert gap.request_exports() == ["acks"]
    gap.carry_to_response()
    gap.response_imports()
    assert gap.unacked() == {"request": [], "response": []}
    acks_sent = rq_session.execute(
        select(rq.Batch.seq, rq.Batch.acked_at).where(rq.Batch.stream == "acks")
    ).all()
    assert [(seq, at is not None) for seq, at in sorted(acks_sent)] == [(1, True), (2, False)]
    assert gap.response_exports() == []


def test_a_quarantined_batch_is_reported_back_to_its_sender(gap, net, rq_session, rs_session):
    seed_request_side(rq_session, 1)
    gap.request_exports()
    (name,) = gap.carry_to_response()
    damaged = net["response"].inbox / name
    damaged.write_bytes(damaged.read_bytes().replace(b"title", b"TITLE", 1))
    assert gap.response_imports() == [("requests", "quarantined")]
    (ack,) = acks.acks_for(rs_session, rs.Batch, rs.RejectedBatch, peer="request")
    sent = rq_session.execute(select(rq.Batch).where(rq.Batch.stream == "requests")).scalar_one()
    assert ack == AckData(stream="requests", through_seq=0, missing=[], rejected=[sent.id])

    assert gap.response_exports() == ["acks"], "a quarantine is reported even with nothing to send"
    gap.carry_to_request()
    assert gap.request_imports() == [("acks", "imported")]
    rq_session.refresh(sent)
    assert sent.peer_rejected_at is not None and sent.acked_at is None


def test_acks_claim_less_rather_than_ack_what_never_arrived(rs_session, monkeypatch):
    for seq in (1, 5, 9):
        rs_session.add(_row(rs.Batch, ledger.IN, "requests", seq, source="request"))
    rs_session.flush()
    (ack,) = acks.acks_for(rs_session, rs.Batch, rs.RejectedBatch, peer="request")
    assert (ack.through_seq, ack.missing) == (9, [2, 3, 4, 6, 7, 8])
    monkeypatch.setattr(acks, "MAX_MISSING", 2)
    (capped,) = acks.acks_for(rs_session, rs.Batch, rs.RejectedBatch, peer="request")
    assert (capped.through_seq, capped.missing) == (3, [2, 3])


def test_an_ack_marks_what_arrived_and_notes_what_was_quarantined(rq_session):
    rows = {seq: _row(rq.Batch, ledger.OUT, "requests", seq) for seq in (1, 2, 3, 4, 5)}
    rq_session.add_all(rows.values())
    rq_session.flush()
    ack = AckData(stream="requests", through_seq=4, missing=[2], rejected=[rows[3].id])
    applied = acks.apply_ack(rq_session, rq.Batch, ack, source="request")
    assert (applied.acked, applied.rejected, applied.beyond) == (2, 1, None)
    for row in rows.values():
        rq_session.refresh(row)
    assert [s for s, r in rows.items() if r.acked_at] == [1, 4]
    assert [s for s, r in rows.items() if r.peer_rejected_at] == [3]
    beyond = AckData(stream="requests", through_seq=9, missing=[], rejected=[])
    assert acks.apply_ack(rq_session, rq.Batch, beyond, source="request").beyond == 9


def test_what_makes_an_ack_due(rs_session):
    def due() -> bool:
        return acks.ack_due(
            rs_session, rs.Batch, rs.RejectedBatch, source="response", peer="request"
        )

    assert not due()
    rs_session.add(_row(rs.Batch, ledger.IN, "acks", 1, source="request"))
    rs_session.flush()
    assert not due(), "an acks batch never makes an ack due"
    data = _row(rs.Batch, ledger.IN, "requests", 1, source="request")
    rs_session.add(data)
    rs_session.flush()
    assert due()
    rs_session.add(_row(rs.Batch, ledger.OUT, "results", 1, source="response"))
    rs_session.flush()
    assert not due(), "the batch just sent carried the acks"
    data.redelivered_at = utcnow() + timedelta(seconds=1)
    rs_session.flush()
    assert due(), "a redelivered duplicate is acked again"


def test_batches_unacknowledged_too_long_are_flagged_once(rq_session):
    old, recent, acked, acks_batch = (
        _row(rq.Batch, ledger.OUT, "requests", 1),
        _row(rq.Batch, ledger.OUT, "requests", 2),
        _row(rq.Batch, ledger.OUT, "users", 1),
        _row(rq.Batch, ledger.OUT, "acks", 1),
    )
    rq_session.add_all([old, recent, acked, acks_batch])
    rq_session.flush()
    two_days_ago = utcnow() - timedelta(days=2)
    rq_session.execute(
        update(rq.Batch)
        .where(rq.Batch.id.in_([old.id, acked.id, acks_batch.id]))
        .values(created_at=two_days_ago)
    )
    rq_session.execute(update(rq.Batch).where(rq.Batch.id == acked.id).values(acked_at=utcnow()))
    flagged = acks.flag_unacked(
        rq_session, rq.Batch, rq.AuditLog, source="request", older_than=timedelta(hours=24)
    )
    assert [(f["stream"], f["seq"], f["newly_flagged"]) for f in flagged] == [("requests", 1, True)]
    assert flagged[0]["age_seconds"] >= 2 * 86400 - 60
    again = acks.flag_unacked(
        rq_session, rq.Batch, rq.AuditLog, source="request", older_than=timedelta(hours=24)
    )
    assert [(f["seq"], f["newly_flagged"]) for f in again] == [(1, False)]
    audited = rq_session.execute(select(rq.AuditLog.action, rq.AuditLog.target)).all()
    assert audited == [("batch.unacked", old.filename)]
    assert count(rq_session, rq.Batch, rq.Batch.flagged_at.is_not(None)) == 1


def _row(model, direction, stream, seq, *, source=None):
    source = source or ("request" if direction == ledger.OUT else "response")
    batch_id = str(uuid.uuid4())
    return model(
        id=batch_id,
        direction=direction,
        stream=stream,
        source=source,
        destination="response" if source == "request" else "request",
        seq=seq,
        digest=f"{seq:064x}",
        prev_digest=None,
        filename=f"{stream}-{source}-{seq:08d}-{batch_id}.jsonl",
        record_count=1,
        bytes=100,
    )
