"""The response network's FastAPI application: login, health and operator endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from response_network.api import (
    admin_health,
    admin_queues,
    admin_users,
    auth,
    health,
    metrics,
    operator,
)
from response_network.settings import ResponseSettings, get_settings
from shared.http import Admission, BodySizeLimit
from shared.http_edge import SecurityHeaders
from shared.problems import install_problem_handlers
from transfer.operator.api import PREFIX as OPERATOR_PREFIX


def create_app(settings: ResponseSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Ferry response network", version="1", **settings.fastapi_docs())
    app.state.settings = settings
    install_problem_handlers(app)
    for module in (auth, operator, health, metrics):
        app.include_router(module.router)
    for module in (admin_users, admin_health, admin_queues):  # operations (OPERATIONS.md)
        app.include_router(module.router)
    app.include_router(operator.admin_router)
    app.add_middleware(Admission, **settings.admission())
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        exempt_prefixes=(f"{OPERATOR_PREFIX}/inbox/",),
    )
    app.add_middleware(SecurityHeaders, fastapi_app=app)  # outermost: on every reply
    return app
