"""Rate limits on the request network: whose limits apply, charging a submission, admin work.

Limits per window, first set wins: an admin's `RateLimitOverride` > the user's own
`User.rate_limits` (replicated from the authority) > the profile type's `rate_limits`.

A submission is validated first and charged second: `submit_within_limits` checks the
profile type and the query (a bad one is a 422 that costs no quota), charges the limiter,
and only then writes the request; a blocked request writes only its violation rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from request_network.models import (
    AuditLog,
    ProfileType,
    RateLimitOverride,
    RateLimitViolation,
    Request,
    User,
)
from request_network.services import requests
from request_network.settings import RequestSettings
from shared.audit import record
from shared.cache import get_redis
from shared.db import utcnow
from shared.metrics import RATELIMIT_DECISIONS, RATELIMIT_REDIS_UNAVAILABLE
from shared.problems import Problem
from shared.ratelimit import (
    BLOCKED,
    WINDOWS,
    Decision,
    Policy,
    RateLimiter,
    RateLimiterUnavailable,
    policy_header,
)

log = logging.getLogger("ferry.ratelimit")

#: What a client refused for want of Redis is told to wait before trying again (seconds).
REDIS_DOWN_RETRY_AFTER = 10


def policy_for(settings: RequestSettings) -> Policy:
    return Policy(
        soft_ratio=settings.rate_limit_soft_ratio,
        grace_ratio=settings.rate_limit_grace_ratio,
        grace_seconds=settings.rate_limit_grace_seconds,
    )


def limiter_for(settings: RequestSettings) -> RateLimiter:
    return RateLimiter(get_redis(settings.redis_url), policy_for(settings))


#: What a submission needs of a profile type: its rules and its limits.
PROFILE_COLUMNS = ("name", "index", "fields", "return_fields", "max_size", "rate_limits")


@dataclass(frozen=True)
class Limits:
    """A user's limit per window and where each came from."""

    values: dict[str, int]
    sources: dict[str, str]  # "override" | "user" | "profile_type" | "none"
    profile: Any = None  # the user's profile type (PROFILE_COLUMNS), read with the limits


def get_user(user_id: str, *, session: Session) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", "no such user")
    return user


def effective_limits(user: User, *, session: Session) -> Limits:
    """The user's limits; the override and the profile type come in one statement, as plain
    columns (the profile type's are kept: validating a submission needs them too)."""
    anchor = select(literal(1).label("one")).subquery()
    row = session.execute(
        select(
            *(getattr(ProfileType, c) for c in PROFILE_COLUMNS),
            *(getattr(RateLimitOverride, w).label(f"override_{w}") for w in WINDOWS),
            RateLimitOverride.user_id.label("override_user"),
        )
        .select_from(anchor)
        .outerjoin(ProfileType, ProfileType.name == user.profile_type)
        .outerjoin(RateLimitOverride, RateLimitOverride.user_id == user.id)
    ).one()
    override = {w: getattr(row, f"override_{w}") for w in WINDOWS} if row.override_user else {}
    profile = row if row.name is not None else None
    layers = [
        ("override", override),
        ("user", user.rate_limits or {}),
        ("profile_type", profile.rate_limits if profile else {}),
    ]
    values, sources = {}, {}
    for window in WINDOWS:
        values[window], sources[window] = 0, "none"  # no limit known: nothing is allowed
        for source, layer in layers:
            if layer.get(window) is not None:
                values[window], sources[window] = int(layer[window]), source
                break
    return Limits(values, sources, profile)


@dataclass(frozen=True)
class Submitted:
    """The outcome of a limited submission: the request, or the decision that refused it."""

    request: Request | None
    decision: Decision | None  # None: Redis was unavailable and the policy is fail-open
    limits: Limits


def _redis_down(settings: RequestSettings, user: User, limits: Limits, exc: Exception) -> None:
    decision = "allowed" if settings.rate_limit_fail_open else "refused"
    RATELIMIT_REDIS_UNAVAILABLE.labels(decision=decision).inc()
    log.error(
        "rate limiter unavailable (%s): submission by user %s %s without a limit check",
        exc,
        user.id,
        decision,
    )
    if not settings.rate_limit_fail_open:
        raise Problem(
            503,
            "Rate limiter unavailable",
            "submissions are refused while the rate limiter cannot be reached; try again later",
            headers={
                "Retry-After": str(REDIS_DOWN_RETRY_AFTER),
                "RateLimit-Policy": policy_header(limits.values),
            },
        )


def submit_within_limits(
    user: User,
    *,
    session: Session,
    profile_type: str,
    query: dict[str, Any],
    limiter: RateLimiter,
    settings: RequestSettings,
    path: str,
    limits: Limits | None = None,
) -> Submitted:
    """Validate and stage the request, then charge the quota; see the module docstring."""
    limits = limits or effective_limits(user, session=session)
    requests.validate(
        user, session=session, profile_type=profile_type, query=query, known=limits.profile
    )
    try:
        decision = limiter.check(user.id, limits.values)
    except RateLimiterUnavailable as exc:
        _redis_down(settings, user, limits, exc)  # raises when the policy is fail-closed
        decision = None  # fail-open: the submission goes through unchecked
    else:
        RATELIMIT_DECISIONS.labels(state=decision.state).inc()
        if not decision.allowed:
            record_violations(user.id, decision, session=session, path=path)
            return Submitted(None, decision, limits)
    request = requests.create(user, session=session, profile_type=profile_type, query=query)
    return Submitted(request, decision, limits)


def record_violations(user_id: str, decision: Decision, *, session: Session, path: str) -> None:
    """One row per violated window: the count the request would have reached, the limit."""
    at = utcnow()
    for w in decision.windows:
        if w.state == BLOCKED:
            session.add(
                RateLimitViolation(
                    user_id=user_id,
                    window=w.window,
                    count=w.count + 1,
                    limit=w.limit,
                    path=path[:255],
                    at=at,
                )
            )
    session.flush()


def status(user: User, limiter: RateLimiter, *, session: Session) -> tuple[Limits, Decision]:
    """Where a user stands in every window (a peek: nothing is counted)."""
    limits = effective_limits(user, session=session)
    try:
        return limits, limiter.peek(user.id, limits.values)
    except RateLimiterUnavailable as exc:
        raise Problem(
            503,
            "Rate limiter unavailable",
            "the rate limiter cannot be reached; try again later",
            headers={"Retry-After": str(REDIS_DOWN_RETRY_AFTER)},
        ) from exc


def reset(user: User, limiter: RateLimiter, *, session: Session, actor: str) -> None:
    """Forget a user's counters, grace periods and blocks; audited (`actor` = admin id)."""
    try:
        limiter.reset(user.id)
    except RateLimiterUnavailable as exc:
        raise Problem(
            503, "Rate limiter unavailable", "the rate limiter cannot be reached"
        ) from exc
    record(session, AuditLog, actor=actor, action="rate_limits.reset", target=user.id)


def set_override(
    user: User, *, session: Session, limits: dict[str, int | None], reason: str, actor: str
) -> RateLimitOverride:
    """Set custom limits for one user (None keeps the inherited limit); audited."""
    row = session.get(RateLimitOverride, user.id)
    before = {w: getattr(row, w) for w in WINDOWS} if row else None
    if row is None:
        row = RateLimitOverride(user_id=user.id)
        session.add(row)
    for window in WINDOWS:
        setattr(row, window, limits.get(window))
    row.reason, row.set_by, row.set_at = reason, actor, utcnow()
    session.flush()
    record(
        session,
        AuditLog,
        actor=actor,
        action="rate_limits.set",
        target=user.id,
        detail={"before": before, "after": {w: limits.get(w) for w in WINDOWS}, "reason": reason},
    )
    return row


def get_override(user: User, *, session: Session) -> RateLimitOverride | None:
    return session.get(RateLimitOverride, user.id)


def list_violations(
    *,
    session: Session,
    user_id: str | None,
    window: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[RateLimitViolation], int]:
    """Violations, newest first; `since` is inclusive and `until` exclusive."""
    query = select(RateLimitViolation)
    if user_id is not None:
        query = query.where(RateLimitViolation.user_id == user_id)
    if window is not None:
        query = query.where(RateLimitViolation.window == window)
    if since is not None:
        query = query.where(RateLimitViolation.at >= since)
    if until is not None:
        query = query.where(RateLimitViolation.at < until)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(RateLimitViolation.at.desc(), RateLimitViolation.id.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total
