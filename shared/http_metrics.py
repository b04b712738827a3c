"""HTTP metrics of both APIs: how long each request took, by route template, method and
status class (`ferry_http_request_duration_seconds`), and how many are inside the API now
(`ferry_http_requests_in_flight`).

The route label is the template of the route that answered (`/api/v1/requests/{request_id}`),
never the raw path, so the number of series stays bounded whatever clients send: a path no
route has is `unmatched`, a method outside the usual ones `other`. The router records the
route it chose in the ASGI scope; a request answered before routing (a 503 from admission, a
413 from the body limit) is matched against the app's routes here instead, so overload shows
on the route that was asked for.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http_edge import leaf_routes
from shared.metrics import HTTP_IN_FLIGHT, HTTP_SECONDS

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class HttpMetrics:
    """Times every HTTP request until its reply has been sent, and counts those in flight.

    `fastapi_app` (the application itself) names the route of a request that an outer guard
    answered before the router saw it; without it such a request is `unmatched`.
    """

    def __init__(self, app: ASGIApp, fastapi_app: Any = None) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._routes: list[BaseRoute] | None = None  # the app's routes, read on first need

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no reply started: the server answers 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, watched)
        finally:
            HTTP_IN_FLIGHT.dec()
            method = scope.get("method", "")
            HTTP_SECONDS.labels(
                self.route_of(scope),
                method if method in METHODS else "other",
                status_class(status),
            ).observe(time.perf_counter() - started)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that answered, or would have: `unmatched` if none."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str) and path:
            return path
        return self._match(scope)

    def _match(self, scope: Scope) -> str:
        if self.fastapi_app is None:
            return UNMATCHED
        if self._routes is None:
            self._routes = list(leaf_routes(self.fastapi_app.router.routes, mounts=True))
        probe = {
            "type": "http",
            "path": scope.get("path", ""),
            "root_path": scope.get("root_path", ""),
            "method": scope.get("method", ""),
        }
        partial = None
        for route in self._routes:
            match, _ = route.matches(probe)
            if match is Match.FULL:
                return route.path
            if match is Match.PARTIAL and partial is None:
                partial = route.path  # the path is there, not this method: a 405
        return partial or UNMATCHED
