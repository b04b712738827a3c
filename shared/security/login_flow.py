"""Password login for both networks: throttled, locked out after repeated failures, audited.

Each network passes its own tables (`Accounts`: users, account locks, audit log) and its own
Redis key prefix; the flow is the same on both. Login never tells whether an account exists:
every username is throttled, counted, locked out and answered alike, and an unknown one costs
the same bcrypt work (a dummy verify). A successful login clears the account's failures and
stamps its `last_login_at` (the admin user details show it); a failed one leaves it alone.

Without Redis, login fails closed (503): no new session starts when the counters that guard
it cannot be kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.security.clock import as_utc, seconds_until
from shared.security.login_guard import PREFIX, LoginGuard, LoginLimits
from shared.security.passwords import MAX_PASSWORD_BYTES, verify_password
from shared.security.tokens import issue_token
from shared.settings import FerrySettings

log = logging.getLogger("ferry.auth")
BEARER = {"WWW-Authenticate": "Bearer"}
SERVICE_RETRY_SECONDS = 30


@dataclass(frozen=True)
class Accounts:
    """Where a network keeps its accounts: its `User`, `AccountLock` (`AccountLockColumns`)
    and `AuditLog` models, and the prefix of its login counters in Redis."""

    user: type
    lock: type
    audit: type
    key_prefix: str = PREFIX


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=BEARER)


def unavailable(what: str) -> Problem:
    return Problem(
        503,
        "Service unavailable",
        f"{what} is unavailable: the session store (Redis) cannot be reached; try again shortly",
        headers={"Retry-After": str(SERVICE_RETRY_SECONDS)},
    )


def refuse_long_password(password: str) -> None:
    """A 422 naming `body.password` for a password bcrypt would truncate (over 72 bytes:
    bytes, not characters, which is what a form's max_length counts)."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Problem(
            422,
            "Invalid request",
            f"password is longer than {MAX_PASSWORD_BYTES} bytes",
            errors=[{"loc": "body.password", "msg": "too long"}],
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


def login_guard(settings: FerrySettings, cache: redis.Redis, accounts: Accounts) -> LoginGuard:
    return LoginGuard(
        cache,
        LoginLimits(
            per_client_per_minute=settings.login_attempts_per_minute_per_ip,
            per_account_per_minute=settings.login_attempts_per_minute_per_account,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_minutes * 60,
        ),
        prefix=accounts.key_prefix,
    )


@dataclass(frozen=True)
class LoginResult:
    """A token, or the refusal to send. A refusal is returned, not raised, so that the
    caller's transaction still commits what it recorded (a lock and its audit row)."""

    token: dict[str, Any] | None = None
    refusal: Problem | None = None


def login(
    settings: FerrySettings,
    cache: redis.Redis,
    accounts: Accounts,
    *,
    session: Session,
    username: str,
    password: str,
    client: str,
) -> LoginResult:
    """Check one login attempt from `client` (its address, `shared.http.client_address`).

    Raises 429 (too many attempts) or 503 (Redis unreachable) before any work is recorded;
    returns a refusal (401, or 429 locked out) or a token otherwise.
    """
    guard = login_guard(settings, cache, accounts)
    try:
        wait = guard.count_attempt(client=client, username=username)
        if wait:
            raise _too_many_attempts(wait)
        redis_lock = guard.locked_for(username)
    except redis.RedisError:
        log.warning("login refused: Redis is unreachable (login fails closed)")
        raise unavailable("login") from None

    users, locks = accounts.user, accounts.lock
    found = session.execute(
        select(users, locks)
        .outerjoin(locks, locks.user_id == users.id)
        .where(users.username == username)
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
            _record_login(accounts, user, lock, session=session)
            return LoginResult(token=issue_access_token(settings, user))
        failures = guard.record_failure(username)
        if failures < settings.login_max_failures:
            # An attempt of the same burst may have locked the account (and restarted the
            # count) while this one checked its password: then this one is locked out too.
            wait = guard.locked_for(username)
            if wait:
                return LoginResult(refusal=_locked_out(wait))
            return LoginResult(refusal=_bad_login())
        # Exactly one attempt sees the threshold itself (INCR is atomic): it locks.
        seconds = guard.lock(username) if failures == settings.login_max_failures else 0
    except redis.RedisError:
        log.warning("login refused: Redis is unreachable (login fails closed)")
        raise unavailable("login") from None
    if seconds and user is not None:
        _lock_account(
            accounts, user, session=session, failures=failures, seconds=seconds, client=client
        )
    if seconds:
        log.warning("login locked out after %d failures", failures)
    return LoginResult(refusal=_locked_out(seconds or settings.login_lockout_minutes * 60))


def _record_login(accounts: Accounts, user: Any, lock: Any, *, session: Session) -> None:
    """Stamp the account's `last_login_at` and clear its failures, in one upsert of its lock
    row (made if it has none): concurrent logins of one account each write the row in turn,
    never two rows and never a duplicate-key error."""
    now = utcnow()
    values: dict[str, Any] = {"last_login_at": now}
    if lock is not None and (lock.failures or lock.locked_until is not None):
        values.update(failures=0, locked_until=None, updated_at=now)
    table = accounts.lock.__table__
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    session.execute(
        insert(table)
        .values(user_id=user.id, failures=0, locked_until=None, updated_at=now, last_login_at=now)
        .on_conflict_do_update(index_elements=[table.c.user_id], set_=values)
    )
    if lock is not None:
        session.expire(lock)  # the row changed underneath the loaded object


def _lock_account(
    accounts: Accounts,
    user: Any,
    *,
    session: Session,
    failures: int,
    seconds: int,
    client: str,
) -> None:
    now = utcnow()
    # Attempts of one burst race here: the owner's row, locked, puts them in line, and the
    # lock row is read again under it, so an account gets one lock row and one lock.
    session.execute(
        select(accounts.user.id).where(accounts.user.id == user.id).with_for_update(key_share=True)
    )
    lock = session.get(accounts.lock, user.id, populate_existing=True)
    if lock is not None and lock.locked_until is not None and as_utc(lock.locked_until) > now:
        return  # another attempt of the burst has just locked it
    if lock is None:
        lock = accounts.lock(user_id=user.id)
        session.add(lock)
    lock.failures, lock.updated_at = failures, now
    lock.locked_until = now + timedelta(seconds=seconds)
    session.flush()
    audit.record(
        session,
        accounts.audit,
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


def issue_access_token(settings: FerrySettings, user: Any) -> dict[str, Any]:
    """The login reply's body: a short-lived bearer token for `user`."""
    token, exp = issue_token(
        subject=user.id,
        role=user.role,
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=settings.access_token_minutes,
    )
    return {"access_token": token, "token_type": "bearer", "expires_at": exp.isoformat()}
