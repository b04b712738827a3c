"""The edge of both APIs: every request gets an id and, when its reply is done, one log line
(docs/OPERATIONS.md, "Logs").

The id is the caller's `X-Request-ID` when it is well-formed (1 to 128 characters of
letters, digits and `._:-`), else a fresh UUID4 in hex. It is returned as `X-Request-ID` on
every reply, bound to every log line written while the request runs (`request_id`), and
kept in `request.state.request_id`.

The line names the method, the route template (`/api/v1/requests/{request_id}`, never the
raw path or query), the status, the duration, the user (once authenticated: `identify`) and
the client address (behind trusted proxies, `shared.http.client_address`). Bodies and
headers are never logged. Liveness and scrape routes log at DEBUG unless they fail.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars

from shared.http import client_address

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Polled all day by probes and scrapers: their successful requests log at DEBUG.
QUIET_ROUTES = frozenset({"/health", "/metrics"})

log = logging.getLogger("ferry.http")


def request_id_for(scope: Scope) -> str:
    """The caller's `X-Request-ID` if it is well-formed, else a new id."""
    for name, value in scope.get("headers") or ():
        if name.lower() == _HEADER:
            candidate = value.decode("latin-1")
            if WELL_FORMED_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def identify(request: Request, user_id: Any) -> None:
    """Name the authenticated user of `request`: on its log line and on every line after."""
    request.state.user_id = str(user_id)
    bind_contextvars(user_id=str(user_id))


def _trusted_proxies(scope: Scope) -> Any:
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    return getattr(settings, "trusted_proxies", ())


class RequestLogging:
    """Gives each request its id (see the module's docstring) and logs it when it is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        outer = get_contextvars()
        bind_contextvars(request_id=request_id)
        status: int | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                headers.append((_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500  # the app's error handler answers, outside this guard
            raise
        finally:
            self._log(scope, status or 500, time.perf_counter() - started)
            clear_contextvars()
            bind_contextvars(**outer)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None)
        level = logging.INFO if status < 500 else logging.ERROR
        if route in QUIET_ROUTES and status < 400:
            level = logging.DEBUG
        if not log.isEnabledFor(level):
            return
        fields = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "user_id": scope.get("state", {}).get("user_id"),
            "client": client_address(scope, _trusted_proxies(scope)),
        }
        log.log(level, "%s %s %s", scope["method"], route or "(no route)", status, extra=fields)
