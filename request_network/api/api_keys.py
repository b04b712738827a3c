"""A user's own API keys: create (shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from request_network.api.auth_schemas import ApiKeyCreated, ApiKeyOut, ApiKeyPage, CreateApiKey
from request_network.api.deps import CacheDep, SessionDep, SettingsDep, UserDep
from request_network.services import api_keys

router = APIRouter(tags=["api-keys"])


@router.post(
    "/api/v1/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={403: {}, 409: {}, 503: {}},
)
def create_key(
    body: CreateApiKey, session: SessionDep, settings: SettingsDep, cache: CacheDep, user: UserDep
) -> ApiKeyCreated:
    """Issue a key. It is in this reply only: Ferry stores an HMAC of it, never the key."""
    key, secret = api_keys.create_key(
        settings,
        cache,
        session=session,
        user=user,
        name=body.name,
        scopes=list(body.scopes),
        expires_in_days=body.expires_in_days,
    )
    return ApiKeyCreated(key=secret, **api_keys.describe(key))


@router.get("/api/v1/api-keys", response_model=ApiKeyPage)
def list_keys(session: SessionDep, user: UserDep) -> ApiKeyPage:
    """Your keys, newest first, revoked and expired ones included; never the key itself."""
    rows = api_keys.list_keys(session=session, user=user)
    return ApiKeyPage(items=[ApiKeyOut(**api_keys.describe(k)) for k in rows])


@router.delete("/api/v1/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: str, session: SessionDep, cache: CacheDep, user: UserDep) -> Response:
    """Revoke one of your keys; it stops working on the next call."""
    api_keys.revoke_key(cache, session=session, user=user, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
