"""The response network is the authority for users and profile types."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from response_network.models import AuditLog, Batch, ProfileType, User
from shared import audit
from shared.db import is_postgres
from shared.query_spec import ProfileRules
from shared.records import ProfileTypeData, UserData
from shared.security.passwords import hash_password
from transfer.format import Record
from transfer.protocol.exchange import ExportedBatch, Outbound, export_records


class IdentityError(ValueError):
    pass


#: The advisory lock that serialises profile-type loads (a stable signed 64-bit id).
_LOAD_LOCK = int.from_bytes(
    hashlib.sha256(b"ferry.response.profile_types.load").digest()[:8], "big", signed=True
)


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    profile_type: str,
    role: str = "user",
    rounds: int = 12,
    actor: str = "cli",
) -> User:
    if session.get(ProfileType, profile_type) is None:
        raise IdentityError(f"unknown profile type {profile_type!r}")
    if session.execute(select(User).where(User.username == username)).first():
        raise IdentityError(f"user {username!r} already exists")
    password_hash = hash_password(password, rounds=rounds)
    try:
        UserData(
            username=username,
            password_hash=password_hash,
            role=role,
            profile_type=profile_type,
            active=True,
            rate_limits=None,
        )
    except ValidationError as exc:
        raise IdentityError(_first_error(exc)) from None
    user = User(
        id=str(uuid.uuid4()),
        username=username,
        password_hash=password_hash,
        role=role,
        profile_type=profile_type,
        active=True,
        version=1,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the same username created meanwhile (the unique constraint)
        raise IdentityError(f"user {username!r} already exists") from None
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="user.created",
        target=user.id,
        detail={"username": username, "role": role, "profile_type": profile_type},
    )
    return user


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def profile_type_names(*, session: Session) -> list[str]:
    """The names of the profile types a user can be given, in order."""
    return list(session.scalars(select(ProfileType.name).order_by(ProfileType.name)))


def load_profile_types(path: Path, *, session: Session, actor: str = "cli") -> list[ProfileType]:
    """Create or update profile types from a JSON list; all or nothing.

    Loads run one at a time (a PostgreSQL advisory lock held to the end of the transaction),
    so each reads what the one before committed: a changed type's version always goes up,
    and no change is lost to a concurrent load that would otherwise write the same version
    (and never be exported). Where there is no such lock (SQLite), a type created meanwhile
    makes this load an `IdentityError`, not a crash.
    """
    try:
        raw: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise IdentityError(f"{path}: {exc}") from None
    if not isinstance(raw, list):
        raise IdentityError(f"{path}: expected a JSON list of profile types")
    items = []
    for i, item in enumerate(raw):  # validate every item before changing anything
        try:
            items.append(ProfileTypeData.model_validate(item))
        except ValidationError as exc:
            raise IdentityError(f"{path}: item {i}: {_first_error(exc)}") from None
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOAD_LOCK})
    loaded = []
    for data in items:
        values = data.model_dump(mode="json")
        current = session.get(ProfileType, data.name, populate_existing=True)
        if current is None:
            current = ProfileType(version=1, exported_version=0, **values)
            session.add(current)
        elif any(getattr(current, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(current, k, v)
            current.version += 1
        loaded.append(current)
    try:
        session.flush()
    except IntegrityError:
        raise IdentityError(f"{path}: profile types were created meanwhile; load again") from None
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="profile_types.loaded",
        target=str(path.name),
        detail={"names": [p.name for p in loaded]},
    )
    return loaded


def profile_rules(profile: ProfileType) -> ProfileRules:
    return ProfileRules(
        name=profile.name,
        index=profile.index,
        fields=profile.fields,
        return_fields=profile.return_fields,
        max_size=profile.max_size,
    )


def send_all_again(*, session: Session) -> int:
    """Every user and profile type goes out with the next identity export, at its current
    version (a full snapshot, for a fresh request network). Returns how many."""
    again = 0
    for model in (ProfileType, User):
        again += session.execute(update(model).values(exported_version=0)).rowcount or 0
    return again


def export_identity(out: Outbound, *, session: Session) -> list[ExportedBatch]:
    """Profile types first, then users, each only when changed since the last export."""
    return export_profile_types(out, session=session) + export_users(out, session=session)


def export_profile_types(out: Outbound, *, session: Session) -> list[ExportedBatch]:
    """Profile types changed since the last export (the `profile_types` stream)."""
    profiles = (
        session.execute(
            select(ProfileType)
            .where(ProfileType.exported_version < ProfileType.version)
            .order_by(ProfileType.name)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if not profiles:
        return []
    batches = export_records(
        session,
        Batch,
        out,
        stream="profile_types",
        records=[
            Record(
                type="profile_type",
                id=p.name,
                version=p.version,
                data=ProfileTypeData.model_validate(p, from_attributes=True).model_dump(
                    mode="json"
                ),
            )
            for p in profiles
        ],
    )
    for p in profiles:
        p.exported_version = p.version
    session.flush()
    return batches


def export_users(
    out: Outbound, *, session: Session, passwords_only: bool = False
) -> list[ExportedBatch]:
    """Users changed since the last export (the `users` stream); with `passwords_only`, only
    those whose password changed (`password_sync`: a user's own change applied or refused
    here, an admin's reset), so that both networks agree on it soon."""
    changed = User.exported_version < User.version
    if passwords_only:
        changed = changed & User.password_synced.is_(False)
    users = (
        session.execute(select(User).where(changed).order_by(User.username).with_for_update())
        .scalars()
        .all()
    )
    if not users:
        return []
    batches = export_records(
        session,
        Batch,
        out,
        stream="users",
        records=[
            Record(
                type="user",
                id=u.id,
                version=u.version,
                data=UserData.model_validate(u, from_attributes=True).model_dump(mode="json"),
            )
            for u in users
        ],
    )
    for u in users:
        u.exported_version, u.password_synced = u.version, True
    session.flush()
    return batches
