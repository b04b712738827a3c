"""Batch metadata for admins: what each batch held, how long it took, who made it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class BatchFilter:
    direction: str | None = None  # "in" or "out"
    stream: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    with_errors: bool | None = None
    limit: int = 50
    offset: int = 0


def _row(b: Any) -> dict[str, Any]:
    return {
        "batch_id": b.id,
        "direction": b.direction,
        "stream": b.stream,
        "seq": b.seq,
        "source": b.source,
        "destination": b.destination,
        "file": b.filename,
        "sha256": b.digest,
        "bytes": b.bytes,
        "records": b.record_count,
        "counts_by_type": b.counts_by_type or {},
        "errors": b.error_count,
        "error_rate": round(b.error_count / b.record_count, 4) if b.record_count else 0.0,
        "processing_ms": b.processing_ms,
        "producer": b.producer,
        "key_id": b.key_id,
        "created_at": b.created_at.isoformat(),
        "acked_at": b.acked_at.isoformat() if b.acked_at else None,
    }


def list_batches(session: Session, batch_model: type, f: BatchFilter) -> dict[str, Any]:
    """Newest first, with the total matching count and summed bytes, records and errors."""
    conditions = []
    if f.direction:
        conditions.append(batch_model.direction == f.direction)
    if f.stream:
        conditions.append(batch_model.stream == f.stream)
    if f.since:
        conditions.append(batch_model.created_at >= f.since)
    if f.until:
        conditions.append(batch_model.created_at < f.until)
    if f.with_errors is not None:
        conditions.append((batch_model.error_count > 0) == f.with_errors)
    totals = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(batch_model.bytes), 0),
            func.coalesce(func.sum(batch_model.record_count), 0),
            func.coalesce(func.sum(batch_model.error_count), 0),
        ).where(*conditions)
    ).one()
    rows = session.execute(
        select(batch_model)
        .where(*conditions)
        .order_by(batch_model.created_at.desc(), batch_model.seq.desc())
        .limit(f.limit)
        .offset(f.offset)
    ).scalars()
    count, size, records, errors = totals
    return {
        "items": [_row(b) for b in rows],
        "total": count,
        "limit": f.limit,
        "offset": f.offset,
        "summary": {
            "bytes": int(size),
            "records": int(records),
            "errors": int(errors),
            "error_rate": round(errors / records, 4) if records else 0.0,
        },
    }
