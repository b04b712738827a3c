"""Requests as an admin follows them: every user's, filtered by status, user, age and
"stuck" (waiting longer than a threshold without progress), newest first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from request_network.models import (
    PENDING,
    Request,
    RequestExport,
    User,
)
from shared.db import utcnow
from shared.security.clock import as_utc
from shared.sorting import sort_order

# The states an admin filters by: `models.PUBLIC_STATES`.
PublicStatus = Literal["PENDING", "IN_TRANSIT", "COMPLETED", "FAILED", "EXPIRED", "CANCELLED"]


def _status_filter(status: PublicStatus):
    exported = RequestExport.request_id.is_not(None)
    if status == "PENDING":
        return and_(Request.status == PENDING, ~exported)
    if status == "IN_TRANSIT":
        return and_(Request.status == PENDING, exported)
    return Request.status == status  # COMPLETED, FAILED, EXPIRED, CANCELLED: stored as named


RequestSort = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "status", "-status",
    "username", "-username", "profile_type", "-profile_type", "id", "-id",
    "age", "-age", "batch_id", "-batch_id",
]  # fmt: skip
_SORT_COLUMNS = {
    "created_at": Request.created_at,
    "updated_at": Request.updated_at,
    "status": Request.status,
    "username": User.username,
    "profile_type": Request.profile_type,
    "id": Request.id,
    "batch_id": RequestExport.batch_id,
}
#: Age is the submission time the other way round: the youngest first.
_AGE = {"age": "-created_at", "-age": "created_at"}


def list_requests(
    *,
    session: Session,
    status: PublicStatus | None,
    user_id: str | None,
    older_than: timedelta | None,
    stuck_after: timedelta | None,
    limit: int,
    offset: int,
    sort: RequestSort = "-created_at",
) -> tuple[list[dict[str, Any]], int]:
    """A page of requests and how many match. `stuck_after`: only requests still waiting
    for their answer (pending or in transit) whose last change is older than that. `sort`:
    a column, `-` first for descending (`age`: the youngest first; `batch_id`: those not
    sent yet last either way); ties newest first, then by id."""
    now = utcnow()
    query = (
        select(
            Request,
            User.username,
            RequestExport.batch_id,
            func.count().over().label("total"),
        )
        .join(User, User.id == Request.user_id)
        .outerjoin(RequestExport, RequestExport.request_id == Request.id)
    )
    if status is not None:
        query = query.where(_status_filter(status))
    if user_id is not None:
        query = query.where(Request.user_id == user_id)
    if older_than is not None:
        query = query.where(Request.created_at <= now - older_than)
    if stuck_after is not None:
        query = query.where(
            Request.status == PENDING,
            or_(
                and_(RequestExport.request_id.is_(None), Request.updated_at <= now - stuck_after),
                RequestExport.at <= now - stuck_after,
            ),
        )
    rows = session.execute(
        query.order_by(
            *sort_order(
                _SORT_COLUMNS,
                _AGE.get(sort, sort),
                Request.created_at.desc(),
                Request.id,
                missing=("batch_id",),
            )
        )
        .limit(limit)
        .offset(offset)
    ).all()
    total = rows[0].total if rows else 0
    if not rows and offset:
        total = session.execute(
            select(func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
    items = []
    for row in rows:
        r = row.Request
        in_transit = r.status == PENDING and row.batch_id is not None
        items.append(
            {
                "id": r.id,
                "user_id": r.user_id,
                "username": row.username,
                "profile_type": r.profile_type,
                "status": "IN_TRANSIT" if in_transit else r.status,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "batch_id": row.batch_id,
                "age_seconds": round((now - as_utc(r.created_at)).total_seconds(), 3),
            }
        )
    return items, total
