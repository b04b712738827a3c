"""Resend on real PostgreSQL: kept batches come back byte-identical (same seq, batch_id and
bytes) and import as the missing sequence or as a duplicate; a lost kept file is reported."""

from __future__ import annotations

import hashlib

import pytest
from ledger_support import Gap, seed_request_side, tx_factory
from sqlalchemy import select

from request_network import models as rq
from response_network import models as rs
from response_network.services.exchange import HANDLERS
from tests.conftest import network_settings
from transfer.operator.carry import carry
from transfer.protocol import archive
from transfer.protocol.config import inbound_from
from transfer.protocol.exchange import import_inbox
from transfer.protocol.resend import resend

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


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sent(session, stream="requests") -> dict[int, rq.Batch]:
    query = select(rq.Batch).where(rq.Batch.stream == stream).order_by(rq.Batch.seq)
    rows = session.execute(query).scalars()
    return {b.seq: b for b in rows}


def test_a_lost_batch_is_resent_byte_identical_and_fills_the_gap(gap, net, rq_session, tmp_path):
    outbox = net["request"].outbox
    seed_request_side(rq_session, 1)
    gap.request_exports()
    lost_media = tmp_path / "lost-usb-stick"
    carry(outbox, lost_media)  # carried … and the stick is lost on the way
    original = (outbox / "carried" / sent(rq_session)[1].filename).read_bytes()

    seed_request_side(rq_session, 1, username="bob")
    gap.request_exports()
    gap.carry_to_response()
    assert gap.response_imports() == [("requests", "imported")]
    assert gap.response_exports() == ["acks"]  # through 2, missing [1]
    gap.carry_to_request()
    gap.request_imports()
    assert [(b.seq, b.acked_at is not None) for b in sent(rq_session).values()] == [
        (1, False),
        (2, True),
    ]

    (item,) = resend(rq_session, rq.Batch, source="request", outbox=outbox)
    one = sent(rq_session)[1]
    assert (item.status, item.seq, item.batch_id, item.kept_in) == (
        "restored",
        1,
        one.id,
        "carried",
    )
    restored = outbox / one.filename
    assert restored.read_bytes() == original
    assert sha256(restored) == item.sha256 == item.expected_sha256 == one.digest

    gap.carry_to_response()
    outcomes = import_inbox(rs.Batch, inbound_from(net["response"]), HANDLERS, tx_factory(gap.rs))
    assert [(o.seq, o.status, o.rule) for o in outcomes] == [(1, "imported", "late_fill")]
    assert gap.response_exports() == ["acks"]
    gap.carry_to_request()
    gap.request_imports()
    assert all(b.acked_at is not None for b in sent(rq_session).values())
    assert resend(rq_session, rq.Batch, source="request", outbox=outbox) == []

    # resent once more by hand: the receiver already has it, a duplicate and a no-op
    (again,) = resend(rq_session, rq.Batch, source="request", outbox=outbox, seq=1)
    assert again.status == "restored" and again.acked
    gap.carry_to_response()
    assert gap.response_imports() == [("requests", "duplicate")]


def test_a_kept_file_that_is_gone_is_reported_plainly(gap, net, rq_session, tmp_path):
    outbox = net["request"].outbox
    seed_request_side(rq_session, 1)
    gap.request_exports()
    carry(outbox, tmp_path / "media")
    name = sent(rq_session)[1].filename
    (outbox / "carried" / name).unlink()
    (item,) = resend(rq_session, rq.Batch, source="request", outbox=outbox)
    assert item.status == "missing" and not item.ok
    assert "kept file is gone" in item.reason and "carried/" in item.reason
    assert not (outbox / name).exists()


def test_a_kept_file_that_changed_is_not_resent(gap, net, rq_session, tmp_path):
    outbox = net["request"].outbox
    seed_request_side(rq_session, 1)
    gap.request_exports()
    carry(outbox, tmp_path / "media")
    kept = outbox / "carried" / sent(rq_session)[1].filename
    kept.write_bytes(kept.read_bytes() + b"\n")
    (item,) = resend(rq_session, rq.Batch, source="request", outbox=outbox)
    assert item.status == "damaged"
    assert not (outbox / kept.name).exists()


def test_one_batch_is_chosen_by_seq_or_batch_id(gap, net, rq_session):
    outbox = net["request"].outbox
    seed_request_side(rq_session, 1)
    gap.request_exports()
    seed_request_side(rq_session, 1, username="bob")
    gap.request_exports()
    rows = sent(rq_session)
    (by_id,) = resend(rq_session, rq.Batch, source="request", outbox=outbox, batch_id=rows[2].id)
    assert (by_id.seq, by_id.status) == (2, "waiting"), "still in the outbox: nothing to copy"
    (by_seq,) = resend(rq_session, rq.Batch, source="request", outbox=outbox, seq=1)
    assert by_seq.batch_id == rows[1].id
    with pytest.raises(ValueError, match="no batch with seq 7"):
        resend(rq_session, rq.Batch, source="request", outbox=outbox, seq=7)
    with pytest.raises(ValueError, match="no batch with id"):
        resend(rq_session, rq.Batch, source="request", outbox=outbox, batch_id="nope")


def test_acknowledged_batches_retire_to_acked_or_are_deleted(gap, net, rq_session, tmp_path):
    outbox = net["request"].outbox
    seed_request_side(rq_session, 1)
    gap.request_exports()
    carry(outbox, tmp_path / "media")
    name = sent(rq_session)[1].filename
    assert archive.retire(outbox, [name], delete=False) == [name]
    assert sorted(p.name for p in (outbox / "acked").iterdir()) == [name, name + ".sha256"]
    assert not list((outbox / "carried").iterdir())
    (back,) = resend(rq_session, rq.Batch, source="request", outbox=outbox, seq=1)
    assert (back.status, back.kept_in) == ("restored", "acked")
    (outbox / name).unlink()
    (outbox / (name + ".sha256")).unlink()
    assert archive.retire(outbox, [name], delete=True) == []  # only outbox/ and carried/
    archive.move_pair(outbox / "acked" / name, outbox / "carried")
    assert archive.retire(outbox, [name], delete=True) == [name]
    assert archive.locate(outbox, name) is None
