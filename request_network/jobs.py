"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from request_network.models import PENDING, Batch, Request, RequestExport
from request_network.services.exchange import export_requests, import_batches, requeue
from request_network.settings import RequestSettings
from shared.db import transaction, utcnow
from transfer import bulk, upkeep
from transfer.config import inbound_from, outbound_from
from transfer.exchange import export_acks_if_due
from transfer.status import TransferStatus


def export(settings: RequestSettings) -> dict:
    """Pending requests to the outbox; an `acks` batch if nothing else carries due acks."""
    out = outbound_from(settings)
    with transaction(settings.database_url) as session:
        report = export_requests(session, out, keep_ids=False)
        acks = export_acks_if_due(session, Batch, out)
    return {
        "requests": report.requests,
        "batches": [
            {
                "file": str(b.path),
                "stream": b.stream,
                "seq": b.seq,
                "sha256": b.digest,
                "records": b.count,
            }
            for b in [*report.batches, *acks]
        ],
    }


def import_inbox(settings: RequestSettings) -> dict:
    """Import the inbox, then retire the kept batches the peer has now acknowledged."""
    outcomes = import_batches(inbound_from(settings), partial(transaction, settings.database_url))
    retired = upkeep.retire_acked(settings, Batch)
    return {"files": [asdict(o) for o in outcomes], "retired": retired}


def transfer_status(settings: RequestSettings) -> TransferStatus:
    return upkeep.status(settings, Batch)


def resend(
    settings: RequestSettings,
    *,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
) -> dict:
    return upkeep.resend(settings, Batch, stream=stream, seq=seq, batch_id=batch_id)


def flag_unacked(settings: RequestSettings) -> dict:
    return upkeep.flag_unacked(settings, Batch)


@dataclass(frozen=True)
class StaleReport:
    requeued: int


def requeue_unacked(settings: RequestSettings, *, older_than: timedelta) -> dict:
    """Requests in transit whose batch was never acknowledged are exported again.

    The response network imports a request id once, so a second copy is harmless.
    """
    cutoff = utcnow() - older_than
    with transaction(settings.database_url) as session:
        stmt = (
            select(RequestExport.request_id)
            .join(Batch, RequestExport.batch_id == Batch.id)
            .join(Request, Request.id == RequestExport.request_id)
            .where(Request.status == PENDING)
            .where(Batch.acked_at.is_(None), Batch.created_at < cutoff)
        )
        if bulk.is_postgres(session):
            stmt = stmt.with_for_update(of=RequestExport, skip_locked=True)
        ids = list(session.execute(stmt).scalars())
        now = utcnow()
        detail = f"re-export: batch unacknowledged after {older_than}"
        for chunk in bulk.chunked(ids):
            requeue(session, chunk, detail=detail, at=now)
        requeued = len(ids)
    return asdict(StaleReport(requeued))
