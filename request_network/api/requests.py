"""A user's own requests and their responses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse

from request_network.api.deps import UserDep
from request_network.api.rate_limits import LimitedDep, RateLimitedRoute, too_many_requests
from request_network.api.schemas import (
    Accepted,
    RequestOut,
    RequestPage,
    ResponseOut,
    StatusEvent,
    SubmitRequest,
)
from request_network.models import Request
from request_network.services import rate_limits, requests
from shared.validation import PageLimit, PageOffset, RequestId

router = APIRouter(tags=["requests"])


def _out(r: Request) -> RequestOut:
    return RequestOut(
        id=r.id,
        profile_type=r.profile_type,
        query=r.query,
        status=r.public_status,
        created_at=r.created_at,
        updated_at=r.updated_at,
        history=[StatusEvent(status=e.status, at=e.at, detail=e.detail) for e in r.history],
    )


def submit(
    body: SubmitRequest, limited: LimitedDep, request: HttpRequest, response: Response
) -> Accepted | JSONResponse:
    """Validate, then charge the rate limit (a 422 costs no quota), then accept."""
    caller = limited.caller
    with caller.unit() as unit:
        outcome = rate_limits.submit_within_limits(
            unit.user,
            session=unit.session,
            profile_type=body.profile_type,
            query=body.query,
            limiter=limited.limiter,
            settings=caller.settings,
            path=request.url.path,
            limits=limited.read_limits(unit.session),
        )
    limited.decision, limited.charged = outcome.decision, True
    req = outcome.request
    if req is None:
        return too_many_requests(outcome.decision, request.url.path)
    response.headers["Location"] = f"/api/v1/requests/{req.id}"
    return Accepted(
        id=req.id,
        status=req.public_status,
        links={
            "self": f"/api/v1/requests/{req.id}",
            "response": f"/api/v1/requests/{req.id}/response",
        },
    )


# Every reply of the submission carries the rate-limit headers (see RateLimitedRoute).
router.add_api_route(
    "/api/v1/requests",
    submit,
    methods=["POST"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={429: {"description": "Rate limit exceeded (problem+json)"}},
    route_class_override=RateLimitedRoute,
)


@router.get("/api/v1/requests", response_model=RequestPage)
def list_requests(
    caller: UserDep,
    limit: Annotated[PageLimit, Query()] = 20,
    offset: Annotated[PageOffset, Query()] = 0,
) -> RequestPage:
    with caller.reads() as unit:
        rows, total = requests.list_own(
            unit.user,
            session=unit.session,
            limit=min(limit, caller.settings.page_size_max),
            offset=offset,
        )
        return RequestPage(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/api/v1/requests/{request_id}", response_model=RequestOut)
def get_request(request_id: RequestId, caller: UserDep) -> RequestOut:
    with caller.reads() as unit:
        return _out(requests.get_own(unit.user, request_id, session=unit.session))


@router.get("/api/v1/requests/{request_id}/response", response_model=ResponseOut)
def get_response(request_id: RequestId, caller: UserDep) -> dict:
    with caller.reads() as unit:
        return requests.get_response(
            unit.user,
            request_id,
            session=unit.session,
            cache=caller.cache,
            ttl=caller.settings.response_cache_seconds,
        )
