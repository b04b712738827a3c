"""The request network's side of the gap: export pending requests, import results and identity."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import (
    COMPLETED,
    EXPORTED,
    FAILED,
    PENDING,
    Batch,
    Request,
    Response,
)
from request_network.services.identity import apply_profile_type, apply_user
from request_network.services.requests import set_status
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


@dataclass(frozen=True)
class ExportReport:
    batches: list[ExportedBatch]

    @property
    def requests(self) -> int:
        return sum(len(b.record_ids) for b in self.batches)


def export_requests(session: Session, out: Outbound, *, limit: int = 10_000) -> ExportReport:
    """Pending requests → signed batches; locked rows mean two workers never export one twice."""
    stmt = (
        select(Request)
        .where(Request.status == PENDING)
        .order_by(Request.created_at, Request.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    pending = session.execute(stmt).scalars().all()
    if not pending:
        return ExportReport([])
    records = (
        Record(
            type="request",
            id=r.id,
            version=1,
            data=RequestData(
                user_id=r.user_id,
                profile_type=r.profile_type,
                query=r.query,
                submitted_at=r.created_at,
            ).model_dump(mode="json"),
        )
        for r in pending
    )
    batches = export_records(session, Batch, out, stream="requests", records=records)
    by_id = {r.id: r for r in pending}
    for batch in batches:
        for rid in batch.record_ids:
            request = by_id[rid]
            request.batch_id = batch.batch_id
            set_status(session, request, EXPORTED, f"in {batch.path.name}")
    session.flush()
    return ExportReport(batches)


def apply_result(session: Session, rec: Record, batch_id: str) -> None:
    data = ResultData.model_validate(rec.data)
    request = session.get(Request, rec.id)
    if request is None:
        raise ValueError("result for a request this network never sent")
    if session.get(Response, rec.id) is not None:
        return  # already have it: upserts keyed by id make replays harmless
    session.add(
        Response(
            request_id=rec.id,
            status=data.status,
            total=data.total,
            hits=data.hits,
            error=data.error,
            executed_at=data.executed_at,
            took_ms=data.took_ms,
            batch_id=batch_id,
        )
    )
    final = COMPLETED if data.status == "DONE" else FAILED
    set_status(session, request, final, data.error or "")
    session.flush()


HANDLERS = {"result": apply_result, "user": apply_user, "profile_type": apply_profile_type}


def import_batches(
    inbound: Inbound, transaction: Callable[[], AbstractContextManager[Session]]
) -> list[ImportOutcome]:
    """Import every waiting batch; quarantines are audited and acked back by the exchange."""
    return import_inbox(Batch, inbound, HANDLERS, transaction)
