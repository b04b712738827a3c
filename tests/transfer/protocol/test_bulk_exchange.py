"""Bulk export and import keep exactly-once semantics, on PostgreSQL and on SQLite.

Both networks' real services, with batch limits small enough that every export spans
several files: replays change nothing, a batch mixing new and already-held ids applies
only the new ones, results are applied once with one final event, identity never goes back
a version, and a result too long for a line travels in parts and is joined again.
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from request_network import models as rq
from request_network.services import exchange as rq_exchange
from request_network.services.exchange import enqueue, export_requests, import_batches
from response_network import models as rs
from response_network.services.exchange import export_results, import_requests
from shared.db import get_engine
from shared.migrate import upgrade
from tests.conftest import network_settings
from transfer.format import Record, write_batch
from transfer.format.keys import load_signing_key
from transfer.protocol.config import inbound_from, outbound_from

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 5}
PROFILE = {
    "name": "articles",
    "index": "articles",
    "fields": {"title": "text", "year": "integer"},
    "return_fields": ["title", "year"],
    "max_size": 50,
    "rate_limits": {"minute": 10, "hour": 100, "day": 1000},
}
HASH = "$2b$04$" + "a" * 53


def tx_factory(session: Session):
    @contextmanager
    def tx():
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    return tx


def carry(src: Path, dst: Path, pattern: str = "*.jsonl*") -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.glob(pattern)):
        shutil.copy2(f, dst / f.name)
        if f.name.endswith(".jsonl"):
            copied.append(dst / f.name)
    return copied


def count(session: Session, model: type, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


class Gap:
    """Both networks on one database engine (rollback sessions on PostgreSQL)."""

    def __init__(self, settings: dict, rq_session: Session, rs_session: Session) -> None:
        self.settings, self.rq, self.rs = settings, rq_session, rs_session
        self.created = 0

    def limit(self, **limits: int) -> None:
        """Both networks' batch limits (each checks arrivals against its own)."""
        for net in self.settings:
            self.settings[net] = self.settings[net].model_copy(update=limits)

    def seed(self, n: int) -> list[str]:
        """n pending requests on the request network, a second apart, oldest first."""
        if self.rq.get(rq.ProfileType, "articles") is None:
            self.rq.add(rq.ProfileType(version=1, **PROFILE))
            self.rq.add(
                rq.User(
                    id="u-alice",
                    username="alice",
                    role="user",
                    profile_type="articles",
                    password_hash=HASH,
                    active=True,
                    version=1,
                )
            )
            self.rq.flush()
        ids = []
        for _ in range(n):
            self.created += 1
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.created)
            request = rq.Request(
                id=str(uuid.uuid4()),
                user_id="u-alice",
                profile_type="articles",
                query=QUERY,
                status=rq.PENDING,
                created_at=at,
                updated_at=at,
            )
            self.rq.add(request)
            self.rq.flush()
            enqueue(request, session=self.rq)
            ids.append(request.id)
        self.rq.commit()
        return ids

    def export_requests(self):
        report = export_requests(outbound_from(self.settings["request"]), session=self.rq)
        self.rq.commit()
        return report

    def import_requests(self):
        carry(self.settings["request"].outbox, self.settings["response"].inbox)
        return import_requests(inbound_from(self.settings["response"]), tx_factory(self.rs))

    def add_results(self, ids: list[str], *, hits: int = 1, failed: frozenset = frozenset()):
        for rid in ids:
            bad = rid in failed
            self.rs.add(
                rs.Result(
                    request_id=rid,
                    status=rs.FAILED if bad else rs.DONE,
                    total=0 if bad else hits,
                    hits=[] if bad else [{"id": f"{rid}-{k}", "n": k} for k in range(hits)],
                    error="boom" if bad else None,
                    took_ms=3,
                )
            )
        self.rs.commit()

    def export_results(self):
        report = export_results(outbound_from(self.settings["response"]), session=self.rs)
        self.rs.commit()
        return report

    def import_results(self, pattern: str = "*.jsonl*"):
        carry(self.settings["response"].outbox, self.settings["request"].inbox, pattern)
        return import_batches(inbound_from(self.settings["request"]), tx_factory(self.rq))

    def write_response_batch(self, stream: str, seq: int, prev: str | None, records: list[Record]):
        settings = self.settings["response"]
        directory = settings.inbox.parent / "handmade"
        directory.mkdir(parents=True, exist_ok=True)
        return write_batch(
            directory,
            stream=stream,
            source="response",
            destination="request",
            seq=seq,
            prev_digest=prev,
            signing_key=load_signing_key(settings.signing_key),
            records=records,
            capabilities=("acks",),
        )

    def deliver_to_request(self, written) -> None:
        inbox = self.settings["request"].inbox
        inbox.mkdir(parents=True, exist_ok=True)
        for p in (written.path, written.sidecar):
            shutil.copy2(p, inbox / p.name)


BACKENDS = [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"]


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def make_gap(request, tmp_path: Path, keys):
    """Both networks on PostgreSQL (rollback sessions) or on SQLite files, migrated."""
    if request.param == "postgres":
        urls = request.getfixturevalue("pg_urls")
        settings = {
            net: network_settings(net, tmp_path, keys, database_url=urls[net])
            for net in ("request", "response")
        }
        yield Gap(
            settings,
            request.getfixturevalue("rq_session"),
            request.getfixturevalue("rs_session"),
        )
        return
    settings = {net: network_settings(net, tmp_path, keys) for net in ("request", "response")}
    sessions = {}
    for net, s in settings.items():
        upgrade(net, s.database_url)
        sessions[net] = Session(get_engine(s.database_url), expire_on_commit=False)
    try:
        yield Gap(settings, sessions["request"], sessions["response"])
    finally:
        for session in sessions.values():
            session.close()
        for s in settings.values():
            get_engine(s.database_url).dispose()


def request_states(session: Session) -> dict[str, str]:
    """Request id → its state (EXPORTED included) on the request network."""
    session.expire_all()
    return {r.id: r.state for r in session.scalars(select(rq.Request))}


def exported_in(session: Session) -> dict[str, str]:
    """Request id → the batch that carried it out, on the request network."""
    rows = session.execute(select(rq.RequestExport.request_id, rq.RequestExport.batch_id))
    return dict(rows.all())


def batch_ids_by_request(session: Session, model: type, ids: list[str]) -> dict[str, str]:
    rows = session.execute(select(model.id, model.batch_id).where(model.id.in_(ids))).all()
    return dict(rows)


# -- requests --------------------------------------------------------------------------


def test_requests_cross_once_in_several_batches_and_a_replay_changes_nothing(gap):
    gap.limit(batch_max_records=10)
    ids = gap.seed(57)
    report = gap.export_requests()
    assert report.requests == 57 and len(report.batches) == 6
    assert [b.seq for b in report.batches] == list(range(1, 7))
    sent = [rid for b in report.batches for rid in b.record_ids]
    assert sent == ids, "oldest first, each request in exactly one batch"
    assert set(request_states(gap.rq).values()) == {rq.EXPORTED}
    assert count(gap.rq, rq.OutboxEntry) == 0, "the outbox is emptied"
    assert count(gap.rq, rq.RequestEvent) == 0, "the export step is kept once per batch"
    in_batch = exported_in(gap.rq)
    assert in_batch == {rid: b.batch_id for b in report.batches for rid in b.record_ids}
    assert gap.export_requests().requests == 0

    outcomes = gap.import_requests()
    assert [(o.status, o.records) for o in outcomes] == [("imported", 10)] * 5 + [("imported", 7)]
    assert count(gap.rs, rs.ImportedRequest, rs.ImportedRequest.status == rs.QUEUED) == 57
    assert batch_ids_by_request(gap.rs, rs.ImportedRequest, ids) == in_batch
    held = gap.rs.execute(select(rs.Batch).where(rs.Batch.direction == "in")).scalars().all()
    assert {b.counts_by_type["request"] for b in held} == {10, 7}

    again = gap.import_requests()  # the operator carries the same files again
    assert {o.status for o in again} == {"duplicate"}
    assert count(gap.rs, rs.ImportedRequest) == 57


def test_a_batch_mixing_new_and_held_requests_adds_only_the_new_ones(gap):
    old = gap.seed(5)
    first = gap.export_requests().batches[0]
    gap.import_requests()
    gap.rs.execute(
        update(rs.ImportedRequest).where(rs.ImportedRequest.id == old[0]).values(status=rs.DONE)
    )
    gap.rs.commit()
    # The five are requeued for export (their batch went unacknowledged) next to three new ones.
    rq_exchange.requeue(
        old, session=gap.rq, detail="re-export: unacknowledged", at=datetime.now(UTC)
    )
    gap.rq.commit()
    new = gap.seed(3)
    (second,) = gap.export_requests().batches
    assert second.record_ids == tuple(old + new)

    outcomes = gap.import_requests()
    assert [(o.status, o.records) for o in outcomes] == [
        ("duplicate", 0),
        ("imported", 8),
    ]
    assert count(gap.rs, rs.ImportedRequest) == 8
    rows = {r.id: r for r in gap.rs.execute(select(rs.ImportedRequest)).scalars().all()}
    assert {rid: rows[rid].batch_id for rid in old} == dict.fromkeys(old, first.batch_id)
    assert {rid: rows[rid].batch_id for rid in new} == dict.fromkeys(new, second.batch_id)
    assert rows[old[0]].status == rs.DONE, "a request imported again is left as it is"
    assert {rows[rid].status for rid in old[1:] + new} == {rs.QUEUED}


def test_requeued_requests_go_out_again_and_keep_their_first_batch_in_their_history(gap):
    ids = gap.seed(4)
    (batch,) = gap.export_requests().batches
    first = gap.rq.get(rq.Batch, batch.batch_id).filename
    rq_exchange.requeue(
        ids[:3], session=gap.rq, detail="re-export: unacknowledged", at=datetime.now(UTC)
    )
    gap.rq.commit()
    states = request_states(gap.rq)
    assert [states[rid] for rid in ids] == [rq.PENDING] * 3 + [rq.EXPORTED]
    events = gap.rq.execute(select(rq.RequestEvent.request_id, rq.RequestEvent.detail)).all()
    assert sorted(events) == sorted(
        [(rid, f"in {first}") for rid in ids[:3]]
        + [(rid, "re-export: unacknowledged") for rid in ids[:3]]
    )
    assert set(gap.rq.scalars(select(rq.OutboxEntry.request_id))) == set(ids[:3])
    assert exported_in(gap.rq) == {ids[3]: batch.batch_id}

    (again,) = gap.export_requests().batches
    assert again.record_ids == tuple(ids[:3])
    assert exported_in(gap.rq) == {**dict.fromkeys(ids[:3], again.batch_id), ids[3]: batch.batch_id}
    history = gap.rq.get(rq.Request, ids[0]).history
    assert [(h.status, h.detail) for h in history] == [
        (rq.EXPORTED, f"in {first}"),
        (rq.PENDING, "re-export: unacknowledged"),
        (rq.EXPORTED, f"in {gap.rq.get(rq.Batch, again.batch_id).filename}"),
    ]
