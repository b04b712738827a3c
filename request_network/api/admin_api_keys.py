"""Admin: disable and enable any user's API key (audited; see `services.api_key_admin`)."""

from __future__ import annotations

from fastapi import APIRouter

from request_network.api.auth_schemas import AdminApiKeyOut
from request_network.api.deps import AdminDep
from request_network.models import ApiKey
from request_network.services import api_key_admin, api_keys
from shared.validation import ApiKeyId

router = APIRouter(tags=["admin-api-keys"])


def _out(key: ApiKey, changed: bool) -> AdminApiKeyOut:
    return AdminApiKeyOut(
        **api_keys.describe(key), user_id=key.user_id, disabled_by=key.disabled_by, changed=changed
    )


@router.post(
    "/api/v1/admin/api-keys/{key_id}/disable",
    response_model=AdminApiKeyOut,
    responses={404: {}, 409: {}},
)
def disable_key(key_id: ApiKeyId, caller: AdminDep) -> AdminApiKeyOut:
    """Refuse the key from its next call on, in every API process, until an admin enables it.
    Disabling a disabled key is a 200 with `changed: false`; a revoked key is a 409."""
    with caller.unit() as unit:
        key, changed = api_key_admin.set_disabled(
            caller.cache, session=unit.session, actor=unit.user.id, key_id=key_id, disabled=True
        )
        return _out(key, changed)


@router.post(
    "/api/v1/admin/api-keys/{key_id}/enable",
    response_model=AdminApiKeyOut,
    responses={404: {}, 409: {}, 503: {}},
)
def enable_key(key_id: ApiKeyId, caller: AdminDep) -> AdminApiKeyOut:
    """Let a disabled key work again (expiry and revocation still apply). Enabling an enabled
    key is a 200 with `changed: false`; a revoked key is a 409; without Redis a 503."""
    with caller.unit() as unit:
        key, changed = api_key_admin.set_disabled(
            caller.cache, session=unit.session, actor=unit.user.id, key_id=key_id, disabled=False
        )
        return _out(key, changed)
