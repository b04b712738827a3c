"""The panel as an application of its own, mounted at `/admin` in a network's API: the login
and logout pages, the static files, the error pages, and the network's page routers.

Mounted, not included: the panel's routes stay out of the API's OpenAPI schema and its
route walks, and its errors are HTML pages while the API's stay problem+json. The API's
middleware (security headers and CSP, admission, body limit, request log, metrics) wraps
the panel like any route; the metrics name a panel route by its full template
(`/admin/users/{user_id}`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.panel import login
from shared.panel.access import StaffViewer
from shared.panel.core import NO_STORE, PREFIX, STATIC_DIR, LoginRequired, Panel, Refused
from shared.problems import Problem

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
LONG_CACHE = {"Cache-Control": "public, max-age=31536000, immutable"}


def _error(request: Request, status: int, title: str, detail: str, headers=None) -> Response:
    panel: Panel = request.app.state.panel
    page = panel.env.get_template("error.html").render(
        title=title, status=status, detail=detail, csrf="", viewer=None, nav=[], flashes=[]
    )
    return HTMLResponse(page, status_code=status, headers={**NO_STORE, **(headers or {})})


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        if request.headers.get("hx-request"):  # htmx: a full page load of the login
            return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
        return RedirectResponse(
            f"{PREFIX}/login?{login.next_query(target)}", status_code=303, headers=NO_STORE
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _error(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return _error(request, exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})
        return _error(request, 422, "Invalid request", f"invalid fields: {', '.join(fields)}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        return _error(request, exc.status_code, titles.get(exc.status_code, "Error"), "")


def _shell_router() -> APIRouter:
    router = APIRouter()

    @router.get("/static/{name}")
    def static(name: str, request: Request) -> Response:
        panel: Panel = request.app.state.panel
        if name not in panel.static_versions:
            raise StarletteHTTPException(404)
        path = STATIC_DIR / name
        return FileResponse(
            path, media_type=CONTENT_TYPES.get(path.suffix, "text/plain"), headers=LONG_CACHE
        )

    @router.get("/")
    def home(request: Request, viewer: StaffViewer) -> Response:
        """The first page of the viewer's navigation."""
        panel: Panel = request.app.state.panel
        pages = panel.nav_for(viewer.role)
        return RedirectResponse(pages[0].path if pages else f"{PREFIX}/login", status_code=303)

    return router


def build_app(panel: Panel, routers: Sequence[APIRouter]) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.panel = panel
    _install_errors(app)
    app.include_router(_shell_router())
    app.include_router(login.router)
    for router in routers:
        app.include_router(router)
    return app


class _FullTemplates:
    """Names the route that answered by its full template (`/admin/…`) for the API's
    metrics, which read `scope["route"]` once the reply is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            path = getattr(scope.get("route"), "path", None)
            if isinstance(path, str) and not path.startswith(PREFIX):
                scope["route"] = SimpleNamespace(path=PREFIX + path)


def mount(api: FastAPI, panel: Panel, routers: Sequence[APIRouter]) -> None:
    """Serve the panel at `/admin` of `api`."""
    api.mount(PREFIX, _FullTemplates(build_app(panel, routers)), name="panel")
