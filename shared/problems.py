"""RFC 9457 problem+json errors for both APIs, and a safety net that cannot leak.

Every error either API sends is `application/problem+json`. Input the edge did not catch
and the database refused (`DataError`: NUL bytes, numbers out of range, invalid text) is a
422; a unique or check constraint a race lost is a 409 or 422; anything else unexpected is
a 500 whose body holds only an opaque `error_id`, logged with the stack trace, never the
trace or SQL itself. `document_problems` makes the OpenAPI document say so, route by route.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.http_edge import SECURITY_HEADERS, allowed_methods

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("ferry.api")


class Problem(Exception):
    """An error a service raises; the API turns it into problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []
        self.headers = headers or {}


def problem_response(
    status: int,
    title: str,
    detail: str = "",
    *,
    instance: str = "",
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc(loc: tuple | list) -> str:
    return ".".join(str(p) for p in loc)


TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem detail.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "One entry per refused field: where (`loc`), why (`msg`).",
            "items": {"type": "object"},
        },
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document list every error status each route can return, each with
    its problem+json body: those a route declares (`responses=`), and those the house
    adds to every route of its kind (422 for any input, 401/403 where a credential is
    needed, 404 with a path parameter, 413 with a body, 500 and 503 everywhere)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema and "Problem" in app.openapi_schema["components"]["schemas"]:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components["Problem"] = PROBLEM_SCHEMA
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                _document_operation(path, operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400} | {500, 503}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if operation.get("requestBody"):
        statuses |= {400, 413}  # 400: a body that cannot be read (not UTF-8, not JSON)
    for status in sorted(statuses):
        entry = responses.setdefault(str(status), {})
        entry["description"] = entry.get("description") or TITLES.get(status, "Error")
        entry["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        if status in (429, 503):
            entry.setdefault("headers", {}).update(_RETRY_AFTER)


def install_problem_handlers(app: FastAPI) -> None:
    document_problems(app)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": _loc(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        fields = ", ".join(e["loc"] for e in errors)
        return problem_response(
            422,
            "Invalid request",
            f"invalid fields: {fields}",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        error_id = _log_error(request, exc, level=logging.WARNING)
        return problem_response(
            422,
            "Invalid value",
            f"a value is not valid for storage (out of range or not text); error id {error_id}",
            instance=request.url.path,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        kind = _constraint_kind(exc)
        if kind is None:
            return await _unexpected(request, exc)
        error_id = _log_error(request, exc, level=logging.WARNING)
        if kind == "unique":
            return problem_response(
                409,
                "Conflict",
                f"this conflicts with something stored meanwhile; error id {error_id}",
                instance=request.url.path,
            )
        return problem_response(
            422,
            "Invalid value",
            f"a value is outside what may be stored; error id {error_id}",
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = _log_error(request, exc, level=logging.ERROR)
        body_detail = f"an unexpected error; quote error id {error_id} to an administrator"
        response = problem_response(
            500, "Internal server error", body_detail, instance=request.url.path
        )
        response.headers["X-Error-ID"] = error_id
        # Sent by Starlette's outermost error middleware, past the SecurityHeaders guard and
        # the request log (shared.http_logging), which left the request's id in its state.
        if request_id := getattr(request.state, "request_id", None):
            response.headers["X-Request-ID"] = request_id
        for name, value in SECURITY_HEADERS.items():
            response.headers[name.decode()] = value.decode()
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return problem_response(
            exc.status_code,
            TITLES.get(exc.status_code, "Error"),
            str(exc.detail or ""),
            instance=request.url.path,
            headers=headers,
        )


def _log_error(request: Request, exc: Exception, *, level: int) -> str:
    """Log `exc` with a fresh opaque id (the only thing the reply says of it)."""
    error_id = uuid.uuid4().hex
    log.log(
        level,
        "error %s on %s %s: %s",
        error_id,
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
        extra={"error_id": error_id, "request_id": getattr(request.state, "request_id", None)},
    )
    return error_id


def _constraint_kind(exc: IntegrityError) -> str | None:
    """ "unique" or "check" for a constraint an input or a race can break, else None."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)  # psycopg
    if state == "23505":
        return "unique"
    if state == "23514":
        return "check"
    message = str(orig)  # SQLite
    if message.startswith("UNIQUE constraint failed"):
        return "unique"
    if message.startswith("CHECK constraint failed"):
        return "check"
    return None
