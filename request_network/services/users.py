"""Users as an admin of the request network sees them: a filtered, sorted page, and one
user's details (profile, limits in force and usage, API keys, recent requests, lock, last
login).

The response network is the authority for users; here they are read only (their locks,
limits and keys are administered by the routes of those resources).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import (
    EXPORTED,
    PENDING,
    PUBLIC_STATUS,
    AccountLock,
    Request,
    RequestExport,
    User,
)
from request_network.services import api_keys, auth, rate_limits
from request_network.settings import RequestSettings
from shared import user_list
from shared.problems import Problem
from shared.ratelimit import Decision, RateLimiter

RECENT_REQUESTS = 10


def list_users(**filters: Any) -> tuple[list[dict[str, Any]], int]:
    """A page of users (see `shared.user_list.list_users`)."""
    return user_list.list_users(User, AccountLock, **filters)


def _public_status(status: str, batch_id: str | None) -> str:
    state = EXPORTED if status == PENDING and batch_id is not None else status
    return PUBLIC_STATUS.get(state, state)


@dataclass(frozen=True)
class UserDetails:
    user: User
    limits: rate_limits.Limits
    usage: Decision | None  # None when the rate limiter (Redis) cannot be reached
    keys: list[dict[str, Any]]  # described, each with its usage (`api_keys.describe`)
    key_usage: dict[str, Any]  # the user's keys' usage summed (`api_key_usage.read_usage`)
    recent: list[dict[str, Any]]
    lock: dict[str, Any]
    last_login_at: datetime | None  # None: never logged in on this network


def details(
    settings: RequestSettings,
    cache: redis.Redis,
    limiter: RateLimiter,
    *,
    session: Session,
    user_id: str,
) -> UserDetails:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", "no such user")
    try:
        limits, usage = rate_limits.status(user, limiter, session=session, settings=settings)
    except Problem:  # the limiter is down: the limits in force still show, usage does not
        limits = rate_limits.effective_limits(user, session=session, settings=settings)
        usage = None
    keys, key_usage = api_keys.list_keys_with_usage(cache, session=session, user=user)
    recent_rows = session.execute(
        select(Request, RequestExport.batch_id)
        .outerjoin(RequestExport, RequestExport.request_id == Request.id)
        .where(Request.user_id == user.id)
        .order_by(Request.created_at.desc(), Request.id)
        .limit(RECENT_REQUESTS)
    ).all()
    recent = [
        {
            "id": r.Request.id,
            "profile_type": r.Request.profile_type,
            "status": _public_status(r.Request.status, r.batch_id),
            "created_at": r.Request.created_at,
            "updated_at": r.Request.updated_at,
            "batch_id": r.batch_id,
        }
        for r in recent_rows
    ]
    lock = auth.lock_status(settings, cache, session=session, user_id=user.id)
    lock_row = session.get(AccountLock, user.id)  # a row `lock_status` read is not read again
    last_login_at = lock_row.last_login_at if lock_row is not None else None
    return UserDetails(user, limits, usage, keys, key_usage, recent, lock, last_login_at)
