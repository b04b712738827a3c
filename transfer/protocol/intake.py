"""Importing batches from the inbox: exactly once, in one transaction, or quarantined.

Order of judgement for one file (DESIGN.md §3):

1. the same bytes as a batch already imported (same batch_id, same digest) → duplicate:
   nothing changes but `redelivered_at`, so the next outgoing batch acks it again; a
   byte-identical copy is known good, so it is a duplicate even past its `not_after`;
2. the reader's checks (name, format, signature, digest, schema, limits, destination,
   `not_after`) → any failure quarantines it (`stale` when staleness is the only one);
3. the ledger (`transfer.protocol.ledger.judge_arrival`) → replay or fork quarantines it, with an
   alarm (error log line and an audit row); anything else imports, reporting a gap or a
   late fill;
4. the records are applied and the batch row (sequence state) is written in the same
   transaction; the successor's chain link is checked once the digest is known.

Record handlers come in two kinds: a plain function called once per record, or a
:class:`BulkHandler` given the records in chunks (one bulk statement per chunk instead of a
lookup and an insert per record). Either way every record lands in the one transaction.

A quarantined file is recorded in the network's `RejectedBatch` table (if its name says
which batch it is) so that the acks tell the sender, and in the audit log.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session
from structlog.contextvars import bound_contextvars

from shared import audit
from shared.db import utcnow
from shared.metrics import BATCHES
from shared.records import AckData, validate_record
from transfer.format import BatchRejected, Record, file_digest, open_batch, parse_batch_filename
from transfer.format.spec import Limits
from transfer.protocol import acks, bulk, ledger
from transfer.protocol.behind import write_behind
from transfer.protocol.quarantine import quarantine
from transfer.protocol.tables import audit_model_for, rejection_model_for

log = logging.getLogger("ferry.transfer")

STALE, INVALID = "stale", "invalid"

RecordHandler = Callable[[Session, Record, str], None]  # (session, record, batch_id)


@dataclass(frozen=True)
class BulkHandler:
    """Applies records of one type a chunk at a time: ``apply(session, records, batch_id)``.

    Records that follow each other with the same id (the parts of a split result) always
    reach one call together. Raise :class:`RecordRefused` to refuse the batch. ``apply`` may
    return how many of the chunk's records report a failure (a failed result): the batch's
    `error_count` is their sum.
    """

    apply: Callable[[Session, list[Record], str], int | None]
    chunk: int = 5_000


class RecordRefused(ValueError):
    """One record cannot be applied; the whole batch is quarantined, naming it."""

    def __init__(self, record: Record, problem: str) -> None:
        super().__init__(problem)
        self.record = record
        self.problem = problem


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
    clock: Callable[[], datetime] | None = None  # "now" for not_after checks (default: real)


#: Runs in the transaction that records a quarantine (or imports a batch after a gap):
#: (session, file name, outcome).
OnQuarantine = Callable[[Session, str, "ImportOutcome"], None]


@dataclass
class ImportOutcome:
    file: str
    status: str  # "imported", "duplicate", "quarantined", "skipped"
    stream: str = ""
    seq: int | None = None
    records: int = 0
    errors: int = 0  # records that report a failure (BulkHandler)
    reasons: list[str] = field(default_factory=list)
    rule: str = ""  # next, gap, late_fill, duplicate, fork, stale, invalid


class ArrivalRefused(BatchRejected):
    """The ledger refuses a batch that verified (replay or fork)."""

    def __init__(self, reasons: list[str], path: Path) -> None:
        super().__init__(reasons, path)
        self.verdict = ledger.FORK


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


def _verdict(exc: BatchRejected) -> str:
    if isinstance(exc, ArrivalRefused):
        return exc.verdict
    if exc.reasons and all(r.startswith("stale:") for r in exc.reasons):
        return STALE
    return INVALID


def import_file(
    path: Path,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler | BulkHandler],
    transaction: Callable[[], AbstractContextManager[Session]],
    on_quarantine: OnQuarantine | None = None,
    on_gap: OnQuarantine | None = None,
) -> ImportOutcome:
    """Import one batch exactly once, or quarantine it; never half-imports. `on_gap` runs
    in the import's transaction when the batch leaves a gap in its stream's sequence. Every
    log line written meanwhile names the batch (`batch_id`, `stream`, from its file name)."""
    with bound_contextvars(**batch_log_context(path.name)):
        return _import_file(
            path, batch_model, inbound, handlers, transaction, on_quarantine, on_gap
        )


def batch_log_context(name: str) -> dict[str, str]:
    """The log fields naming the batch file `name`: `batch_id` and `stream` (none if the
    name does not parse)."""
    try:
        parsed = parse_batch_filename(name)
    except ValueError:
        return {}
    return {"batch_id": parsed.batch_id, "stream": parsed.stream}


def _import_file(
    path: Path,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler | BulkHandler],
    transaction: Callable[[], AbstractContextManager[Session]],
    on_quarantine: OnQuarantine | None,
    on_gap: OnQuarantine | None,
) -> ImportOutcome:
    outcome = ImportOutcome(path.name, "imported")
    try:
        with transaction() as session:
            if not ledger.try_lock_file(session, path.name) or not path.exists():
                outcome.status = "skipped"  # another worker has it, or already finished it
                return outcome
            _import(session, path, batch_model, inbound, handlers, outcome)
            if on_gap is not None and outcome.rule == ledger.GAP:
                on_gap(session, path.name, outcome)
    except BatchRejected as exc:
        outcome.status, outcome.rule = "quarantined", _verdict(exc)
        outcome.reasons = list(exc.reasons)
    if outcome.status == "quarantined":
        if path.exists() or path.is_symlink():
            quarantine(path, inbound.quarantine, outcome.reasons)
        _remember_rejection(path.name, batch_model, transaction, outcome, on_quarantine)
    else:
        _move(path, inbound.processed)
        log.info("%s %s (%d records)", outcome.status, path.name, outcome.records)
    if outcome.status != "skipped":
        BATCHES.labels(outcome.status, outcome.stream or "unknown").inc()
    return outcome


def _remember_rejection(
    name: str,
    batch_model: type,
    transaction: Callable[[], AbstractContextManager[Session]],
    outcome: ImportOutcome,
    on_quarantine: OnQuarantine | None = None,
) -> None:
    """Log, record the rejection (acked back to the sender) and audit it; `on_quarantine`
    runs in the same transaction (e.g. to notify operators)."""
    alarm = outcome.rule == ledger.FORK
    (log.error if alarm else log.warning)(
        "%squarantined %s (%s): %s",
        "ALARM: replay or fork: " if alarm else "",
        name,
        outcome.rule,
        "; ".join(outcome.reasons),
    )
    rejection_model, audit_model = rejection_model_for(batch_model), audit_model_for(batch_model)
    try:
        parsed = parse_batch_filename(name)
    except ValueError:
        parsed = None
    if parsed is not None and not outcome.stream:  # refused before its header was read
        outcome.stream, outcome.seq = parsed.stream, parsed.seq
    with transaction() as session:
        if rejection_model is not None and parsed is not None:
            acks.record_rejection(
                session,
                rejection_model,
                name=parsed,
                filename=name,
                verdict=outcome.rule,
                reasons=outcome.reasons,
            )
        if on_quarantine is not None:
            on_quarantine(session, name, outcome)
        if audit_model is None:
            return
        detail = {"reasons": outcome.reasons, "verdict": outcome.rule}
        audit.record(
            session,
            audit_model,
            actor="system",
            action="batch.quarantined",
            target=name[:255],
            detail=detail,
        )
        if alarm:
            audit.record(
                session,
                audit_model,
                actor="system",
                action="batch.replay_or_fork",
                target=name[:255],
                detail=detail,
            )


def _duplicate(session: Session, path: Path, batch_model: type, outcome: ImportOutcome) -> bool:
    """True (and the outcome filled in) if `path` holds exactly a batch already imported."""
    try:
        name = parse_batch_filename(path.name)
    except ValueError:
        return False
    ledger.lock_incoming(session, stream=name.stream, source=name.source)
    held = session.get(batch_model, name.batch_id)
    if held is None or held.direction != ledger.IN or held.filename != path.name:
        return False
    if not path.is_file() or path.is_symlink() or file_digest(path) != held.digest:
        return False
    held.redelivered_at = utcnow()
    session.flush()
    outcome.status, outcome.rule = "duplicate", ledger.DUPLICATE
    outcome.stream, outcome.seq = held.stream, held.seq
    outcome.reasons = [f"{held.stream} seq {held.seq} was already imported; acked again"]
    return True


def _import(
    session: Session,
    path: Path,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler | BulkHandler],
    outcome: ImportOutcome,
) -> None:
    if _duplicate(session, path, batch_model, outcome):
        return
    started = time.perf_counter()
    reader = open_batch(
        path,
        expected_destination=inbound.network_id,
        public_keys=inbound.public_keys,
        limits=inbound.limits,
        now=inbound.clock() if inbound.clock else None,
        validate_record=validate_record,
    )
    header = reader.header
    stream, source, seq = header["stream"], header["source"], header["seq"]
    outcome.stream, outcome.seq = stream, seq
    if source != inbound.peer:
        reader.close()
        raise BatchRejected([f"source {source!r} is not the peer {inbound.peer!r}"], path)
    arrival = ledger.judge_arrival(
        session,
        batch_model,
        batch_id=header["batch_id"],
        stream=stream,
        source=source,
        seq=seq,
        prev_digest=header["prev_digest"],
    )
    if not arrival.imports:
        reasons = [arrival.reason]
        try:  # a fork is still read to the end, so every other problem is reported too
            for _ in reader.records():
                pass
        except BatchRejected as exc:
            reasons += exc.reasons
        raise ArrivalRefused(reasons, path)
    outcome.rule = arrival.verdict
    if arrival.reason:
        outcome.reasons.append(arrival.reason)
    batch = batch_model(
        id=header["batch_id"],
        direction=ledger.IN,
        stream=stream,
        source=source,
        destination=header["destination"],
        seq=seq,
        digest="",  # known once every line has been read, set below
        prev_digest=header["prev_digest"],
        filename=path.name,
        record_count=0,
        bytes=path.stat().st_size,
        producer=str(header.get("producer", ""))[:64] or None,
        key_id=str(header.get("key_id", ""))[:32] or None,
    )
    session.add(batch)
    session.flush()
    counts: Counter[str] = Counter()
    # One chunk's statement runs while the next is read; no cycle collection meanwhile.
    with bulk.collector_paused(), write_behind(session):
        outcome.records = _apply_records(
            session, reader, batch_model, inbound, handlers, outcome, counts
        )
    batch.digest = reader.digest
    batch.record_count = outcome.records
    batch.error_count = outcome.errors
    batch.counts_by_type = dict(counts)
    batch.processing_ms = round((time.perf_counter() - started) * 1000)
    broken = ledger.check_successor(
        session, batch_model, stream=stream, source=source, seq=seq, digest=batch.digest
    )
    if broken:
        raise ArrivalRefused([broken], path)
    session.flush()


def _apply_records(
    session: Session,
    reader,
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler | BulkHandler],
    outcome: ImportOutcome,
    counts: Counter[str],
) -> int:
    """Apply every record (acks at once, bulk types in chunks); the count of data records."""
    batch_id = reader.header["batch_id"]
    pending: dict[str, list[Record]] = {}  # per bulk type, the chunk being gathered
    count = 0
    for rec in reader.records():
        counts[rec.type] += 1
        if rec.type == "ack":
            applied = acks.apply_ack(
                session, batch_model, AckData.model_validate(rec.data), source=inbound.network_id
            )
            if applied.beyond is not None:
                outcome.reasons.append(
                    f"alarm: the peer acks {applied.stream} through seq {applied.beyond}, "
                    "beyond what this network sent"
                )
            continue
        handler = handlers.get(rec.type)
        if handler is None:
            problem = f"record {rec.id}: no handler for type {rec.type!r} here"
            raise BatchRejected([problem], reader.path)
        count += 1
        if isinstance(handler, BulkHandler):
            chunk = pending.setdefault(rec.type, [])
            if len(chunk) >= handler.chunk and chunk[-1].id != rec.id:
                outcome.errors += _apply_chunk(session, handler, chunk, batch_id, reader.path)
                chunk = pending[rec.type] = []
            chunk.append(rec)
            continue
        try:
            handler(session, rec, batch_id)
        except ValueError as exc:
            raise BatchRejected([f"record {rec.type} {rec.id}: {exc}"], reader.path) from exc
    for record_type, chunk in pending.items():
        outcome.errors += _apply_chunk(session, handlers[record_type], chunk, batch_id, reader.path)
    return count


def _apply_chunk(
    session: Session, handler: BulkHandler, chunk: list[Record], batch_id: str, path: Path
) -> int:
    try:
        return handler.apply(session, chunk, batch_id) or 0
    except RecordRefused as exc:
        rec = exc.record
        raise BatchRejected([f"record {rec.type} {rec.id}: {exc.problem}"], path) from exc
    except ValueError as exc:
        raise BatchRejected([f"records {chunk[0].type}: {exc}"], path) from exc


def import_inbox(
    batch_model: type,
    inbound: Inbound,
    handlers: Mapping[str, RecordHandler | BulkHandler],
    transaction: Callable[[], AbstractContextManager[Session]],
    on_quarantine: OnQuarantine | None = None,
    *,
    streams: Collection[str] | None = None,
    other_streams: Collection[str] = (),
    on_gap: OnQuarantine | None = None,
) -> list[ImportOutcome]:
    """Import the waiting batches: every one, or only those of `streams`, or every one but
    those of `other_streams` (a file whose name does not parse counts as no stream: only
    an import without `streams` takes it, and quarantines it)."""
    return [
        import_file(p, batch_model, inbound, handlers, transaction, on_quarantine, on_gap)
        for p in pending_files(inbound.inbox)
        if _wanted(p, streams, other_streams)
    ]


def _wanted(path: Path, streams: Collection[str] | None, other: Collection[str]) -> bool:
    try:
        stream = parse_batch_filename(path.name).stream
    except ValueError:
        return streams is None
    return (streams is None or stream in streams) and stream not in other
