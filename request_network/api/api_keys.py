"""A user's own API keys: create (shown once), list (with usage), rotate, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from request_network.api.auth_schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyPage,
    ApiKeyUsage,
    CreateApiKey,
)
from request_network.api.deps import UserDep
from request_network.services import api_keys
from shared.http import NO_STORE
from shared.validation import ApiKeyId

router = APIRouter(tags=["api-keys"])


@router.post(
    "/api/v1/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={403: {}, 409: {}, 503: {}},
)
def create_key(body: CreateApiKey, caller: UserDep, response: Response) -> ApiKeyCreated:
    """Issue a key. It is in this reply only: Ferry stores an HMAC of it, never the key."""
    response.headers.update(NO_STORE)
    with caller.unit() as unit:
        key, secret = api_keys.create_key(
            caller.settings,
            caller.cache,
            session=unit.session,
            user=unit.user,
            name=body.name,
            scopes=list(body.scopes),
            expires_in_days=body.expires_in_days,
        )
        return ApiKeyCreated(key=secret, **api_keys.describe(key))


@router.get("/api/v1/api-keys", response_model=ApiKeyPage)
def list_keys(caller: UserDep) -> ApiKeyPage:
    """Your keys, newest first, revoked and expired ones included, each with its secrets
    masked and its use over the last 30 days; never the key itself."""
    with caller.reads() as unit:
        keys, usage = api_keys.list_keys_with_usage(
            caller.cache, session=unit.session, user=unit.user
        )
    return ApiKeyPage(items=[ApiKeyOut(**k) for k in keys], usage=ApiKeyUsage(**usage))


@router.post(
    "/api/v1/api-keys/{key_id}/rotate",
    response_model=ApiKeyCreated,
    responses={403: {}, 404: {}, 409: {}, 503: {}},
)
def rotate_key(key_id: ApiKeyId, caller: UserDep, response: Response) -> ApiKeyCreated:
    """Give one of your keys a new secret, shown in this reply only. The old secret keeps
    working for the grace period (`valid_until` of the `previous` secret), then is refused;
    rotating again within it ends the older secret at once. With an API key, a key may
    rotate only itself, with its current secret."""
    response.headers.update(NO_STORE)
    principal = caller.principal
    assert principal is not None
    with caller.unit() as unit:
        key, secret = api_keys.rotate_key(
            caller.settings,
            caller.cache,
            session=unit.session,
            user=unit.user,
            key_id=key_id,
            presented_key=principal.key_id,
            presented_secret=principal.key_secret,
        )
        return ApiKeyCreated(key=secret, **api_keys.describe(key))


@router.delete("/api/v1/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: ApiKeyId, caller: UserDep) -> Response:
    """Revoke one of your keys; it stops working on the next call."""
    with caller.unit() as unit:
        api_keys.revoke_key(caller.cache, session=unit.session, user=unit.user, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
