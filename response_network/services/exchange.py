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
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Text, cast, select, true, update
from sqlalchemy.orm import Session

from response_network.models import QUEUED, Batch, ImportedRequest, ProfileType, Result, User
from response_network.services.result_records import result_items
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
    """Queue each request once; a replayed record changes nothing."""
    now = utcnow()
    data = [rec.data for rec in records]
    ids = [rec.id for rec in records]
    columns = {
        "id": ids,
        "user_id": [d["user_id"] for d in data],
        "profile_type": [d["profile_type"] for d in data],
        "query": [d["query"] for d in data],
        "submitted_at": [d["submitted_at"] for d in data],  # RFC 3339, checked by the reader
    }
    same = {"status": QUEUED, "batch_id": batch_id, "imported_at": now, "updated_at": now}
    bulk.insert_new(
        session, ImportedRequest.__table__, columns, key="id", same=same, returning=False
    )
    bulk.expire_loaded(session, ImportedRequest, ids)


# `apply_requests` keeps the session positional: `transfer.protocol.intake.BulkHandler` calls it as
# ``apply(session, records, batch_id)``.
HANDLERS = {"request": BulkHandler(apply_requests)}


def import_requests(
    inbound: Inbound, transaction: Callable[[], AbstractContextManager[Session]]
) -> list[ImportOutcome]:
    """Import every waiting batch; quarantines are audited and acked back by the exchange."""
    return import_inbox(Batch, inbound, HANDLERS, transaction)


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

    Rows are read once the stream's lock is held and locked as they are read (`FOR UPDATE
    SKIP LOCKED` on PostgreSQL). Each batch's results are marked exported in bulk right
    after its file is written.
    """

    def on_batch(batch: ExportedBatch, ids: list[str]) -> None:
        table = Result.__table__
        bulk.update_in(session, table, "request_id", ids, {"batch_id": batch.batch_id}, defer=True)
        bulk.expire_loaded(session, Result, ids)

    def records(room: Limits):
        return result_items(_unexported_rows(limit, session=session), room)

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
)


def _unexported_rows(limit: int | None, *, session: Session) -> Iterator[tuple]:
    """Unexported results, oldest first, a page at a time (locked on PostgreSQL)."""
    base = select(*_COLUMNS).where(Result.batch_id.is_(None))
    return bulk.stream_rows(
        session, base, (Result.executed_at, Result.request_id), limit=limit, page=PAGE
    )


# What to send again for each stream: the model, its key column, and the change that makes
# the next export carry a row again.
_AGAIN = {
    "results": (Result, Result.request_id, {"batch_id": None}),
    "users": (User, User.id, {"exported_version": 0}),
    "profile_types": (ProfileType, ProfileType.name, {"exported_version": 0}),
}


def reexport_unacked(
    *, session: Session, source: str, outbox: Path, older_than: timedelta
) -> list[dict]:
    """The records of every batch unacknowledged past `older_than` go out again with the
    next export; each such batch is marked re-exported. The records are those named in the
    batch's kept copy; without an intact copy, results that name the batch, or every user
    or profile type (they are upserts by version, so sending one again is harmless)."""
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
