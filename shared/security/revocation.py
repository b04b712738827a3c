"""Revocations held in Redis: logged-out tokens (by `jti`), revoked API keys (final) and
API keys an admin disabled (until an admin enables them again).

Every entry lives exactly as long as the credential could still be presented: a token's
entry until its `exp`, a key's until its expiry (a day longer, to absorb clock skew). Redis
errors propagate (`redis.RedisError`); the caller decides whether that fails open or closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import redis

from shared.security.clock import seconds_until

DENIED_TOKEN = "auth:jwt:deny:"  # noqa: S105 - a Redis key prefix
REVOKED_KEY = "auth:key:revoked:"
DISABLED_KEY = "auth:key:disabled:"
KEY_USED = "auth:key:used:"
NO_EXPIRY_TTL = timedelta(days=366)
SKEW = timedelta(days=1)


def _seconds_until(moment: datetime | None, *, fallback: timedelta) -> int:
    if moment is None:
        return int(fallback.total_seconds())
    return max(1, seconds_until(moment))


def deny_token(cache: redis.Redis, jti: str, expires_at: datetime) -> None:
    cache.set(DENIED_TOKEN + jti, 1, ex=_seconds_until(expires_at, fallback=NO_EXPIRY_TTL))


def token_denied(cache: redis.Redis, jti: str) -> bool:
    return bool(cache.exists(DENIED_TOKEN + jti))


def mark_key_revoked(cache: redis.Redis, key_id: str, expires_at: datetime | None) -> None:
    until = expires_at + SKEW if expires_at is not None else None
    cache.set(REVOKED_KEY + key_id, 1, ex=_seconds_until(until, fallback=NO_EXPIRY_TTL))


def key_revoked(cache: redis.Redis, key_id: str) -> bool:
    return bool(cache.exists(REVOKED_KEY + key_id))


def mark_key_disabled(cache: redis.Redis, key_id: str, expires_at: datetime | None) -> None:
    until = expires_at + SKEW if expires_at is not None else None
    cache.set(DISABLED_KEY + key_id, 1, ex=_seconds_until(until, fallback=NO_EXPIRY_TTL))


def clear_key_disabled(cache: redis.Redis, key_id: str) -> None:
    cache.delete(DISABLED_KEY + key_id)


def claim_last_used_slot(cache: redis.Redis, key_id: str, seconds: int) -> bool:
    """True for the first caller in each `seconds` window per key: only it writes last_used_at."""
    return bool(cache.set(KEY_USED + key_id, 1, nx=True, ex=seconds))
