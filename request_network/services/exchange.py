"""The request network's side of the gap: export pending requests, import results and identity.

Both directions are streaming and bulk: the outbox (`OutboxEntry`, one row per request
waiting) is read a page at a time and written straight into batch files; each batch then
moves its requests from the outbox to `RequestExport` in one statement, without rewriting
the request rows. Arriving records are applied in chunks (see
`request_network.services.arrivals`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import Text, cast, delete, exists, insert, literal, select, update
from sqlalchemy.orm import Session, joinedload

from request_network.models import (
    CANCELLED,
    PENDING,
    Batch,
    OutboxEntry,
    Request,
    RequestEvent,
    RequestExport,
    User,
    UserChange,
)
from request_network.services.arrivals import HANDLERS
from request_network.services.notifications import ON_GAP, ON_QUARANTINE
from shared import correlation
from shared.db import utcnow
from transfer.format import Limits, Record
from transfer.format.spec import make_record
from transfer.protocol import bulk, reexport
from transfer.protocol.exchange import (
    ExportedBatch,
    ImportOutcome,
    Inbound,
    Outbound,
    export_records,
    import_inbox,
)

__all__ = [
    "HANDLERS",
    "ExportReport",
    "enqueue",
    "export_requests",
    "export_user_changes",
    "import_batches",
    "mark_exported",
    "requeue",
    "requeue_unacked",
    "withdraw",
]

PAGE = 10_000  # rows read per round trip at most: one default batch


@dataclass(frozen=True)
class ExportReport:
    batches: list[ExportedBatch]

    @property
    def requests(self) -> int:
        return sum(b.carried for b in self.batches)


def export_requests(
    out: Outbound, *, session: Session, limit: int | None = None, keep_ids: bool = True
) -> ExportReport:
    """Outbox entries (up to ``limit``, oldest first) → signed batches; the caller commits.

    Rows are read only once the stream's lock is held and are locked as they are read
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two workers never export one request
    twice. Each batch's requests leave the outbox and become EXPORTED in bulk right after
    its file is written. ``keep_ids=False`` leaves `ExportedBatch.record_ids` empty.
    """
    now = utcnow()

    # Per request read and not yet marked: its outbox seq and its correlation id.
    seq_of: dict[str, tuple[int, str | None]] = {}

    def on_batch(batch: ExportedBatch, ids: list[str]) -> None:
        read = [seq_of.pop(rid) for rid in ids]
        mark_exported(
            ids, [seq for seq, _ in read], session=session, batch_id=batch.batch_id, at=now
        )
        correlation.log_requests(
            f"exported in {batch.path.name}",
            [(rid, cid) for rid, (_, cid) in zip(ids, read, strict=True)],
        )

    def records(room: Limits) -> Iterator[Record]:
        # A page per batch: rows for the next batch are in hand while this one is marked.
        page = max(1, min(room.max_records, PAGE))
        return _pending_records(limit, session=session, page=page, seq_of=seq_of)

    batches = export_records(
        session,
        Batch,
        out,
        stream="requests",
        records=records,
        on_batch=on_batch,
        keep_ids=keep_ids,
    )
    return ExportReport(batches)


_COLUMNS = (
    OutboxEntry.seq,  # the keyset of SQLite's pages
    OutboxEntry.request_id,
    OutboxEntry.user_id,
    OutboxEntry.profile_type,
    cast(OutboxEntry.query, Text),  # decoded by orjson below, faster than the driver's json
    OutboxEntry.submitted_at,
    OutboxEntry.attempt,
    OutboxEntry.cancelled,
    OutboxEntry.correlation_id,
    OutboxEntry.traceparent,
)


def _pending_rows(limit: int | None, page: int, *, session: Session) -> Iterator[tuple]:
    """Outbox rows in the order they were queued, a page at a time (locked on PostgreSQL).
    A disabled user's requests wait: they go out if the user is enabled again."""
    order = (OutboxEntry.seq, OutboxEntry.request_id)
    disabled = exists().where(User.id == OutboxEntry.user_id, User.active.is_(False))
    query = select(*_COLUMNS).where(~disabled)
    return bulk.stream_rows(session, query, order, limit=limit, page=page)


def _pending_records(
    limit: int | None, page: int, seq_of: dict[str, tuple[int, str | None]], *, session: Session
) -> Iterator[Record]:
    """The outbox's records. Fields a request does not have are left out of its record (not
    sent as null): a reader from before them takes such a record as it always did."""
    loads, when = orjson.loads, bulk.wire_time
    rows = _pending_rows(limit, page, session=session)
    for seq, rid, user_id, profile_type, query, submitted_at, attempt, cancelled, cid, tp in rows:
        seq_of[rid] = (seq, cid)
        data = {
            "user_id": user_id,
            "profile_type": profile_type,
            "query": loads(query),
            "submitted_at": when(submitted_at),
        }
        if cancelled:
            data["cancelled"] = True
        if cid is not None:
            data["correlation_id"] = cid
        if tp is not None:
            data["traceparent"] = tp
        yield make_record("request", rid, attempt, data)


def export_user_changes(out: Outbound, *, session: Session) -> list[ExportedBatch]:
    """Users' own changes (`UserChange`) → `user_change` records in the requests stream,
    oldest first; each leaves the table once written. The caller commits."""

    def changes() -> Iterator[Record]:
        rows = session.scalars(
            select(UserChange).order_by(UserChange.seq).with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            data = {
                "base_version": row.base_version,
                "changed_at": bulk.wire_time(row.changed_at),
                **row.data,
            }
            yield make_record("user_change", row.user_id, row.version, data)
            session.delete(row)

    if session.execute(select(UserChange.seq).limit(1)).first() is None:
        return []  # nothing waits: no lock, no batch
    return export_records(session, Batch, out, stream="requests", records=lambda _room: changes())


def enqueue(request: Request, *, session: Session, cancelled: bool = False) -> None:
    """Put a request in the outbox: the next export carries it (its current sending,
    `Request.attempt`), or with ``cancelled`` the news that it is cancelled."""
    session.execute(
        insert(OutboxEntry),
        [
            {
                "request_id": request.id,
                "user_id": request.user_id,
                "profile_type": request.profile_type,
                "query": request.query,
                "submitted_at": request.created_at,
                "attempt": request.attempt or 1,
                "cancelled": cancelled,
                "correlation_id": request.correlation_id,
                "traceparent": request.traceparent,
            }
        ],
    )


def withdraw(ids: list[str], *, session: Session) -> None:
    """Requests `ids` leave the outbox, and the export that carried each (if any) becomes a
    history event: the batch stays on record, and the next sending is recorded afresh."""
    if not ids:
        return
    _exports_to_events(ids, session=session)
    session.execute(delete(RequestExport).where(RequestExport.request_id.in_(ids)))
    session.execute(delete(OutboxEntry).where(OutboxEntry.request_id.in_(ids)))
    bulk.expire_loaded(session, Request, ids)


def _exports_to_events(ids: list[str], *, session: Session) -> None:
    exports = session.execute(
        select(RequestExport, Request.status)
        .join(Request, Request.id == RequestExport.request_id)
        .where(RequestExport.request_id.in_(ids))
        .options(joinedload(RequestExport.batch))
    ).all()
    for export, status in exports:  # the step the request's history showed becomes an event
        step = export.as_history(cancellation=status == CANCELLED)
        session.add(
            RequestEvent(
                request_id=export.request_id, status=step.status, at=step.at, detail=step.detail
            )
        )


def mark_exported(
    ids: list[str], seqs: list[int], *, session: Session, batch_id: str, at: datetime
) -> None:
    """Requests `ids` (outbox entries `seqs`) went out in `batch_id`: out of the outbox,
    EXPORTED. One statement; the outbox rows are found by `seq`, its primary key, in order
    (by request id, the lookups would land all over an index: seconds more per million)."""
    if not ids:
        return
    if bulk.is_postgres(session):
        query = (
            "WITH gone AS (DELETE FROM request_outbox WHERE seq = ANY(%b::bigint[])"
            " RETURNING request_id)"
            " INSERT INTO request_exports (request_id, batch_id, at)"
            " SELECT request_id, %b, %b FROM gone"
            " ON CONFLICT (request_id) DO UPDATE SET batch_id = excluded.batch_id, at = excluded.at"
        )
        bulk.pg_execute(session, query, [seqs, batch_id, at], defer=True)
    else:
        bulk.delete_in(session, OutboxEntry.__table__, "seq", seqs)
        bulk.delete_in(session, RequestExport.__table__, "request_id", ids)
        bulk.insert_rows(
            session,
            RequestExport.__table__,
            {"request_id": ids},
            same={"batch_id": batch_id, "at": at},
        )
    bulk.expire_loaded(session, Request, ids)


def requeue(ids: list[str], *, session: Session, detail: str, at: datetime) -> None:
    """Exported requests `ids` go back to the outbox, to be exported again: a pending one
    as itself, a cancelled one as its cancellation.

    Their export becomes a history event (the batch that carried them stays on record),
    followed by an event in their current state saying why.
    """
    if not ids:
        return
    _exports_to_events(ids, session=session)
    session.execute(delete(RequestExport).where(RequestExport.request_id.in_(ids)))
    waiting = Request.id.in_(ids), Request.status.in_((PENDING, CANCELLED))
    events = select(Request.id, Request.status, literal(at), literal(detail)).where(*waiting)
    session.execute(
        insert(RequestEvent).from_select(["request_id", "status", "at", "detail"], events)
    )
    again = select(
        Request.id,
        Request.user_id,
        Request.profile_type,
        Request.query,
        Request.created_at,
        Request.attempt,
        Request.status == CANCELLED,
        Request.correlation_id,
        Request.traceparent,
    ).where(*waiting)
    again = again.order_by(Request.created_at, Request.id)  # oldest first
    outbox_columns = [
        "request_id",
        "user_id",
        "profile_type",
        "query",
        "submitted_at",
        "attempt",
        "cancelled",
        "correlation_id",
        "traceparent",
    ]
    session.execute(insert(OutboxEntry).from_select(outbox_columns, again))
    session.execute(update(Request).where(Request.id.in_(ids)).values(updated_at=at))
    bulk.expire_loaded(session, Request, ids)


def requeue_unacked(*, session: Session, source: str, older_than: timedelta) -> int:
    """The requests of every batch unacknowledged past `older_than` go back to the outbox
    (those still unanswered, and cancellations); each such batch is marked re-exported.
    Returns how many."""
    requeued = 0
    for batch in reexport.due(session, Batch, source=source, older_than=older_than):
        ids = list(
            session.scalars(
                select(RequestExport.request_id)
                .join(Request, Request.id == RequestExport.request_id)
                .where(
                    RequestExport.batch_id == batch.id,
                    Request.status.in_((PENDING, CANCELLED)),
                )
            )
        )
        detail = f"re-export: {batch.filename} unacknowledged after {older_than}"
        for chunk in bulk.chunked(ids):
            requeue(chunk, session=session, detail=detail, at=utcnow())
        reexport.mark_reexported(session, batch, records=len(ids), found_in="database")
        requeued += len(ids)
    return requeued


def import_batches(
    inbound: Inbound,
    transaction: Callable[[], AbstractContextManager[Session]],
    *,
    streams: Collection[str] | None = None,
    other_streams: Collection[str] = (),
) -> list[ImportOutcome]:
    """Import the waiting batches (all, or those of `streams`, or all but `other_streams`);
    quarantines are audited and acked back by the exchange."""
    return import_inbox(
        Batch,
        inbound,
        HANDLERS,
        transaction,
        ON_QUARANTINE,
        streams=streams,
        other_streams=other_streams,
        on_gap=ON_GAP,
    )
