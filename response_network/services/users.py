"""Users as the response network's admins manage them (it is the authority): list, read,
create, update (role, profile type, active) and reset a password. Every change bumps the
user's `version`, so the next identity export carries it to the request network, and is
audited; a password is never logged or returned."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from response_network.models import AccountLock, AuditLog, ProfileType, User
from response_network.services import identity
from shared import audit, user_list
from shared.db import utcnow
from shared.problems import Problem
from shared.security.passwords import MAX_PASSWORD_BYTES, hash_password

EDITABLE = ("role", "profile_type", "active")


def list_users(**filters: Any) -> tuple[list[dict[str, Any]], int]:
    """A page of users (see `shared.user_list.list_users`)."""
    return user_list.list_users(User, AccountLock, **filters)


def get_user(user_id: str, *, session: Session) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", "no such user")
    return user


def details(user_id: str, *, session: Session) -> dict[str, Any]:
    return describe(get_user(user_id, session=session), session=session)


def describe(user: User, *, session: Session) -> dict[str, Any]:
    lock = session.get(AccountLock, user.id)
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "profile_type": user.profile_type,
        "active": user.active,
        "rate_limits": user.rate_limits,
        "version": user.version,
        "exported_version": user.exported_version,
        "replicated": user.exported_version >= user.version,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "locked_until": lock.locked_until if lock else None,
        "failed_logins": lock.failures if lock else 0,
        "last_login_at": lock.last_login_at if lock else None,
    }


def _password_problem(password: str) -> None:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Problem(
            422,
            "Invalid request",
            f"password is longer than {MAX_PASSWORD_BYTES} bytes",
            errors=[{"loc": "body.password", "msg": "too long"}],
        )


def create(
    *,
    session: Session,
    username: str,
    password: str,
    role: str,
    profile_type: str,
    rounds: int,
    actor: str,
) -> dict[str, Any]:
    _password_problem(password)
    try:
        user = identity.create_user(
            session=session,
            username=username,
            password=password,
            profile_type=profile_type,
            role=role,
            rounds=rounds,
            actor=actor,
        )
    except identity.IdentityError as exc:
        if "already exists" in str(exc):
            raise Problem(409, "Conflict", str(exc)) from None
        raise Problem(422, "Invalid request", str(exc)) from None
    return describe(user, session=session)


def update(
    user_id: str, changes: dict[str, Any], *, session: Session, actor: str
) -> dict[str, Any]:
    """Apply `changes` (a subset of `EDITABLE`); nothing changed, nothing bumped."""
    user = get_user(user_id, session=session)
    if "profile_type" in changes and session.get(ProfileType, changes["profile_type"]) is None:
        raise Problem(422, "Invalid request", f"unknown profile type {changes['profile_type']!r}")
    before = {name: getattr(user, name) for name in EDITABLE}
    changed = {k: v for k, v in changes.items() if k in EDITABLE and before[k] != v}
    if not changed:
        return describe(user, session=session)
    for name, value in changed.items():
        setattr(user, name, value)
    user.version += 1
    user.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="user.updated",
        target=user.id,
        detail={"before": {k: before[k] for k in changed}, "after": changed},
    )
    return describe(user, session=session)


def reset_password(
    user_id: str, password: str, *, session: Session, rounds: int, actor: str
) -> None:
    _password_problem(password)
    user = get_user(user_id, session=session)
    user.password_hash = hash_password(password, rounds=rounds)
    user.version += 1
    now = utcnow()
    # This network set the password at this version: a user's own change made on an
    # older one loses to it. Sessions and keys from before now are refused on both sides.
    user.password_set_version, user.password_synced = user.version, False
    user.sessions_valid_after, user.updated_at = now, now
    session.flush()
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="user.password_reset",
        target=user.id,
        detail={"username": user.username},
    )
