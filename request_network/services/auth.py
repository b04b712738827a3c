"""Login, access tokens and account locks for the request network.

Login is `shared.security.login_flow` over this network's tables: never telling whether an
account exists, throttled per client address and per account, locked out after repeated
failures, audited.

Without Redis, login and logout fail closed (503): no new session starts, and a logout that
cannot be recorded says so instead of pretending. Checking a bearer token against the `jti`
deny-list fails open (logged): access tokens live `access_token_minutes` (15 by default),
so at worst a token logged out of stays usable for what is left of that during an outage,
while DESIGN.md §4 keeps the API up without Redis (reads of stored results need no Redis,
and submissions follow the rate limiter's own fail-open setting).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session

from request_network.models import AccountLock, AuditLog, User
from request_network.settings import RequestSettings
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.security import login_flow
from shared.security.clock import issued_after_cutoff, seconds_until
from shared.security.login_flow import LoginResult, unauthorized, unavailable
from shared.security.login_guard import LoginGuard
from shared.security.revocation import deny_token, token_denied
from shared.security.tokens import InvalidToken, TokenClaims, decode_token

__all__ = ["LoginResult", "unauthorized", "unavailable"]

log = logging.getLogger("ferry.auth")
ACCOUNTS = login_flow.Accounts(user=User, lock=AccountLock, audit=AuditLog)


def login_guard(settings: RequestSettings, cache: redis.Redis) -> LoginGuard:
    return login_flow.login_guard(settings, cache, ACCOUNTS)


def login(
    settings: RequestSettings,
    cache: redis.Redis,
    *,
    session: Session,
    username: str,
    password: str,
    client: str,
) -> LoginResult:
    """`shared.security.login_flow.login` over the request network's tables."""
    return login_flow.login(
        settings,
        cache,
        ACCOUNTS,
        session=session,
        username=username,
        password=password,
        client=client,
    )


# Tokens ---------------------------------------------------------------------------------


def authenticate_token(
    settings: RequestSettings, cache: redis.Redis, token: str, *, session: Session
) -> tuple[User, TokenClaims]:
    """The user a bearer token stands for. Refuses bad, expired or logged-out tokens."""
    try:
        claims = decode_token(
            token,
            secret=settings.jwt_secret.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidToken:
        raise unauthorized("invalid or expired token") from None
    try:
        denied = token_denied(cache, claims.jti)
    except redis.RedisError:
        log.warning("jti deny-list unreadable (Redis down): token accepted until it expires")
        denied = False
    if denied:
        raise unauthorized("this token was revoked (logged out); log in again")
    user = session.get(User, claims.sub)
    if user is None or not user.active:
        raise unauthorized("unknown or inactive user")
    if not issued_after_cutoff(user.sessions_valid_after, claims.iat):
        raise unauthorized("this session ended when the password changed; log in again")
    return user, claims


def logout(cache: redis.Redis, *, jti: str, expires_at: datetime) -> None:
    """Deny the token's `jti` until it would have expired anyway."""
    try:
        deny_token(cache, jti, expires_at)
    except redis.RedisError:
        log.warning("logout refused: Redis is unreachable")
        raise unavailable("logout") from None


# Account locks (admin) ------------------------------------------------------------------


def _user_or_404(user_id: str, *, session: Session) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", "no such user")
    return user


def lock_status(
    settings: RequestSettings, cache: redis.Redis, *, session: Session, user_id: str
) -> dict[str, Any]:
    """The account's lock as the database records it, plus Redis's live failure count."""
    user = _user_or_404(user_id, session=session)
    lock = session.get(AccountLock, user_id)
    guard = login_guard(settings, cache)
    redis_state: str = "ok"
    try:
        failures, redis_lock = guard.failures(user.username), guard.locked_for(user.username)
    except redis.RedisError:
        failures, redis_lock, redis_state = (lock.failures if lock else 0), 0, "unavailable"
    db_left = seconds_until(lock.locked_until if lock else None)
    locked_for = max(db_left, redis_lock)
    until = lock.locked_until if db_left else None
    if until is None and redis_lock:
        until = utcnow() + timedelta(seconds=redis_lock)
    return {
        "user_id": user.id,
        "username": user.username,
        "locked": bool(locked_for),
        "locked_until": until,
        "failures": failures,
        "locked_failures": lock.failures if lock else 0,
        "updated_at": lock.updated_at if lock else None,
        "redis": redis_state,
    }


def lift_lock(
    settings: RequestSettings, cache: redis.Redis, *, session: Session, user_id: str, actor: str
) -> None:
    """Unlock now and forget failures; audited. Needs Redis (the lock is mirrored there)."""
    user = _user_or_404(user_id, session=session)
    try:
        login_guard(settings, cache).clear(user.username)
    except redis.RedisError:
        raise unavailable("lifting a lock") from None
    lock = session.get(AccountLock, user_id)
    was_locked_until = lock.locked_until if lock else None
    if lock is not None:
        lock.failures, lock.locked_until, lock.updated_at = 0, None, utcnow()
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="account.unlocked",
        target=user.id,
        detail={
            "username": user.username,
            "was_locked": seconds_until(was_locked_until) > 0,
            "was_locked_until": was_locked_until,
        },
    )
    session.flush()
