"""Entry points both networks share for their side of the gap, from the network's settings:
resend, flagging unacknowledged batches and retiring acknowledged ones.

Each opens its own transaction (they are entry points, DESIGN.md §7.3) and takes the
network's `Batch` model, so `transfer/` still imports neither network.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shared.db import transaction
from shared.settings import FerrySettings
from transfer.protocol import acks, archive
from transfer.protocol import resend as resending
from transfer.protocol.ledger import OUT
from transfer.protocol.tables import audit_model_for

_IN_CHUNK = 500


def retire_acked(settings: FerrySettings, batch_model: type) -> list[str]:
    """Move (or delete) kept files the peer has acknowledged; returns their names."""
    outbox = settings.outbox
    names = sorted(
        {p.name for d in (outbox / archive.CARRIED, outbox) for p in archive.batch_files(d)}
    )
    if not names:
        return []
    acked: list[str] = []
    with transaction(settings.database_url) as session:
        for i in range(0, len(names), _IN_CHUNK):
            acked += session.execute(
                select(batch_model.filename).where(
                    batch_model.direction == OUT,
                    batch_model.source == settings.network_id,
                    batch_model.filename.in_(names[i : i + _IN_CHUNK]),
                    batch_model.acked_at.is_not(None),
                )
            ).scalars()
    return archive.retire(outbox, acked, delete=settings.acked_batches == "delete")


def flag_unacked(settings: FerrySettings, batch_model: type) -> dict:
    """Data batches unacknowledged past `unacked_flag_hours` (log line; audit row once)."""
    with transaction(settings.database_url) as session:
        flagged = acks.flag_unacked(
            session,
            batch_model,
            audit_model_for(batch_model),
            source=settings.network_id,
            older_than=timedelta(hours=settings.unacked_flag_hours),
        )
    retired = retire_acked(settings, batch_model)
    return {"unacked": flagged, "retired": retired}


def resend(
    settings: FerrySettings,
    batch_model: type,
    *,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
) -> dict:
    with transaction(settings.database_url) as session:
        items = resending.resend(
            session,
            batch_model,
            source=settings.network_id,
            outbox=settings.outbox,
            stream=stream,
            seq=seq,
            batch_id=batch_id,
        )
    return resending.report(items)
