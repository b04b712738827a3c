"""Admin: every user's requests, to follow one or find the stuck ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from annotated_types import Ge, Le
from fastapi import APIRouter, Query
from pydantic import BaseModel

from request_network.api.deps import AdminDep
from request_network.services import admin_requests
from shared.validation import PageLimit, PageOffset, UserId

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
) -> AdminRequestPage:
    with caller.reads() as unit:
        rows, total = admin_requests.list_requests(
            session=unit.session,
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
