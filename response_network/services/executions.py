"""Executions as an admin reads them: every attempt at running an imported request against
the search cluster (`services.executor` records them), newest first or sorted by a column,
filtered by status, profile type, request and start time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from response_network.models import Execution, ImportedRequest
from shared.sorting import sort_order

ExecutionStatus = Literal["RUNNING", "DONE", "FAILED"]

ExecutionSort = Literal[
    "started_at", "-started_at", "finished_at", "-finished_at", "request_id", "-request_id",
    "attempt", "-attempt", "profile_type", "-profile_type", "status", "-status",
    "took_ms", "-took_ms", "error", "-error",
]  # fmt: skip
_SORT_COLUMNS = {
    "started_at": Execution.started_at,
    "finished_at": Execution.finished_at,
    "request_id": Execution.request_id,
    "attempt": Execution.attempt,
    "profile_type": ImportedRequest.profile_type,
    "status": Execution.status,
    "took_ms": Execution.took_ms,
    "error": Execution.error,
}

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
    sort: ExecutionSort = "-started_at",
) -> tuple[list[dict[str, Any]], int]:
    """A page of executions and how many match in all. `since` is inclusive (an execution
    started at or after it); without a UTC offset it is read as UTC. `sort`: a column, `-`
    first for descending (default: newest first); a missing value (not finished, no error)
    last either way; ties newest first, then by id."""
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
        query.order_by(
            *sort_order(_SORT_COLUMNS, sort, Execution.started_at.desc(), Execution.id.desc())
        )
        .limit(limit)
        .offset(offset)
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
