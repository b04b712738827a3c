"""Moving records through batch files: export a stream to the outbox, import the inbox.

Both networks call these with their own `Batch` model and per-type record handlers, so the
rules of DESIGN.md §3 (atomic files, exactly-once import, quarantine) live in one place.
Exporting lives here; importing in `transfer.protocol.intake` (re-exported below).

Export streams: records are pulled from the caller's iterable (typically rows streamed
from the database) one at a time, encoded once, and written straight into the current
batch file; when the next one would break a limit the file is closed, recorded and handed
to the caller's ``on_batch`` (which marks those rows exported in bulk), and a new file
begins. Only one record, and the ids of the current batch, are held at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session
from structlog.contextvars import bound_contextvars

from shared.metrics import BATCHES
from transfer.format import Limits, Record, WrittenBatch, uuid7, write_batch
from transfer.format.fsutil import fsync_directory, publish
from transfer.format.keys import SigningKey
from transfer.format.names import sidecar_name
from transfer.format.writer import EncodedRecord
from transfer.protocol import acks, ledger
from transfer.protocol.behind import write_behind
from transfer.protocol.feed import ExportItem, Feed
from transfer.protocol.intake import (
    BulkHandler,
    ImportOutcome,
    Inbound,
    RecordHandler,
    RecordRefused,
    import_file,
    import_inbox,
    pending_files,
)
from transfer.protocol.tables import rejection_model_for

__all__ = [
    "BulkHandler",
    "ExportItem",
    "ExportedBatch",
    "ImportOutcome",
    "Inbound",
    "Outbound",
    "RecordHandler",
    "RecordRefused",
    "ack_records",
    "export_acks_if_due",
    "export_records",
    "import_file",
    "import_inbox",
    "pending_files",
]

log = logging.getLogger("ferry.transfer")

_WRITTEN = "ferry_written_batches"


PENDING = ".pending"  # beside the outbox: written, not yet committed, never carried


def pending_dir(outbox: Path) -> Path:
    """Where a batch waits between being written and its row being committed."""
    return outbox / PENDING


def _discard(staged: Path) -> None:
    for p in (staged, staged.with_name(sidecar_name(staged.name))):
        p.unlink(missing_ok=True)


def _publish(staged: Path) -> None:
    """Move a committed batch (sidecar first) from the pending directory into the outbox."""
    outbox = staged.parent.parent
    for name in (sidecar_name(staged.name), staged.name):
        source = staged.with_name(name)
        if not source.exists():
            continue
        try:
            publish(source, outbox / name)
        except FileExistsError:  # published already (by a recovering exporter): same bytes
            source.unlink(missing_ok=True)
    fsync_directory(outbox)


@event.listens_for(Session, "after_soft_rollback")
def _remove_uncommitted_files(session: Session, _previous) -> None:
    """A batch whose DB row rolled back is never published."""
    for path in session.info.pop(_WRITTEN, []):
        _discard(path)


@event.listens_for(Session, "after_commit")
def _publish_committed_files(session: Session) -> None:
    """Only a batch whose row is committed becomes visible in the outbox."""
    for path in session.info.pop(_WRITTEN, []):
        _publish(path)
        BATCHES.labels("written", path.name.split("-", 1)[0]).inc()


def settle_pending(session: Session, batch_model: type, outbox: Path, *, stream: str) -> None:
    """After a crash between writing and publishing: publish what was committed, drop the rest.

    Call it holding the stream's lock, so no other exporter of the stream has a batch in
    flight: a pending file of this stream without a committed row can only be left over.
    """
    staging = pending_dir(outbox)
    if not staging.is_dir():
        return
    for path in staging.glob(f"{stream}-*.jsonl"):
        committed = session.execute(
            select(batch_model.id).where(
                batch_model.direction == ledger.OUT, batch_model.filename == path.name
            )
        ).first()
        if committed:
            _publish(path)
        else:
            log.warning("dropping %s: written by an export that never committed", path.name)
            _discard(path)
    for temp in staging.glob(f".{stream}-*.tmp-*"):  # a writer killed mid-file
        temp.unlink(missing_ok=True)


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
    record_ids: tuple[str, ...]  # empty when the exporter asked not to keep them
    # Distinct data record ids the batch starts: the parts of one count once, and a record
    # split over several batches counts in the first (so the sum over batches counts records).
    carried: int = 0


OnBatch = Callable[[ExportedBatch, list[str]], None]


def _room_after_acks(limits: Limits, acks: list[EncodedRecord]) -> Limits:
    """The limits left for data records once the acks riding in every batch are counted."""
    return replace(
        limits,
        max_batch_bytes=limits.max_batch_bytes - sum(len(a.line) for a in acks),
        max_records=limits.max_records - len(acks),
    )


def ack_records(session: Session, batch_model: type, *, peer: str) -> list[Record]:
    """One `ack` record per stream received from `peer` (see `transfer.protocol.acks`)."""
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
    records: Iterable[ExportItem] | Callable[[Limits], Iterable[ExportItem]],
    on_batch: OnBatch | None = None,
    keep_ids: bool = True,
) -> list[ExportedBatch]:
    """Write ``records`` as one or more signed batches and record them; the caller commits.

    ``records`` is consumed lazily, after the stream's lock is held; it may be a function
    of the room each batch leaves for data records (the limits minus the riding acks), for
    exporters that size their records to fit. ``on_batch(batch, ids)`` runs after each
    file is written and recorded, with the distinct ids it carries. ``keep_ids=False`` keeps
    ``ExportedBatch.record_ids`` empty so that a large export holds no list of every id.

    Acks for everything received from the peer ride in each batch. If the caller's
    transaction rolls back, the files written here are removed again.
    """
    ledger.lock_stream(session, stream=stream, source=out.source)
    settle_pending(session, batch_model, out.outbox, stream=stream)
    riding = [EncodedRecord.of(a) for a in ack_records(session, batch_model, peer=out.destination)]
    room = _room_after_acks(out.limits, riding)
    with write_behind(session):  # marking batch k runs while batch k+1 is written
        feed = Feed(records(room) if callable(records) else records, room, riding)
        exported: list[ExportedBatch] = []
        last_id: str | None = None  # the last id of the batch before
        if not feed.exhausted:
            pending_dir(out.outbox).mkdir(parents=True, exist_ok=True)
        while not feed.exhausted:
            if exported:  # the stream's lock is held: the next seq chains to the last one
                seq, prev = exported[-1].seq + 1, exported[-1].digest
            else:
                seq, prev = ledger.next_outgoing(
                    session, batch_model, stream=stream, source=out.source
                )
            now = datetime.now(UTC)
            batch_id = uuid7(now)
            with bound_contextvars(batch_id=batch_id, stream=stream):  # on its log lines
                written = write_batch(
                    pending_dir(out.outbox),
                    stream=stream,
                    source=out.source,
                    destination=out.destination,
                    seq=seq,
                    prev_digest=prev,
                    signing_key=out.signing_key,
                    records=feed.next_batch(),
                    ttl=out.ttl,
                    capabilities=("acks",),
                    limits=out.limits,
                    now=now,
                    batch_id=batch_id,
                )
                ids = feed.ids
                continued = bool(exported and ids and last_id == ids[0])
                last_id = ids[-1] if ids else None
                batch = _record_out(
                    session,
                    batch_model,
                    out,
                    stream,
                    seq,
                    prev,
                    written,
                    tuple(ids) if keep_ids else (),
                    carried=len(ids) - continued,
                    counts=feed.counts,
                )
                log.info("wrote %s (%d records)", written.path.name, written.count)
                if on_batch is not None:
                    on_batch(batch, ids)
            exported.append(batch)
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
    *,
    carried: int = 0,
    counts: dict[str, int] | None = None,
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
            counts_by_type=counts,
            producer=str(written.header.get("producer", ""))[:64] or None,
            key_id=out.signing_key.key_id[:32],
        )
    )
    session.flush()
    return ExportedBatch(
        written.path.parent.parent / written.path.name,  # where it is once committed
        written.batch_id,
        stream,
        seq,
        written.digest,
        written.count,
        written.bytes,
        record_ids,
        carried,
    )


def export_acks_if_due(session: Session, batch_model: type, out: Outbound) -> list[ExportedBatch]:
    """An `acks`-stream batch when something arrived from the peer since our last batch.

    Call it after a network's other exports, in the same transaction: if they wrote a
    batch, that batch carried the acks and nothing more is due.
    """
    rejection_model = rejection_model_for(batch_model)
    ledger.lock_stream(session, stream=ledger.ACKS_STREAM, source=out.source)
    settle_pending(session, batch_model, out.outbox, stream=ledger.ACKS_STREAM)
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
    counts = {"ack": len(riding)}
    pending_dir(out.outbox).mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    batch_id = uuid7(now)
    with bound_contextvars(batch_id=batch_id, stream=ledger.ACKS_STREAM):
        written = write_batch(
            pending_dir(out.outbox),
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
            now=now,
            batch_id=batch_id,
        )
        log.info("wrote %s (%d acks)", written.path.name, written.count)
    return [
        _record_out(
            session, batch_model, out, ledger.ACKS_STREAM, seq, prev, written, (), counts=counts
        )
    ]
