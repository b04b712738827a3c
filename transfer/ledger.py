"""Sequence ledger: per-stream sequence numbers, the digest chain and acks.

Works on any network's `Batch` model (see `shared.models.BatchColumns`); the caller owns the
transaction.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.records import AckData

OUT, IN = "out", "in"


def lock_stream(session: Session, *, stream: str, source: str) -> None:
    """Serialise writers of one outgoing stream (PostgreSQL advisory lock; SQLite: one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"ferry:{source}:{stream}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def try_lock_file(session: Session, name: str) -> bool:
    """Claim one inbox file for this transaction; False if another worker holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"ferry:file:{name}".encode())
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def next_outgoing(
    session: Session, batch_model: type, *, stream: str, source: str
) -> tuple[int, str | None]:
    """The next sequence number and the digest it must chain to."""
    last = session.execute(
        select(batch_model.seq, batch_model.digest)
        .where(
            batch_model.direction == OUT, batch_model.stream == stream, batch_model.source == source
        )
        .order_by(batch_model.seq.desc())
        .limit(1)
    ).first()
    return (last.seq + 1, last.digest) if last else (1, None)


@dataclass(frozen=True)
class Arrival:
    """How an incoming batch relates to what this side already holds."""

    verdict: str  # "new", "duplicate", "fork"
    gap_from: int | None = None  # set when seq skips ahead of the high-water mark
    reason: str = ""


def judge_arrival(
    session: Session,
    batch_model: type,
    *,
    batch_id: str,
    stream: str,
    source: str,
    seq: int,
    digest: str,
    prev_digest: str | None,
) -> Arrival:
    same_id = session.get(batch_model, batch_id)
    if same_id is not None:
        if same_id.digest == digest:
            return Arrival("duplicate", reason=f"batch {batch_id} was already imported")
        return Arrival("fork", reason=f"batch_id {batch_id} reused with a different digest")
    held = session.execute(
        select(batch_model).where(
            batch_model.direction == IN,
            batch_model.stream == stream,
            batch_model.source == source,
            batch_model.seq == seq,
        )
    ).scalar_one_or_none()
    if held is not None:
        if held.digest == digest:
            return Arrival("duplicate", reason=f"{stream} seq {seq} was already imported")
        return Arrival(
            "fork",
            reason=f"{stream} seq {seq} already imported with another digest (replay or fork)",
        )
    hwm = high_water_mark(session, batch_model, stream=stream, source=source)
    if seq == hwm + 1 and hwm > 0:
        prev = session.execute(
            select(batch_model.digest).where(
                batch_model.direction == IN,
                batch_model.stream == stream,
                batch_model.source == source,
                batch_model.seq == hwm,
            )
        ).scalar_one()
        if prev_digest != prev:
            return Arrival("fork", reason=f"{stream} seq {seq} does not chain to seq {hwm}")
    if seq > hwm + 1:
        return Arrival("new", gap_from=hwm + 1)
    return Arrival("new")


def high_water_mark(session: Session, batch_model: type, *, stream: str, source: str) -> int:
    return session.execute(
        select(func.coalesce(func.max(batch_model.seq), 0)).where(
            batch_model.direction == IN, batch_model.stream == stream, batch_model.source == source
        )
    ).scalar_one()


def acks_for(session: Session, batch_model: type, *, peer: str) -> list[AckData]:
    """What this side has received from `peer`, per stream: contiguous run and the holes."""
    rows = session.execute(
        select(batch_model.stream, batch_model.seq)
        .where(batch_model.direction == IN, batch_model.source == peer)
        .order_by(batch_model.stream, batch_model.seq)
    ).all()
    seen: dict[str, set[int]] = {}
    for stream, seq in rows:
        seen.setdefault(stream, set()).add(seq)
    acks = []
    for stream, seqs in sorted(seen.items()):
        top = max(seqs)
        missing = [s for s in range(1, top + 1) if s not in seqs]
        acks.append(AckData(stream=stream, through_seq=top, missing=missing, rejected=[]))
    return acks


def apply_ack(session: Session, batch_model: type, ack: AckData, *, source: str) -> int:
    """Mark our outgoing batches the peer confirmed; returns how many became acked."""
    stmt = (
        update(batch_model)
        .where(
            batch_model.direction == OUT,
            batch_model.source == source,
            batch_model.stream == ack.stream,
            batch_model.seq <= ack.through_seq,
            batch_model.acked_at.is_(None),
        )
        .values(acked_at=utcnow())
    )
    if ack.missing:
        stmt = stmt.where(batch_model.seq.not_in(ack.missing))
    return session.execute(stmt).rowcount or 0
