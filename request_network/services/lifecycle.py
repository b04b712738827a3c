"""A request's life outside the usual path: an admin cancels one still on its way or sends
a failed, expired or cancelled one out again, and requests unanswered for too long expire.

Each sending of a request has a number (`Request.attempt`: 1, then one more per retry) that
travels as its record's version and comes back as its result's. The response network keeps
one request per id: a higher sending runs it once more, the same one again is a replay, a
cancellation stops it if it has not started. Here an answer to an earlier sending, or to a
cancelled request, is set aside (`services.arrivals`). So a retry gets exactly one answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from redis import Redis
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from request_network.models import (
    CANCELLED,
    EXPIRED,
    EXPORTED,
    FAILED,
    PENDING,
    AuditLog,
    OutboxEntry,
    Request,
    RequestEvent,
    Response,
    ResponsePart,
)
from request_network.services import notifications, response_cache
from request_network.services.exchange import enqueue, withdraw
from shared import audit
from shared.db import utcnow
from shared.problems import Problem
from transfer.protocol import bulk

__all__ = ["RETRYABLE", "cancel", "expire_unanswered", "retry"]

RETRYABLE = (FAILED, EXPIRED, CANCELLED)


def _locked(session: Session, request_id: str) -> Request:
    """The request, its row locked for this transaction (concurrent admins queue behind)."""
    request = session.execute(
        select(Request).where(Request.id == request_id).with_for_update()
    ).scalar_one_or_none()
    if request is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    return request


def _conflict(request: Request, wanted: str) -> Problem:
    return Problem(409, "Conflict", f"the request is {request.public_status}: {wanted}")


def _ever_sent(session: Session, request: Request) -> bool:
    if request.export is not None:
        return True
    sent = select(RequestEvent.id).where(
        RequestEvent.request_id == request.id, RequestEvent.status == EXPORTED
    )
    return session.execute(sent.limit(1)).first() is not None


def cancel(request_id: str, *, session: Session, cache: Redis | None, actor: str) -> dict[str, Any]:
    """Cancel a request still waiting for its answer (pending or in transit).

    It leaves the outbox; if it ever left this network, a cancellation follows it with the
    next export so that the response network does not run it (if it has not started; an
    answer that comes back anyway is set aside). Audited; its cached response, if any, goes
    once the cancellation commits.
    """
    request = _locked(session, request_id)
    if request.status != PENDING:
        raise _conflict(request, "only a pending or in-transit request can be cancelled")
    was = request.public_status
    sent = _ever_sent(session, request)
    now = utcnow()
    withdraw([request.id], session=session)
    request.status, request.updated_at = CANCELLED, now
    detail = "cancelled by an admin" + ("; the cancellation goes with the next export" * sent)
    session.add(RequestEvent(request_id=request.id, status=CANCELLED, at=now, detail=detail))
    if sent:
        enqueue(request, session=session, cancelled=True)
    out = {
        "id": request.id,
        "status": CANCELLED,
        "was": was,
        "attempt": request.attempt,
        "cancellation_sent": sent,
    }
    audit.record(
        session, AuditLog, actor=actor, action="request.cancelled", target=request.id, detail=out
    )
    _invalidate(session, cache, request.id)
    return out


def retry(request_id: str, *, session: Session, cache: Redis | None, actor: str) -> dict[str, Any]:
    """Send a failed, expired or cancelled request out again, as its next sending.

    Its stored answer (if any) goes, it is PENDING again and the next export carries it
    under the new sending number; the response network runs it once more, once. Audited.
    """
    request = _locked(session, request_id)
    if request.status not in RETRYABLE:
        raise _conflict(request, "only a failed, expired or cancelled request can be retried")
    was = request.public_status
    now = utcnow()
    withdraw([request.id], session=session)
    session.execute(delete(Response).where(Response.request_id == request.id))
    session.execute(delete(ResponsePart).where(ResponsePart.request_id == request.id))
    request.attempt = (request.attempt or 1) + 1
    request.status, request.updated_at = PENDING, now
    detail = f"retried by an admin (was {was}): sending {request.attempt}"
    session.add(RequestEvent(request_id=request.id, status=PENDING, at=now, detail=detail))
    enqueue(request, session=session)
    out = {"id": request.id, "status": PENDING, "was": was, "attempt": request.attempt}
    audit.record(
        session, AuditLog, actor=actor, action="request.retried", target=request.id, detail=out
    )
    _invalidate(session, cache, request.id)
    return out


def _invalidate(session: Session, cache: Redis | None, request_id: str) -> None:
    if cache is not None:
        response_cache.watch_commits(session, cache)
    response_cache.invalidate_on_commit(session, request_ids=[request_id])


def expire_unanswered(*, session: Session, older_than: timedelta, limit: int = 10_000) -> int:
    """Requests still waiting for their answer with no change for `older_than` (since they
    were submitted or last sent) become EXPIRED, each with an event; those not yet exported
    leave the outbox. An answer that still arrives for the same sending is taken (a late
    answer is better than none); an admin may also retry an expired request. Up to `limit`
    a run (oldest first); returns how many expired."""
    now = utcnow()
    owners = dict(
        session.execute(
            select(Request.id, Request.user_id)
            .where(Request.status == PENDING, Request.updated_at <= now - older_than)
            .order_by(Request.updated_at, Request.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )
    ids = list(owners)
    if not ids:
        return 0
    detail = f"no answer after {older_than}: expired"
    for chunk in bulk.chunked(ids):
        session.execute(delete(OutboxEntry).where(OutboxEntry.request_id.in_(chunk)))
        session.execute(
            update(Request).where(Request.id.in_(chunk)).values(status=EXPIRED, updated_at=now)
        )
        bulk.insert_rows(
            session,
            RequestEvent.__table__,
            {"request_id": chunk},
            same={"status": EXPIRED, "at": now, "detail": detail},
        )
    bulk.expire_loaded(session, Request, ids)
    items = [
        {
            "user_id": owners[rid],
            "title": f"Request {rid[:8]} expired: no answer after {older_than}",
            "data": {"request_id": rid},
        }
        for rid in ids
    ]
    notifications.emit_for_users(session, "request.expired", items)
    return len(ids)
