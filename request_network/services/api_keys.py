"""API keys: issue (the key is shown once), list, rotate, revoke, and authenticate a call by
its key. Admins disable and enable keys (`api_key_admin`); usage is `api_key_usage`.

Authentication order, cheapest and least revealing first: shape and checksum (no I/O at
all), environment, one indexed lookup by key id, one HMAC compared in constant time with
the current secret's and with the previous one's (a dummy when no row matched), the row's
own revoked, disabled and expiry columns and the previous secret's grace period, then one
Redis round trip that reads the revocation and disable marks and counts the call. The
database row is authoritative; the Redis marks make a revocation or a disable effective on
the very next call even where a row might be cached or replicated with lag.

Rotation gives a key a new secret under the same key id; the secret it replaces keeps
working for `api_key_rotation_grace_hours` (never past the key's expiry), then is refused
like an expired key. Only one previous secret is kept: rotating again within the grace
period ends the older one at once. Revoked (by the owner) is final; disabled (by an admin)
is undone by an admin.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import redis
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from request_network.models import ApiKey, AuditLog, User
from request_network.services import api_key_usage, notifications
from request_network.services.auth import unauthorized, unavailable
from request_network.settings import RequestSettings
from shared import audit
from shared.cache import redis_ok
from shared.db import utcnow
from shared.problems import Problem
from shared.security.api_keys import (
    CURRENT,
    PREVIOUS,
    SCOPES,
    MalformedKey,
    display_prefix,
    generate_key,
    key_hmac,
    matching_secret,
    parse_key,
    scopes_for_role,
)
from shared.security.clock import as_utc, issued_after_cutoff
from shared.security.revocation import claim_last_used_slot, mark_key_revoked

log = logging.getLogger("ferry.api_keys")
MAX_ACTIVE_KEYS_PER_USER = 25
LAST_USED_EVERY = timedelta(seconds=60)


def key_status(key: ApiKey, now: datetime | None = None) -> str:
    """revoked (final) > expired > disabled (an admin may enable it again) > active."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and as_utc(key.expires_at) <= (now or utcnow()):
        return "expired"
    if key.disabled_at is not None:
        return "disabled"
    return "active"


def previous_secret_open(key: ApiKey, now: datetime) -> bool:
    """Whether the secret the last rotation replaced still opens the key."""
    until = key.previous_valid_until
    return key.previous_key_hmac is not None and until is not None and as_utc(until) > now


def describe(key: ApiKey, now: datetime | None = None) -> dict[str, Any]:
    """Everything about a key except the key itself (which is never stored): its secrets
    appear masked (the public prefix only), the previous one only during its grace period."""
    now = now or utcnow()
    prefix = display_prefix(key.environment, key.key_id)
    secrets = [{"which": CURRENT, "prefix": prefix, "valid_until": key.expires_at}]
    if previous_secret_open(key, now):
        secrets.append(
            {"which": PREVIOUS, "prefix": prefix, "valid_until": key.previous_valid_until}
        )
    return {
        "key_id": key.key_id,
        "prefix": prefix,
        "name": key.name,
        "scopes": list(key.scopes),
        "environment": key.environment,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "rotated_at": key.rotated_at,
        "disabled_at": key.disabled_at,
        "status": key_status(key, now),
        "secrets": secrets,
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


def list_keys_with_usage(
    cache: redis.Redis, *, session: Session, user: User, now: datetime | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The user's keys described (`describe`), each with its usage, and the user's usage
    summed over them (`api_key_usage.read_usage`)."""
    now = now or utcnow()
    keys = list_keys(session=session, user=user)
    per_key, total = api_key_usage.read_usage(
        cache, keys, session=session, user_id=user.id, now=now
    )
    return [{**describe(k, now), "usage": per_key[k.key_id]} for k in keys], total


def rotate_key(
    settings: RequestSettings,
    cache: redis.Redis,
    *,
    session: Session,
    user: User,
    key_id: str,
    presented_key: str | None = None,
    presented_secret: str | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new secret for one of the user's keys; returns the row and the new key (shown once).

    The secret it replaces keeps working until `api_key_rotation_grace_hours` from now
    (never past the key's expiry; 0: not at all); a previous secret still in its grace
    period ends now (one previous secret at most). Scopes, name and expiry stay.

    Called with an API key (`presented_key`, `presented_secret`: the caller's key id and
    which of its secrets it sent), the key may rotate only itself, and only with its current
    secret: a leaked key must not obtain another key's secret, and a replaced secret must
    not obtain a fresh one. Revoked or expired keys are a 409; a disabled key may be rotated
    (it stays disabled). Fails closed (503) without Redis, as issuing a key does. Rotations
    racing: one conditional UPDATE (``WHERE key_hmac = <the secret read>``) lets exactly one
    win; the others are a 409.
    """
    if not redis_ok(cache):
        log.warning("API key rotation refused: Redis is unreachable (key issuing fails closed)")
        raise unavailable("rotating API keys")
    key = session.execute(
        select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.user_id == user.id)
    ).scalar_one_or_none()
    if key is None:
        raise Problem(404, "Not found", "no such API key")
    if presented_key is not None and presented_key != key.key_id:
        raise Problem(
            403, "Forbidden", "an API key may rotate only itself; use a login session for others"
        )
    if presented_secret == PREVIOUS:
        raise Problem(
            403, "Forbidden", "a key's previous secret cannot rotate it; use its current secret"
        )
    now = now or utcnow()
    if key.revoked_at is not None:
        raise Problem(409, "Conflict", "this API key was revoked; a revoked key stays revoked")
    if key.expires_at is not None and as_utc(key.expires_at) <= now:
        raise Problem(409, "Conflict", "this API key has expired; create a new one")
    parsed = generate_key(key.environment, key.key_id)
    grace = timedelta(hours=settings.api_key_rotation_grace_hours)
    until: datetime | None = now + grace
    if key.expires_at is not None:
        until = min(until, as_utc(key.expires_at))
    if not grace:
        until = None
    rotated = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.key_hmac == key.key_hmac, ApiKey.revoked_at.is_(None))
        .values(
            key_hmac=key_hmac(parsed.key, settings.api_key_pepper.get_secret_value()),
            previous_key_hmac=key.key_hmac if until is not None else None,
            previous_valid_until=until,
            rotated_at=now,
        )
        .execution_options(synchronize_session="fetch")
    )
    if rotated.rowcount != 1:
        raise Problem(409, "Conflict", "the key was changed at the same time; try again")
    audit.record(
        session,
        AuditLog,
        actor=user.id,
        action="api_key.rotated",
        target=key.key_id,
        detail={"name": key.name, "previous_valid_until": until},
    )
    notifications.api_key_rotated(key, user_id=user.id, until=until, session=session)
    return key, parsed.key


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


class KeyCaller(NamedTuple):
    """Who a key authenticated: the owner, the key, its effective scopes (never beyond the
    owner's current role) and which secret was sent (`CURRENT` or `PREVIOUS`)."""

    user: User
    key: ApiKey
    scopes: frozenset[str]
    secret: str


def authenticate_key(
    settings: RequestSettings, cache: redis.Redis, raw: str, *, session: Session
) -> KeyCaller:
    """The caller a key stands for (see the module docstring for the order of the checks)."""
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
    secret = matching_secret(
        parsed.key,
        pepper,
        key.key_hmac if key else None,
        key.previous_key_hmac if key else None,
    )
    if secret is None or key is None:
        raise unauthorized("invalid API key")
    now = utcnow()
    if key.revoked_at is not None:
        raise unauthorized("this API key was revoked")
    if key.disabled_at is not None:
        raise unauthorized("this API key was disabled by an admin")
    if key.expires_at is not None and as_utc(key.expires_at) <= now:
        raise unauthorized("this API key has expired")
    if secret == PREVIOUS and not previous_secret_open(key, now):
        raise unauthorized("this API key secret was replaced by a rotation and has expired")
    if user is None or not user.active:
        raise unauthorized("unknown or inactive user")
    if not issued_after_cutoff(user.sessions_valid_after, key.created_at):
        raise unauthorized("this API key was issued before the password changed")
    revoked, disabled = api_key_usage.check_marks_and_count(cache, key.key_id, now=now)
    if revoked:
        raise unauthorized("this API key was revoked")
    if disabled:
        raise unauthorized("this API key was disabled by an admin")
    _touch(cache, key)
    return KeyCaller(user, key, frozenset(key.scopes) & scopes_for_role(user.role), secret)


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
