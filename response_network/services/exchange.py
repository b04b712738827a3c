"""The response network's side of the gap: import requests, export results."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from response_network.models import QUEUED, Batch, ImportedRequest, Result
from shared.db import utcnow
from shared.records import RequestData, ResultData
from transfer.exchange import (
    ExportedBatch,
    ImportOutcome,
    Inbound,
    Outbound,
    export_records,
    import_inbox,
)
from transfer.format import Record


def apply_request(session: Session, rec: Record, batch_id: str) -> None:
    """Queue a request once; a replayed record changes nothing."""
    data = RequestData.model_validate(rec.data)
    if session.get(ImportedRequest, rec.id) is not None:
        return
    session.add(
        ImportedRequest(
            id=rec.id,
            user_id=data.user_id,
            profile_type=data.profile_type,
            query=data.query,
            submitted_at=data.submitted_at,
            status=QUEUED,
            batch_id=batch_id,
            imported_at=utcnow(),
        )
    )
    session.flush()


HANDLERS = {"request": apply_request}


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
        return sum(len(b.record_ids) for b in self.batches)


def export_results(session: Session, out: Outbound, *, limit: int = 10_000) -> ResultExport:
    stmt = select(Result).where(Result.batch_id.is_(None)).order_by(Result.executed_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    results = session.execute(stmt).scalars().all()
    if not results:
        return ResultExport([])
    records = (
        Record(
            type="result",
            id=r.request_id,
            version=1,
            data=ResultData(
                status=r.status,
                total=r.total,
                hits=r.hits,
                error=r.error,
                executed_at=r.executed_at,
                took_ms=r.took_ms,
            ).model_dump(mode="json"),
        )
        for r in results
    )
    batches = export_records(session, Batch, out, stream="results", records=records)
    by_id = {r.request_id: r for r in results}
    for batch in batches:
        for rid in batch.record_ids:
            by_id[rid].batch_id = batch.batch_id
    session.flush()
    return ResultExport(batches)
