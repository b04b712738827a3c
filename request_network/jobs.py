"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial

from request_network.models import Batch
from request_network.services.exchange import export_requests, import_batches
from request_network.services.exchange import requeue_unacked as requeue_unacked_requests
from request_network.settings import RequestSettings
from shared.db import transaction
from transfer.operator.status import TransferStatus, network_status
from transfer.protocol import upkeep
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.config import make_transfer_dirs as make_transfer_dirs  # processes starting
from transfer.protocol.exchange import export_acks_if_due


def export(settings: RequestSettings) -> dict:
    """Pending requests to the outbox; an `acks` batch if nothing else carries due acks."""
    out = outbound_from(settings)
    with transaction(settings.database_url) as session:
        report = export_requests(out, session=session, keep_ids=False)
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
    return network_status(settings, Batch)


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
    with transaction(settings.database_url) as session:
        requeued = requeue_unacked_requests(
            session=session, source=settings.network_id, older_than=older_than
        )
    return asdict(StaleReport(requeued))
