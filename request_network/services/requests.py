"""Submitting requests and reading them back; a user only ever sees their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from redis import Redis
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from request_network.models import (
    PENDING,
    ProfileType,
    Request,
    RequestEvent,
    RequestExport,
    Response,
    User,
)
from request_network.services import response_cache
from request_network.services.exchange import enqueue
from request_network.services.identity import profile_rules
from shared import correlation, tracing
from shared.db import utcnow
from shared.problems import Problem
from shared.query_spec import QuerySpecError, validate_query

_NOT_FOUND = Problem(404, "Not found", "no such request")


def validate(
    user: User,
    *,
    session: Session,
    profile_type: str,
    query: dict[str, Any],
    known: Any = None,
) -> None:
    """A 422 unless the user may query `profile_type` and the query fits it. `known`: the
    user's profile type (its rule columns), if the caller has read it already."""
    profile = None
    if profile_type == user.profile_type:
        profile = known if known is not None else session.get(ProfileType, profile_type)
    if profile is None:
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


def create(user: User, *, session: Session, profile_type: str, query: dict[str, Any]) -> Request:
    """A validated request, PENDING with its first event and its outbox entry: three INSERTs
    of plain rows, nothing read back. Returns the request as it was stored (not attached to
    the session). Its correlation id is the HTTP call's id (`shared.correlation`)."""
    now = utcnow()
    row = {
        "id": str(uuid.uuid4()),
        "user_id": user.id,
        "profile_type": profile_type,
        "query": query,
        "status": PENDING,
        "created_at": now,
        "updated_at": now,
        "correlation_id": correlation.for_submission(),
        "traceparent": tracing.current_traceparent(),
    }
    session.execute(insert(Request), [row])
    session.execute(
        insert(RequestEvent),
        [{"request_id": row["id"], "status": PENDING, "at": now, "detail": "submitted"}],
    )
    request = Request(**row)
    request.export = None  # a new request has not been carried anywhere
    enqueue(request, session=session)
    fields = correlation.fields(row["id"], row["correlation_id"])
    correlation.log.info("request %s submitted", row["id"], extra=fields)
    return request


def submit(user: User, *, session: Session, profile_type: str, query: dict[str, Any]) -> Request:
    """Validate and create; returns the request attached to the session (read back: the
    API's limited submission calls `validate` and `create` itself and reads nothing back)."""
    validate(user, session=session, profile_type=profile_type, query=query)
    created = create(user, session=session, profile_type=profile_type, query=query)
    return session.get_one(Request, created.id)


def _with_history(query, events=selectinload):
    """Load what a request's reply shows (events, export and its batch) with the request."""
    return query.options(
        events(Request.events),
        joinedload(Request.export).joinedload(RequestExport.batch),
    )


def list_own(user: User, *, session: Session, limit: int, offset: int) -> tuple[list[Request], int]:
    """A page of the user's requests, newest first, and how many there are in all: the total
    rides on the page's rows (a window count), so a page is one statement plus its events."""
    rows = session.execute(
        _with_history(
            select(Request, func.count().over().label("total"))
            .where(Request.user_id == user.id)
            .order_by(Request.created_at.desc(), Request.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    if rows:
        return [r.Request for r in rows], rows[0].total
    total = session.execute(
        select(func.count()).select_from(Request).where(Request.user_id == user.id)
    ).scalar_one()  # past the end (or none at all): the count alone
    return [], total


def get_own(user: User, request_id: str, *, session: Session) -> Request:
    """The user's request with its history, in one statement."""
    request = (
        session.execute(_with_history(select(Request).where(Request.id == request_id), joinedload))
        .unique()
        .scalar_one_or_none()
    )
    if request is None or request.user_id != user.id:
        raise _NOT_FOUND  # never reveal that another user's request exists
    return request


def get_response(
    user: User,
    request_id: str,
    *,
    sessions: Callable[[], AbstractContextManager[Session]],
    cache: Redis | None,
    settings: Any,
    if_none_match: str | None = None,
) -> response_cache.Served:
    """The response's bytes (or a 304 for a matching `if_none_match`).

    A hit is one Redis round trip that is also the ownership check (an entry is served only
    to the user it was stored for): no database read, and `sessions` is not opened. Else,
    in one session: one indexed read of the owner (another user's request, or none, is a
    404), then the response row, whose first read is noted (`Response.first_read_at`, once)
    before it fills the cache, so a cached response has always been read before."""
    looked = response_cache.lookup(cache, request_id, user_id=user.id, if_none_match=if_none_match)
    if looked.served is not None:
        return looked.served
    with sessions() as session:
        found = session.execute(
            select(Request.user_id, Request.correlation_id).where(Request.id == request_id)
        ).one_or_none()
        if found is None or found.user_id != user.id:
            raise _NOT_FOUND

        def load() -> response_cache.Loaded:
            response = session.get(Response, request_id)
            if response is None:
                state = get_own(user, request_id, session=session).public_status
                raise Problem(404, "Not found", f"no response yet; the request is {state}")
            if response.first_read_at is None:
                note_first_read(request_id, found.correlation_id, session=session)
            return response_cache.encode(response)

        return response_cache.read_through(
            cache,
            request_id,
            looked=looked,
            user_id=user.id,
            policy=response_cache.Policy.of(settings, session=session),
            load=load,
            if_none_match=if_none_match,
        )


def note_first_read(request_id: str, correlation_id: str | None, *, session: Session) -> None:
    """The response of `request_id` has been read: its first read time, if none is set yet
    (one UPDATE; of two first reads at once, one sets it)."""
    noted = session.execute(
        update(Response)
        .where(Response.request_id == request_id, Response.first_read_at.is_(None))
        .values(first_read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if noted.rowcount:
        fields = correlation.fields(request_id, correlation_id)
        correlation.log.info("response to request %s first read", request_id, extra=fields)
