"""What every reply of both APIs carries, whatever route sent it: security headers, and an
`Allow` header (on `OPTIONS` and on 405) that lists every method of the path, not only
those of the first route that matched it.
"""

from __future__ import annotations

from collections.abc import Iterator

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
# HTML pages load nothing from elsewhere: no CDN, no inline script or style, no framing. The
# interactive API docs too (shared/api_docs.py): Swagger UI and its start-up script are files
# of this origin, its icons `data:` images, its calls (the schema, "Try it out") same-origin.
STRICT_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def leaf_routes(routes: list[BaseRoute], *, mounts: bool = False) -> Iterator[BaseRoute]:
    """The routes an app answers, inside its routers; with `mounts`, also each mount of
    something that is not a router (static files)."""
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if isinstance(route, Route):
            yield route
        elif inner is not None and hasattr(inner, "routes"):
            yield from leaf_routes(inner.routes, mounts=mounts)
        elif mounts and isinstance(getattr(route, "path", None), str):
            yield route


def allowed_methods(app, path: str) -> list[str]:
    """The methods the OpenAPI document gives `path` (OPTIONS always): those of the routes
    whose template matches it with the fewest parameters, so `/rate-limits/violations` is
    not also read as `/rate-limits/{user_id}`."""
    scope = {"type": "http", "path": path, "root_path": "", "method": "OPTIONS"}
    matching = [
        route
        for route in leaf_routes(app.router.routes)
        if route.methods and route.matches(scope)[0] is not Match.NONE
    ]
    fewest = min((route.path.count("{") for route in matching), default=0)
    methods = {"OPTIONS"}
    for route in matching:
        if route.path.count("{") == fewest:
            methods |= route.methods
    return sorted(methods)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every reply, and a CSP to HTML ones; answers `OPTIONS`
    with 204 and the path's `Allow` (404 when no route has the path)."""

    def __init__(self, app: ASGIApp, fastapi_app=None) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["method"] == "OPTIONS" and self.fastapi_app is not None:
            methods = allowed_methods(self.fastapi_app, path)
            if len(methods) > 1:
                await self._options(methods, send)
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k not in SECURITY_HEADERS
                ]
                headers += list(SECURITY_HEADERS.items())
                content_type = next((v for k, v in headers if k == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", STRICT_CSP))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _options(self, methods: list[str], send: Send) -> None:
        headers = [(b"allow", ", ".join(methods).encode()), (b"content-length", b"0")]
        headers += list(SECURITY_HEADERS.items())
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
