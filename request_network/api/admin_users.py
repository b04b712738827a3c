"""Admin: a user's login lock (after repeated failed logins)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from request_network.api.auth_schemas import AccountLockOut
from request_network.api.deps import AdminDep
from request_network.services import auth
from shared.validation import UserId

router = APIRouter(tags=["admin-users"])


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
