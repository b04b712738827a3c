"""A user's own account on the request network: their profile and their password.

The response network is the authority for users. A user's own change made here applies
here at once and travels to it as a `user_change` record (`UserChange`, exported with the
requests); the authority applies it unless an admin changed the password there after the
version this change was made on, and sends the resolved user back (`password_sync`,
`users_exporter`), which replaces this network's copy. A password crosses only as its
bcrypt hash, and is never logged.

A password change refuses, here at once and on the response network once it arrives, every
login session and API key issued before it (`User.sessions_valid_after`); the reply carries
a fresh token for the session that made the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from request_network.models import AuditLog, User, UserChange
from request_network.settings import RequestSettings
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.records import NotificationPreferences
from shared.security.login_flow import issue_access_token
from shared.security.passwords import MAX_PASSWORD_BYTES, hash_password, verify_password

__all__ = ["MIN_PASSWORD_CHARS", "change_password", "profile", "update"]

MIN_PASSWORD_CHARS = 12
PROFILE_FIELDS = ("display_name", "email", "notification_preferences")


def profile(user: User, *, session: Session) -> dict[str, Any]:
    """The user's account as they see it, with how many of their changes still wait to
    reach the authority."""
    prefs = user.notification_preferences or NotificationPreferences().model_dump()
    waiting = select(func.count()).select_from(UserChange).where(UserChange.user_id == user.id)
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "profile_type": user.profile_type,
        "active": user.active,
        "display_name": user.display_name,
        "email": user.email,
        "notification_preferences": prefs,
        "version": user.version,
        "changes_on_their_way": session.execute(waiting).scalar_one(),
        "sessions_valid_after": user.sessions_valid_after,
    }


def _locked(user_id: str, *, session: Session) -> User:
    user = session.execute(
        select(User).where(User.id == user_id).with_for_update()
    ).scalar_one_or_none()
    if user is None or not user.active:
        raise Problem(401, "Unauthorized", "unknown or inactive user")
    return user


def _send(user: User, data: dict[str, Any], *, session: Session, at: datetime) -> None:
    """Queue the change for the authority: the next requests export carries it."""
    user.own_changes = (user.own_changes or 0) + 1
    session.execute(
        insert(UserChange),
        [
            {
                "user_id": user.id,
                "version": user.own_changes,
                "base_version": user.version,
                "changed_at": at,
                "data": data,
            }
        ],
    )


def update(user_id: str, changes: dict[str, Any], *, session: Session) -> dict[str, Any]:
    """Apply the given profile fields (`display_name`, `email`, `notification_preferences`;
    null clears one) here, and send them to the authority. Audited; nothing given, nothing
    done."""
    user = _locked(user_id, session=session)
    changed = {k: v for k, v in changes.items() if k in PROFILE_FIELDS}
    changed = {k: v for k, v in changed.items() if getattr(user, k) != v}
    if changed:
        now = utcnow()
        for key, value in changed.items():
            setattr(user, key, value)
        _send(user, changed, session=session, at=now)
        audit.record(
            session,
            AuditLog,
            actor=user.id,
            action="user.profile_changed",
            target=user.id,
            detail={"fields": sorted(changed)},
        )
        session.flush()
    return profile(user, session=session)


def _password_problem(new: str) -> Problem | None:
    if len(new.encode()) > MAX_PASSWORD_BYTES:
        return Problem(
            422,
            "Unprocessable Content",
            f"the new password is longer than {MAX_PASSWORD_BYTES} bytes",
            errors=[{"loc": ["body", "new_password"], "msg": "too long", "type": "value_error"}],
        )
    if len(new) < MIN_PASSWORD_CHARS:
        return Problem(
            422,
            "Unprocessable Content",
            f"the new password must have at least {MIN_PASSWORD_CHARS} characters",
            errors=[{"loc": ["body", "new_password"], "msg": "too short", "type": "value_error"}],
        )
    return None


def change_password(
    settings: RequestSettings, user_id: str, *, current: str, new: str, session: Session
) -> dict[str, Any]:
    """Check the current password, set the new one here at once, refuse every session and
    API key issued before now, and send the new hash to the authority. Returns a fresh
    token for this session."""
    problem = _password_problem(new)
    if problem is not None:
        raise problem
    user = _locked(user_id, session=session)
    rounds = settings.bcrypt_rounds
    if not verify_password(current, user.password_hash, rounds=rounds):
        raise Problem(
            403,
            "Forbidden",
            "the current password is wrong",
            errors=[{"loc": ["body", "current_password"], "msg": "wrong", "type": "value_error"}],
        )
    if verify_password(new, user.password_hash, rounds=rounds):
        raise Problem(
            422,
            "Unprocessable Content",
            "the new password is the current one",
            errors=[{"loc": ["body", "new_password"], "msg": "unchanged", "type": "value_error"}],
        )
    now = utcnow()
    user.password_hash = hash_password(new, rounds=rounds)
    user.sessions_valid_after = now
    _send(user, {"password_hash": user.password_hash}, session=session, at=now)
    audit.record(session, AuditLog, actor=user.id, action="user.password_changed", target=user.id)
    session.flush()
    return issue_access_token(settings, user)
