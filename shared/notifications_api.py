"""The in-app notification routes, the same on both networks: a user's own notifications
(unread first, or sorted by time, severity, kind or read), marking them read, and a live
Server-Sent Events stream.

Each network builds the router with its own caller dependency and a `work(caller)` that
opens the caller's unit of work and gives (session, user id); `service` is the network's
`services.notifications` module. (No `from __future__ import annotations` here: the routes'
annotations name the caller dependency given to `build_router`, which FastAPI must see
evaluated.)
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shared.notifications import NotificationSort
from shared.problems import Problem
from shared.validation import PageLimit, PageOffset

STREAM = "/api/v1/notifications/stream"
POLL_S = 1.0  # how often a stream looks for new notifications
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_STREAMS = 64  # per process: a stream holds no database connection, only this slot

NotificationId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class NotificationOut(BaseModel):
    id: int
    event_id: str
    at: datetime
    kind: str
    severity: str
    resolved: bool = Field(description="The event says a condition has cleared")
    title: str
    body: str
    data: dict[str, Any]
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    total: int
    unread: int = Field(description="Unread notifications, in all")
    limit: int
    offset: int


class MarkedRead(BaseModel):
    marked: int


def notification_view(row: Any) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


def _event(row: Any) -> bytes:
    body = orjson.dumps(notification_view(row).model_dump(mode="json"))
    return b"id: %d\nevent: notification\ndata: %s\n\n" % (row.id, body)


def build_router(
    user_dep: Any,
    work: Callable[[Any], AbstractContextManager[tuple[Session, str]]],
    service: Any,
) -> APIRouter:
    router = APIRouter(tags=["notifications"])
    open_streams = 0

    @router.get("/api/v1/notifications", response_model=NotificationPage)
    def list_notifications(
        caller: user_dep,
        unread: Annotated[bool, Query(description="Only the unread ones")] = False,
        limit: Annotated[PageLimit, Query()] = 50,
        offset: Annotated[PageOffset, Query()] = 0,
        sort: Annotated[
            NotificationSort,
            Query(
                description="By time (`at`), severity (by weight), kind or read (`read`: "
                "unread first); `-` first for descending; ties newest first"
            ),
        ] = "read",
    ) -> NotificationPage:
        """Your notifications: unread first, then the newest first (or as `sort` says)."""
        with work(caller) as (session, user_id):
            rows, total, unread_count = service.page(
                user_id, session=session, limit=limit, offset=offset, unread=unread, sort=sort
            )
            items = [notification_view(r) for r in rows]
        return NotificationPage(
            items=items, total=total, unread=unread_count, limit=limit, offset=offset
        )

    @router.post(
        "/api/v1/notifications/{notification_id}/read",
        response_model=NotificationOut,
        responses={404: {"description": "No such notification of yours"}},
    )
    def read_one(caller: user_dep, notification_id: NotificationId) -> NotificationOut:
        """Mark one of your notifications read (again: no change)."""
        with work(caller) as (session, user_id):
            return notification_view(service.mark_read(user_id, notification_id, session=session))

    @router.post("/api/v1/notifications/read-all", response_model=MarkedRead)
    def read_all(caller: user_dep) -> MarkedRead:
        """Mark every notification of yours read; says how many were unread."""
        with work(caller) as (session, user_id):
            return MarkedRead(marked=service.mark_all_read(user_id, session=session))

    @router.get(
        STREAM,
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
            503: {"description": "Too many streams open on this process"},
        },
    )
    async def stream(
        caller: user_dep,
        last_event_id: Annotated[  # not nullable: a header is there or not
            int, Header(ge=0, le=2**63 - 1, description="Resume after this id")
        ] = None,  # type: ignore[assignment]
    ) -> StreamingResponse:
        """Your new notifications as they arrive (Server-Sent Events: `event:
        notification`, `id:` the notification id, `data:` as in the list). A stream ends
        after `notification_stream_seconds` (5 minutes); reconnecting with `Last-Event-ID`
        (browsers do it by themselves) resumes after that one."""
        nonlocal open_streams
        if open_streams >= MAX_STREAMS:
            raise Problem(
                503,
                "Service Unavailable",
                "too many notification streams are open here; retry later",
                headers={"Retry-After": "5"},
            )

        def newest() -> int:
            with work(caller) as (session, user_id):
                return service.newest_id(user_id, session=session)

        def newer(after: int) -> list[bytes]:
            with work(caller) as (session, user_id):
                return [_event(r) for r in service.since(user_id, after, session=session)]

        after = last_event_id if last_event_id is not None else await run_in_threadpool(newest)
        lifetime = caller.settings.notification_stream_seconds

        async def events() -> AsyncIterator[bytes]:
            nonlocal open_streams, after
            open_streams += 1
            try:
                yield b"retry: 3000\n: connected\n\n"
                clock = asyncio.get_running_loop().time
                quiet, ends = 0.0, clock() + lifetime
                while True:
                    sent = await run_in_threadpool(newer, after)
                    for line in sent:
                        yield line
                    if sent:
                        after = int(sent[-1].split(b"\n", 1)[0][4:])
                        quiet = 0.0
                    elif quiet >= HEARTBEAT_S:
                        yield b": keep-alive\n\n"
                        quiet = 0.0
                    left = ends - clock()
                    if left <= 0:
                        return  # the client reconnects, resuming with Last-Event-ID
                    await asyncio.sleep(min(POLL_S, left))
                    quiet += POLL_S
            finally:
                open_streams -= 1

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


__all__ = ["STREAM", "build_router"]
