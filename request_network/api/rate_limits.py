"""Rate limits: a user's own standing, admin views and controls, and the limited route.

`RateLimitedRoute` puts the rate-limit headers on every reply of a limited endpoint once the
caller is known: the charged decision on 202/429, a peek (nothing counted) on the 422s of
schema or query validation, the policy alone when Redis cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from request_network.api.deps import AdminDep, Caller, UserDep
from request_network.api.schemas import (
    RateLimitOverrideOut,
    RateLimitStatus,
    RateLimitViolationOut,
    RateLimitViolationPage,
    RateLimitWindow,
    SetRateLimits,
)
from request_network.models import User
from request_network.services import rate_limits
from shared.problems import PROBLEM_JSON, Problem
from shared.ratelimit import (
    WINDOWS,
    Decision,
    RateLimiter,
    RateLimiterUnavailable,
    decision_headers,
    policy_header,
)
from shared.validation import DateTimeText, PageLimit, PageOffset, UserId

router = APIRouter(tags=["rate-limits"])


# The limited route ----------------------------------------------------------------------


@dataclass
class Limited:
    """A caller of a limited route: who, with which limiter and limits, and the decision.

    The dependency makes it once the caller is known; the endpoint reads the limits in its
    unit of work and sets `decision` and `charged` after charging; the route reads them to
    label the reply (and reads the limits itself when the endpoint never ran: a 422).
    """

    caller: Caller
    limiter: RateLimiter
    limits: rate_limits.Limits | None = None
    decision: Decision | None = None
    charged: bool = False

    def read_limits(self, session: Session) -> rate_limits.Limits:
        self.limits = rate_limits.effective_limits(
            self.caller.user, session=session, settings=self.caller.settings
        )
        return self.limits

    def read_limits_alone(self) -> rate_limits.Limits:
        """The limits, read in a unit of their own (the endpoint never ran)."""
        with self.caller.reads() as unit:
            return self.read_limits(unit.session)


async def limited_caller(request: Request, caller: UserDep) -> Limited:
    request.state.rate_limit = Limited(caller, rate_limits.limiter_for(caller.settings))
    return request.state.rate_limit


LimitedDep = Annotated[Limited, Depends(limited_caller)]


def too_many_requests(decision: Decision, instance: str) -> JSONResponse:
    """429 problem+json naming the violated window(s); the route adds the headers."""
    windows = decision.violated
    body = {
        "type": "about:blank",
        "title": "Too many requests",
        "status": 429,
        "detail": (
            f"rate limit exceeded in the {', '.join(windows)} window"
            f"{'s' if len(windows) > 1 else ''}; retry after {decision.retry_after} s"
        ),
        "instance": instance,
        "violated_windows": windows,
        "retry_after": decision.retry_after,
        "windows": {
            w.window: {"limit": w.limit, "count": w.count, "state": w.state}
            for w in decision.windows
        },
    }
    return JSONResponse(body, status_code=429, media_type=PROBLEM_JSON)


async def _headers(request: Request) -> dict[str, str]:
    ctx: Limited | None = getattr(request.state, "rate_limit", None)
    if ctx is None:
        return {}  # the caller is not known (401, or a body that is not JSON)
    if ctx.decision is not None:
        return decision_headers(ctx.decision)
    limits = ctx.limits or await run_in_threadpool(ctx.read_limits_alone)
    if ctx.charged:  # fail-open without Redis: the policy is all we know
        return {"RateLimit-Policy": policy_header(limits.values)}
    try:  # not charged (a 422): show where the caller stands, count nothing
        decision = await run_in_threadpool(ctx.limiter.peek, ctx.caller.user.id, limits.values)
    except RateLimiterUnavailable:
        return {"RateLimit-Policy": policy_header(limits.values)}
    headers = decision_headers(decision)
    headers.pop("Retry-After", None)  # this reply is not a refusal by the limiter
    headers.pop("X-RateLimit-Warning", None)
    return headers


class RateLimitedRoute(APIRoute):
    """An APIRoute whose every reply, errors included, carries the rate-limit headers."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def limited(request: Request) -> Response:
            try:
                response = await handle(request)
            except RequestValidationError as exc:
                handler = request.app.exception_handlers[RequestValidationError]
                response = await handler(request, exc)
            except Problem as exc:
                if "RateLimit-Policy" not in exc.headers:  # the limiter's own 503 has it
                    exc.headers = {**await _headers(request), **exc.headers}
                raise
            for name, value in (await _headers(request)).items():
                response.headers.setdefault(name, value)
            return response

        return limited


# A user's own ---------------------------------------------------------------------------


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _status_out(
    session, user: User, caller: Caller, limiter: RateLimiter, *, admin: bool
) -> RateLimitStatus:
    limits, decision = rate_limits.status(user, limiter, session=session, settings=caller.settings)
    windows = [
        RateLimitWindow(
            window=w.window,
            window_seconds=WINDOWS[w.window],
            limit=w.limit,
            source=limits.sources[w.window],
            count=w.count,
            remaining=w.remaining,
            reset=w.reset,
            state=w.state,
            retry_after=-(-w.retry_after_ms // 1000),
            grace_until=_at(w.grace_until_ms),
            grace_reopens_at=_at(w.grace_reopens_at_ms),
        )
        for w in decision.windows
    ]
    out = RateLimitStatus(user_id=user.id, state=decision.state, windows=windows)
    override = rate_limits.get_override(user, session=session) if admin else None
    if override is not None:
        out.override = RateLimitOverrideOut(
            minute=override.minute,
            hour=override.hour,
            day=override.day,
            reason=override.reason,
            set_by=override.set_by,
            set_at=override.set_at,
        )
    return out


def _limiter(caller: Caller) -> RateLimiter:
    return rate_limits.limiter_for(caller.settings)


@router.get("/api/v1/rate-limits/me", response_model=RateLimitStatus)
def my_rate_limits(caller: UserDep) -> RateLimitStatus:
    with caller.reads() as unit:
        return _status_out(unit.session, unit.user, caller, _limiter(caller), admin=False)


# Admin ----------------------------------------------------------------------------------


@router.get("/api/v1/admin/rate-limits/violations", response_model=RateLimitViolationPage)
def list_violations(
    caller: AdminDep,
    user_id: Annotated[UserId | None, Query()] = None,
    window: Literal["minute", "hour", "day"] | None = None,
    since: Annotated[DateTimeText | None, Query()] = None,
    until: Annotated[DateTimeText | None, Query()] = None,
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
) -> RateLimitViolationPage:
    with caller.unit() as unit:
        rows, total = rate_limits.list_violations(
            session=unit.session,
            user_id=user_id,
            window=window,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    return RateLimitViolationPage(
        items=[
            RateLimitViolationOut(
                id=r.id,
                user_id=r.user_id,
                window=r.window,
                count=r.count,
                limit=r.limit,
                path=r.path,
                at=r.at,
                key_id=r.key_id,
            )
            for r in rows
        ],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/api/v1/admin/rate-limits/{user_id}", response_model=RateLimitStatus)
def user_rate_limits(user_id: UserId, caller: AdminDep) -> RateLimitStatus:
    with caller.unit() as unit:
        user = rate_limits.get_user(user_id, session=unit.session)
        return _status_out(unit.session, user, caller, _limiter(caller), admin=True)


@router.delete("/api/v1/admin/rate-limits/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def reset_rate_limits(user_id: UserId, caller: AdminDep) -> Response:
    with caller.unit() as unit:
        user = rate_limits.get_user(user_id, session=unit.session)
        rate_limits.reset(user, _limiter(caller), session=unit.session, actor=unit.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/api/v1/admin/users/{user_id}/rate-limits",
    response_model=RateLimitStatus,
    responses={404: {}, 409: {}},
)
def set_rate_limits(user_id: UserId, body: SetRateLimits, caller: AdminDep) -> RateLimitStatus:
    """Set a user's custom limits (each 0 to `MAX_LIMIT`, or null to inherit); audited."""
    with caller.unit() as unit:
        user = rate_limits.get_user(user_id, session=unit.session)
        rate_limits.set_override(
            user,
            session=unit.session,
            limits={w: getattr(body, w) for w in WINDOWS},
            reason=body.reason,
            actor=unit.user.id,
        )
        return _status_out(unit.session, user, caller, _limiter(caller), admin=True)
