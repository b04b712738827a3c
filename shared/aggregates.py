"""Time buckets and percentiles in SQL, the same on PostgreSQL and SQLite (the demo), for
the statistics both networks' admins read. Buckets are counted by the database; only the
bucket rows come back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, literal_column
from sqlalchemy.orm import Session

from shared.db import is_postgres

Unit = Literal["hour", "day"]
_SQLITE_FORMAT = {"hour": "%Y-%m-%dT%H:00:00Z", "day": "%Y-%m-%d"}


def bucket(session: Session, column: Any, unit: Unit) -> ColumnElement:
    """`column` truncated to its UTC hour or day, as text (`2026-12-05T10:00:00Z`,
    `2026-12-05`)."""
    if is_postgres(session):
        truncated = func.date_trunc(unit, func.timezone("UTC", column))
        fmt = 'YYYY-MM-DD"T"HH24:00:00"Z"' if unit == "hour" else "YYYY-MM-DD"
        return func.to_char(truncated, fmt)
    return func.strftime(_SQLITE_FORMAT[unit], column)


def series(unit: Unit, start: datetime, count: int, found: dict[str, Any], empty: Any) -> list:
    """`count` consecutive buckets from `start` (every bucket, the empty ones too)."""
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    if unit == "hour":
        first = start.replace(minute=0, second=0, microsecond=0)
        keys = [(first + i * step).strftime("%Y-%m-%dT%H:00:00Z") for i in range(count)]
    else:
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        keys = [(first + i * step).strftime("%Y-%m-%d") for i in range(count)]
    return [(key, found.get(key, empty)) for key in keys]


def percentiles(
    session: Session, seconds: ColumnElement, query: Select, points: Sequence[float]
) -> list[float | None]:
    """The `points` percentiles (0–1) of `seconds` over the rows of `query` (None when it
    has no rows): `percentile_cont` on PostgreSQL; on SQLite the values are read and
    interpolated the same way."""
    if is_postgres(session):
        columns = [
            func.percentile_cont(p).within_group(seconds).label(f"p{i}")
            for i, p in enumerate(points)
        ]
        row = session.execute(query.with_only_columns(*columns)).one()
        return [None if v is None else round(float(v), 3) for v in row]
    values = sorted(
        float(v)
        for v in session.execute(query.with_only_columns(seconds)).scalars()
        if v is not None
    )
    return [_interpolate(values, p) for p in points]


def _interpolate(values: list[float], p: float) -> float | None:
    if not values:
        return None
    position = p * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return round(values[low] + (values[high] - values[low]) * (position - low), 3)


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement:
    """`end - start` in seconds, as a number."""
    if is_postgres(session):
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * literal_column("86400.0")


__all__ = ["bucket", "percentiles", "seconds_between", "series"]
