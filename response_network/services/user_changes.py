"""A user's own changes arriving from the request network (`user_change` records).

This network is the authority for users. A change the user made there (their password, as
a bcrypt hash only, or their profile) is applied here once, in the order it was made (the
record's version counts the user's changes; a replayed or older one changes nothing). A
password change made on a version older than this network's own last setting of the
password (an admin's reset) loses to it, with an audit row saying so: versions decide, not
clocks. What is applied bumps the user's version; `password_sync` (and `users_exporter`)
send the resolved user back, so both networks agree.

A `user` record from the request network is refused: the batch is quarantined.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from response_network.models import AuditLog, User
from shared import audit
from shared.db import utcnow
from shared.records import UserChangeData
from transfer.format import Record
from transfer.protocol.exchange import RecordRefused

__all__ = ["apply_user_changes", "refuse_users"]

PROFILE_FIELDS = ("display_name", "email", "notification_preferences")


def apply_user_changes(session: Session, records: list[Record], _batch_id: str) -> None:
    ids = sorted({rec.id for rec in records})
    users = {
        u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)).with_for_update())
    }
    for rec in sorted(records, key=lambda r: (r.id, r.version)):
        user = users.get(rec.id)
        if user is None:
            raise RecordRefused(rec, "a change for a user this network does not know")
        if rec.version <= user.own_changes_applied:
            continue  # a replay, or older than one already applied
        _apply(session, user, rec.version, UserChangeData.model_validate(rec.data))
    session.flush()


def _apply(session: Session, user: User, number: int, change: UserChangeData) -> None:
    user.own_changes_applied = number
    changed: list[str] = []
    if change.password_hash is not None:
        if change.base_version >= user.password_set_version:
            user.password_hash = change.password_hash
            user.sessions_valid_after = change.changed_at
            user.password_synced = False
            changed.append("password")
        else:
            audit.record(
                session,
                AuditLog,
                actor=user.id,
                action="user.password_change_superseded",
                target=user.id,
                detail={
                    "made_on_version": change.base_version,
                    "password_set_at_version": user.password_set_version,
                },
            )
    given = change.model_fields_set
    for field in PROFILE_FIELDS:
        if field in given:
            value = getattr(change, field)
            value = value.model_dump() if hasattr(value, "model_dump") else value
            if getattr(user, field) != value:
                setattr(user, field, value)
                changed.append(field)
    if not changed:
        return
    user.version += 1
    user.updated_at = utcnow()
    audit.record(
        session,
        AuditLog,
        actor=user.id,
        action="user.own_change_applied",
        target=user.id,
        detail={"fields": changed, "change": number, "version": user.version},
    )


def refuse_users(_session: Session, records: list[Record], _batch_id: str) -> None:
    """Users come only from this network, the authority."""
    raise RecordRefused(
        records[0], "users are governed by this network; a user record from the peer is refused"
    )
