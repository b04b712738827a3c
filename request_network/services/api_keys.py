"""API keys: issue (the key is shown once), list, revoke, and authenticate a call by its key.

Authentication order, cheapest and least revealing first: shape and checksum (no I/O at
all), environment, one indexed lookup by key id, a constant-time HMAC comparison (a dummy
one when no row matched), the Redis revocation mark, then the row's own revoked and expiry
columns. The database row is authoritative; the Redis mark makes a revocation effective on
the very next call even where a row might be cached or replicated with lag.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from request_network.models import ApiKey, AuditLog, User
from request_network.services.auth import unauthorized, unavailable
from request_network.settings import RequestSettings
from shared import audit
from shared.cache import redis_ok
from shared.db import utcnow
from shared.problems import Problem
from shared.security.api_keys import (
    SCOPES,
    MalformedKey,
    display_prefix,
    generate_key,
    hmac_matches,
    key_hmac,
    parse_key,
    scopes_for_role,
)
from shared.security.clock import as_utc
from shared.security.revocation import claim_last_used_slot, key_revoked, mark_key_revoked

log = logging.getLogger("ferry.api_keys")
MAX_ACTIVE_KEYS_PER_USER = 25
LAST_USED_EVERY = timedelta(seconds=60)


def key_status(key: ApiKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and as_utc(key.expires_at) <= utcnow():
        return "expired"
    return "active"


def describe(key: ApiKey) -> dict[str, Any]:
    """Everything about a key except the key itself (which is never stored)."""
    return {
        "key_id": key.key_id,
        "prefix": display_prefix(key.environment, key.key_id),
        "name": key.name,
        "scopes": list(key.scopes),
        "environment": key.environment,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "status": key_status(key),
    }


def create_key(
    settings: RequestSettings,
    cache: redis.Redis,
    *,
    session: Session,
    user: User,
    name: str,
    scopes: list[str],
    expires_in_days: int,
) -> tuple[ApiKey, str]:
    """A new key for `user`; returns the row and the key, which is never retrievable again.

    Fails closed (503) without Redis, as DESIGN.md §4 requires of key issuing. At most
    `MAX_ACTIVE_KEYS_PER_USER` active keys, however many creates race: the owner's row is
    locked first (PostgreSQL), so one user's creates run one after another, and the new key
    is inserted before the active keys are counted, so on SQLite (where the row lock is a
    no-op) the insert holds the database's one write lock while the count sees every key
    committed before it. Over the cap, the 409 rolls the new key back.
    """
    if not redis_ok(cache):
        log.warning("API key refused: Redis is unreachable (key issuing fails closed)")
        raise unavailable("issuing API keys")
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise Problem(422, "Invalid request", f"unknown scopes: {', '.join(unknown)}")
    beyond = [s for s in wanted if s not in scopes_for_role(user.role)]
    if beyond:
        raise Problem(
            403, "Forbidden", f"the {user.role} role cannot grant these scopes: {', '.join(beyond)}"
        )
    _lock_owner(user.id, session=session)
    parsed = generate_key(settings.api_key_environment)
    now = utcnow()
    key = ApiKey(
        key_id=parsed.key_id,
        user_id=user.id,
        name=name,
        key_hmac=key_hmac(parsed.key, settings.api_key_pepper.get_secret_value()),
        environment=parsed.environment,
        scopes=wanted,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days),
    )
    session.add(key)
    try:
        session.flush()
    except IntegrityError:  # a key id (60 random bits) drawn twice: nothing is stored
        raise Problem(409, "Conflict", "the new key clashed with a stored one; try again") from None
    active = _active_keys(user.id, session=session)  # this new key included
    if active > MAX_ACTIVE_KEYS_PER_USER:
        raise Problem(  # the entry point rolls the new key back
            409,
            "Too many API keys",
            f"you already have {active - 1} active keys (the most allowed); revoke one first",
        )
    audit.record(
        session,
        AuditLog,
        actor=user.id,
        action="api_key.created",
        target=key.key_id,
        detail={"name": name, "scopes": wanted, "expires_at": key.expires_at},
    )
    return key, parsed.key


def _lock_owner(user_id: str, *, session: Session) -> None:
    """Lock the user's row until the transaction ends (FOR NO KEY UPDATE: other writers of
    the row wait, rows that merely reference it do not). SQLite has no row locks: no-op."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def _active_keys(user_id: str, *, session: Session) -> int:
    return session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()),
        )
    ).scalar_one()


def list_keys(*, session: Session, user: User) -> list[ApiKey]:
    return list(
        session.execute(
            select(ApiKey)
            .where(ApiKey.user_id == user.id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        ).scalars()
    )


def revoke_key(cache: redis.Redis, *, session: Session, user: User, key_id: str) -> ApiKey:
    """Revoke one of the user's own keys at once; another user's key is a 404.

    The database column is authoritative and always written; the Redis mark is best effort
    (a revocation must not wait for Redis) and is set before the commit, so a failed commit
    can only leave a key more revoked than recorded, never less. The column is set by one
    conditional UPDATE (``WHERE revoked_at IS NULL``): of many revocations racing, exactly
    one changes the row, and only that one is audited.
    """
    key = session.execute(
        select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.user_id == user.id)
    ).scalar_one_or_none()
    if key is None:
        raise Problem(404, "Not found", "no such API key")
    try:
        mark_key_revoked(cache, key.key_id, key.expires_at)
    except redis.RedisError:
        log.warning("API key %s revoked in the database only: Redis is unreachable", key_id)
    revoked = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if revoked.rowcount == 1:
        audit.record(
            session,
            AuditLog,
            actor=user.id,
            action="api_key.revoked",
            target=key.key_id,
            detail={"name": key.name},
        )
    return key


def authenticate_key(
    settings: RequestSettings, cache: redis.Redis, raw: str, *, session: Session
) -> tuple[User, ApiKey, frozenset[str]]:
    """The owner, the key and its effective scopes (never beyond the owner's current role)."""
    try:
        parsed = parse_key(raw)
    except MalformedKey as exc:
        raise unauthorized(f"malformed API key: {exc}") from None
    if parsed.environment != settings.api_key_environment:
        raise unauthorized(
            f"this is a {parsed.environment} key; this server takes "
            f"{settings.api_key_environment} keys"
        )
    found = session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_id == parsed.key_id)
    ).one_or_none()
    key, user = (found[0], found[1]) if found else (None, None)
    pepper = settings.api_key_pepper.get_secret_value()
    if not hmac_matches(parsed.key, pepper, key.key_hmac if key else None) or key is None:
        raise unauthorized("invalid API key")
    try:
        revoked = key_revoked(cache, key.key_id)
    except redis.RedisError:
        log.warning("API key revocation mark unreadable (Redis down); the database decides")
        revoked = False
    if revoked or key.revoked_at is not None:
        raise unauthorized("this API key was revoked")
    if key.expires_at is not None and as_utc(key.expires_at) <= utcnow():
        raise unauthorized("this API key has expired")
    if user is None or not user.active:
        raise unauthorized("unknown or inactive user")
    _touch(cache, key)
    return user, key, frozenset(key.scopes) & scopes_for_role(user.role)


def _touch(cache: redis.Redis, key: ApiKey) -> None:
    """Record use at most once a minute per key (a Redis slot elects the one writer).

    The time is written in the request's own transaction, so a call that fails and rolls
    back may leave it up to a minute stale; it is bookkeeping, not a security control.
    """
    now = utcnow()
    if key.last_used_at is not None and now - as_utc(key.last_used_at) < LAST_USED_EVERY:
        return
    try:
        claimed = claim_last_used_slot(cache, key.key_id, int(LAST_USED_EVERY.total_seconds()))
    except redis.RedisError:
        claimed = True  # the row's own timestamp still throttles
    if claimed:
        key.last_used_at = now
