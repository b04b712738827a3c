"""The batch exchange between the networks on real PostgreSQL: export, import, replay,
tampering, forks, acks and two exporters at once."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from ledger_support import seed_request_side, tx_factory
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from request_network import models as rq
from request_network.services.exchange import export_requests, import_batches
from response_network import models as rs
from response_network.services.exchange import export_results, import_requests
from tests.conftest import network_settings
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.exchange import pending_dir

pytestmark = pytest.mark.postgres


@pytest.fixture
def net(tmp_path, keys, pg_urls):
    return {
        "request": network_settings("request", tmp_path, keys, database_url=pg_urls["request"]),
        "response": network_settings("response", tmp_path, keys, database_url=pg_urls["response"]),
    }


def carry(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.glob("*.jsonl*")):
        shutil.copy2(f, dst / f.name)
        if f.name.endswith(".jsonl"):
            copied.append(dst / f.name)
    return copied


def test_export_then_import_queues_each_request_once(net, rq_session, rs_session):
    submitted = seed_request_side(rq_session, 3)
    report = export_requests(outbound_from(net["request"]), session=rq_session)
    rq_session.commit()
    assert report.requests == 3 and len(report.batches) == 1
    for r in submitted:
        rq_session.refresh(r)
        assert r.state == rq.EXPORTED
        assert [e.status for e in r.history] == ["PENDING", "EXPORTED"]
    assert export_requests(outbound_from(net["request"]), session=rq_session).requests == 0

    carry(net["request"].outbox, net["response"].inbox)
    outcomes = import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    assert [(o.status, o.records) for o in outcomes] == [("imported", 3)]
    queued = rs_session.execute(select(rs.ImportedRequest)).scalars().all()
    assert sorted(q.id for q in queued) == sorted(r.id for r in submitted)
    assert {q.status for q in queued} == {rs.QUEUED}
    assert not list(net["response"].inbox.glob("*.jsonl"))
    assert len(list(net["response"].processed_dir.glob("*.jsonl"))) == 1

    # The same file carried again is a reported duplicate and changes nothing.
    carry(net["request"].outbox, net["response"].inbox)
    again = import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    assert [o.status for o in again] == ["duplicate"]
    assert rs_session.execute(select(func.count()).select_from(rs.ImportedRequest)).scalar() == 3


def test_tampered_batch_is_quarantined_and_imports_nothing(net, rq_session, rs_session):
    seed_request_side(rq_session, 2)
    export_requests(outbound_from(net["request"]), session=rq_session)
    rq_session.commit()
    (copied,) = carry(net["request"].outbox, net["response"].inbox)
    raw = bytearray(copied.read_bytes())
    raw[raw.index(b"ferry")] = ord("F")  # one byte inside a record
    copied.write_bytes(bytes(raw))

    outcomes = import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    assert outcomes[0].status == "quarantined"
    assert any("sha256" in r or "digest" in r for r in outcomes[0].reasons), outcomes[0].reasons
    assert rs_session.execute(select(func.count()).select_from(rs.ImportedRequest)).scalar() == 0
    assert rs_session.execute(select(func.count()).select_from(rs.Batch)).scalar() == 0
    reason = json.loads((net["response"].quarantine_dir / f"{copied.name}.reason.json").read_text())
    assert reason["reasons"] == outcomes[0].reasons
    audit = rs_session.execute(select(rs.AuditLog)).scalars().all()
    assert [(a.action, a.target) for a in audit] == [("batch.quarantined", copied.name)]


def test_fork_of_an_imported_sequence_is_quarantined(net, rq_session, rs_session, tmp_path):
    seed_request_side(rq_session, 1)
    first = export_requests(outbound_from(net["request"]), session=rq_session).batches[0]
    rq_session.rollback()  # forget seq 1 on the sender: the next export reuses it
    assert not first.path.exists(), "a rolled-back export leaves no file behind"
    seed_request_side(rq_session, 1, username="bob")
    rq_session.commit()
    # Export seq 1 twice with different content: the receiver takes one and refuses the other.
    # Ferry never publishes an uncommitted batch, so the first copy is taken from the pending
    # directory, as if it had escaped some other way.
    a = export_requests(outbound_from(net["request"]), session=rq_session).batches[0]
    assert not a.path.exists(), "not in the outbox before its row is committed"
    a_copy = tmp_path / "a"
    a_copy.mkdir()
    carry(pending_dir(net["request"].outbox), a_copy)
    rq_session.rollback()
    b = export_requests(outbound_from(net["request"]), session=rq_session).batches[0]
    rq_session.commit()
    assert b.path.exists(), "published once its row is committed"
    assert a.seq == b.seq == 1 and a.digest != b.digest
    carry(a_copy, net["response"].inbox)
    assert [
        o.status for o in import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    ] == ["imported"]
    carry(net["request"].outbox, net["response"].inbox)
    (forked,) = import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    assert forked.status == "quarantined"
    assert "replay or fork" in " ".join(forked.reasons)


def test_results_come_back_and_ack_the_requests_batch(net, rq_session, rs_session):
    submitted = seed_request_side(rq_session, 2)
    sent = export_requests(outbound_from(net["request"]), session=rq_session).batches[0]
    rq_session.commit()
    carry(net["request"].outbox, net["response"].inbox)
    import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    for i, r in enumerate(submitted):
        status = rs.DONE if i == 0 else rs.FAILED
        rs_session.add(
            rs.Result(
                request_id=r.id,
                status=status,
                total=1 - i,
                hits=[{"id": "a1", "source": {"title": "x"}}][: 1 - i],
                error=None if i == 0 else "boom",
                took_ms=3,
            )
        )
    rs_session.flush()
    results = export_results(outbound_from(net["response"]), session=rs_session)
    rs_session.commit()
    assert results.results == 2

    carry(net["response"].outbox, net["request"].inbox)
    (outcome,) = import_batches(inbound_from(net["request"]), tx_factory(rq_session))
    assert (outcome.status, outcome.records) == ("imported", 2)
    done, failed = (rq_session.get(rq.Request, r.id) for r in submitted)
    assert (done.status, failed.status) == (rq.COMPLETED, rq.FAILED)
    assert rq_session.get(rq.Response, failed.id).error == "boom"
    assert rq_session.get(rq.Batch, sent.batch_id).acked_at is not None


def test_two_exporters_at_once_never_export_a_request_twice(net, pg_urls):
    engine = create_engine(pg_urls["request"])
    try:
        with Session(engine) as s:
            ids = {r.id for r in seed_request_side(s, 60, username="carol")}
            s.commit()
        barrier = threading.Barrier(2)
        reports, errors = [], []

        def run() -> None:
            try:
                with Session(engine) as s:
                    barrier.wait(5)
                    reports.append(export_requests(outbound_from(net["request"]), session=s))
                    s.commit()
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        exported = [rid for rep in reports for b in rep.batches for rid in b.record_ids]
        assert sorted(exported) == sorted(ids), "every request exported exactly once"
        seqs = sorted(b.seq for rep in reports for b in rep.batches)
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "TRUNCATE requests, request_events, request_outbox, request_exports, "
                    "responses, batches, "
                    "users, profile_types, audit_log CASCADE"
                )
            )
        engine.dispose()


def test_a_large_export_splits_into_batches_that_all_import(net, rq_session, rs_session):
    small = {"request": net["request"].model_copy(update={"batch_max_bytes": 8 * 1024})}
    submitted = seed_request_side(rq_session, 40)
    report = export_requests(outbound_from(small["request"]), session=rq_session)
    rq_session.commit()
    assert len(report.batches) > 1, "8 KiB batches cannot hold 40 requests"
    assert all(b.bytes <= 8 * 1024 for b in report.batches)
    assert [b.seq for b in report.batches] == list(range(1, len(report.batches) + 1))
    carry(net["request"].outbox, net["response"].inbox)
    outcomes = import_requests(inbound_from(net["response"]), tx_factory(rs_session))
    assert {o.status for o in outcomes} == {"imported"}
    assert sum(o.records for o in outcomes) == len(submitted)
