"""The user list both networks' admins read: filtered by name, role and status (active,
inactive, locked), sorted, a page at a time, each row with its lock state and last login.
Each network passes its `User` and `AccountLock` models (the columns are
`shared.models.UserColumns` / `AccountLockColumns`)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.security.clock import as_utc

UserStatus = Literal["active", "inactive", "locked"]
UserSort = Literal["username", "-username", "updated_at", "-updated_at", "role", "-role"]


def _row(user: Any, locked_until: Any, last_login_at: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "profile_type": user.profile_type,
        "active": user.active,
        "locked": locked_until is not None and as_utc(locked_until) > utcnow(),
        "has_custom_limits": user.rate_limits is not None,
        "updated_at": user.updated_at,
        "last_login_at": last_login_at,
    }


def list_users(
    user_model: type,
    lock_model: type,
    *,
    session: Session,
    name: str | None,
    role: str | None,
    status: UserStatus | None,
    sort: UserSort,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of users and how many match in all (the total rides on the rows)."""
    query = select(
        user_model,
        lock_model.locked_until,
        lock_model.last_login_at,
        func.count().over().label("total"),
    ).outerjoin(lock_model, lock_model.user_id == user_model.id)
    if name:
        pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(user_model.username.ilike(f"%{pattern}%", escape="\\"))
    if role:
        query = query.where(user_model.role == role)
    if status == "active":
        query = query.where(user_model.active.is_(True))
    elif status == "inactive":
        query = query.where(user_model.active.is_(False))
    elif status == "locked":
        query = query.where(lock_model.locked_until > utcnow())
    column = getattr(user_model, sort.lstrip("-"))
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = session.execute(query.order_by(order, user_model.id).limit(limit).offset(offset)).all()
    total = rows[0].total if rows else 0
    if not rows and offset:
        total = session.execute(
            select(func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
    return [_row(r[0], r.locked_until, r.last_login_at) for r in rows], total
