"""Login, access tokens and account locks for the request network.

Login never tells whether an account exists: every username is throttled, counted, locked
out and answered alike, and an unknown one costs the same bcrypt work (a dummy verify).

Without Redis, login and logout fail closed (503): no new session starts, and a logout that
cannot be recorded says so instead of pretending. Checking a bearer token against the `jti`
deny-list fails open (logged): access tokens live `access_token_minutes` (15 by default),
so at worst a token logged out of stays usable for what is left of that during an outage,
while DESIGN.md §4 keeps the API up without Redis (reads of stored results need no Redis,
and submissions follow the rate limiter's own fail-open setting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from request_network.models import AccountLock, AuditLog, User
from request_network.settings import RequestSettings
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.security.clock import seconds_until
from shared.security.login_guard import LoginGuard, LoginLimits
from shared.security.passwords import verify_password
from shared.security.revocation import deny_token, token_denied
from shared.security.tokens import InvalidToken, TokenClaims, decode_token, issue_token

log = logging.getLogger("ferry.auth")
BEARER = {"WWW-Authenticate": "Bearer"}
SERVICE_RETRY_SECONDS = 30


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=BEARER)


def unavailable(what: str) -> Problem:
    return Problem(
        503,
        "Service unavailable",
        f"{what} is unavailable: the session store (Redis) cannot be reached; try again shortly",
        headers={"Retry-After": str(SERVICE_RETRY_SECONDS)},
    )


def _bad_login() -> Problem:
    return unauthorized("incorrect username or password")


def _too_many_attempts(wait: int) -> Problem:
    return Problem(
        429,
        "Too many login attempts",
        "too many login attempts from this client or for this username; wait and try again",
        headers={"Retry-After": str(wait)},
    )


def _locked_out(wait: int) -> Problem:
    return Problem(
        429,
        "Login temporarily locked",
        "too many failed logins for this username; try again later or ask an administrator",
        headers={"Retry-After": str(wait)},
    )


def login_guard(settings: RequestSettings, cache: redis.Redis) -> LoginGuard:
    return LoginGuard(
        cache,
        LoginLimits(
            per_client_per_minute=settings.login_attempts_per_minute_per_ip,
            per_account_per_minute=settings.login_attempts_per_minute_per_account,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_minutes * 60,
        ),
    )


@dataclass(frozen=True)
class LoginResult:
    """A token, or the refusal to send. A refusal is returned, not raised, so that the
    caller's transaction still commits what it recorded (a lock and its audit row)."""

    token: dict[str, Any] | None = None
    refusal: Problem | None = None


def login(
    settings: RequestSettings,
    cache: redis.Redis,
    *,
    session: Session,
    username: str,
    password: str,
    client: str,
) -> LoginResult:
    guard = login_guard(settings, cache)
    try:
        wait = guard.count_attempt(client=client, username=username)
        if wait:
            raise _too_many_attempts(wait)
        redis_lock = guard.locked_for(username)
    except redis.RedisError:
        log.warning("login refused: Redis is unreachable (login fails closed)")
        raise unavailable("login") from None

    found = session.execute(
        select(User, AccountLock)
        .outerjoin(AccountLock, AccountLock.user_id == User.id)
        .where(User.username == username)
    ).one_or_none()
    user, lock = (found[0], found[1]) if found else (None, None)
    ok = verify_password(
        password, user.password_hash if user else None, rounds=settings.bcrypt_rounds
    )
    locked_for = max(redis_lock, seconds_until(lock.locked_until if lock else None))
    if locked_for:
        return LoginResult(refusal=_locked_out(locked_for))

    try:
        if ok and user is not None and user.active:
            guard.clear(username)
            if lock is not None and (lock.failures or lock.locked_until is not None):
                lock.failures, lock.locked_until, lock.updated_at = 0, None, utcnow()
            return LoginResult(token=_issue(settings, user))
        failures = guard.record_failure(username)
        if failures < settings.login_max_failures:
            return LoginResult(refusal=_bad_login())
        # Exactly one attempt sees the threshold itself (INCR is atomic): it locks.
        seconds = guard.lock(username) if failures == settings.login_max_failures else 0
    except redis.RedisError:
        log.warning("login refused: Redis is unreachable (login fails closed)")
        raise unavailable("login") from None
    if seconds and user is not None:
        _lock_account(
            user, lock, session=session, failures=failures, seconds=seconds, client=client
        )
    if seconds:
        log.warning("login locked out after %d failures", failures)
    return LoginResult(refusal=_locked_out(seconds or settings.login_lockout_minutes * 60))


def _lock_account(
    user: User,
    lock: AccountLock | None,
    *,
    session: Session,
    failures: int,
    seconds: int,
    client: str,
) -> None:
    now = utcnow()
    if lock is None:
        lock = AccountLock(user_id=user.id)
        session.add(lock)
    lock.failures, lock.updated_at = failures, now
    lock.locked_until = now + timedelta(seconds=seconds)
    session.flush()
    audit.record(
        session,
        AuditLog,
        actor="system",
        action="account.locked",
        target=user.id,
        detail={
            "username": user.username,
            "failures": failures,
            "locked_until": lock.locked_until,
            "client": client,
        },
    )


def _issue(settings: RequestSettings, user: User) -> dict[str, Any]:
    token, exp = issue_token(
        subject=user.id,
        role=user.role,
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=settings.access_token_minutes,
    )
    return {"access_token": token, "token_type": "bearer", "expires_at": exp.isoformat()}


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
