"""Streaming and bounded memory on the bulk paths (no timing: what is held, not how fast).

- an export pulls its records lazily, never more than one record past the batch it writes;
- an import hands a bulk handler chunks of bounded size, never splitting the parts of one
  result, and its peak Python memory does not grow with the size of the batch file;
- deferred (write-behind) statements keep their order and surface their errors.
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from request_network import models as rq
from request_network.services import exchange as rq_exchange
from response_network import models as rs
from shared.db import utcnow
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    QUERY,
    make_gap,
    request_states,
    tx_factory,
)
from transfer.format import Record, write_batch
from transfer.format.keys import load_signing_key
from transfer.protocol import bulk
from transfer.protocol.behind import write_behind
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.exchange import BulkHandler, export_records, import_file


def request(i: int) -> Record:
    data = {
        "user_id": "u-alice",
        "profile_type": "articles",
        "query": QUERY,
        "submitted_at": "2026-01-01T00:00:00Z",
    }
    return Record("request", str(uuid.UUID(int=i + 1)), 1, data)


def result_part(rid: str, part: int, parts: int) -> Record:
    data = {
        "status": "DONE",
        "total": parts,
        "hits": [{"n": part}],
        "error": None,
        "executed_at": "2026-01-01T00:00:00Z",
        "took_ms": 1,
        "part": part,
        "parts": parts,
    }
    return Record("result", rid, 1, data)


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def test_an_export_pulls_records_lazily_one_batch_at_a_time(gap):
    pulled = []

    def records():
        for i in range(35):
            pulled.append(i)
            yield request(i)

    seen = []
    out = outbound_from(gap.settings["request"].model_copy(update={"batch_max_records": 10}))
    batches = export_records(
        gap.rq,
        rq.Batch,
        out,
        stream="requests",
        records=records(),
        on_batch=lambda batch, ids: seen.append((len(ids), len(pulled))),
        keep_ids=False,
    )
    gap.rq.commit()
    assert [b.carried for b in batches] == [10, 10, 10, 5]
    assert all(b.record_ids == () for b in batches)
    # When batch k is done, at most the first record of batch k+1 has been pulled.
    assert seen == [(10, 11), (10, 21), (10, 31), (5, 35)]


def test_a_paged_export_reads_every_pending_request_once_in_order(gap, monkeypatch):
    monkeypatch.setattr(rq_exchange, "PAGE", 3)  # pages far smaller than a batch
    gap.limit(batch_max_records=8)
    ids = gap.seed(30)
    report = gap.export_requests()
    assert [b.carried for b in report.batches] == [8, 8, 8, 6]
    assert [rid for b in report.batches for rid in b.record_ids] == ids
    assert list(request_states(gap.rq).values()).count(rq.EXPORTED) == 30


def test_an_import_hands_bounded_chunks_and_never_splits_a_result(gap):
    settings = gap.settings["response"]
    ids = [str(uuid.UUID(int=i + 1)) for i in range(7)]
    records = [
        result_part(ids[0], 0, 1),
        result_part(ids[1], 0, 1),
        result_part(ids[2], 0, 1),
        *(result_part(ids[3], k, 3) for k in range(3)),  # crosses the chunk boundary
        *(result_part(rid, 0, 1) for rid in ids[4:]),
    ]
    inbox = gap.settings["request"].inbox
    inbox.mkdir(parents=True)
    written = write_batch(
        inbox,
        stream="results",
        source="response",
        destination="request",
        seq=1,
        prev_digest=None,
        signing_key=load_signing_key(settings.signing_key),
        records=records,
        capabilities=("acks",),
    )
    chunks: list[list[tuple[str, int]]] = []
    handler = BulkHandler(
        lambda _s, recs, _b: chunks.append([(r.id, r.data["part"]) for r in recs]), chunk=4
    )
    outcome = import_file(
        written.path,
        rq.Batch,
        inbound_from(gap.settings["request"]),
        {"result": handler},
        tx_factory(gap.rq),
    )
    assert (outcome.status, outcome.records) == ("imported", 9)
    assert [len(c) for c in chunks] == [6, 3]  # the second chunk waited for the last part
    assert chunks[0][3:] == [(ids[3], 0), (ids[3], 1), (ids[3], 2)]
    assert [pair for c in chunks for pair in c] == [(r.id, r.data["part"]) for r in records]


def _peak_import(directory: Path, world, n: int, seq: int, prev: str | None):
    settings = world.settings["response"]
    written = write_batch(
        directory,
        stream="requests",
        source="request",
        destination="response",
        seq=seq,
        prev_digest=prev,
        signing_key=load_signing_key(world.settings["request"].signing_key),
        records=(request(seq * 1_000_000 + i) for i in range(n)),
        capabilities=("acks",),
    )
    handled = []
    handler = BulkHandler(lambda _s, recs, _b: handled.append(len(recs)), chunk=500)
    tracemalloc.start()
    try:
        outcome = import_file(
            written.path,
            rs.Batch,
            inbound_from(settings),
            {"request": handler},
            tx_factory(world.rs),
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (outcome.status, sum(handled)) == ("imported", n)
    return peak, written


def test_import_memory_does_not_grow_with_the_batch(gap):
    gap.limit(batch_max_records=20_000)
    inbox = gap.settings["response"].inbox
    inbox.mkdir(parents=True)
    small, first = _peak_import(inbox, gap, 4_000, 1, None)
    large, _ = _peak_import(inbox, gap, 16_000, 2, first.digest)  # a file four times larger
    assert large < 1.5 * small, (small, large)


def test_export_memory_does_not_grow_with_the_export(gap):
    out = outbound_from(gap.settings["request"].model_copy(update={"batch_max_records": 500}))

    def peak(n: int, offset: int) -> int:
        tracemalloc.start()
        try:
            batches = export_records(
                gap.rq,
                rq.Batch,
                out,
                stream="requests",
                records=(request(offset + i) for i in range(n)),
                keep_ids=False,
            )
            result = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        gap.rq.commit()
        assert sum(b.carried for b in batches) == n
        return result

    small = peak(2_000, 0)
    large = peak(8_000, 10_000)  # four times as many records and batches
    assert large < 1.5 * small, (small, large)


@pytest.mark.postgres
def test_deferred_statements_keep_their_order_and_raise_their_errors(rq_session):
    table = rq.RequestEvent.__table__
    rq_session.add(
        rq.ProfileType(
            version=1,
            name="articles",
            index="a",
            fields={"t": "text"},
            return_fields=[],
            max_size=5,
            rate_limits={},
        )
    )
    rq_session.add(rq.User(id="u-1", username="one", password_hash="x", profile_type="articles"))
    rq_session.flush()
    rq_session.add(rq.Request(id="r-1", user_id="u-1", profile_type="articles", query={}))
    rq_session.flush()
    with write_behind(rq_session):
        for _ in range(3):
            bulk.insert_rows(
                rq_session,
                table,
                {"request_id": ["r-1"]},
                same={"status": "X", "at": utcnow(), "detail": ""},
            )
        # A bulk statement that is not deferred runs after everything deferred before it.
        assert bulk.existing_keys(rq_session, table, "request_id", ["r-1"]) == {"r-1"}
    assert rq_session.execute(select(func.count()).select_from(table)).scalar_one() == 3

    too_long = "r" * 37  # request ids are at most 36 characters
    with pytest.raises(psycopg.errors.StringDataRightTruncation), write_behind(rq_session):
        bulk.insert_rows(
            rq_session,
            table,
            {"request_id": [too_long]},
            same={"status": "X", "at": utcnow(), "detail": ""},
        )
        for _ in range(3):  # queued behind the failing one: never run
            bulk.insert_rows(
                rq_session,
                table,
                {"request_id": ["r-1"]},
                same={"status": "Y", "at": utcnow(), "detail": ""},
            )
    rq_session.rollback()


def test_the_collector_is_paused_only_inside_and_restored_after_errors():
    assert gc.isenabled()
    with bulk.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), bulk.collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


@pytest.mark.parametrize("refuse", [False, True])
def test_an_import_applies_records_with_the_collector_paused(gap, refuse):
    settings = gap.settings["response"]
    inbox = settings.inbox
    inbox.mkdir(parents=True)
    written = write_batch(
        inbox,
        stream="requests",
        source="request",
        destination="response",
        seq=1,
        prev_digest=None,
        signing_key=load_signing_key(gap.settings["request"].signing_key),
        records=[request(i) for i in range(3)],
        capabilities=("acks",),
    )
    seen: list[bool] = []

    def apply(_session, records, _batch_id):
        seen.append(gc.isenabled())
        if refuse:
            raise ValueError("refused")

    outcome = import_file(
        written.path,
        rs.Batch,
        inbound_from(settings),
        {"request": BulkHandler(apply)},
        tx_factory(gap.rs),
    )

    assert seen == [False] and gc.isenabled()
    assert (outcome.status == "imported") is not refuse
