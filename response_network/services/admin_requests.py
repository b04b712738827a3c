"""Imported requests as an admin follows them on the response network: every user's, filtered
by status, user, profile type and age, latest imported first or sorted by a column; one
request with the batch it came in, every execution and whether its result has gone out; and
the retry of a failed one.

A retry puts a FAILED request back in the queue, once: its row is locked (`SELECT … FOR
UPDATE`) while its status is checked and changed, so of two retries at once one is
accepted and the other finds it QUEUED (409). The executor then runs it again; its new
result replaces the old one and is marked unexported, so the next results batch carries it
(the request network keeps the answer executed last).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from response_network.models import (
    FAILED,
    QUEUED,
    AuditLog,
    Batch,
    Execution,
    ImportedRequest,
    Result,
)
from response_network.services import executions
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from shared.sorting import sort_order

RequestStatus = Literal["QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"]
RETRYABLE = (FAILED,)

RequestSort = Literal[
    "imported_at", "-imported_at", "submitted_at", "-submitted_at", "updated_at", "-updated_at",
    "status", "-status", "user_id", "-user_id", "profile_type", "-profile_type",
    "attempt", "-attempt", "id", "-id", "correlation_id", "-correlation_id",
]  # fmt: skip
_SORT_COLUMNS = {
    "imported_at": ImportedRequest.imported_at,
    "submitted_at": ImportedRequest.submitted_at,
    "updated_at": ImportedRequest.updated_at,
    "status": ImportedRequest.status,
    "user_id": ImportedRequest.user_id,
    "profile_type": ImportedRequest.profile_type,
    "attempt": ImportedRequest.attempt,
    "id": ImportedRequest.id,
    "correlation_id": ImportedRequest.correlation_id,
}


def _row(req: ImportedRequest) -> dict[str, Any]:
    return {
        "id": req.id,
        "user_id": req.user_id,
        "profile_type": req.profile_type,
        "status": req.status,
        "attempt": req.attempt,
        "batch_id": req.batch_id,
        "submitted_at": req.submitted_at,
        "imported_at": req.imported_at,
        "updated_at": req.updated_at,
        "correlation_id": req.correlation_id,
    }


def list_requests(
    *,
    session: Session,
    status: RequestStatus | None = None,
    user_id: str | None = None,
    profile_type: str | None = None,
    older_than: timedelta | None = None,
    limit: int,
    offset: int,
    sort: RequestSort = "-imported_at",
) -> tuple[list[dict[str, Any]], int]:
    """A page of imported requests and how many match in all; `older_than`: only those
    submitted at least that long ago. `sort`: a column, `-` first for descending (default:
    latest imported first; a request without a correlation id last either way); ties latest
    imported first, then by id."""
    query = select(ImportedRequest)
    if older_than is not None:
        query = query.where(ImportedRequest.submitted_at <= utcnow() - older_than)
    if status is not None:
        query = query.where(ImportedRequest.status == status)
    if user_id is not None:
        query = query.where(ImportedRequest.user_id == user_id)
    if profile_type is not None:
        query = query.where(ImportedRequest.profile_type == profile_type)
    total = session.execute(
        query.with_only_columns(func.count(), maintain_column_froms=True)
    ).scalar_one()
    rows = session.execute(
        query.order_by(
            *sort_order(
                _SORT_COLUMNS, sort, ImportedRequest.imported_at.desc(), ImportedRequest.id.desc()
            )
        )
        .limit(limit)
        .offset(offset)
    ).scalars()
    return [_row(r) for r in rows], total


def get_request(request_id: str, *, session: Session) -> ImportedRequest:
    req = session.get(ImportedRequest, request_id)
    if req is None:
        raise Problem(404, "Not found", "no such request")
    return req


def _result(result: Result | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "status": result.status,
        "total": result.total,
        "error": result.error,
        "executed_at": result.executed_at,
        "took_ms": result.took_ms,
        "attempt": result.attempt,
        "exported": result.batch_id is not None,
        "batch_id": result.batch_id,
    }


def describe(request_id: str, *, session: Session) -> dict[str, Any]:
    """The request, the batch it came in, its executions (oldest first) and its result."""
    req = get_request(request_id, session=session)
    batch = session.get(Batch, req.batch_id)
    return _row(req) | {
        "query": req.query,
        "batch_file": batch.filename if batch is not None else None,
        "executions": executions.for_request(req, session=session),
        "result": _result(session.get(Result, req.id)),
    }


def retry(request_id: str, *, session: Session, actor: str) -> dict[str, Any]:
    """Put a FAILED request back in the queue (audited); 409 for any other status, so that
    of concurrent retries exactly one is accepted."""
    req = session.execute(
        select(ImportedRequest)
        .where(ImportedRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if req is None:
        raise Problem(404, "Not found", "no such request")
    if req.status not in RETRYABLE:
        raise Problem(
            409,
            "Conflict",
            f"only a FAILED request can be retried; this one is {req.status}",
        )
    previous = req.status
    req.status, req.updated_at = QUEUED, utcnow()
    runs = session.execute(select(func.count()).where(Execution.request_id == req.id)).scalar_one()
    session.flush()
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="request.retried",
        target=req.id,
        detail={"from": previous, "attempt": req.attempt, "executions": runs},
    )
    return {
        "id": req.id,
        "status": req.status,
        "previous_status": previous,
        "attempt": req.attempt,
        "executions": runs,
        "updated_at": req.updated_at,
    }
