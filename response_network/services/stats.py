"""What the response network has been doing, read from its tables: imported requests by
status, executions per hour, per profile type executions, failures and query latency, and
batches in and out per day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from response_network.models import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Batch,
    Execution,
    ImportedRequest,
    ProfileType,
)
from shared.aggregates import bucket, percentiles, series
from shared.db import utcnow
from transfer.operator.batch_report import per_day

HOURS, BATCH_DAYS = 24, 14
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)


def stats(*, session: Session) -> dict[str, Any]:
    now = utcnow()
    return {
        "at": now,
        "requests_by_status": _by_status(session),
        "executions_per_hour": _executions_per_hour(session, now),
        "profile_types": _per_profile_type(session, now),
        "batches": per_day(session, Batch, days=BATCH_DAYS, now=now),
    }


def _by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(ImportedRequest.status, func.count()).group_by(ImportedRequest.status)
    ).all()
    return dict.fromkeys(STATUSES, 0) | dict(rows)


def _executions_per_hour(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Executions started in each of the last 24 UTC hours (the current one last), and how
    many of them failed."""
    start = now - timedelta(hours=HOURS - 1)
    hour = bucket(session, Execution.started_at, "hour")
    rows = session.execute(
        select(hour, func.count(), func.count().filter(Execution.status == FAILED))
        .where(Execution.started_at >= start.replace(minute=0, second=0, microsecond=0))
        .group_by(hour)
    ).all()
    found = {key: (count, failed) for key, count, failed in rows}
    return [
        {"hour": key, "executions": count, "failed": failed}
        for key, (count, failed) in series("hour", start, HOURS, found, (0, 0))
    ]


def _per_profile_type(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Per profile type (every one defined, and any other an execution named), over the
    executions started in the last 24 hours: how many, how many failed, the failure rate
    (failed / finished) and the query latency (`took_ms` of those that report it)."""
    since = now - timedelta(hours=HOURS)
    recent = (
        select(Execution.took_ms)
        .join(ImportedRequest, ImportedRequest.id == Execution.request_id)
        .where(Execution.started_at >= since)
    )
    finished = Execution.status.in_((DONE, FAILED))
    counts = {
        name: (count, failures, ended)
        for name, count, failures, ended in session.execute(
            recent.with_only_columns(
                ImportedRequest.profile_type,
                func.count(),
                func.count().filter(Execution.status == FAILED),
                func.count().filter(finished),
            ).group_by(ImportedRequest.profile_type)
        ).all()
    }
    names = sorted(set(session.execute(select(ProfileType.name)).scalars()) | set(counts))
    out = []
    for name in names:
        count, failures, ended = counts.get(name, (0, 0, 0))
        p50 = p95 = None
        if count:
            p50, p95 = percentiles(
                session,
                Execution.took_ms,
                recent.where(ImportedRequest.profile_type == name),
                (0.5, 0.95),
            )
        out.append(
            {
                "profile_type": name,
                "executions": count,
                "failures": failures,
                "failure_rate": round(failures / ended, 4) if ended else 0.0,
                "p50_ms": p50,
                "p95_ms": p95,
            }
        )
    return out
