"""The life of one request, from what the request network holds of both networks' work
(`ferry request trace`, `GET /api/v1/admin/requests/{request_id}/trace`; docs/OPERATIONS.md,
"Following one request").

Seven steps, in the order of a request's life; a step not reached yet has no time:

1. `submitted` (request network): when, by whom, under which correlation id;
2. `exported`: the batch that carried the request's current sending out;
3. `imported` (response network): known from that batch's acknowledgement, so its time is
   when the acknowledgement arrived here (the import itself was earlier);
4. `executed` (response network): the result's status, hits and search time;
5. `result_exported` (response network): the batch that carried the result back, at the
   time written into its id (a UUIDv7);
6. `result_imported`: when the result arrived here;
7. `first_read`: when the owner first read the response.

Times of the response network's steps are its clock's.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from request_network.models import (
    CANCELLED,
    EXPORTED,
    PENDING,
    PUBLIC_STATUS,
    Batch,
    Request,
    RequestExport,
    Response,
    User,
)
from shared.problems import Problem

__all__ = ["STEPS", "Step", "StepName", "is_request_id", "trace"]

StepName = Literal[
    "submitted",
    "exported",
    "imported",
    "executed",
    "result_exported",
    "result_imported",
    "first_read",
]
STEPS: tuple[str, ...] = get_args(StepName)  # in this order
_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Step:
    """One step of a request's life. `at` is None while the step has not happened (or, for
    `imported`, while it is known only from a later step)."""

    step: str
    network: str
    done: bool
    at: datetime | None = None
    summary: str = ""
    batch_id: str | None = None
    batch_file: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def is_request_id(text: str) -> bool:
    """Whether `text` is a request id as Ferry writes them (a lower-case hyphenated UUID)."""
    return _REQUEST_ID.fullmatch(text) is not None


def trace(request_id: str, *, session: Session) -> dict[str, Any]:
    """The request's identity and its steps (`STEPS`, in order); 404 for an unknown id."""
    sent, returned = aliased(Batch), aliased(Batch)
    row = session.execute(
        select(
            Request,
            User.username,
            RequestExport.at.label("exported_at"),
            sent.id.label("sent_id"),
            sent.filename.label("sent_file"),
            sent.acked_at,
            Response.status.label("result_status"),
            Response.total,
            Response.error,
            Response.executed_at,
            Response.took_ms,
            Response.received_at,
            Response.first_read_at,
            Response.batch_id.label("returned_id"),
            returned.filename.label("returned_file"),
        )
        .outerjoin(User, User.id == Request.user_id)
        .outerjoin(RequestExport, RequestExport.request_id == Request.id)
        .outerjoin(sent, sent.id == RequestExport.batch_id)
        .outerjoin(Response, Response.request_id == Request.id)
        .outerjoin(returned, returned.id == Response.batch_id)
        .where(Request.id == request_id)
    ).one_or_none()
    if row is None:
        raise Problem(404, "Not found", f"no request {request_id} on this network")
    request: Request = row.Request
    steps = [
        _submitted(request, row.username),
        _exported(row),
        _imported(row),
        _executed(row),
        _result_exported(row),
        Step(
            "result_imported",
            "request",
            row.received_at is not None,
            row.received_at,
            f"arrived in {row.returned_file or row.returned_id}" if row.received_at else "",
            row.returned_id,
            row.returned_file,
        ),
        Step(
            "first_read",
            "request",
            row.first_read_at is not None,
            row.first_read_at,
            "read by its owner" if row.first_read_at else "",
        ),
    ]
    return {
        "request_id": request.id,
        "correlation_id": request.correlation_id,
        "traceparent": request.traceparent,
        "user_id": request.user_id,
        "username": row.username,
        "status": _public_status(request, exported=row.exported_at is not None),
        "attempt": request.attempt,
        "steps": [asdict(step) for step in steps],
    }


def _public_status(request: Request, *, exported: bool) -> str:
    """What `Request.public_status` says, from the export read with the request."""
    state = EXPORTED if request.status == PENDING and exported else request.status
    return PUBLIC_STATUS.get(state, state)


def _submitted(request: Request, username: str | None) -> Step:
    who = f"{username} ({request.user_id})" if username else request.user_id
    return Step(
        "submitted",
        "request",
        True,
        request.created_at,
        f"by {who}",
        details={
            "user_id": request.user_id,
            "profile_type": request.profile_type,
            "correlation_id": request.correlation_id,
        },
    )


def _exported(row: Any) -> Step:
    if row.exported_at is None:
        return Step("exported", "request", False)
    sending = row.Request.attempt
    what = "the cancellation" if row.Request.status == CANCELLED else f"sending {sending}"
    return Step(
        "exported",
        "request",
        True,
        row.exported_at,
        f"{what} in {row.sent_file or row.sent_id}",
        row.sent_id,
        row.sent_file,
    )


def _imported(row: Any) -> Step:
    if row.acked_at is not None:
        return Step(
            "imported",
            "response",
            True,
            row.acked_at,
            "acknowledged by the response network (at: when the ack arrived here)",
            row.sent_id,
            row.sent_file,
        )
    if row.executed_at is not None:  # answered, so imported, but its ack is still to come
        return Step(
            "imported",
            "response",
            True,
            None,
            "imported (its acknowledgement has not arrived yet)",
            row.sent_id,
            row.sent_file,
        )
    return Step("imported", "response", False, batch_id=row.sent_id, batch_file=row.sent_file)


def _executed(row: Any) -> Step:
    if row.executed_at is None:
        return Step("executed", "response", False)
    details = {"status": row.result_status, "hits": row.total, "took_ms": row.took_ms}
    if row.result_status == "DONE":
        summary = f"DONE: {row.total} hits in {row.took_ms} ms"
    else:
        details["error"] = row.error
        summary = f"{row.result_status}: {row.error or 'no reason given'}"
    return Step("executed", "response", True, row.executed_at, summary, details=details)


def _result_exported(row: Any) -> Step:
    if row.returned_id is None:
        return Step("result_exported", "response", False)
    return Step(
        "result_exported",
        "response",
        True,
        uuid7_time(row.returned_id),
        f"in {row.returned_file or row.returned_id}",
        row.returned_id,
        row.returned_file,
    )


def uuid7_time(batch_id: str) -> datetime | None:
    """When a batch with id `batch_id` was written: the milliseconds a UUIDv7 starts with
    (None for an id of another kind)."""
    try:
        parsed = uuid.UUID(batch_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC)
