"""The user list both networks' admins read: filtered by name, role and status (active,
inactive, locked), sorted by any of its columns, a page at a time, each row with its lock
state and last login.
Each network passes its `User` and `AccountLock` models (the columns are
`shared.models.UserColumns` / `AccountLockColumns`)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.security.clock import as_utc
from shared.sorting import sort_order

UserStatus = Literal["active", "inactive", "locked"]
UserSort = Literal[
    "username", "-username", "updated_at", "-updated_at", "role", "-role",
    "profile_type", "-profile_type", "state", "-state", "last_login_at", "-last_login_at",
    "custom_limits", "-custom_limits",
]  # fmt: skip


def _no_limits(column: Any) -> Any:
    """A user's own limits are missing: SQL NULL, or JSON `null` (as a replicated row
    stores None)."""
    return or_(column.is_(None), cast(column, String) == "null")


def _sort_columns(user_model: type, lock_model: type) -> dict[str, Any]:
    """What each sort orders by. `state`: active before inactive, and within each, unlocked
    before locked; `custom_limits`: users on the defaults before those with their own."""
    locked = case((lock_model.locked_until > utcnow(), 1), else_=0)
    return {
        "username": user_model.username,
        "updated_at": user_model.updated_at,
        "role": user_model.role,
        "profile_type": user_model.profile_type,
        "state": case((user_model.active, 0), else_=2) + locked,
        "last_login_at": lock_model.last_login_at,
        "custom_limits": case((_no_limits(user_model.rate_limits), 0), else_=1),
    }


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
    """A page of users and how many match in all (the total rides on the rows). `sort`: a
    column, `-` first for descending (no login yet: last either way); ties by id."""
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
    order = sort_order(
        _sort_columns(user_model, lock_model), sort, user_model.id, missing=("last_login_at",)
    )
    rows = session.execute(query.order_by(*order).limit(limit).offset(offset)).all()
    total = rows[0].total if rows else 0
    if not rows and offset:
        total = session.execute(
            select(func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
    return [_row(r[0], r.locked_until, r.last_login_at) for r in rows], total
