"""Authentication routes: login, logout, and who the caller is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import JSONResponse

from request_network.api.auth_schemas import Me
from request_network.api.deps import AnyoneDep, UserDep
from request_network.api.schemas import Token
from request_network.services import auth
from shared.http import NO_STORE, client_address
from shared.problems import Problem, problem_response
from shared.security.login_flow import refuse_long_password

router = APIRouter(tags=["auth"])


@router.post(
    "/api/v1/auth/login",
    response_model=Token,
    responses={401: {}, 429: {}, 503: {}},
)
def login(
    request: Request,
    response: Response,
    caller: AnyoneDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
) -> dict | JSONResponse:
    """A bearer token for a username and password (throttled per client and per account)."""
    refuse_long_password(password)
    with caller.unit() as unit:
        result = auth.login(
            caller.settings,
            caller.cache,
            session=unit.session,
            username=username,
            password=password,
            client=client_address(request, caller.settings.trusted_proxies),
        )
    if result.refusal is not None:
        # Returned, not raised: the transaction committed a lock and its audit row.
        p = result.refusal
        return problem_response(
            p.status, p.title, p.detail, instance=request.url.path, headers=p.headers
        )
    response.headers.update(NO_STORE)
    return result.token


@router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: UserDep) -> Response:
    """Revoke the bearer token this call carries (its `jti`) until it expires."""
    principal = caller.principal
    assert principal is not None
    if principal.via != "jwt" or principal.jti is None or principal.expires_at is None:
        raise Problem(
            400,
            "Not a login session",
            "logout ends a bearer-token session; revoke an API key with "
            "DELETE /api/v1/api-keys/{key_id}",
        )
    auth.logout(caller.cache, jti=principal.jti, expires_at=principal.expires_at)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/auth/me", response_model=Me)
def me(caller: UserDep) -> Me:
    """The caller: user, role, credential kind and effective scopes."""
    principal = caller.principal
    assert principal is not None
    return Me(
        user_id=principal.user.id,
        username=principal.user.username,
        role=principal.role,
        via=principal.via,
        scopes=sorted(principal.scopes),
        key_id=principal.key_id,
        expires_at=principal.expires_at,
    )
