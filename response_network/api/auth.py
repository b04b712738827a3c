"""Login: a bearer token for the response network's API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse

from response_network.api.deps import AnyoneDep
from response_network.api.schemas import Token
from response_network.services import auth
from shared.cache import get_redis
from shared.http import NO_STORE, client_address
from shared.problems import problem_response
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
    settings = caller.settings
    with caller.unit() as unit:
        result = auth.login(
            settings,
            get_redis(settings.redis_url),
            session=unit.session,
            username=username,
            password=password,
            client=client_address(request, settings.trusted_proxies),
        )
    if result.refusal is not None:
        # Returned, not raised: the transaction committed a lock and its audit row.
        p = result.refusal
        return problem_response(
            p.status, p.title, p.detail, instance=request.url.path, headers=p.headers
        )
    response.headers.update(NO_STORE)
    return result.token
