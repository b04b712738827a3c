"""Rate limits on the request network: whose limits apply, charging a submission, admin work.

Limits per window, first set wins: an admin's `RateLimitOverride` > the user's own
`User.rate_limits` (replicated from the authority) > the governed default of the user's
profile type and role (`rate_limits.by_role`) > the profile type's `rate_limits`. The ratios
and grace length are the governed ones in force (`services.governed`), read at every check.
Every limit is at most the limiter's bound `MAX_LIMIT`: the admin API's schema, the
replicated records and a CHECK on the override table refuse more, and a stored value out of
range anyway is clamped or skipped when read (`_usable`), never a 500.

A submission is validated first and charged second: `submit_within_limits` checks the
profile type and the query (a bad one is a 422 that costs no quota), charges the limiter,
and only then writes the request; a blocked request writes only its violation rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from request_network.models import (
    AuditLog,
    ProfileType,
    RateLimitOverride,
    RateLimitViolation,
    Request,
    User,
)
from request_network.services import governed, requests
from request_network.settings import RequestSettings
from shared.audit import record
from shared.cache import get_redis
from shared.db import utcnow
from shared.metrics import RATELIMIT_DECISIONS, RATELIMIT_REDIS_UNAVAILABLE
from shared.problems import Problem
from shared.ratelimit import (
    BLOCKED,
    MAX_LIMIT,
    WINDOWS,
    Decision,
    Policy,
    RateLimiter,
    RateLimiterUnavailable,
    policy_header,
)

log = logging.getLogger("ferry.ratelimit")

#: What a client refused for want of Redis is told to wait before trying again (seconds),
#: unless Redis's circuit breaker is open: then until the breaker lets a trial through.
REDIS_DOWN_RETRY_AFTER = 10


def retry_after(exc: RateLimiterUnavailable) -> str:
    known = exc.retry_after
    return str(max(1, math.ceil(known)) if known is not None else REDIS_DOWN_RETRY_AFTER)


def policy_for(settings: RequestSettings, *, session: Session | None = None) -> Policy:
    """The ratios and grace length in force (governed, else the deployment's settings)."""
    now = governed.in_force(settings, session=session)
    return Policy(
        soft_ratio=now["rate_limits.soft_ratio"],
        grace_ratio=now["rate_limits.grace_ratio"],
        grace_seconds=now["rate_limits.grace_seconds"],
    )


#: This network's decisions per hour (`shared.ratelimit.tally`): `rl:stats:h:<YYYYMMDDHH>`,
#: beside the users' windows (`rl:{u:<id>}:…`: the `{` keeps the two apart).
DECISIONS_TALLY = "rl:stats:h:"
#: The thresholds crossed by this network's checks (`shared.ratelimit.crossings`), which
#: `services.rate_limit_notices` turns into notifications.
CROSSINGS = "rl:crossings"


def limiter_for(settings: RequestSettings) -> RateLimiter:
    """A limiter that asks for the policy in force at each check."""
    return RateLimiter(
        get_redis(settings.redis_url),
        lambda: policy_for(settings),
        tally=DECISIONS_TALLY,
        crossings=CROSSINGS,
    )


#: What a submission needs of a profile type: its rules and its limits.
PROFILE_COLUMNS = ("name", "index", "fields", "return_fields", "max_size", "rate_limits")


@dataclass(frozen=True)
class Limits:
    """A user's limit per window and where each came from."""

    values: dict[str, int]
    sources: dict[str, str]  # "override" | "user" | "by_role" | "profile_type" | "none"
    profile: Any = None  # the user's profile type (PROFILE_COLUMNS), read with the limits


def get_user(user_id: str, *, session: Session) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", "no such user")
    return user


def effective_limits(user: User, *, session: Session, settings: RequestSettings) -> Limits:
    """The user's limits; the override and the profile type come in one statement, as plain
    columns (the profile type's are kept: validating a submission needs them too); the
    governed default of the user's profile type and role comes from `services.governed`."""
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
    by_role = governed.in_force(settings, session=session)["rate_limits.by_role"]
    layers = [
        ("override", override),
        ("user", user.rate_limits or {}),
        ("by_role", by_role.get(user.profile_type, {}).get(user.role, {})),
        ("profile_type", profile.rate_limits if profile else {}),
    ]
    values, sources = {}, {}
    for window in WINDOWS:
        values[window], sources[window] = 0, "none"  # no limit known: nothing is allowed
        for source, layer in layers:
            value = _usable(layer.get(window), user.id, source, window)
            if value is not None:
                values[window], sources[window] = value, source
                break
    return Limits(values, sources, profile)


def _usable(value: Any, user_id: str, source: str, window: str) -> int | None:
    """A stored limit as the limiter can take it, or None to fall through to the next layer.

    Every write path bounds a limit (`MAX_LIMIT`); a value stored past them (a row older
    than the bound, a hand edit) must not turn every submission of the user into a 500.
    Above the bound: clamped to it, since whoever set it meant "at least this much" and the
    bound is far above any real quota (falling through could leave the user far lower, at
    the profile type's limit). Not a non-negative integer: it says nothing usable, so it is
    ignored and the next layer decides. Either way a warning is logged, once per value.
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _warn_stored_limit(user_id, source, window, repr(value), "ignored")
        return None
    if value > MAX_LIMIT:
        _warn_stored_limit(user_id, source, window, repr(value), f"clamped to {MAX_LIMIT}")
        return MAX_LIMIT
    return value


@lru_cache(maxsize=1024)  # once per stored value, not on every submission
def _warn_stored_limit(user_id: str, source: str, window: str, value: str, action: str) -> None:
    log.warning(
        "stored %s limit %s of user %s (from %s) is out of range 0..%d: %s",
        window,
        value,
        user_id,
        source,
        MAX_LIMIT,
        action,
    )


@dataclass(frozen=True)
class Submitted:
    """The outcome of a limited submission: the request, or the decision that refused it."""

    request: Request | None
    decision: Decision | None  # None: Redis was unavailable and the policy is fail-open
    limits: Limits


def _redis_down(
    settings: RequestSettings, user: User, limits: Limits, exc: RateLimiterUnavailable
) -> None:
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
                "Retry-After": retry_after(exc),
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
    key_id: str | None = None,
) -> Submitted:
    """Validate and stage the request, then charge the quota; see the module docstring.
    `key_id`: the API key the submission came with (kept on its violation rows)."""
    limits = limits or effective_limits(user, session=session, settings=settings)
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
            record_violations(user.id, decision, session=session, path=path, key_id=key_id)
            return Submitted(None, decision, limits)
    request = requests.create(user, session=session, profile_type=profile_type, query=query)
    return Submitted(request, decision, limits)


def record_violations(
    user_id: str, decision: Decision, *, session: Session, path: str, key_id: str | None = None
) -> None:
    """One row per violated window: the count the request would have reached, the limit, and
    the API key it came with (None: a login session)."""
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
                    key_id=key_id,
                )
            )
    session.flush()


def status(
    user: User, limiter: RateLimiter, *, session: Session, settings: RequestSettings
) -> tuple[Limits, Decision]:
    """Where a user stands in every window (a peek: nothing is counted)."""
    limits = effective_limits(user, session=session, settings=settings)
    try:
        return limits, limiter.peek(user.id, limits.values)
    except RateLimiterUnavailable as exc:
        raise Problem(
            503,
            "Rate limiter unavailable",
            "the rate limiter cannot be reached; try again later",
            headers={"Retry-After": retry_after(exc)},
        ) from exc


def reset(user: User, limiter: RateLimiter, *, session: Session, actor: str) -> None:
    """Forget a user's counters, grace periods and blocks; audited (`actor` = admin id)."""
    try:
        limiter.reset(user.id)
    except RateLimiterUnavailable as exc:
        raise Problem(
            503,
            "Rate limiter unavailable",
            "the rate limiter cannot be reached",
            headers={"Retry-After": retry_after(exc)},
        ) from exc
    record(session, AuditLog, actor=actor, action="rate_limits.reset", target=user.id)


def set_override(
    user: User, *, session: Session, limits: dict[str, int | None], reason: str, actor: str
) -> RateLimitOverride:
    """Set custom limits for one user (None keeps the inherited limit); audited.

    One row per user (its primary key), and changes that race apply one after another: the
    user's row is locked before the override is read (PostgreSQL), so each audit row's
    "before" is what the change before it left. Where the lock is a no-op (SQLite), two
    first overrides racing to insert the one row make the second a 409, never a 500.
    """
    bad = [w for w in WINDOWS if not _in_range(limits.get(w))]
    if bad:
        raise Problem(
            422,
            "Invalid request",
            f"invalid fields: {', '.join(f'body.{w}' for w in bad)}",
            errors=[
                {"loc": f"body.{w}", "msg": f"must be an integer from 0 to {MAX_LIMIT} or null"}
                for w in bad
            ],
        )
    session.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    row = session.get(RateLimitOverride, user.id, populate_existing=True)
    before = {w: getattr(row, w) for w in WINDOWS} if row else None
    if row is None:
        row = RateLimitOverride(user_id=user.id)
        session.add(row)
    for window in WINDOWS:
        setattr(row, window, limits.get(window))
    row.reason, row.set_by, row.set_at = reason, actor, utcnow()
    try:
        session.flush()
    except IntegrityError:
        raise Problem(
            409, "Conflict", "the user's limits were changed at the same time; try again"
        ) from None
    record(
        session,
        AuditLog,
        actor=actor,
        action="rate_limits.set",
        target=user.id,
        detail={"before": before, "after": {w: limits.get(w) for w in WINDOWS}, "reason": reason},
    )
    return row


def _in_range(value: Any) -> bool:
    return value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LIMIT
    )


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
