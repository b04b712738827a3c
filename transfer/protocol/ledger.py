"""Sequence ledger: per-stream sequence numbers, the digest chain and the arrival rules.

Works on any network's `Batch` model (see `shared.models.BatchColumns`); the caller owns the
transaction. DESIGN.md §3 judges every arrival against the receiver's high-water mark
(`hwm`, the highest sequence imported on that stream from that source):

- the same bytes again (same batch_id, same digest) → duplicate: no-op, acked again;
- `seq` already held with another batch, or a batch_id reused → replay or fork: refused;
- a sequence that is free → imported, whether `seq == hwm + 1` (next), `seq > hwm + 1`
  (a gap is reported; every record type is an upsert keyed by id and version, so order
  does not matter) or `seq < hwm` (a late fill of an earlier gap);
- in every case the chain must hold with whatever neighbours are held: `prev_digest` must
  be the digest of `seq - 1` if held (and null for seq 1), and the batch held at `seq + 1`
  must name this batch's digest as its `prev_digest`.

Staleness (`not_after`) is checked by the reader before the ledger is consulted.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

OUT, IN = "out", "in"
ACKS_STREAM = "acks"

# Verdicts of judge_arrival and the import rules reported in ImportOutcome.rule.
NEXT, GAP, LATE, DUPLICATE, FORK = "next", "gap", "late_fill", "duplicate", "fork"


def _advisory_lock(session: Session, key: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())})


def lock_stream(session: Session, *, stream: str, source: str) -> None:
    """Serialise writers of one outgoing stream (PostgreSQL advisory lock; SQLite: one writer)."""
    _advisory_lock(session, f"ferry:{source}:{stream}")


def lock_incoming(session: Session, *, stream: str, source: str) -> None:
    """Serialise imports of one incoming stream, so neighbours are judged against each other."""
    _advisory_lock(session, f"ferry:in:{source}:{stream}")


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


def high_water_mark(session: Session, batch_model: type, *, stream: str, source: str) -> int:
    return session.execute(
        select(func.coalesce(func.max(batch_model.seq), 0)).where(
            batch_model.direction == IN, batch_model.stream == stream, batch_model.source == source
        )
    ).scalar_one()


def holes(
    session: Session, batch_model: type, *, direction: str, stream: str, source: str
) -> list[int]:
    """Sequence numbers below the highest held one that are not held (the gaps)."""
    where = (
        batch_model.direction == direction,
        batch_model.stream == stream,
        batch_model.source == source,
    )
    top, count = session.execute(
        select(func.coalesce(func.max(batch_model.seq), 0), func.count()).where(*where)
    ).one()
    if top == count:
        return []
    previous = func.lag(batch_model.seq, 1, 0).over(order_by=batch_model.seq)
    pairs = select(batch_model.seq.label("seq"), previous.label("prev")).where(*where).subquery()
    found = []
    gaps = select(pairs.c.seq, pairs.c.prev).where(pairs.c.seq > pairs.c.prev + 1)
    for seq, prev in session.execute(gaps.order_by(pairs.c.seq)):
        found.extend(range(prev + 1, seq))
    return found


@dataclass(frozen=True)
class Arrival:
    """How an incoming batch relates to what this side already holds."""

    verdict: str  # NEXT, GAP, LATE (all imported), DUPLICATE, FORK
    reason: str = ""

    @property
    def imports(self) -> bool:
        return self.verdict in (NEXT, GAP, LATE)


def _held(session: Session, batch_model: type, *, stream: str, source: str, seq: int):
    return session.execute(
        select(batch_model).where(
            batch_model.direction == IN,
            batch_model.stream == stream,
            batch_model.source == source,
            batch_model.seq == seq,
        )
    ).scalar_one_or_none()


def find_duplicate(session: Session, batch_model: type, *, batch_id: str, digest: str):
    """The imported batch these exact bytes are a copy of, if any."""
    held = session.get(batch_model, batch_id)
    if held is not None and held.direction == IN and held.digest == digest:
        return held
    return None


def judge_arrival(
    session: Session,
    batch_model: type,
    *,
    batch_id: str,
    stream: str,
    source: str,
    seq: int,
    prev_digest: str | None,
) -> Arrival:
    """Judge a verified header against the ledger (byte-identical copies are found earlier,
    with :func:`find_duplicate`). The successor's link is checked by :func:`check_successor`
    once the new batch's digest is known."""
    same_id = session.get(batch_model, batch_id)
    if same_id is not None:
        whose = "this network wrote" if same_id.direction == OUT else "was imported"
        return Arrival(FORK, f"replay or fork: batch_id {batch_id} {whose} with a different digest")
    held = _held(session, batch_model, stream=stream, source=source, seq=seq)
    if held is not None:
        return Arrival(
            FORK,
            f"replay or fork: {stream} seq {seq} already imported as batch {held.id} "
            "with another digest",
        )
    if seq == 1 and prev_digest is not None:
        return Arrival(FORK, f"replay or fork: {stream} seq 1 chains to a previous batch")
    if seq > 1 and prev_digest is None:
        return Arrival(FORK, f"replay or fork: {stream} seq {seq} names no previous batch")
    if seq > 1:
        before = _held(session, batch_model, stream=stream, source=source, seq=seq - 1)
        if before is not None and before.digest != prev_digest:
            return Arrival(
                FORK, f"replay or fork: {stream} seq {seq} does not chain to seq {seq - 1}"
            )
    hwm = high_water_mark(session, batch_model, stream=stream, source=source)
    if seq == hwm + 1:
        return Arrival(NEXT)
    if seq > hwm + 1:
        return Arrival(GAP, f"gap: {stream} seq {hwm + 1}..{seq - 1} not yet received")
    return Arrival(LATE, f"late: {stream} seq {seq} fills a gap below {hwm}")


def check_successor(
    session: Session, batch_model: type, *, stream: str, source: str, seq: int, digest: str
) -> str | None:
    """A reason to refuse if the batch held at `seq + 1` chains to some other digest."""
    after = _held(session, batch_model, stream=stream, source=source, seq=seq + 1)
    if after is not None and after.prev_digest != digest:
        return f"replay or fork: {stream} seq {seq + 1} (held) does not chain to this seq {seq}"
    return None
