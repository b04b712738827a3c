"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from request_network.models import EXPORTED, PENDING, Batch, Request
from request_network.services.exchange import export_requests, import_batches
from request_network.services.requests import set_status
from request_network.settings import RequestSettings
from shared.db import transaction, utcnow
from transfer.config import inbound_from, outbound_from


def export(settings: RequestSettings) -> dict:
    with transaction(settings.database_url) as session:
        report = export_requests(session, outbound_from(settings))
    return {
        "requests": report.requests,
        "batches": [
            {"file": str(b.path), "seq": b.seq, "sha256": b.digest, "records": b.count}
            for b in report.batches
        ],
    }


def import_inbox(settings: RequestSettings) -> dict:
    outcomes = import_batches(inbound_from(settings), partial(transaction, settings.database_url))
    return {"files": [asdict(o) for o in outcomes]}


@dataclass(frozen=True)
class StaleReport:
    requeued: int


def requeue_unacked(settings: RequestSettings, *, older_than: timedelta) -> dict:
    """Requests in transit whose batch was never acknowledged are exported again.

    The response network imports a request id once, so a second copy is harmless.
    """
    cutoff = utcnow() - older_than
    with transaction(settings.database_url) as session:
        stale = (
            session.execute(
                select(Request)
                .join(Batch, Request.batch_id == Batch.id)
                .where(
                    Request.status == EXPORTED, Batch.acked_at.is_(None), Batch.created_at < cutoff
                )
            )
            .scalars()
            .all()
        )
        for req in stale:
            set_status(session, req, PENDING, f"re-export: batch unacknowledged after {older_than}")
    return asdict(StaleReport(len(stale)))
