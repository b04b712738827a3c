"""What the request network has been doing, read from its tables: requests by status,
submissions per hour, turnaround, batches per day, rate-limit refusals; and from its Redis:
rate-limit decisions by state (the limiter's tally) and the response cache's hit ratio,
each null while Redis cannot be reached."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from request_network.models import (
    EXPORTED,
    PENDING,
    PUBLIC_STATES,
    PUBLIC_STATUS,
    Batch,
    RateLimitViolation,
    Request,
    RequestExport,
    Response,
)
from request_network.services.rate_limits import DECISIONS_TALLY
from request_network.services.response_cache_stats import hit_ratio
from shared.aggregates import bucket, percentiles, seconds_between, series
from shared.db import utcnow
from shared.ratelimit import read_tally
from transfer.operator.batch_report import per_day

HOURS, TURNAROUND_DAYS, BATCH_DAYS = 24, 7, 14
log = logging.getLogger("ferry.stats")


def stats(*, session: Session, cache: redis.Redis | None = None) -> dict[str, Any]:
    """The figures; those kept in Redis are read from `cache` (None: not read, shown null)."""
    now = utcnow()
    decisions, cache_hits = _from_redis(cache)
    return {
        "at": now,
        "requests_by_status": _by_status(session),
        "submissions_per_hour": _submissions(session, now),
        "turnaround": _turnaround(session, now),
        "batches": per_day(session, Batch, days=BATCH_DAYS, now=now),
        "rate_limit_refusals_24h": _refusals(session, now),
        "rate_limit_decisions": decisions,
        "response_cache": cache_hits,
    }


def _from_redis(cache: redis.Redis | None) -> tuple[dict | None, dict | None]:
    """The limiter's decisions by state (last hour, last 24 h) and the response cache's hit
    ratio; both None without Redis (the second is not tried once the first found it down)."""
    if cache is None:
        return None, None
    decisions = None
    try:
        decisions = read_tally(cache, DECISIONS_TALLY)
        return decisions, hit_ratio(cache)
    except redis.RedisError as exc:
        log.warning("statistics kept in Redis are unavailable: %s", type(exc).__name__)
        return decisions, None


def _by_status(session: Session) -> dict[str, int]:
    exported = RequestExport.request_id.is_not(None)
    rows = session.execute(
        select(Request.status, exported.label("exported"), func.count())
        .outerjoin(RequestExport, RequestExport.request_id == Request.id)
        .group_by(Request.status, exported)
    ).all()
    counts = dict.fromkeys(PUBLIC_STATES, 0)
    for status, was_exported, count in rows:
        state = EXPORTED if status == PENDING and was_exported else status
        name = PUBLIC_STATUS.get(state, state)
        counts[name] = counts.get(name, 0) + count
    return counts


def _submissions(session: Session, now) -> list[dict[str, Any]]:
    start = now - timedelta(hours=HOURS - 1)
    hour = bucket(session, Request.created_at, "hour")
    found = dict(
        session.execute(
            select(hour, func.count())
            .where(Request.created_at >= start.replace(minute=0, second=0, microsecond=0))
            .group_by(hour)
        ).all()
    )
    return [{"hour": key, "count": n} for key, n in series("hour", start, HOURS, found, 0)]


def _turnaround(session: Session, now) -> dict[str, Any]:
    """Submit → response available, over the responses received in the last 7 days."""
    seconds = seconds_between(session, Request.created_at, Response.received_at)
    query = (
        select(seconds)
        .select_from(Response)
        .join(Request, Request.id == Response.request_id)
        .where(Response.received_at >= now - timedelta(days=TURNAROUND_DAYS))
    )
    count = session.execute(query.with_only_columns(func.count())).scalar_one()
    p50, p95 = percentiles(session, seconds, query, (0.5, 0.95))
    return {"days": TURNAROUND_DAYS, "responses": count, "p50_seconds": p50, "p95_seconds": p95}


def _refusals(session: Session, now) -> dict[str, int]:
    rows = session.execute(
        select(RateLimitViolation.window, func.count())
        .where(RateLimitViolation.at >= now - timedelta(hours=24))
        .group_by(RateLimitViolation.window)
    ).all()
    return {"minute": 0, "hour": 0, "day": 0} | dict(rows)
