"""Moving records through batch files: export a stream to the outbox, import the inbox.

Both networks call these with their own `Batch` model and per-type record handlers, so the
rules of DESIGN.md §3 (atomic files, exactly-once import, quarantine) live in one place.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from shared.records import AckData, validate_record
from transfer import ledger
from transfer.format import (
    BatchRejected,
    Limits,
    Record,
    chunk_records,
    file_digest,
    open_batch,
    parse_batch_filename,
    record_line,
    write_batch,
)
from transfer.keys import SigningKey
from transfer.quarantine import quarantine

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
    return [
        Record(type="ack", id=a.stream, version=a.through_seq, data=a.model_dump())
        for a in ledger.acks_for(session, batch_model, peer=peer)
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
    acks = ack_records(session, batch_model, peer=out.destination)
    exported = []
    out.outbox.mkdir(parents=True, exist_ok=True)
    for chunk in chunk_records(records, _room_after_acks(out.limits, acks)):
        seq, prev = ledger.next_outgoing(session, batch_model, stream=stream, source=out.source)
        written = write_batch(
            out.outbox,
            stream=stream,
            source=out.source,
            destination=out.destination,
            seq=seq,
            prev_digest=prev,
            signing_key=out.signing_key,
            records=[*acks, *chunk],
            ttl=out.ttl,
            capabilities=("acks",),
            limits=out.limits,
        )
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
        exported.append(
            ExportedBatch(
                written.path,
                written.batch_id,
                stream,
                seq,
                written.digest,
                written.count,
                written.bytes,
                tuple(r.id for r in chunk),
            )
        )
    return exported


RecordHandler = Callable[[Session, Record, str], None]  # (session, record, batch_id)


@dataclass(frozen=True)
class Inbound:
    """Where and how this network accepts batches."""

    network_id: str
    peer: str
    inbox: Path
    processed: Path
    quarantine: Path
    public_keys: Mapping[str, object]
    limits: Limits


@dataclass
class ImportOutcome:
    file: str
    status: str  # "imported", "duplicate", "quarantined"
    stream: str = ""
    seq: int | None = None
    records: int = 0
    reasons: list[str] = field(default_factory=list)


def _move(path: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + ".sha256")):
        if p.exists():
            shutil.move(str(p), directory / p.name)


def pending_files(inbox: Path) -> list[Path]:
    """Batch files waiting in the inbox, oldest sequence first within each stream."""
    if not inbox.is_dir():
        return []
    files = [p for p in inbox.iterdir() if p.name.endswith(".jsonl") and not p.name.startswith(".")]

    def order(p: Path) -> tuple:
        try:
            stream, source, seq, _ = parse_batch_filename(p.name)
            return (0, stream, source, seq)
        except ValueError:
            return (1, p.name, "", 0)

    return sorted(files, key=order)


def import_file(
    path: Path,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler],
    transaction: Callable[[], AbstractContextManager[Session]],
    on_quarantine: Callable[[str, list[str]], None] | None = None,
) -> ImportOutcome:
    """Import one batch exactly once, or quarantine it; never half-imports."""
    outcome = ImportOutcome(path.name, "imported")
    try:
        with transaction() as session:
            if not ledger.try_lock_file(session, path.name) or not path.exists():
                outcome.status = "skipped"  # another worker has it, or already finished it
                return outcome
            _import_verified(session, path, batch_model, inbound, handlers, outcome)
    except BatchRejected as exc:
        outcome.status, outcome.reasons = "quarantined", list(exc.reasons)
    if outcome.status == "quarantined":
        if path.exists() or path.is_symlink():
            quarantine(path, inbound.quarantine, outcome.reasons)
        if on_quarantine:
            on_quarantine(path.name, outcome.reasons)
        log.warning("quarantined %s: %s", path.name, "; ".join(outcome.reasons))
    else:
        _move(path, inbound.processed)
        log.info("%s %s (%d records)", outcome.status, path.name, outcome.records)
    return outcome


def _import_verified(
    session: Session,
    path: Path,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler],
    outcome: ImportOutcome,
) -> None:
    reader = open_batch(
        path,
        expected_destination=inbound.network_id,
        public_keys=inbound.public_keys,
        limits=inbound.limits,
        validate_record=validate_record,
    )
    header = reader.header
    outcome.stream, outcome.seq = header["stream"], header["seq"]
    if header["source"] != inbound.peer:
        raise BatchRejected([f"source {header['source']!r} is not the peer {inbound.peer!r}"], path)
    digest = file_digest(path)
    arrival = ledger.judge_arrival(
        session,
        batch_model,
        batch_id=header["batch_id"],
        stream=header["stream"],
        source=header["source"],
        seq=header["seq"],
        digest=digest,
        prev_digest=header["prev_digest"],
    )
    if arrival.verdict == "duplicate":
        outcome.status, outcome.reasons = "duplicate", [arrival.reason]
        for _ in reader.records():  # still verify the whole file before calling it a duplicate
            pass
        return
    if arrival.verdict == "fork":
        raise BatchRejected([arrival.reason], path)
    if arrival.gap_from is not None:
        outcome.reasons.append(f"gap: seq {arrival.gap_from}..{header['seq'] - 1} not yet seen")
    batch = batch_model(
        id=header["batch_id"],
        direction=ledger.IN,
        stream=header["stream"],
        source=header["source"],
        destination=header["destination"],
        seq=header["seq"],
        digest=digest,
        prev_digest=header["prev_digest"],
        filename=path.name,
        record_count=0,
        bytes=path.stat().st_size,
    )
    session.add(batch)
    session.flush()
    count = 0
    for rec in reader.records():
        if rec.type == "ack":
            ledger.apply_ack(
                session, batch_model, AckData.model_validate(rec.data), source=inbound.network_id
            )
            continue
        handler = handlers.get(rec.type)
        if handler is None:
            raise BatchRejected([f"record {rec.id}: no handler for type {rec.type!r} here"], path)
        try:
            handler(session, rec, header["batch_id"])
        except ValueError as exc:
            raise BatchRejected([f"record {rec.type} {rec.id}: {exc}"], path) from exc
        count += 1
    batch.record_count = count
    outcome.records = count
    session.flush()


def import_inbox(
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler],
    transaction: Callable[[], AbstractContextManager[Session]],
    on_quarantine: Callable[[str, list[str]], None] | None = None,
) -> list[ImportOutcome]:
    return [
        import_file(p, batch_model, inbound, handlers, transaction, on_quarantine)
        for p in pending_files(inbound.inbox)
    ]
