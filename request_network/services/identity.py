"""Users and profile types as replicated from the response network (the authority)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from request_network.models import ProfileType, User
from shared.db import utcnow
from shared.query_spec import ProfileRules
from shared.records import ProfileTypeData, UserData
from transfer.format import Record


def apply_user(session: Session, rec: Record, _batch_id: str) -> None:
    """Upsert keyed by id and version: an older version never overwrites a newer one."""
    data = UserData.model_validate(rec.data)
    user = session.get(User, rec.id)
    if user is not None and user.version >= rec.version:
        return
    values = data.model_dump(mode="json")
    if user is None:
        session.add(User(id=rec.id, version=rec.version, synced_at=utcnow(), **values))
    else:
        for k, v in values.items():
            setattr(user, k, v)
        user.version, user.synced_at = rec.version, utcnow()
    session.flush()


def apply_profile_type(session: Session, rec: Record, _batch_id: str) -> None:
    data = ProfileTypeData.model_validate(rec.data)
    current = session.get(ProfileType, rec.id)
    if current is not None and current.version >= rec.version:
        return
    values = data.model_dump(mode="json")
    if current is None:
        session.add(ProfileType(version=rec.version, **values))
    else:
        for k, v in values.items():
            setattr(current, k, v)
        current.version = rec.version
    session.flush()


def profile_rules(profile: ProfileType) -> ProfileRules:
    return ProfileRules(
        name=profile.name,
        index=profile.index,
        fields=profile.fields,
        return_fields=profile.return_fields,
        max_size=profile.max_size,
    )
