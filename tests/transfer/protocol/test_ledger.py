"""The arrival rules of DESIGN.md §3 on real PostgreSQL, judged against the high-water mark:
next, duplicate, replay or fork, gap then late fill, broken chains and stale batches."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from ledger_support import Sender, count, later, receive, request_record, tx_factory
from sqlalchemy import select

from response_network import models as rs
from tests.conftest import network_settings
from transfer.format import file_digest, write_batch
from transfer.protocol import ledger
from transfer.protocol.config import inbound_from
from transfer.protocol.exchange import import_file

pytestmark = pytest.mark.postgres


@pytest.fixture
def net(tmp_path, keys, pg_urls):
    return {
        "request": network_settings("request", tmp_path, keys, database_url=pg_urls["request"]),
        "response": network_settings("response", tmp_path, keys, database_url=pg_urls["response"]),
    }


@pytest.fixture
def sender(net, tmp_path):
    return Sender(net["request"], tmp_path / "written")


def queued(session) -> int:
    return count(session, rs.ImportedRequest)


def held(session) -> dict[int, rs.Batch]:
    rows = session.execute(select(rs.Batch).where(rs.Batch.direction == ledger.IN)).scalars()
    return {b.seq: b for b in rows}


def audit_actions(session) -> list[tuple[str, str]]:
    rows = session.execute(select(rs.AuditLog).order_by(rs.AuditLog.id)).scalars()
    return [(a.action, a.target) for a in rows]


def test_the_next_sequence_imports_and_records_its_digest(net, rs_session, sender):
    one, two = sender.write(1, "a", "b"), sender.write(2, "c")
    first, second = (
        receive(net["response"], rs_session, one),
        receive(net["response"], rs_session, two),
    )
    assert [(o.status, o.rule, o.records) for o in (first, second)] == [
        ("imported", "next", 2),
        ("imported", "next", 1),
    ]
    rows = held(rs_session)
    assert rows[1].digest == one.digest == file_digest(one.path)
    assert rows[2].prev_digest == rows[1].digest
    assert queued(rs_session) == 3
    assert ledger.high_water_mark(rs_session, rs.Batch, stream="requests", source="request") == 2


def test_the_same_batch_again_is_a_duplicate_that_changes_nothing(net, rs_session, sender):
    one = sender.write(1)
    receive(net["response"], rs_session, one)
    before = queued(rs_session)
    again = receive(net["response"], rs_session, one)
    assert (again.status, again.rule) == ("duplicate", "duplicate")
    assert "acked again" in again.reasons[0]
    assert queued(rs_session) == before
    assert held(rs_session)[1].redelivered_at is not None, "a duplicate is acked again"
    assert not list(net["response"].quarantine_dir.glob("*"))


def test_another_batch_at_a_held_sequence_is_quarantined_with_an_alarm(
    net, rs_session, sender, caplog
):
    receive(net["response"], rs_session, sender.write(1, "genuine"))
    forked = sender.write(1, "forged", subdir="fork")
    with caplog.at_level(logging.ERROR, logger="ferry.transfer"):
        outcome = receive(net["response"], rs_session, forked)
    assert (outcome.status, outcome.rule) == ("quarantined", "fork")
    assert "replay or fork" in outcome.reasons[0]
    assert any("ALARM" in r.message for r in caplog.records)
    assert rs_session.get(rs.ImportedRequest, request_record("forged").id) is None
    assert audit_actions(rs_session) == [
        ("batch.quarantined", forked.path.name),
        ("batch.replay_or_fork", forked.path.name),
    ]
    (rejected,) = rs_session.execute(select(rs.RejectedBatch)).scalars()
    assert (rejected.batch_id, rejected.seq, rejected.verdict) == (forked.batch_id, 1, "fork")
    assert (net["response"].quarantine_dir / f"{forked.path.name}.reason.json").exists()


def test_replay_of_an_old_batch(net, rs_session, sender):
    for seq in (1, 2, 3):
        receive(net["response"], rs_session, sender.write(seq))
    # the very same bytes of seq 1, even after its not_after: a harmless duplicate
    replayed = receive(net["response"], rs_session, sender.by_seq[1], clock=later(30))
    assert (replayed.status, replayed.rule) == ("duplicate", "duplicate")
    # a different batch claiming seq 2 and chaining correctly to seq 1: replay or fork
    other = sender.write(2, "other", subdir="old")
    refused = receive(net["response"], rs_session, other)
    assert (refused.status, refused.rule) == ("quarantined", "fork")
    assert rs_session.get(rs.ImportedRequest, request_record("other").id) is None
    assert held(rs_session)[2].digest == sender.by_seq[2].digest


def test_a_gap_is_reported_and_the_late_batch_fills_it(net, rs_session, sender):
    one, two, three = sender.write(1), sender.write(2), sender.write(3)
    receive(net["response"], rs_session, one)
    gap = receive(net["response"], rs_session, three)
    assert (gap.status, gap.rule) == ("imported", "gap")
    assert gap.reasons == ["gap: requests seq 2..2 not yet received"]
    assert ledger.holes(
        rs_session, rs.Batch, direction=ledger.IN, stream="requests", source="request"
    ) == [2]
    assert rs_session.get(rs.ImportedRequest, request_record("seq3").id) is not None
    late = receive(net["response"], rs_session, two)
    assert (late.status, late.rule) == ("imported", "late_fill"), "a late fill is no fork"
    assert (
        ledger.holes(rs_session, rs.Batch, direction=ledger.IN, stream="requests", source="request")
        == []
    )
    assert queued(rs_session) == 3


def test_a_late_batch_must_chain_to_its_predecessor(net, rs_session, sender):
    receive(net["response"], rs_session, sender.write(1))
    receive(net["response"], rs_session, sender.write(3, prev="0" * 64))
    stray = sender.write(2, "stray", prev="f" * 64)
    outcome = receive(net["response"], rs_session, stray)
    assert (outcome.status, outcome.rule) == ("quarantined", "fork")
    assert "does not chain to seq 1" in outcome.reasons[0]
    assert 2 not in held(rs_session)


def test_a_late_batch_must_be_the_one_its_successor_chains_to(net, rs_session, sender):
    sender.write(1)
    sender.write(2, "genuine")
    three = sender.write(3)  # chains to the genuine seq 2
    receive(net["response"], rs_session, sender.by_seq[1])
    receive(net["response"], rs_session, three)
    impostor = sender.write(2, "impostor", subdir="impostor")  # chains to seq 1, not to seq 3
    outcome = receive(net["response"], rs_session, impostor)
    assert (outcome.status, outcome.rule) == ("quarantined", "fork")
    assert "seq 3 (held) does not chain" in outcome.reasons[0]
    assert rs_session.get(rs.ImportedRequest, request_record("impostor").id) is None
    assert 2 not in held(rs_session), "sequence state rolled back with the records"
    genuine = receive(net["response"], rs_session, sender.by_seq[2])
    assert (genuine.status, genuine.rule) == ("imported", "late_fill")


def test_the_first_batch_chains_to_nothing_and_later_ones_to_something(net, rs_session, sender):
    bad_first = receive(net["response"], rs_session, sender.write(1, prev="a" * 64))
    assert (bad_first.status, bad_first.rule) == ("quarantined", "fork")
    unchained = receive(net["response"], rs_session, sender.write(5, prev=None))
    assert (unchained.status, unchained.rule) == ("quarantined", "fork")
    assert held(rs_session) == {}


def test_a_batch_past_its_not_after_is_quarantined_as_stale(net, rs_session, sender):
    old = sender.write(
        1, now=datetime.now(UTC) - timedelta(days=8), ttl=timedelta(days=7), subdir="old"
    )
    outcome = receive(net["response"], rs_session, old)
    assert (outcome.status, outcome.rule) == ("quarantined", "stale")
    assert all(r.startswith("stale:") for r in outcome.reasons)
    assert held(rs_session) == {} and queued(rs_session) == 0
    (rejected,) = rs_session.execute(select(rs.RejectedBatch)).scalars()
    assert rejected.verdict == "stale"
    assert audit_actions(rs_session) == [("batch.quarantined", old.path.name)]
    # a fresh batch at the same seq is then accepted: nothing of the stale one was kept
    fresh = receive(net["response"], rs_session, sender.write(1, "fresh", subdir="fresh"))
    assert fresh.status == "imported"


def test_sequence_state_is_saved_only_together_with_the_records(net, rs_session, sender):
    def failing(session, rec, batch_id):
        raise ValueError("the handler refuses")

    one = sender.write(1)
    inbound = inbound_from(net["response"])
    path = inbound.inbox / one.path.name
    inbound.inbox.mkdir(parents=True, exist_ok=True)
    path.write_bytes(one.path.read_bytes())
    outcome = import_file(path, rs.Batch, inbound, {"request": failing}, tx_factory(rs_session))
    assert outcome.status == "quarantined"
    assert "the handler refuses" in outcome.reasons[0]
    assert held(rs_session) == {}
    assert ledger.high_water_mark(rs_session, rs.Batch, stream="requests", source="request") == 0
    assert receive(net["response"], rs_session, one).status == "imported"


def test_the_same_batch_id_under_another_digest_is_refused(net, rs_session, sender):
    one = sender.write(1)
    receive(net["response"], rs_session, one)
    # a validly signed batch that reuses the batch id at another seq
    (sender.directory / "reuse").mkdir()
    reuse = write_batch(
        sender.directory / "reuse",
        stream="requests",
        source="request",
        destination="response",
        seq=2,
        prev_digest=one.digest,
        signing_key=sender.key,
        records=[request_record("reuse")],
        batch_id=one.batch_id,
    )
    outcome = receive(net["response"], rs_session, reuse)
    assert (outcome.status, outcome.rule) == ("quarantined", "fork")
    assert "batch_id" in outcome.reasons[0]
