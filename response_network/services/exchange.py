"""The response network's side of the gap: import requests, export results.

Both directions stream and work in bulk: arriving requests are queued a chunk at a time with
one `INSERT … ON CONFLICT DO NOTHING` (a replayed request changes nothing); unexported
results are read a page at a time, written straight into batch files (a result too large
for one line in parts, see `response_network.services.result_records`) and marked exported
with one statement per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Text, bindparam, cast, select, true, update
from sqlalchemy.orm import Session

from response_network.models import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Batch,
    Execution,
    GovernedSetting,
    ImportedRequest,
    ProfileType,
    Result,
    User,
)
from response_network.services.governed import refuse_settings
from response_network.services.notifications import ON_GAP, ON_QUARANTINE
from response_network.services.result_records import result_items
from response_network.services.user_changes import apply_user_changes, refuse_users
from shared import correlation
from shared.db import utcnow
from transfer.format import Limits, Record
from transfer.protocol import bulk, reexport
from transfer.protocol.exchange import (
    BulkHandler,
    ExportedBatch,
    ImportOutcome,
    Inbound,
    Outbound,
    export_records,
    import_inbox,
)

__all__ = [
    "HANDLERS",
    "ResultExport",
    "apply_requests",
    "export_results",
    "import_requests",
    "reexport_unacked",
]

PAGE = 1_000  # results read per round trip (their hits make them larger than requests)


def apply_requests(session: Session, records: list[Record], batch_id: str) -> None:
    """Queue each request once; a replayed record changes nothing.

    A record's version is the request network's sending of the request: a higher one than
    stored is a retry, queued once more (the same request, its executions and its one
    result); one marked ``cancelled`` stops a request that has not started. First sendings,
    nearly all records, go in with one statement; the others are looked at one by one.
    """
    first = [rec for rec in records if rec.version <= 1 and not rec.data.get("cancelled")]
    _queue_new(session, first, batch_id)
    if len(first) < len(records):
        chosen = {id(rec) for rec in first}
        _apply_later_sendings(session, [r for r in records if id(r) not in chosen], batch_id)
    correlation.log_requests(
        "requests imported",
        [(rec.id, rec.data.get("correlation_id")) for rec in records],
        batch_id=batch_id,
    )


def _queue_new(session: Session, records: list[Record], batch_id: str) -> None:
    if not records:
        return
    now = utcnow()
    data = [rec.data for rec in records]
    ids = [rec.id for rec in records]
    columns = {
        "id": ids,
        "user_id": [d["user_id"] for d in data],
        "profile_type": [d["profile_type"] for d in data],
        "query": [d["query"] for d in data],
        "submitted_at": [d["submitted_at"] for d in data],  # RFC 3339, checked by the reader
        "correlation_id": [d.get("correlation_id") for d in data],
        "traceparent": [d.get("traceparent") for d in data],
    }
    same = {
        "status": QUEUED,
        "attempt": 1,
        "batch_id": batch_id,
        "imported_at": now,
        "updated_at": now,
    }
    bulk.insert_new(
        session, ImportedRequest.__table__, columns, key="id", same=same, returning=False
    )
    bulk.expire_loaded(session, ImportedRequest, ids)


def _last_word(records: list[Record]) -> dict[str, Record]:
    """Per request, the record that decides: the latest sending, its cancellation over it."""
    latest: dict[str, Record] = {}
    for rec in records:
        held = latest.get(rec.id)
        rank = (rec.version, bool(rec.data.get("cancelled")))
        if held is None or rank >= (held.version, bool(held.data.get("cancelled"))):
            latest[rec.id] = rec
    return latest


def _apply_later_sendings(session: Session, records: list[Record], batch_id: str) -> None:
    """Retries and cancellations. A sending older than the stored one changes nothing; a
    cancellation of the stored sending stops it only while it is QUEUED (a running or
    finished one is too late: its answer goes back and the request network discards it);
    a newer sending replaces the stored one, cancelled or queued, and a run of the older
    one still in progress is closed as superseded (its outcome is not recorded)."""
    now = utcnow()
    latest = _last_word(records)
    stored = {
        req.id: req
        for req in session.scalars(
            select(ImportedRequest).where(ImportedRequest.id.in_(list(latest))).with_for_update()
        )
    }
    superseded: list[str] = []
    for rid, rec in latest.items():
        cancelled = bool(rec.data.get("cancelled"))
        req = stored.get(rid)
        if req is None:
            d = rec.data
            req = ImportedRequest(
                id=rid,
                user_id=d["user_id"],
                profile_type=d["profile_type"],
                query=d["query"],
                submitted_at=datetime.fromisoformat(d["submitted_at"]),  # RFC 3339, checked
                attempt=rec.version,
                batch_id=batch_id,
                imported_at=now,
                correlation_id=d.get("correlation_id"),
                traceparent=d.get("traceparent"),
            )
            session.add(req)
        elif rec.version < req.attempt:
            continue
        elif rec.version == req.attempt:
            if not (cancelled and req.status == QUEUED):
                continue  # a replay, or a cancellation too late to stop it
        else:
            if req.status == RUNNING:
                superseded.append(rid)
            req.attempt, req.batch_id = rec.version, batch_id
            req.correlation_id = rec.data.get("correlation_id", req.correlation_id)
            req.traceparent = rec.data.get("traceparent", req.traceparent)
        req.status, req.updated_at = (CANCELLED if cancelled else QUEUED), now
    if superseded:
        session.execute(
            update(Execution)
            .where(Execution.request_id.in_(superseded), Execution.status == RUNNING)
            .values(status=FAILED, finished_at=now, error="superseded by a later sending")
        )
    session.flush()


# `apply_requests` keeps the session positional: `transfer.protocol.intake.BulkHandler` calls it as
# ``apply(session, records, batch_id)``.
# A `setting` from the request network is refused with a reason (this network is their
# authority): the batch is quarantined.
HANDLERS = {
    "request": BulkHandler(apply_requests),
    "user_change": BulkHandler(apply_user_changes),
    "setting": BulkHandler(refuse_settings),
    "user": BulkHandler(refuse_users),
}


def import_requests(
    inbound: Inbound, transaction: Callable[[], AbstractContextManager[Session]]
) -> list[ImportOutcome]:
    """Import every waiting batch; quarantines are audited and acked back by the exchange."""
    return import_inbox(Batch, inbound, HANDLERS, transaction, ON_QUARANTINE, on_gap=ON_GAP)


@dataclass(frozen=True)
class ResultExport:
    batches: list[ExportedBatch]

    @property
    def results(self) -> int:
        return sum(b.carried for b in self.batches)


def export_results(
    out: Outbound, *, session: Session, limit: int | None = None, keep_ids: bool = True
) -> ResultExport:
    """Unexported results (up to ``limit``, oldest first) → signed batches; the caller commits.

    Rows are read once the stream's lock is held, so no other export takes them. Each
    batch's results are marked exported in bulk right after its file is written; on
    PostgreSQL the rows are not locked as they are read (that alone writes every row), and
    the marking skips a result the executor has written again since it was read (its
    `executed_at` differs): that newer result goes with a later export.
    """

    # The correlation id and execution time of each result read and not yet logged as
    # exported. A batch's last result stays: its parts may go on in the next batch, which
    # names it first.
    read: dict[str, tuple[str | None, datetime]] = {}
    failed: set[str] = set()  # read results that report a failed query, not yet counted

    def on_batch(batch: ExportedBatch, ids: list[str]) -> None:
        named = [(rid, *read.pop(rid)) for rid in ids[:-1]]
        named += [(rid, *read[rid]) for rid in ids[-1:]]
        _mark_exported(session, named, batch.batch_id)
        errors = failed.intersection(ids)
        if errors:
            failed.difference_update(errors)
            session.execute(
                update(Batch).where(Batch.id == batch.batch_id).values(error_count=len(errors))
            )
        bulk.expire_loaded(session, Result, ids)
        correlation.log_requests(
            f"answers exported in {batch.path.name}", [(rid, cid) for rid, cid, _ in named]
        )

    def noted(rows: Iterator[tuple]) -> Iterator[tuple]:
        for row in rows:
            read[row[0]] = (row[8], row[5])
            if row[1] != DONE:
                failed.add(row[0])
            yield row

    def records(room: Limits):
        return result_items(noted(_unexported_rows(limit, session=session)), room)

    batches = export_records(
        session,
        Batch,
        out,
        stream="results",
        records=records,
        on_batch=on_batch,
        keep_ids=keep_ids,
    )
    return ResultExport(batches)


_COLUMNS = (
    Result.request_id,
    Result.status,
    Result.total,
    cast(Result.hits, Text),  # decoded by orjson, faster than the driver's json
    Result.error,
    Result.executed_at,
    Result.took_ms,
    Result.attempt,
    Result.correlation_id,
    Result.traceparent,
)


def _unexported_rows(limit: int | None, *, session: Session) -> Iterator[tuple]:
    """Unexported results, oldest first, a page at a time (in the order of their partial
    index, `ix_results_unexported`: no sort)."""
    base = select(*_COLUMNS).where(Result.batch_id.is_(None))
    order = (Result.executed_at, Result.request_id)
    return bulk.stream_rows(session, base, order, limit=limit, page=PAGE, lock=False)


def _mark_exported(
    session: Session, read: list[tuple[str, str | None, datetime]], batch_id: str
) -> None:
    """Results ``read`` (id, correlation id, execution time as read) went out in `batch_id`;
    one that has been executed again since keeps waiting for an export of its own."""
    if not read:
        return
    ids = [rid for rid, _, _ in read]
    if bulk.is_postgres(session):
        query = (
            "UPDATE results r SET batch_id = %b"
            " FROM unnest(%b::text[], %b::timestamptz[]) AS u(request_id, executed_at)"
            " WHERE r.request_id = u.request_id AND r.executed_at = u.executed_at"
        )
        bulk.pg_execute(session, query, [batch_id, ids, [at for _, _, at in read]], defer=True)
        return
    table = Result.__table__
    stmt = (
        update(table)
        .where(table.c.request_id == bindparam("r_id"))
        .where(table.c.executed_at == bindparam("r_at"))
        .values(batch_id=batch_id)
    )
    session.execute(stmt, [{"r_id": rid, "r_at": at} for rid, _, at in read])


# What to send again for each stream: the model, its key column, and the change that makes
# the next export carry a row again.
_AGAIN = {
    "results": (Result, Result.request_id, {"batch_id": None}),
    "users": (User, User.id, {"exported_version": 0}),
    "profile_types": (ProfileType, ProfileType.name, {"exported_version": 0}),
    "settings": (GovernedSetting, GovernedSetting.key, {"exported_version": 0}),
}


def reexport_unacked(
    *, session: Session, source: str, outbox: Path, older_than: timedelta
) -> list[dict]:
    """The records of every batch unacknowledged past `older_than` go out again with the
    next export; each such batch is marked re-exported. The records are those named in the
    batch's kept copy; without an intact copy, results that name the batch, or every user,
    profile type or setting (they are upserts by version, so sending one again is harmless)."""
    done = []
    for batch in reexport.due(session, Batch, source=source, older_than=older_than):
        model, key, again = _AGAIN[batch.stream]
        ids = reexport.carried_ids(outbox, batch)
        found_in = "kept copy"
        if ids is not None:
            chunks = [key.in_(chunk) for chunk in bulk.chunked(ids, 500)]
        elif batch.stream == "results":
            chunks, found_in = [Result.batch_id == batch.id], "database"
        else:
            chunks, found_in = [true()], "database"
        records = 0
        for where in chunks:
            records += session.execute(update(model).where(where).values(**again)).rowcount
        reexport.mark_reexported(session, batch, records=records, found_in=found_in)
        done.append({"file": batch.filename, "records": records, "found_in": found_in})
    return done
