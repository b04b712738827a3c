"""Submitting requests and reading them back; a user only ever sees their own."""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Any

import orjson
from redis import Redis, RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from request_network.models import (
    PENDING,
    ProfileType,
    Request,
    RequestEvent,
    RequestExport,
    Response,
    User,
)
from request_network.services.exchange import enqueue
from request_network.services.identity import profile_rules
from shared.db import utcnow
from shared.problems import Problem
from shared.query_spec import QuerySpecError, validate_query

_NOT_FOUND = Problem(404, "Not found", "no such request")


def set_status(request: Request, status: str, detail: str = "", *, session: Session) -> None:
    """Every state change is stored with its time."""
    now = utcnow()
    request.status, request.updated_at = status, now
    session.add(RequestEvent(request_id=request.id, status=status, at=now, detail=detail))


def submit(user: User, *, session: Session, profile_type: str, query: dict[str, Any]) -> Request:
    allowed = user.profile_type
    profile = session.get(ProfileType, profile_type)
    if profile is None or profile_type != allowed:
        raise Problem(
            422,
            "Invalid request",
            f"unknown profile type {profile_type!r} for this user",
            errors=[{"loc": "body.profile_type", "msg": "unknown or not allowed"}],
        )
    try:
        validate_query(query, profile_rules(profile))
    except QuerySpecError as exc:
        raise Problem(
            422,
            "Invalid query",
            "the query does not fit the profile type",
            errors=[
                {"loc": "body.query." + p.loc if p.loc else "body.query", "msg": p.msg}
                for p in exc.problems
            ],
        ) from None
    request = Request(
        id=str(uuid.uuid4()),
        user_id=user.id,
        profile_type=profile_type,
        query=query,
        status=PENDING,
        created_at=utcnow(),
    )
    session.add(request)
    session.flush()
    set_status(request, PENDING, "submitted", session=session)
    enqueue(request, session=session)
    session.flush()
    return request


def list_own(user: User, *, session: Session, limit: int, offset: int) -> tuple[list[Request], int]:
    base = select(Request).where(Request.user_id == user.id)
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = (
        session.execute(
            base.order_by(Request.created_at.desc(), Request.id)
            .limit(limit)
            .offset(offset)
            .options(
                selectinload(Request.events),
                selectinload(Request.export).joinedload(RequestExport.batch),
            )
        )
        .scalars()
        .all()
    )
    return list(rows), total


def get_own(user: User, request_id: str, *, session: Session) -> Request:
    request = session.get(Request, request_id)
    if request is None or request.user_id != user.id:
        raise _NOT_FOUND  # never reveal that another user's request exists
    return request


def _response_dict(response: Response) -> dict[str, Any]:
    return {
        "request_id": response.request_id,
        "status": response.status,
        "total": response.total,
        "hits": response.hits,
        "error": response.error,
        "executed_at": response.executed_at.isoformat(),
        "took_ms": response.took_ms,
        "received_at": response.received_at.isoformat(),
    }


def get_response(
    user: User, request_id: str, *, session: Session, cache: Redis | None, ttl: int
) -> dict[str, Any]:
    """The response, served from the Redis cache after the first read."""
    request = get_own(user, request_id, session=session)
    key = f"resp:{request.id}"
    if cache is not None:
        try:
            cached = cache.get(key)
            if cached:
                return orjson.loads(cached)
        except RedisError:
            cache = None  # the database answers; the cache is only an accelerator
    response = session.get(Response, request.id)
    if response is None:
        raise Problem(404, "Not found", f"no response yet; the request is {request.public_status}")
    body = _response_dict(response)
    if cache is not None:
        with suppress(RedisError):
            cache.set(key, orjson.dumps(body), ex=ttl)
    return body
