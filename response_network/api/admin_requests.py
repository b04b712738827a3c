"""Admin: the imported requests (every user's, filtered by status, user, profile type and
age, sorted by a column), one with its executions and its result's export, and the retry of
a failed one (audited; exactly once under concurrency)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from response_network.api.admin_executions import ExecutionRow
from response_network.api.admin_users import ProfileName
from response_network.api.deps import Caller, caller
from response_network.services import admin_requests
from shared.validation import PageLimit, PageOffset, RequestId, UserId

router = APIRouter(tags=["admin-requests"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]
REQUESTS = "/api/v1/admin/requests"
Hours = Annotated[int, Ge(1), Le(24 * 365)]  # a query parameter: text that reads as an int


class ImportedRequestRow(BaseModel):
    id: str
    user_id: str
    profile_type: str
    status: str = Field(description="QUEUED, RUNNING, DONE, FAILED or CANCELLED")
    attempt: int = Field(description="The request network's sending of it (1, then retries)")
    batch_id: str = Field(description="The requests batch it came in")
    submitted_at: datetime
    imported_at: datetime
    updated_at: datetime
    correlation_id: str | None = Field(
        default=None,
        description="The id it was submitted under on the request network (X-Request-ID), "
        "on the log lines of its life on both networks",
    )


class ImportedRequestPage(BaseModel):
    items: list[ImportedRequestRow]
    total: int
    limit: int
    offset: int


class ResultExport(BaseModel):
    status: str
    total: int | None
    error: str | None
    executed_at: datetime
    took_ms: int | None
    attempt: int
    exported: bool = Field(description="Whether a results batch has carried this result out")
    batch_id: str | None = Field(description="The results batch that carried it out")


class ImportedRequestOut(ImportedRequestRow):
    query: dict[str, Any]
    batch_file: str | None = Field(description="The file of the batch it came in, if recorded")
    executions: list[ExecutionRow] = Field(description="Oldest first")
    result: ResultExport | None = Field(description="Null until an execution has finished")


class RetryAccepted(BaseModel):
    id: str
    status: str = Field(description="QUEUED: the executor runs it again")
    previous_status: str
    attempt: int
    executions: int = Field(description="Executions so far; the next one adds to them")
    updated_at: datetime


@router.get(REQUESTS, response_model=ImportedRequestPage)
def list_requests(
    admin: AdminDep,
    status: admin_requests.RequestStatus | None = None,
    user_id: Annotated[UserId | None, Query()] = None,
    profile_type: Annotated[ProfileName | None, Query()] = None,
    older_than_hours: Annotated[
        Hours | None, Query(description="Submitted at least this long ago")
    ] = None,
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
    sort: Annotated[
        admin_requests.RequestSort,
        Query(description="A column, `-` first for descending (default: latest imported first)"),
    ] = "-imported_at",
) -> ImportedRequestPage:
    """Imported requests, the latest imported first or sorted by a column."""
    with admin.unit() as unit:
        rows, total = admin_requests.list_requests(
            session=unit.session,
            sort=sort,
            status=status,
            user_id=user_id,
            profile_type=profile_type,
            older_than=timedelta(hours=older_than_hours) if older_than_hours else None,
            limit=limit,
            offset=offset,
        )
    return ImportedRequestPage(
        items=[ImportedRequestRow(**r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(REQUESTS + "/{request_id}", response_model=ImportedRequestOut)
def get_request(request_id: RequestId, admin: AdminDep) -> ImportedRequestOut:
    """The request, the batch it came in, every execution and whether its result has gone
    out (and in which batch)."""
    with admin.unit() as unit:
        return ImportedRequestOut(**admin_requests.describe(request_id, session=unit.session))


@router.post(
    REQUESTS + "/{request_id}/retry",
    response_model=RetryAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "The request is not FAILED (the detail names its status)"}},
)
def retry_request(request_id: RequestId, admin: AdminDep, response: Response) -> RetryAccepted:
    """Queue a FAILED request to run once more (audited). The executor's next run executes
    it; its new result replaces the old and goes out with the next results batch."""
    with admin.unit() as unit:
        accepted = admin_requests.retry(request_id, session=unit.session, actor=admin.user.username)
    response.headers["Location"] = f"{REQUESTS}/{request_id}"
    return RetryAccepted(**accepted)
