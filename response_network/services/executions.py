"""Executions as an admin reads them: every attempt at running an imported request against
the search cluster (`services.executor` records them), newest first, filtered by status,
profile type, request and start time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from response_network.models import Execution, ImportedRequest

ExecutionStatus = Literal["RUNNING", "DONE", "FAILED"]

_COLUMNS = (Execution, ImportedRequest.user_id, ImportedRequest.profile_type)


def _row(execution: Execution, user_id: str, profile_type: str) -> dict[str, Any]:
    return {
        "id": execution.id,
        "request_id": execution.request_id,
        "attempt": execution.attempt,
        "profile_type": profile_type,
        "user_id": user_id,
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "took_ms": execution.took_ms,
        "status": execution.status,
        "error": execution.error,
    }


def list_executions(
    *,
    session: Session,
    status: ExecutionStatus | None = None,
    profile_type: str | None = None,
    request_id: str | None = None,
    since: datetime | None = None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of executions, newest first, and how many match in all. `since` is inclusive
    (an execution started at or after it); without a UTC offset it is read as UTC."""
    query = select(*_COLUMNS).join(ImportedRequest, ImportedRequest.id == Execution.request_id)
    if status is not None:
        query = query.where(Execution.status == status)
    if profile_type is not None:
        query = query.where(ImportedRequest.profile_type == profile_type)
    if request_id is not None:
        query = query.where(Execution.request_id == request_id)
    if since is not None:
        if since.tzinfo is None:  # taken to be UTC, as Ferry stores every time
            since = since.replace(tzinfo=UTC)
        query = query.where(Execution.started_at >= since)
    total = session.execute(
        query.with_only_columns(func.count(), maintain_column_froms=True)
    ).scalar_one()
    rows = session.execute(
        query.order_by(Execution.started_at.desc(), Execution.id.desc()).limit(limit).offset(offset)
    ).all()
    return [_row(*row) for row in rows], total


def for_request(request: ImportedRequest, *, session: Session) -> list[dict[str, Any]]:
    """Every execution of one request, oldest first."""
    executions = session.execute(
        select(Execution)
        .where(Execution.request_id == request.id)
        .order_by(Execution.started_at, Execution.id)
    ).scalars()
    return [_row(e, request.user_id, request.profile_type) for e in executions]
