"""Admins disable and enable any user's API key (audited).

Disabled is not revoked: an admin disables a key (a suspected leak, a misbehaving script)
and may enable it again; its owner revokes it, finally. A revoked key can be neither
disabled nor enabled (409). Both are idempotent: disabling a disabled key (or enabling an
enabled one) changes nothing, is not audited again and answers 200 with `changed: false`.

A disable takes effect on the very next call in every API process: the column is written
in the admin's transaction (no process caches key rows: each call reads its key), and a
Redis mark, read in the round trip every key call makes anyway, covers a row read from a
lagging replica. The mark is set before the commit and best effort (a disable must not wait
for Redis), like a revocation's. Enabling deletes the mark, whether or not the row changed
(so it also clears a mark a failed disable left behind), and fails closed (503, nothing
changed) when Redis cannot be reached: otherwise the mark would keep refusing a key the
database calls enabled.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from request_network.models import ApiKey, AuditLog
from request_network.services.auth import unavailable
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.security.revocation import clear_key_disabled, mark_key_disabled

log = logging.getLogger("ferry.api_keys")


def get_key(key_id: str, *, session: Session) -> ApiKey:
    key = session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one_or_none()
    if key is None:
        raise Problem(404, "Not found", "no such API key")
    return key


def set_disabled(
    cache: redis.Redis,
    *,
    session: Session,
    actor: str,
    key_id: str,
    disabled: bool,
    now: datetime | None = None,
) -> tuple[ApiKey, bool]:
    """Disable (`disabled=True`) or enable any user's key; returns the key and whether this
    call changed it (only a change is audited). One conditional UPDATE decides, so of many
    admins racing exactly one changes the key and is audited."""
    key = get_key(key_id, session=session)
    if key.revoked_at is not None:
        raise Problem(
            409, "Conflict", "this API key was revoked by its owner; a revoked key stays revoked"
        )
    if disabled:
        try:
            mark_key_disabled(cache, key.key_id, key.expires_at)
        except redis.RedisError:
            log.warning("API key %s disabled in the database only: Redis is unreachable", key_id)
        changed = session.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id, ApiKey.disabled_at.is_(None))
            .values(disabled_at=now or utcnow(), disabled_by=actor)
            .execution_options(synchronize_session="fetch")
        )
    else:
        changed = session.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id, ApiKey.disabled_at.is_not(None))
            .values(disabled_at=None, disabled_by=None)
            .execution_options(synchronize_session="fetch")
        )
        try:
            clear_key_disabled(cache, key.key_id)
        except redis.RedisError:
            log.warning("API key %s not enabled: Redis is unreachable", key_id)
            raise unavailable("enabling API keys") from None
    if changed.rowcount != 1:  # already so, or made so by a call racing this one
        session.refresh(key)
        return key, False
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="api_key.disabled" if disabled else "api_key.enabled",
        target=key.key_id,
        detail={"user_id": key.user_id, "name": key.name},
    )
    return key, True
