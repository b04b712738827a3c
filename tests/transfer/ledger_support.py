"""Helpers for sequence, ack, resend and status tests on real PostgreSQL.

`Sender` plays the request network's writer with full control over seq and prev_digest, so
tests can build gaps, forks and replays; `Both` wires the real services of both networks to
rollback sessions (each commit lands in a savepoint).
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from request_network import models as rq
from request_network.services import requests as rq_requests
from request_network.services.exchange import export_requests, import_batches
from response_network import models as rs
from response_network.services.exchange import HANDLERS as RS_HANDLERS
from response_network.services.exchange import export_results, import_requests
from shared.security.passwords import hash_password
from transfer.format import Record, WrittenBatch, write_batch
from transfer.format.keys import load_signing_key
from transfer.operator.carry import carry
from transfer.protocol import acks
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.exchange import export_acks_if_due, import_file

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 5}
PROFILE = {
    "name": "articles",
    "index": "articles",
    "fields": {"title": "text", "year": "integer"},
    "return_fields": ["title", "year"],
    "max_size": 50,
    "rate_limits": {"minute": 10, "hour": 100, "day": 1000},
}


def tx_factory(session: Session):
    """Stand-in for `shared.db.transaction` on the test's rollback session (savepoints)."""

    @contextmanager
    def tx():
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    return tx


def request_record(tag: str) -> Record:
    return Record(
        type="request",
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, tag)),
        version=1,
        data={
            "user_id": "u-alice",
            "profile_type": "articles",
            "query": QUERY,
            "submitted_at": "2026-01-01T00:00:00Z",
        },
    )


class Sender:
    """Writes `requests` batches request → response with explicit seq and chain."""

    def __init__(self, settings, directory: Path) -> None:
        self.key = load_signing_key(settings.signing_key)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.by_seq: dict[int, WrittenBatch] = {}

    def write(
        self,
        seq: int,
        *tags: str,
        prev: str | None | bool = True,
        now: datetime | None = None,
        ttl: timedelta = timedelta(days=7),
        subdir: str = "",
    ) -> WrittenBatch:
        """`prev=True` chains to the batch this sender wrote at `seq - 1` (None for seq 1)."""
        if prev is True:
            prev = self.by_seq[seq - 1].digest if seq > 1 else None
        directory = self.directory / subdir if subdir else self.directory
        directory.mkdir(parents=True, exist_ok=True)
        written = write_batch(
            directory,
            stream="requests",
            source="request",
            destination="response",
            seq=seq,
            prev_digest=prev,
            signing_key=self.key,
            records=[request_record(t) for t in (tags or (f"seq{seq}",))],
            ttl=ttl,
            now=now,
            capabilities=("acks",),
        )
        self.by_seq.setdefault(seq, written)
        return written


def deliver(path: Path, inbox: Path) -> Path:
    """The operator copies one batch (and its sidecar) into an inbox."""
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, inbox / path.name)
    side = path.with_name(path.name + ".sha256")
    if side.exists():
        shutil.copy2(side, inbox / side.name)
    return inbox / path.name


def receive(settings, session: Session, written: WrittenBatch, *, clock=None):
    """Deliver one batch to the response network's inbox and import it there."""
    inbound = replace(inbound_from(settings), clock=clock)
    path = deliver(written.path, inbound.inbox)
    return import_file(path, rs.Batch, inbound, RS_HANDLERS, tx_factory(session))


def count(session: Session, model: type, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def seed_request_side(session: Session, n: int, username: str = "alice") -> list[rq.Request]:
    if session.get(rq.ProfileType, "articles") is None:
        session.add(rq.ProfileType(version=1, **PROFILE))
    user = session.get(rq.User, f"u-{username}")
    if user is None:
        user = rq.User(
            id=f"u-{username}",
            username=username,
            role="user",
            profile_type="articles",
            password_hash=hash_password("pw", rounds=4),
            active=True,
            version=1,
        )
        session.add(user)
        session.flush()
    return [
        rq_requests.submit(user, session=session, profile_type="articles", query=QUERY)
        for _ in range(n)
    ]


def later(days: float):
    """A clock `days` from now, for not_after checks."""
    return lambda: datetime.now(UTC) + timedelta(days=days)


class Gap:
    """Both networks' services on rollback sessions, and an operator who carries everything."""

    def __init__(self, net, rq_session, rs_session):
        self.net, self.rq, self.rs = net, rq_session, rs_session

    def carry_to_response(self) -> list[str]:
        return [
            c["file"] for c in carry(self.net["request"].outbox, self.net["response"].inbox).copied
        ]

    def carry_to_request(self) -> list[str]:
        return [
            c["file"] for c in carry(self.net["response"].outbox, self.net["request"].inbox).copied
        ]

    def request_exports(self) -> list[str]:
        out = outbound_from(self.net["request"])
        batches = export_requests(out, session=self.rq).batches + export_acks_if_due(
            self.rq, rq.Batch, out
        )
        self.rq.commit()
        return [b.stream for b in batches]

    def response_exports(self) -> list[str]:
        out = outbound_from(self.net["response"])
        batches = export_results(out, session=self.rs).batches + export_acks_if_due(
            self.rs, rs.Batch, out
        )
        self.rs.commit()
        return [b.stream for b in batches]

    def response_imports(self) -> list[tuple[str, str]]:
        outcomes = import_requests(inbound_from(self.net["response"]), tx_factory(self.rs))
        return [(o.stream, o.status) for o in outcomes]

    def request_imports(self) -> list[tuple[str, str]]:
        outcomes = import_batches(inbound_from(self.net["request"]), tx_factory(self.rq))
        return [(o.stream, o.status) for o in outcomes]

    def execute_all(self) -> None:
        queued = self.rs.execute(
            select(rs.ImportedRequest).where(rs.ImportedRequest.status == rs.QUEUED)
        )
        for req in queued.scalars().all():
            req.status = rs.DONE
            self.rs.add(
                rs.Result(
                    request_id=req.id, status=rs.DONE, total=0, hits=[], error=None, took_ms=1
                )
            )
        self.rs.commit()

    def unacked(self) -> dict[str, list[tuple[str, int]]]:
        return {
            "request": [
                (b.stream, b.seq) for b in acks.unacked(self.rq, rq.Batch, source="request")
            ],
            "response": [
                (b.stream, b.seq) for b in acks.unacked(self.rs, rs.Batch, source="response")
            ],
        }
