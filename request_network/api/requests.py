"""A user's own requests and their responses."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
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
from request_network.services import rate_limits, requests, response_cache
from shared.db import reading
from shared.validation import PageLimit, PageOffset, RequestId, safe_str

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
            key_id=caller.principal.key_id if caller.principal else None,
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


IfNoneMatch = safe_str(1000)
_CACHE_HEADERS = {
    "ETag": {
        "description": "Strong entity tag of the body (a digest of its bytes): the same "
        "whether the cache or the database answered",
        "schema": {"type": "string"},
    },
    "X-Cache": {
        "description": "HIT: served from the response cache; MISS: read from the database",
        "schema": {"type": "string", "enum": ["HIT", "MISS"]},
    },
    "Cache-Control": {"description": "private, no-cache", "schema": {"type": "string"}},
}


def _served(found: response_cache.Served) -> Response:
    headers = {
        "ETag": found.etag,
        "X-Cache": "HIT" if found.hit else "MISS",
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, X-API-Key",
    }
    if found.not_modified:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=found.body, media_type="application/json", headers=headers)


@router.get(
    "/api/v1/requests/{request_id}/response",
    response_model=ResponseOut,
    responses={
        200: {"description": "The response", "headers": _CACHE_HEADERS},
        304: {
            "description": "Not modified: If-None-Match names the current ETag (no body)",
            "headers": _CACHE_HEADERS,
        },
    },
)
def get_response(
    request_id: RequestId,
    caller: UserDep,
    if_none_match: Annotated[
        IfNoneMatch | None,
        Header(description="ETags of a copy the client holds: a match is a 304"),
    ] = None,
) -> Response:
    """The response of one of the caller's requests, from the cache after its first read.

    A hit is one Redis round trip that is also the ownership check; the database is opened
    only on a miss (`sessions`)."""
    found = requests.get_response(
        caller.user,
        request_id,
        sessions=partial(reading, caller.settings.database_url),
        cache=caller.cache,
        settings=caller.settings,
        if_none_match=if_none_match,
    )
    return _served(found)
