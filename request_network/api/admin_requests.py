"""Admin: every user's requests, to follow one or find the stuck ones; the life of one
across both networks (its trace); cancel or retry one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from request_network.api.deps import AdminDep
from request_network.services import admin_requests, lifecycle, trace
from shared.validation import PageLimit, PageOffset, RequestId, UserId

router = APIRouter(tags=["admin-requests"])

Hours = Annotated[int, Ge(1), Le(24 * 365)]  # a query parameter: text that reads as an int


class AdminRequestRow(BaseModel):
    id: str
    user_id: str
    username: str
    profile_type: str
    status: str
    created_at: datetime
    updated_at: datetime
    batch_id: str | None
    age_seconds: float


class AdminRequestPage(BaseModel):
    items: list[AdminRequestRow]
    total: int
    limit: int
    offset: int


@router.get("/api/v1/admin/requests", response_model=AdminRequestPage)
def list_requests(
    caller: AdminDep,
    status: admin_requests.PublicStatus | None = None,
    user_id: Annotated[UserId | None, Query()] = None,
    older_than_hours: Annotated[
        Hours | None, Query(description="Submitted at least this long ago")
    ] = None,
    stuck_hours: Annotated[
        Hours | None,
        Query(description="Still waiting (pending or in transit) with no change for this long"),
    ] = None,
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
    sort: Annotated[
        admin_requests.RequestSort,
        Query(description="A column, `-` first for descending (default: newest first)"),
    ] = "-created_at",
) -> AdminRequestPage:
    with caller.reads() as unit:
        rows, total = admin_requests.list_requests(
            session=unit.session,
            sort=sort,
            status=status,
            user_id=user_id,
            older_than=timedelta(hours=older_than_hours) if older_than_hours else None,
            stuck_after=timedelta(hours=stuck_hours) if stuck_hours else None,
            limit=limit,
            offset=offset,
        )
    return AdminRequestPage(
        items=[AdminRequestRow(**r) for r in rows], total=total, limit=limit, offset=offset
    )


class TraceStep(BaseModel):
    step: trace.StepName = Field(description="the steps come in this order (`services.trace`)")
    network: Literal["request", "response"] = Field(description="the network it happens on")
    done: bool = Field(description="whether it has happened (as far as this network knows)")
    at: datetime | None = Field(description="when (null: not yet, or not known here)")
    summary: str
    batch_id: str | None = None
    batch_file: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class RequestTrace(BaseModel):
    request_id: str
    correlation_id: str | None = Field(
        description="the id it was submitted under (X-Request-ID), on the log lines of its "
        "life on both networks; null for requests from before correlation ids"
    )
    traceparent: str | None
    user_id: str
    username: str | None
    status: str
    attempt: int
    steps: list[TraceStep]


@router.get(
    "/api/v1/admin/requests/{request_id}/trace",
    response_model=RequestTrace,
    responses={404: {"description": "No such request"}},
)
def trace_request(caller: AdminDep, request_id: RequestId) -> RequestTrace:
    """The life of one request across both networks, from what this network holds: submitted,
    exported, imported and executed on the response network, its result exported back and
    imported here, first read. A step not reached yet has no time."""
    with caller.reads() as unit:
        return RequestTrace(**trace.trace(request_id, session=unit.session))


class RequestAction(BaseModel):
    id: str
    status: str = Field(description="the request's state now")
    was: str = Field(description="its state before")
    attempt: int = Field(description="its current sending: 1, then one more per retry")
    cancellation_sent: bool | None = Field(
        default=None,
        description="cancel: whether a cancellation follows it to the response network",
    )


_ACTION_ERRORS = {
    404: {"description": "No such request"},
    409: {"description": "The request is not in a state this action applies to"},
}


@router.post(
    "/api/v1/admin/requests/{request_id}/cancel",
    response_model=RequestAction,
    responses=_ACTION_ERRORS,
)
def cancel_request(caller: AdminDep, request_id: RequestId) -> RequestAction:
    """Cancel a request still waiting for its answer (pending or in transit). If it has
    left this network, a cancellation follows it with the next export, so the response
    network does not run it; an answer that comes back anyway is set aside. Audited."""
    with caller.unit() as unit:
        out = lifecycle.cancel(
            request_id, session=unit.session, cache=caller.cache, actor=unit.user.id
        )
    return RequestAction(**out)


@router.post(
    "/api/v1/admin/requests/{request_id}/retry",
    response_model=RequestAction,
    responses=_ACTION_ERRORS,
)
def retry_request(caller: AdminDep, request_id: RequestId) -> RequestAction:
    """Send a failed, expired or cancelled request out again, as its next sending: it is
    PENDING again, its old answer goes, and the response network runs it once more (once;
    an answer to an earlier sending is set aside). Audited."""
    with caller.unit() as unit:
        out = lifecycle.retry(
            request_id, session=unit.session, cache=caller.cache, actor=unit.user.id
        )
    return RequestAction(**out)
