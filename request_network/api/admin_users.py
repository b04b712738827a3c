"""Admin: users (a filtered page, one user's details) and a user's login lock."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from request_network.api.auth_schemas import (
    AccountLockOut,
    AdminLimitInForce,
    AdminRecentRequest,
    AdminUserDetails,
    AdminUserPage,
    AdminUserRow,
    ApiKeyOut,
    ApiKeyUsage,
)
from request_network.api.deps import AdminDep
from request_network.services import auth, rate_limits, users
from shared import user_list
from shared.validation import PageLimit, PageOffset, UserId, safe_str

router = APIRouter(tags=["admin-users"])


@router.get("/api/v1/admin/users", response_model=AdminUserPage)
def list_users(
    caller: AdminDep,
    name: Annotated[safe_str(64) | None, Query(description="Part of the username")] = None,
    role: Literal["user", "operator", "admin"] | None = None,
    status: user_list.UserStatus | None = None,
    sort: user_list.UserSort = "username",
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
) -> AdminUserPage:
    """Users of this network (replicated from the response network), filtered and sorted."""
    with caller.reads() as unit:
        rows, total = users.list_users(
            session=unit.session,
            name=name,
            role=role,
            status=status,
            sort=sort,
            limit=limit,
            offset=offset,
        )
    items = [AdminUserRow(**row) for row in rows]
    return AdminUserPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/api/v1/admin/users/{user_id}", response_model=AdminUserDetails)
def user_details(user_id: UserId, caller: AdminDep) -> AdminUserDetails:
    """Profile, limits in force with this window's usage, API keys (never the key itself)
    with their use over the last 30 days, recent requests, lock state and last login."""
    limiter = rate_limits.limiter_for(caller.settings)
    with caller.reads() as unit:
        found = users.details(
            caller.settings, caller.cache, limiter, session=unit.session, user_id=user_id
        )
    usage = found.usage.by_window if found.usage is not None else {}
    limits = [
        AdminLimitInForce(
            window=window,
            limit=limit,
            source=found.limits.sources[window],
            count=usage[window].count if window in usage else None,
            remaining=usage[window].remaining if window in usage else None,
            state=usage[window].state if window in usage else None,
        )
        for window, limit in found.limits.values.items()
    ]
    user = found.user
    return AdminUserDetails(
        id=user.id,
        username=user.username,
        role=user.role,
        profile_type=user.profile_type,
        active=user.active,
        version=user.version,
        updated_at=user.updated_at,
        limits=limits,
        usage_state=found.usage.state if found.usage is not None else None,
        api_keys=[ApiKeyOut(**key) for key in found.keys],
        api_key_usage=ApiKeyUsage(**found.key_usage),
        recent_requests=[AdminRecentRequest(**r) for r in found.recent],
        lock=AccountLockOut(**found.lock),
        last_login_at=found.last_login_at,
    )


@router.get("/api/v1/admin/users/{user_id}/lock", response_model=AccountLockOut)
def get_lock(user_id: UserId, caller: AdminDep) -> AccountLockOut:
    """Whether the account is locked, until when, and how many failures are counted."""
    with caller.unit() as unit:
        lock = auth.lock_status(
            caller.settings, caller.cache, session=unit.session, user_id=user_id
        )
    return AccountLockOut(**lock)


@router.delete("/api/v1/admin/users/{user_id}/lock", status_code=status.HTTP_204_NO_CONTENT)
def lift_lock(user_id: UserId, caller: AdminDep) -> Response:
    """Unlock the account now and forget its failures (audited)."""
    with caller.unit() as unit:
        auth.lift_lock(
            caller.settings, caller.cache, session=unit.session, user_id=user_id, actor=unit.user.id
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
