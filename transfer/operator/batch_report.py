"""Batch metadata for admins: what each batch held, how long it took, who made it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.aggregates import bucket, series

#: The columns batches sort by (`-` first: descending; a column's empty values last).
BatchSort = Literal[
    "direction", "-direction", "stream", "-stream", "seq", "-seq", "file", "-file",
    "records", "-records", "errors", "-errors", "bytes", "-bytes",
    "processing_ms", "-processing_ms", "producer", "-producer",
    "created_at", "-created_at", "acked_at", "-acked_at",
]  # fmt: skip
_SORT_COLUMNS = {
    "file": "filename",
    "records": "record_count",
    "errors": "error_count",
}


def _order(batch_model: type, sort: str) -> tuple[Any, ...]:
    name = sort.removeprefix("-")
    column = getattr(batch_model, _SORT_COLUMNS.get(name, name))
    first = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    return (first, batch_model.created_at.desc(), batch_model.seq.desc())


@dataclass(frozen=True)
class BatchFilter:
    direction: str | None = None  # "in" or "out"
    stream: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    with_errors: bool | None = None
    limit: int = 50
    offset: int = 0
    sort: BatchSort = "-created_at"


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
    """Newest first (or by `f.sort`), with the total matching count and summed bytes,
    records and errors."""
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
        .order_by(*_order(batch_model, f.sort))
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


def per_day(session: Session, batch_model: type, *, days: int, now: datetime) -> dict[str, Any]:
    """Batches in and out per UTC day over the last `days` days (every day listed): how
    many, their records, mean processing time and the share of records refused."""
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = bucket(session, batch_model.created_at, "day")
    rows = session.execute(
        select(
            day.label("day"),
            batch_model.direction,
            func.count(),
            func.coalesce(func.sum(batch_model.record_count), 0),
            func.avg(batch_model.processing_ms),
            func.coalesce(func.sum(batch_model.error_count), 0),
        )
        .where(batch_model.created_at >= start)
        .group_by(day, batch_model.direction)
    ).all()
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for when, direction, count, records, processing, errors in rows:
        found.setdefault(when, {})[direction] = {
            "batches": count,
            "records": int(records),
            "processing_ms_mean": None if processing is None else round(float(processing), 1),
            "error_rate": round(int(errors) / int(records), 4) if records else 0.0,
        }
    empty = {"batches": 0, "records": 0, "processing_ms_mean": None, "error_rate": 0.0}
    return {
        "days": [
            {"day": key, "in": value.get("in", empty), "out": value.get("out", empty)}
            for key, value in series("day", start, days, found, {})
        ]
    }
