"""Admin: every attempt at running an imported request, newest first or sorted by a column."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from response_network.api.admin_users import ProfileName
from response_network.api.deps import Caller, caller
from response_network.services import executions
from shared.validation import DateTimeText, PageLimit, PageOffset, RequestId

router = APIRouter(tags=["admin-executions"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]


class ExecutionRow(BaseModel):
    id: int
    request_id: str
    attempt: int = Field(description="The request network's sending of the request it ran")
    profile_type: str
    user_id: str
    started_at: datetime
    finished_at: datetime | None
    took_ms: int | None = Field(description="The search's own time; null if it never ran")
    status: str = Field(description="RUNNING, DONE or FAILED")
    error: str | None


class ExecutionPage(BaseModel):
    items: list[ExecutionRow]
    total: int
    limit: int
    offset: int


@router.get("/api/v1/admin/executions", response_model=ExecutionPage)
def list_executions(
    admin: AdminDep,
    status: executions.ExecutionStatus | None = None,
    profile_type: Annotated[ProfileName | None, Query()] = None,
    request_id: Annotated[RequestId | None, Query()] = None,
    since: Annotated[
        DateTimeText | None, Query(description="Started at or after (RFC 3339)")
    ] = None,
    limit: Annotated[PageLimit, Query()] = 50,
    offset: Annotated[PageOffset, Query()] = 0,
    sort: Annotated[
        executions.ExecutionSort,
        Query(description="A column, `-` first for descending (default: newest first)"),
    ] = "-started_at",
) -> ExecutionPage:
    with admin.unit() as unit:
        rows, total = executions.list_executions(
            session=unit.session,
            status=status,
            profile_type=profile_type,
            request_id=request_id,
            since=since,
            limit=limit,
            offset=offset,
            sort=sort,
        )
    return ExecutionPage(
        items=[ExecutionRow(**r) for r in rows], total=total, limit=limit, offset=offset
    )
