"""Time helpers for credentials: SQLite hands timestamps back naive, PostgreSQL aware."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive timestamp is taken to be UTC (how Ferry stores every time)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def seconds_until(moment: datetime | None) -> int:
    """Whole seconds from now until `moment`, rounded up; 0 when it is past or None."""
    if moment is None:
        return 0
    return max(0, math.ceil((as_utc(moment) - datetime.now(UTC)).total_seconds()))
