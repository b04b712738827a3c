"""Records of batches left unacknowledged too long go out again, in new batches.

A kept batch can be resent byte-identical only while it is fresh (`not_after`); one that
stayed unacknowledged past the configured age may be lost for good, and a copy that turns
up late is quarantined as stale. So its records are exported again instead, under new
sequence numbers. Every record type is idempotent where it arrives (requests and results
are applied once per id, users and profile types are upserts by version), so a first copy
that does arrive after all changes nothing.

This module finds the batches due (`due`), names the records a batch carried (`carried_ids`,
from its kept copy) and records that it was dealt with (`mark_reexported`: the batch's
`reexported_at` and an audit row), so each batch is re-exported once. What "export again"
means is the network's own business (see the two `jobs` modules).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.db import utcnow
from shared.records import ACK_TYPE
from transfer.format.digest import file_digest
from transfer.protocol import acks, archive, bulk
from transfer.protocol.tables import audit_model_for

__all__ = ["carried_ids", "due", "mark_reexported"]

log = logging.getLogger("ferry.transfer")


def due(session: Session, batch_model: type, *, source: str, older_than: timedelta) -> list:
    """Our data batches unacknowledged for longer than `older_than` and not yet re-exported,
    oldest first (locked on PostgreSQL, so two workers never take the same batch)."""
    stale = acks.unacked(session, batch_model, source=source, older_than=older_than)
    ids = [batch.id for batch in stale if batch.reexported_at is None]
    if not ids:
        return []
    stmt = select(batch_model).where(batch_model.id.in_(ids), batch_model.reexported_at.is_(None))
    if bulk.is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    taken = {batch.id: batch for batch in session.scalars(stmt)}
    return [taken[i] for i in ids if i in taken]


def carried_ids(outbox: Path, batch) -> list[str] | None:
    """The ids of the data records in the kept copy of `batch`, in file order and each once;
    None if no intact copy is kept (gone, or not the bytes this network wrote)."""
    path = archive.locate(outbox, batch.filename)
    if path is None or file_digest(path) != batch.digest:
        return None
    ids: dict[str, None] = {}
    with path.open("rb") as lines:
        for line in lines:
            item = orjson.loads(line)
            if "type" in item and item["type"] != ACK_TYPE:  # not the header, trailer or an ack
                ids[item["id"]] = None
    return list(ids)


def mark_reexported(session: Session, batch, *, records: int, found_in: str) -> None:
    """`batch` is dealt with: `reexported_at`, a WARNING line and an audit row."""
    batch.reexported_at = utcnow()
    log.warning(
        "batch %s unacknowledged since %s: %d records exported again (named by the %s)",
        batch.filename,
        batch.created_at.isoformat(),
        records,
        found_in,
    )
    audit_model = audit_model_for(type(batch))
    if audit_model is not None:
        audit.record(
            session,
            audit_model,
            actor="system",
            action="batch.reexported",
            target=batch.filename,
            detail={
                "stream": batch.stream,
                "seq": batch.seq,
                "batch_id": batch.id,
                "records": records,
                "found_in": found_in,
            },
        )
    session.flush()
