"""Admin: a user's login lock (after repeated failed logins)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from request_network.api.auth_schemas import AccountLockOut
from request_network.api.deps import AdminDep, CacheDep, SessionDep, SettingsDep
from request_network.services import auth

router = APIRouter(tags=["admin-users"])


@router.get("/api/v1/admin/users/{user_id}/lock", response_model=AccountLockOut)
def get_lock(
    user_id: str, session: SessionDep, settings: SettingsDep, cache: CacheDep, _admin: AdminDep
) -> AccountLockOut:
    """Whether the account is locked, until when, and how many failures are counted."""
    return AccountLockOut(**auth.lock_status(settings, cache, session=session, user_id=user_id))


@router.delete("/api/v1/admin/users/{user_id}/lock", status_code=status.HTTP_204_NO_CONTENT)
def lift_lock(
    user_id: str, session: SessionDep, settings: SettingsDep, cache: CacheDep, admin: AdminDep
) -> Response:
    """Unlock the account now and forget its failures (audited)."""
    auth.lift_lock(settings, cache, session=session, user_id=user_id, actor=admin.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
