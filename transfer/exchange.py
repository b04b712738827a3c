"""Moving records through batch files: export a stream to the outbox, import the inbox.

Both networks call these with their own `Batch` model and per-type record handlers, so the
rules of DESIGN.md §3 (atomic files, exactly-once import, quarantine) live in one place.
Exporting lives here; importing in `transfer.intake` (re-exported below).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from transfer import acks, ledger
from transfer.format import Limits, Record, WrittenBatch, chunk_records, record_line, write_batch
from transfer.intake import (
    ImportOutcome,
    Inbound,
    RecordHandler,
    import_file,
    import_inbox,
    pending_files,
)
from transfer.keys import SigningKey
from transfer.tables import rejection_model_for

__all__ = [
    "ExportedBatch",
    "ImportOutcome",
    "Inbound",
    "Outbound",
    "RecordHandler",
    "ack_records",
    "export_acks_if_due",
    "export_records",
    "import_file",
    "import_inbox",
    "pending_files",
]

log = logging.getLogger("ferry.transfer")

_WRITTEN = "ferry_written_batches"


@event.listens_for(Session, "after_soft_rollback")
def _remove_uncommitted_files(session: Session, _previous) -> None:
    """A batch file whose DB row rolled back must not stay visible in the outbox."""
    for path in session.info.pop(_WRITTEN, []):
        for p in (path, path.with_name(path.name + ".sha256")):
            p.unlink(missing_ok=True)


@event.listens_for(Session, "after_commit")
def _forget_committed_files(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


@dataclass(frozen=True)
class Outbound:
    """Where and how this network writes batches."""

    source: str
    destination: str
    outbox: Path
    signing_key: SigningKey
    limits: Limits
    ttl: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class ExportedBatch:
    path: Path
    batch_id: str
    stream: str
    seq: int
    digest: str
    count: int
    bytes: int
    record_ids: tuple[str, ...]


def _room_after_acks(limits: Limits, acks: list[Record]) -> Limits:
    """The limits left for data records once the acks riding in every batch are counted."""
    ack_bytes = sum(len(record_line(a)) for a in acks)
    return replace(
        limits,
        max_batch_bytes=limits.max_batch_bytes - ack_bytes,
        max_records=limits.max_records - len(acks),
    )


def ack_records(session: Session, batch_model: type, *, peer: str) -> list[Record]:
    """One `ack` record per stream received from `peer` (see `transfer.acks`)."""
    rejection_model = rejection_model_for(batch_model)
    return [
        Record(type="ack", id=a.stream, version=a.through_seq, data=a.model_dump())
        for a in acks.acks_for(session, batch_model, rejection_model, peer=peer)
    ]


def export_records(
    session: Session,
    batch_model: type,
    out: Outbound,
    *,
    stream: str,
    records: Iterable[Record],
) -> list[ExportedBatch]:
    """Write `records` as one or more signed batches and record them; the caller commits.

    Acks for everything received from the peer ride in each batch. If the caller's
    transaction rolls back, the files written here are removed again.
    """
    ledger.lock_stream(session, stream=stream, source=out.source)
    riding = ack_records(session, batch_model, peer=out.destination)
    exported = []
    out.outbox.mkdir(parents=True, exist_ok=True)
    for chunk in chunk_records(records, _room_after_acks(out.limits, riding)):
        seq, prev = ledger.next_outgoing(session, batch_model, stream=stream, source=out.source)
        written = write_batch(
            out.outbox,
            stream=stream,
            source=out.source,
            destination=out.destination,
            seq=seq,
            prev_digest=prev,
            signing_key=out.signing_key,
            records=[*riding, *chunk],
            ttl=out.ttl,
            capabilities=("acks",),
            limits=out.limits,
        )
        exported.append(
            _record_out(
                session, batch_model, out, stream, seq, prev, written, tuple(r.id for r in chunk)
            )
        )
    return exported


def _record_out(
    session: Session,
    batch_model: type,
    out: Outbound,
    stream: str,
    seq: int,
    prev: str | None,
    written: WrittenBatch,
    record_ids: tuple[str, ...],
) -> ExportedBatch:
    """The outgoing batch row (sequence state) for a file just written; the caller commits."""
    session.info.setdefault(_WRITTEN, []).append(written.path)
    session.add(
        batch_model(
            id=written.batch_id,
            direction=ledger.OUT,
            stream=stream,
            source=out.source,
            destination=out.destination,
            seq=seq,
            digest=written.digest,
            prev_digest=prev,
            filename=written.path.name,
            record_count=written.count,
            bytes=written.bytes,
        )
    )
    session.flush()
    return ExportedBatch(
        written.path,
        written.batch_id,
        stream,
        seq,
        written.digest,
        written.count,
        written.bytes,
        record_ids,
    )


def export_acks_if_due(session: Session, batch_model: type, out: Outbound) -> list[ExportedBatch]:
    """An `acks`-stream batch when something arrived from the peer since our last batch.

    Call it after a network's other exports, in the same transaction: if they wrote a
    batch, that batch carried the acks and nothing more is due.
    """
    rejection_model = rejection_model_for(batch_model)
    ledger.lock_stream(session, stream=ledger.ACKS_STREAM, source=out.source)
    if not acks.ack_due(
        session, batch_model, rejection_model, source=out.source, peer=out.destination
    ):
        return []
    riding = ack_records(session, batch_model, peer=out.destination)
    if not riding:
        return []
    seq, prev = ledger.next_outgoing(
        session, batch_model, stream=ledger.ACKS_STREAM, source=out.source
    )
    out.outbox.mkdir(parents=True, exist_ok=True)
    written = write_batch(
        out.outbox,
        stream=ledger.ACKS_STREAM,
        source=out.source,
        destination=out.destination,
        seq=seq,
        prev_digest=prev,
        signing_key=out.signing_key,
        records=riding,
        ttl=out.ttl,
        capabilities=("acks",),
        limits=out.limits,
    )
    return [_record_out(session, batch_model, out, ledger.ACKS_STREAM, seq, prev, written, ())]
