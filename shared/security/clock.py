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


def issued_after_cutoff(cutoff: datetime | None, issued_at: datetime | None) -> bool:
    """False for a session or key issued before a user's sessions cut-off (a password
    change or reset: `sessions_valid_after`); true when there is no cut-off."""
    if cutoff is None:
        return True
    if issued_at is None:
        return False
    return as_utc(issued_at) >= as_utc(cutoff)
