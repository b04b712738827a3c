"""How much each API key is used: calls per UTC day over the last 30 days, the last use, and
the submissions the rate limiter refused, by window.

Counting is cheap on the hot path: every call a key authenticates adds an `INCR` (and an
`EXPIRE`) of the key's counter for the day, ``auth:key:usage:<key id>:<YYYYMMDD>``, to the
pipeline that reads the key's revocation and disable marks anyway, so a call costs no extra
round trip and no database write. Counters live `KEEP` (31 days) and are Redis bookkeeping,
not an audit record: a Redis that loses its data loses them (as it loses the rate-limit
windows). Refusals need no counter of their own: every refused submission already writes
one `RateLimitViolation` row per violated window, which records the key it came with.

A user's usage is the sum over their keys (calls with a login session are not counted
here); "refused" counts violated windows, so a submission refused in two windows counts in
both.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from request_network.models import ApiKey, RateLimitViolation
from shared.db import utcnow
from shared.ratelimit import WINDOWS
from shared.security.clock import as_utc
from shared.security.revocation import DISABLED_KEY, REVOKED_KEY

log = logging.getLogger("ferry.api_keys")

USAGE = "auth:key:usage:"
DAYS = 30
KEEP = timedelta(days=DAYS + 1)


def counter(key_id: str, day: date) -> str:
    return f"{USAGE}{key_id}:{day:%Y%m%d}"


def check_marks_and_count(cache: redis.Redis, key_id: str, *, now: datetime) -> tuple[bool, bool]:
    """(revoked, disabled) as the Redis marks say, and this call counted, in one round trip.

    Without Redis: (False, False) and nothing counted (the database row decides, as it does
    for revocations). A call the marks refuse is counted back out (`uncount`)."""
    name = counter(key_id, now.date())
    pipe = cache.pipeline(transaction=False)
    pipe.exists(REVOKED_KEY + key_id)
    pipe.exists(DISABLED_KEY + key_id)
    pipe.incr(name)
    pipe.expire(name, int(KEEP.total_seconds()))
    try:
        revoked, disabled, _, _ = pipe.execute()
    except redis.RedisError:
        log.warning("API key marks unreadable (Redis down); the database decides")
        return False, False
    if revoked or disabled:
        uncount(cache, key_id, now=now)
    return bool(revoked), bool(disabled)


def uncount(cache: redis.Redis, key_id: str, *, now: datetime) -> None:
    with suppress(redis.RedisError):  # bookkeeping: at worst one call too many is counted
        cache.decr(counter(key_id, now.date()))


def first_day(now: datetime) -> date:
    """The first of the `DAYS` UTC days counted (today is the last)."""
    return now.date() - timedelta(days=DAYS - 1)


def _empty(since: date) -> dict[str, Any]:
    return {
        "since": since,
        "requests": 0,
        "requests_by_day": {},
        "refused": dict.fromkeys(WINDOWS, 0),
        "last_used_at": None,
    }


def _calls(
    cache: redis.Redis, keys: list[ApiKey], now: datetime
) -> dict[str, dict[date, int]] | None:
    """Calls per day of the keys used in the counted days (one MGET); None without Redis.

    A key whose last use is older than the counted days (its `last_used_at` is at most a
    minute stale) has no counter left to read."""
    days = [first_day(now) + timedelta(days=n) for n in range(DAYS)]
    oldest = datetime.combine(days[0], time.min, tzinfo=now.tzinfo) - timedelta(minutes=1)
    used = [
        k.key_id for k in keys if k.last_used_at is not None and as_utc(k.last_used_at) >= oldest
    ]
    if not used:
        return {}
    try:
        raw = cache.mget([counter(key_id, day) for key_id in used for day in days])
    except redis.RedisError:
        log.warning("API key usage unreadable (Redis down)")
        return None
    out: dict[str, dict[date, int]] = {}
    for n, key_id in enumerate(used):
        values = raw[n * DAYS : (n + 1) * DAYS]
        out[key_id] = {day: int(v) for day, v in zip(days, values, strict=True) if v and int(v)}
    return out


def _refused(user_id: str, since: datetime, *, session: Session) -> dict[str, dict[str, int]]:
    """Refusals per key and window since `since` (the violations' (user_id, at) index)."""
    rows = session.execute(
        select(RateLimitViolation.key_id, RateLimitViolation.window, func.count())
        .where(
            RateLimitViolation.user_id == user_id,
            RateLimitViolation.key_id.is_not(None),
            RateLimitViolation.at >= since,
        )
        .group_by(RateLimitViolation.key_id, RateLimitViolation.window)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for key_id, window, count in rows:
        if window in WINDOWS:
            out.setdefault(key_id, dict.fromkeys(WINDOWS, 0))[window] = count
    return out


def read_usage(
    cache: redis.Redis,
    keys: list[ApiKey],
    *,
    session: Session,
    user_id: str,
    now: datetime | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each key's usage by key id, and the user's (the sum over `keys`, all of one user).

    `requests` and `requests_by_day` are None when Redis cannot be reached (the refusals and
    the last use come from the database and still show)."""
    now = as_utc(now) if now is not None else utcnow()
    since = first_day(now)
    calls = _calls(cache, keys, now)
    refused = _refused(
        user_id, datetime.combine(since, time.min, tzinfo=now.tzinfo), session=session
    )
    total = _empty(since)
    per_key: dict[str, dict[str, Any]] = {}
    for key in keys:
        usage = _empty(since)
        usage["last_used_at"] = key.last_used_at
        usage["refused"].update(refused.get(key.key_id, {}))
        by_day = calls.get(key.key_id, {}) if calls is not None else {}
        usage["requests_by_day"] = dict(sorted(by_day.items()))
        usage["requests"] = sum(by_day.values())
        for day, n in by_day.items():
            total["requests_by_day"][day] = total["requests_by_day"].get(day, 0) + n
        total["requests"] += usage["requests"]
        for window in WINDOWS:
            total["refused"][window] += usage["refused"][window]
        if key.last_used_at is not None and (
            total["last_used_at"] is None or as_utc(key.last_used_at) > total["last_used_at"]
        ):
            total["last_used_at"] = as_utc(key.last_used_at)
        if calls is None:
            usage["requests"], usage["requests_by_day"] = None, None
        per_key[key.key_id] = usage
    total["requests_by_day"] = dict(sorted(total["requests_by_day"].items()))
    if calls is None:
        total["requests"], total["requests_by_day"] = None, None
    return per_key, total
