"""The request network's side of the gap: export pending requests, import results and identity.

Both directions are streaming and bulk: pending requests are read from the database a page
at a time, written straight into batch files and marked exported one bulk statement per
batch; arriving records are applied in chunks (see `request_network.services.arrivals`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import orjson
from psycopg import sql
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from request_network.models import EXPORTED, PENDING, Batch, Request, RequestEvent
from request_network.services.arrivals import HANDLERS
from shared.db import utcnow
from transfer import bulk
from transfer.exchange import (
    ExportedBatch,
    ImportOutcome,
    Inbound,
    Outbound,
    export_records,
    import_inbox,
)
from transfer.format import Limits, Record
from transfer.spec import make_record

__all__ = [
    "HANDLERS",
    "ExportReport",
    "export_requests",
    "import_batches",
    "mark_exported",
    "set_statuses",
]

PAGE = 10_000  # rows read per round trip at most: one default batch


@dataclass(frozen=True)
class ExportReport:
    batches: list[ExportedBatch]

    @property
    def requests(self) -> int:
        return sum(b.carried for b in self.batches)


def export_requests(
    session: Session, out: Outbound, *, limit: int | None = None, keep_ids: bool = True
) -> ExportReport:
    """Pending requests (up to ``limit``, oldest first) → signed batches; the caller commits.

    Rows are read only once the stream's lock is held and are locked as they are read
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two workers never export one request
    twice. Each batch's requests become EXPORTED, with their history event, in bulk right
    after its file is written. ``keep_ids=False`` leaves `ExportedBatch.record_ids` empty.
    """
    now = utcnow()

    def on_batch(batch: ExportedBatch, ids: list[str]) -> None:
        mark_exported(session, ids, batch_id=batch.batch_id, detail=f"in {batch.path.name}", at=now)

    def records(room: Limits) -> Iterator[Record]:
        # A page per batch: rows for the next batch are in hand while this one is marked.
        return _pending_records(session, limit, page=max(1, min(room.max_records, PAGE)))

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
    Request.id,
    Request.user_id,
    Request.profile_type,
    cast(Request.query, Text),  # decoded by orjson below, faster than the driver's json
    Request.created_at,
)


def _pending_rows(session: Session, limit: int | None, page: int) -> Iterator[tuple]:
    """Pending rows, oldest first, read a page at a time (locked on PostgreSQL)."""
    base = select(*_COLUMNS).where(Request.status == PENDING)
    return bulk.stream_rows(session, base, (Request.created_at, Request.id), limit=limit, page=page)


def _pending_records(session: Session, limit: int | None, page: int) -> Iterator[Record]:
    loads, when = orjson.loads, bulk.wire_time
    for rid, user_id, profile_type, query, created_at in _pending_rows(session, limit, page):
        data = {
            "user_id": user_id,
            "profile_type": profile_type,
            "query": loads(query),
            "submitted_at": when(created_at),
        }
        yield make_record("request", rid, 1, data)


def mark_exported(
    session: Session, ids: list[str], *, batch_id: str, detail: str, at: datetime
) -> None:
    """Requests `ids` went out in `batch_id`: EXPORTED, with a history event each."""
    set_statuses(session, ids, EXPORTED, detail=detail, at=at, batch_id=batch_id)


def set_statuses(
    session: Session,
    ids: list[str],
    status: str,
    *,
    detail: str,
    at: datetime,
    batch_id: str | None = None,
) -> None:
    """`set_status` for many requests at once (one or two statements), and `batch_id` if given."""
    if not ids:
        return
    values: dict[str, object] = {"status": status, "updated_at": at}
    if batch_id is not None:
        values["batch_id"] = batch_id
    if bulk.is_postgres(session):
        query = sql.SQL(
            "WITH moved AS (UPDATE requests SET {sets} WHERE id = ANY(%b::text[]) RETURNING id) "
            "INSERT INTO request_events (request_id, status, at, detail) "
            "SELECT id, %b, %b, %b FROM moved"
        ).format(sets=bulk.pg_assignments(values))
        bulk.pg_execute(session, query, [*values.values(), ids, status, at, detail], defer=True)
    else:
        bulk.update_in(session, Request.__table__, "id", ids, values)
        bulk.insert_rows(
            session,
            RequestEvent.__table__,
            {"request_id": ids},
            same={"status": status, "at": at, "detail": detail},
        )
    bulk.expire_loaded(session, Request, ids)


def import_batches(
    inbound: Inbound, transaction: Callable[[], AbstractContextManager[Session]]
) -> list[ImportOutcome]:
    """Import every waiting batch; quarantines are audited and acked back by the exchange."""
    return import_inbox(Batch, inbound, HANDLERS, transaction)
